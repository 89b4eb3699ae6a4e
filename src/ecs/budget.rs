//! The per-project action budget: "a maximum of 1,000 ECSs can be stopped in one
//! minute". It counts servers, not calls, over a sliding window. Whoever acts on
//! several targets of one project shares one budget between them (the operator's
//! fleet registry does, through a [`BudgetRegistry`] it owns), so two policies
//! cannot together exceed what the cloud allows.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::error::EcsError;

/// Servers per window allowed by the OTC docs.
pub const DEFAULT_SERVERS_PER_WINDOW: usize = 1000;
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetLimits {
    pub servers_per_window: usize,
    pub window: Duration,
}

impl Default for BudgetLimits {
    fn default() -> Self {
        Self {
            servers_per_window: DEFAULT_SERVERS_PER_WINDOW,
            window: DEFAULT_WINDOW,
        }
    }
}

/// Servers taken at each instant, oldest first. Pure: every method takes `now`.
#[derive(Debug, Default, Clone)]
struct Ledger {
    taken: VecDeque<(Instant, usize)>,
}

impl Ledger {
    fn forget_before(&mut self, now: Instant, window: Duration) {
        while let Some(&(at, _)) = self.taken.front() {
            if now.saturating_duration_since(at) >= window {
                self.taken.pop_front();
            } else {
                break;
            }
        }
    }

    /// Move `n` servers taken at `from` to `to`, keeping the entries in time order.
    fn restamp(&mut self, from: Instant, n: usize, to: Instant) {
        if let Some(entry) = self.taken.iter_mut().find(|e| **e == (from, n)) {
            entry.0 = entry.0.max(to);
            self.taken.make_contiguous().sort_by_key(|&(at, _)| at);
        }
    }

    fn used(&self) -> usize {
        self.taken.iter().map(|(_, n)| n).sum()
    }

    /// When `n` more servers will fit, given nothing else is taken meanwhile.
    fn fits_at(&self, n: usize, limits: BudgetLimits, now: Instant) -> Instant {
        let mut used = self.used();
        if used + n <= limits.servers_per_window {
            return now;
        }
        for &(at, count) in &self.taken {
            used -= count;
            if used + n <= limits.servers_per_window {
                return at + limits.window;
            }
        }
        // Unreachable for n <= the limit: once every entry expired, used is 0.
        now + limits.window
    }
}

/// Servers taken by [`ActionBudget::wait_and_take`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    /// How long the caller waited for the budget.
    pub waited: Duration,
    at: Instant,
    servers: usize,
}

#[derive(Debug)]
pub struct ActionBudget {
    limits: BudgetLimits,
    ledger: Mutex<Ledger>,
    /// Waiters queue here (tokio's mutex is FIFO) so a large request is not starved
    /// by a stream of small ones slipping in whenever a little budget frees up.
    queue: tokio::sync::Mutex<()>,
}

impl ActionBudget {
    pub fn new(limits: BudgetLimits) -> Self {
        Self {
            limits,
            ledger: Mutex::new(Ledger::default()),
            queue: tokio::sync::Mutex::new(()),
        }
    }

