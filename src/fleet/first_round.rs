//! The controller's first round: when it starts, it plans every policy that exists
//! and queues their stops before any sync reports (see
//! `controller::reconcile::plan_ahead`). While that round runs the queue is still
//! filling, so a partial batch waits for its end instead of for a quiet spell in the
//! queue, and goes at once when it ends; and syncs wait for it, so that one policy is
//! never planned twice at once. One record of the round serves both.

use tokio::sync::watch;
use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Round {
    /// No controller has begun a round (a fleet used on its own): no gate.
    NotBegun,
    Running,
    Ended {
        at: Instant,
    },
    /// Stopping before it ended: syncs may finish, held batches stay held.
    Abandoned,
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
    round: watch::Sender<Round>,
}

impl Default for FirstRound {
    fn default() -> Self {
        Self {
            round: watch::Sender::new(Round::NotBegun),
        }
    }
}

impl FirstRound {
    /// A controller starts: partial batches and syncs wait.
    pub fn begin(&self) {
        self.round.send_replace(Round::Running);
    }

    /// Every listed policy has been planned (or the round ran out of time).
    pub fn end(&self, now: Instant) {
        self.round.send_replace(Round::Ended { at: now });
    }

    /// Stopping before the round ended (SIGTERM, lost leadership): syncs may finish,
    /// held batches stay held.
    pub fn abandon(&self) {
        self.round.send_if_modified(|round| {
            let running = *round == Round::Running;
            if running {
                *round = Round::Abandoned;
            }
            running
        });
    }

    pub fn gate(&self) -> Gate {
        match *self.round.borrow() {
            Round::NotBegun => Gate::Open {
                round_ended_at: None,
            },
            Round::Running | Round::Abandoned => Gate::Closed,
            Round::Ended { at } => Gate::Open {
                round_ended_at: Some(at),
            },
        }
    }

    /// Returns once no round is running (at once outside one).
    pub async fn done(&self) {
        let mut round = self.round.subscribe();
        // The sender lives as long as `self`: waiting cannot fail.
        let _ = round.wait_for(|round| *round != Round::Running).await;
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

    #[tokio::test]
    async fn syncs_wait_for_the_round_and_an_abandoned_round_holds_nothing_back_but_batches() {
        let round = std::sync::Arc::new(FirstRound::default());
        round.done().await;
        round.begin();
        let waiting = tokio::spawn({
            let round = round.clone();
            async move { round.done().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        round.abandon();
        waiting.await.unwrap();
        assert_eq!(round.gate(), Gate::Closed);
    }
}
