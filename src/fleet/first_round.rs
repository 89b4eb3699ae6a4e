//! The controller's first round: when it starts, it plans every policy that exists
//! and queues their stops before any sync reports (see
//! `controller::reconcile::plan_ahead`). While that round runs the queue is still
//! filling, so a partial batch waits for its end instead of for a quiet spell in the
//! queue, and goes at once when it ends.

use std::sync::Mutex;
use tokio::time::Instant;

#[derive(Debug, Clone, Copy)]
enum Round {
    /// No controller has begun a round (a fleet used on its own): no gate.
    NotBegun,
    Running,
    Ended {
        at: Instant,
    },
}

/// Whether partial batches may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Closed,
    /// Open; `round_ended_at` is when the first round ended, if there was one.
    Open {
        round_ended_at: Option<Instant>,
    },
}

#[derive(Debug)]
pub struct FirstRound {
    round: Mutex<Round>,
}

impl Default for FirstRound {
    fn default() -> Self {
        Self {
            round: Mutex::new(Round::NotBegun),
        }
    }
}

impl FirstRound {
    fn set(&self, round: Round) {
        *self.round.lock().expect("first round lock poisoned") = round;
    }

    /// A controller starts: partial batches wait.
    pub fn begin(&self) {
        self.set(Round::Running);
    }

    /// Every listed policy has been planned (or the round ran out of time).
    pub fn end(&self, now: Instant) {
        self.set(Round::Ended { at: now });
    }

    pub fn gate(&self) -> Gate {
        match *self.round.lock().expect("first round lock poisoned") {
            Round::NotBegun => Gate::Open {
                round_ended_at: None,
            },
            Round::Running => Gate::Closed,
            Round::Ended { at } => Gate::Open {
                round_ended_at: Some(at),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_is_closed_while_the_round_runs() {
        let round = FirstRound::default();
        assert_eq!(
            round.gate(),
            Gate::Open {
                round_ended_at: None
            }
        );
        round.begin();
        assert_eq!(round.gate(), Gate::Closed);
        let end = Instant::now();
        round.end(end);
        assert_eq!(
            round.gate(),
            Gate::Open {
                round_ended_at: Some(end)
            }
        );
    }
}