    pub fn limits(&self) -> BudgetLimits {
        self.limits
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        // A panic while holding this lock cannot leave the ledger inconsistent
        // (every mutation is a single push or pop), so poisoning is ignored.
        self.ledger
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Servers that could be acted on at `now`.
    #[cfg(test)]
    fn available(&self, now: Instant) -> usize {
        let mut ledger = self.ledger();
        ledger.forget_before(now, self.limits.window);
        self.limits.servers_per_window.saturating_sub(ledger.used())
    }

    /// When `n` servers will fit, if nothing else is taken meanwhile: `now` if they
    /// fit already.
    pub fn fits_at(&self, n: usize, now: Instant) -> Instant {
        let mut ledger = self.ledger();
        ledger.forget_before(now, self.limits.window);
        ledger.fits_at(n, self.limits, now)
    }

    /// Take `n` at `now` if they fit; `false` leaves the budget unchanged.
    pub fn try_take_at(&self, n: usize, now: Instant) -> bool {
        let mut ledger = self.ledger();
        ledger.forget_before(now, self.limits.window);
        if ledger.used() + n > self.limits.servers_per_window {
            return false;
        }
        if n > 0 {
            ledger.taken.push_back((now, n));
        }
        true
    }

    /// Take `n` now if they fit. Does not queue behind `wait_and_take` callers:
    /// for callers that would rather do something else than wait.
    pub fn try_take(&self, n: usize) -> bool {
        self.try_take_at(n, Instant::now())
    }

    /// Take `n`, sleeping until they fit. More than the whole window's budget can
    /// never fit and is refused rather than waited on forever.
    pub async fn wait_and_take(&self, n: usize) -> Result<Taken, EcsError> {
        if n > self.limits.servers_per_window {
            return Err(EcsError::TooManyServers {
                count: n,
                max: self.limits.servers_per_window,
            });
        }
        let started = Instant::now();
        // Zero, not a few microseconds of locking, when nothing was waited for:
        // callers log and report non-zero waits. Queueing behind another waiter counts.
        let mut slept = false;
        let _turn = match self.queue.try_lock() {
            Ok(turn) => turn,
            Err(_) => {
                slept = true;
                self.queue.lock().await
            }
        };
        loop {
            let now = Instant::now();
            let wake = {
                let mut ledger = self.ledger();
                ledger.forget_before(now, self.limits.window);
                let at = ledger.fits_at(n, self.limits, now);
                if at <= now {
                    if n > 0 {
                        ledger.taken.push_back((now, n));
                    }
                    return Ok(Taken {
                        waited: if slept { now - started } else { Duration::ZERO },
                        at: now,
                        servers: n,
                    });
                }
                at
            };
            slept = true;
            tokio::time::sleep_until(wake).await;
        }
    }
}

impl ActionBudget {
    /// Count `servers` taken at `at` by someone else: a process before a restart,
    /// whose calls the cloud still counts in its window.
    pub fn carry(&self, at: Instant, servers: usize) {
        if servers == 0 {
            return;
        }
        let mut ledger = self.ledger();
        ledger.taken.push_back((at, servers));
        ledger.taken.make_contiguous().sort_by_key(|&(at, _)| at);
    }

