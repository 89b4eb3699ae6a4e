//! The fleet's listing as a task of its own, joined by every sync that needs it and
//! waited for by each at most a short while: a tenant's slow endpoint (a tarpit that
//! answers nothing for the whole request deadline) then holds none of the controller's
//! sync slots, which every tenant shares, for longer than that wait (issue 14).

use crate::ecs::error::EcsError;
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use std::sync::Mutex;
use std::time::Duration;

type Outcome = Result<(), EcsError>;

struct Running {
    outcome: Shared<BoxFuture<'static, Outcome>>,
    task: tokio::task::AbortHandle,
}

/// At most one listing under way per fleet.
#[derive(Default)]
pub(super) struct Listing {
    running: Mutex<Option<Running>>,
}

impl Listing {
    /// Joins the listing under way, or starts one with `start`, and waits for it at
    /// most `wait`: `None` if it is still under way then (it goes on; a later sync
    /// joins it). A listing that ended while nobody waited hands its outcome to the
    /// next sync, so a failure after a long wait still reaches a status.
    pub async fn join(
        &self,
        wait: Duration,
        start: impl FnOnce() -> BoxFuture<'static, Outcome>,
    ) -> Option<Outcome> {
        let outcome = {
            let mut running = self.running.lock().expect("listing lock poisoned");
            let reusable = running.as_ref().and_then(|r| {
                let seen = r.outcome.peek().is_some();
                (!(r.task.is_finished() && seen)).then(|| r.outcome.clone())
            });
            match reusable {
                Some(outcome) => outcome,
                None => {
                    let task = tokio::spawn(start());
                    let handle = task.abort_handle();
                    let outcome = async move {
                        task.await.unwrap_or_else(|error| {
                            Err(EcsError::Config(format!("the listing task ended: {error}")))
                        })
                    }
                    .boxed()
                    .shared();
                    *running = Some(Running {
                        outcome: outcome.clone(),
                        task: handle,
                    });
                    outcome
                }
            }
        };
        tokio::time::timeout(wait, outcome).await.ok()
    }
}

impl Drop for Listing {
    /// A retired fleet's listing is not finished for nobody.
    fn drop(&mut self) {
        if let Some(running) = self.running.get_mut().ok().and_then(Option::take) {
            running.task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn counting(
        started: &Arc<AtomicUsize>,
        takes: Duration,
        outcome: Outcome,
    ) -> BoxFuture<'static, Outcome> {
        started.fetch_add(1, Ordering::SeqCst);
        async move {
            tokio::time::sleep(takes).await;
            outcome
        }
        .boxed()
    }

    #[tokio::test]
    async fn a_slow_listing_is_joined_not_started_again_and_its_failure_is_handed_on() {
        let listing = Listing::default();
        let started = Arc::new(AtomicUsize::new(0));
        let wait = Duration::from_millis(20);
        let takes = Duration::from_millis(300);
        let failure = || Err(EcsError::Config("tarpit".into()));
        for _ in 0..5 {
            let joined = listing
                .join(wait, || counting(&started, takes, failure()))
                .await;
            assert!(
                joined.is_none(),
                "still under way: the sync gives its slot back"
            );
        }
        assert_eq!(
            started.load(Ordering::SeqCst),
            1,
            "one listing, joined 5 times"
        );
        // It ends while nobody waits: the next sync gets its failure.
        tokio::time::sleep(takes).await;
        let handed_on = listing
            .join(wait, || counting(&started, Duration::ZERO, Ok(())))
            .await;
        assert!(
            matches!(handed_on, Some(Err(EcsError::Config(_)))),
            "{handed_on:?}"
        );
        // Seen: the one after that lists afresh.
        let fresh = listing
            .join(wait, || counting(&started, Duration::ZERO, Ok(())))
            .await;
        assert!(matches!(fresh, Some(Ok(()))));
        assert_eq!(started.load(Ordering::SeqCst), 2);
    }
}