    /// Count `taken` from `at` on instead of from when it was taken. The cloud
    /// counts servers when the request arrives, somewhere between our take and
    /// its answer; counting from the answer keeps our window from closing before
    /// the cloud's, which would earn a `Common.1503` refusal.
    pub fn settle(&self, taken: &Taken, at: Instant) {
        self.ledger().restamp(taken.at, taken.servers, at);
    }
}

impl ActionBudget {
    /// When the last of `calls` (servers in each, sent in this order, each as soon as
    /// the budget covers it, none before `not_before`) would go out, if nobody else
    /// took from the budget meanwhile: what is already spent in the window counts.
    /// A forecast on a copy of the ledger; the budget is left as it is.
    pub fn last_fits_at(&self, calls: &[usize], not_before: Instant) -> Instant {
        let mut ledger = self.ledger().clone();
        let mut at = not_before;
        for &n in calls {
            ledger.forget_before(at, self.limits.window);
            let n = n.min(self.limits.servers_per_window);
            at = ledger.fits_at(n, self.limits, at);
            if n > 0 {
                ledger.taken.push_back((at, n));
            }
        }
        at
    }
}

/// One budget per (endpoint, project), for its owner's callers to share.
#[derive(Debug, Default)]
pub struct BudgetRegistry {
    budgets: Mutex<HashMap<(String, String), Arc<ActionBudget>>>,
}

impl BudgetRegistry {
    /// The budget of this project. The first caller's `limits` win: a budget's
    /// limits cannot change under callers already sharing it.
    pub fn budget(
        &self,
        endpoint: &str,
        project_id: &str,
        limits: BudgetLimits,
    ) -> Arc<ActionBudget> {
        let key = (
            endpoint.trim_end_matches('/').to_owned(),
            project_id.to_owned(),
        );
        self.budgets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(key)
            .or_insert_with(|| Arc::new(ActionBudget::new(limits)))
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(n: usize, secs: u64) -> BudgetLimits {
        BudgetLimits {
            servers_per_window: n,
            window: Duration::from_secs(secs),
        }
    }

    #[test]
    fn budget_slides_with_injected_instants() {
        let budget = ActionBudget::new(limits(1000, 60));
        let t0 = Instant::now();
        assert_eq!(budget.available(t0), 1000);
        assert!(budget.try_take_at(600, t0));
        assert!(budget.try_take_at(300, t0 + Duration::from_secs(30)));
        assert_eq!(budget.available(t0 + Duration::from_secs(30)), 100);
        assert!(!budget.try_take_at(101, t0 + Duration::from_secs(59)));
        assert_eq!(budget.available(t0 + Duration::from_secs(59)), 100);
        // The first 600 leave the window exactly 60 s after they were taken.
        assert_eq!(budget.available(t0 + Duration::from_secs(60)), 700);
        assert!(budget.try_take_at(700, t0 + Duration::from_secs(60)));
        assert_eq!(budget.available(t0 + Duration::from_secs(90)), 300);
        assert_eq!(budget.available(t0 + Duration::from_secs(120)), 1000);
    }

    #[test]
    fn fits_at_finds_the_first_instant_enough_has_expired() {
        let l = limits(1000, 60);
        let t0 = Instant::now();
        let mut ledger = Ledger::default();
        ledger.taken.push_back((t0, 600));
        ledger.taken.push_back((t0 + Duration::from_secs(10), 400));
        let now = t0 + Duration::from_secs(20);
        assert_eq!(ledger.fits_at(0, l, now), now);
        assert_eq!(ledger.fits_at(600, l, now), t0 + Duration::from_secs(60));
        assert_eq!(ledger.fits_at(601, l, now), t0 + Duration::from_secs(70));
    }

    #[test]
    fn settling_counts_from_the_answer() {
        let budget = ActionBudget::new(limits(10, 60));
        let t0 = Instant::now();
        assert!(budget.try_take_at(4, t0));
        let taken = Taken {
            waited: Duration::ZERO,
            at: t0 + Duration::from_secs(1),
            servers: 6,
        };
        assert!(budget.try_take_at(6, taken.at));
        budget.settle(&taken, t0 + Duration::from_secs(3));
        // Four leave at 60 s, the six settled at 3 s leave at 63 s, not 61 s.
        assert_eq!(budget.available(t0 + Duration::from_secs(62)), 4);
        assert_eq!(budget.available(t0 + Duration::from_secs(63)), 10);
        // Settling earlier than the take never shortens the hold.
        let mut ledger = Ledger::default();
        ledger.taken.push_back((t0, 1));
        ledger.restamp(t0, 1, t0 - Duration::from_secs(1));
        assert_eq!(ledger.taken[0].0, t0);
    }

    #[test]
    fn carried_servers_hold_the_window_from_when_they_were_taken() {
        let budget = ActionBudget::new(limits(1000, 60));
        let t0 = Instant::now();
        assert!(budget.try_take_at(200, t0 + Duration::from_secs(30)));
        budget.carry(t0, 800);
        assert_eq!(budget.available(t0 + Duration::from_secs(30)), 0);
        assert_eq!(
            budget.fits_at(800, t0 + Duration::from_secs(30)),
            t0 + Duration::from_secs(60)
        );
        assert_eq!(budget.available(t0 + Duration::from_secs(60)), 800);
    }

    #[test]
    fn zero_is_always_available_and_leaves_no_entry() {
        let budget = ActionBudget::new(limits(1, 60));
        let t0 = Instant::now();
        assert!(budget.try_take_at(1, t0));
        assert!(budget.try_take_at(0, t0));
        assert_eq!(budget.ledger().taken.len(), 1);
    }

    #[test]
    fn forecast_counts_what_the_window_spent_and_changes_nothing() {
        let budget = ActionBudget::new(limits(1000, 60));
        let t0 = Instant::now();
        let secs = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(budget.last_fits_at(&[], t0), t0);
        assert_eq!(budget.last_fits_at(&[1000], t0), t0, "one call fits now");
        assert!(budget.try_take_at(700, t0));
        let now = secs(10);
        assert_eq!(budget.last_fits_at(&[300], now), now);
        // 400 fit once the 700 leave; then a full call waits for those 400 to leave.
        assert_eq!(budget.last_fits_at(&[400], now), secs(60));
        assert_eq!(budget.last_fits_at(&[400, 1000], now), secs(120));
        // Five full calls: one per window, the first once the 700 left.
        assert_eq!(budget.last_fits_at(&[1000; 5], now), secs(60 + 4 * 60));
        // Oversized calls are counted as a whole window's worth, not forever.
        assert_eq!(budget.last_fits_at(&[5000], now), secs(60));
        assert_eq!(budget.available(now), 300, "the forecast took nothing");
    }

    #[tokio::test]
    async fn shortened_window_in_real_time() {
        let budget = ActionBudget::new(BudgetLimits {
            servers_per_window: 4,
            window: Duration::from_millis(150),
        });
        assert!(budget.try_take(4));
        assert!(!budget.try_take(1));
        let waited = budget.wait_and_take(3).await.unwrap().waited;
        assert!(waited >= Duration::from_millis(100), "waited {waited:?}");
        assert!(waited < Duration::from_secs(2), "waited {waited:?}");
        assert_eq!(budget.available(Instant::now()), 1);
        // More than a whole window's budget would wait forever: refused instead.
        assert!(matches!(
            budget.wait_and_take(5).await,
            Err(EcsError::TooManyServers { count: 5, max: 4 })
        ));
    }

    #[tokio::test]
    async fn concurrent_waiters_never_exceed_the_window() {
        let window = Duration::from_millis(200);
        let budget = Arc::new(ActionBudget::new(BudgetLimits {
            servers_per_window: 10,
            window,
        }));
        let started = Instant::now();
        let tasks: Vec<_> = (0..6)
            .map(|_| {
                let budget = budget.clone();
                tokio::spawn(async move {
                    budget.wait_and_take(5).await.unwrap();
                    Instant::now()
                })
            })
            .collect();
        let mut taken_at = Vec::new();
        for task in tasks {
            taken_at.push(task.await.unwrap());
        }
        taken_at.sort();
        // 30 servers at 10 per window: two takes now, two after one window, two after two.
        for (i, at) in taken_at.iter().enumerate() {
            let earliest = window * (i as u32 / 2);
            assert!(
                at.duration_since(started) + Duration::from_millis(5) >= earliest,
                "take {i} at {:?}",
                at.duration_since(started)
            );
        }
    }

    #[test]
    fn registry_shares_one_budget_per_project() {
        let registry = BudgetRegistry::default();
        let a = registry.budget("https://ecs.eu-de.otc.t-systems.com/", "p1", limits(10, 60));
        let b = registry.budget("https://ecs.eu-de.otc.t-systems.com", "p1", limits(99, 1));
        let c = registry.budget("https://ecs.eu-de.otc.t-systems.com", "p2", limits(10, 60));
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(b.limits(), limits(10, 60));
        assert!(a.try_take(10));
        assert_eq!(b.available(Instant::now()), 0);
        assert_eq!(c.available(Instant::now()), 10);
    }
}
