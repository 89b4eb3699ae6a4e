//! The fleet's decisions with an explicit clock: no HTTP, no tokio runtime, no sleep.

use super::*;
use crate::ecs::budget::BudgetLimits;
use crate::ecs::error::ApiFailure;
use crate::ecs::wire::JobStatus;
use crate::fleet::eta::START_MARGIN;
use crate::fleet::jobs::tests::job;
use crate::fleet::journal::{InheritedCall, InheritedJob};
use crate::fleet::lane::MAX_LINGERS;
use std::time::Duration;

const OPEN: Gate = Gate::Open {
    round_ended_at: None,
};

fn key(name: &str) -> PolicyKey {
    PolicyKey::new("ns", name)
}

fn ids(names: &[&str]) -> Vec<ServerId> {
    names.iter().map(|n| (*n).into()).collect()
}

/// Ids as a policy's status and the call journal write them.
fn texts(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

fn set(names: &[&str]) -> IdSet {
    ids(names).into_iter().collect()
}

/// A clock that only moves when told.
struct Clock {
    t0: Instant,
    wall0: jiff::Timestamp,
}

impl Clock {
    fn new() -> Self {
        Self {
            t0: Instant::now(),
            wall0: jiff::Timestamp::from_second(1_700_000_000).unwrap(),
        }
    }

    fn at(&self, ms: u64) -> Now {
        Now {
            at: self.t0 + Duration::from_millis(ms),
            wall: self.wall0 + Duration::from_millis(ms),
        }
    }
}

fn config() -> FleetConfig {
    FleetConfig {
        linger: Duration::from_millis(500),
        job_deadline: Duration::from_secs(60),
        ..FleetConfig::default()
    }
}

/// A job that finished with one successful sub-job, for `server`.
fn succeeded_on(server: &str) -> Job {
    let sub = crate::fleet::jobs::tests::sub(server, JobStatus::Success, None);
    job(JobStatus::Success, vec![sub])
}

fn budget() -> ActionBudget {
    ActionBudget::new(BudgetLimits::default())
}

fn error(kind: ErrorKind, status: Option<u16>, code: Option<&str>) -> EcsError {
    EcsError::from_failure(
        kind,
        "os-stop",
        ApiFailure {
            status,
            code: code.map(str::to_owned),
            message: "refused".into(),
            request_id: None,
        },
        None,
    )
}

struct World {
    state: FleetState,
    clock: Clock,
    budget: ActionBudget,
}

impl World {
    fn new() -> Self {
        Self {
            state: FleetState::new(config()),
            clock: Clock::new(),
            budget: budget(),
        }
    }

    /// A sync of `policy` wanting `desired` (every one Running unless `power` says
    /// otherwise), at `now_ms`, against a listing that began at `listed_ms`.
    fn sync_with(
        &mut self,
        policy: &str,
        desired: &[&str],
        (mode, lane): (Mode, Lane),
        power: &[(&str, ObservedPower)],
        (listed_ms, now_ms): (u64, u64),
    ) -> FleetView {
        let desired = ids(desired);
        let mut servers: IdMap<ObservedPower> = desired
            .iter()
            .map(|id| (id.clone(), ObservedPower::Running))
            .collect();
        for (id, p) in power {
            servers.insert((*id).into(), *p);
        }
        let policy = key(policy);
        self.state.sync(
            &SyncRequest {
                policy: &policy,
                desired: &desired,
                mode,
                lane,
                backoff: Backoff {
                    base: Duration::from_secs(10),
                    max: Duration::from_secs(60),
                },
                deleted: false,
                start: &[],
            },
            &Observed {
                servers: &servers,
                listed_at: self.clock.at(listed_ms).at,
            },
            self.clock.at(now_ms),
        )
    }

    fn sync(&mut self, policy: &str, desired: &[&str], now_ms: u64) -> FleetView {
        let act = (Mode::Act, Lane::SoftStop);
        self.sync_with(policy, desired, act, &[], (now_ms, now_ms))
    }

    fn due(&mut self, lane: Lane, now_ms: u64) -> Option<DueCall> {
        match self
            .state
            .take_due(lane, OPEN, &self.budget, self.clock.at(now_ms).at)
        {
            Due::Call(call) => Some(call),
            _ => None,
        }
    }
}

#[test]
fn a_partial_batch_goes_after_a_linger_and_a_full_one_at_once() {
    let mut w = World::new();
    w.sync("p", &["a", "b"], 0);
    assert!(w.due(Lane::SoftStop, 400).is_none(), "still lingering");
    let call = w.due(Lane::SoftStop, 500).expect("due after a linger");
    assert_eq!(call.ids, ids(&["a", "b"]));
    let many: Vec<String> = (0..1000).map(|i| format!("s{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    w.sync("q", &many, 600);
    assert_eq!(w.due(Lane::SoftStop, 600).expect("full").ids.len(), 1000);
}

#[test]
fn withdrawn_ids_are_not_put_back_when_their_call_is_refused() {
    let mut w = World::new();
    w.sync("p", &["a", "b"], 0);
    w.sync("q", &["b", "c"], 0);
    let call = w.due(Lane::SoftStop, 500).unwrap();
    assert_eq!(call.ids.len(), 3);
    // While the call is under way p is deleted and q drops "c".
    w.state
        .withdraw_unwanted(&key("p"), None, &IdSet::default());
    w.sync("q", &["b"], 600);
    let throttled = error(ErrorKind::Throttled, Some(429), Some("APIGW.0308"));
    let recorded = w
        .state
        .record_call(call.id, Err(&throttled), w.clock.at(700));
    assert_eq!(recorded.policies, [key("q")].into());
    let again = w
        .due(Lane::SoftStop, 700 + 2_000 + 500)
        .expect("b goes again");
    assert_eq!(again.ids, ids(&["b"]), "a and c were withdrawn");
}

#[test]
fn a_suspended_dry_run_idle_or_deleted_policy_queues_nothing_and_withdraws_what_it_had() {
    // Idle: a window that ended, or a keep-running override, withdraws queued stops.
    for mode in [Mode::Suspend, Mode::DryRun, Mode::Idle] {
        let mut w = World::new();
        w.sync("p", &["a"], 0);
        let view = w.sync_with("p", &["a"], (mode, Lane::SoftStop), &[], (10, 10));
        assert!(view.outcome.to_stop.is_empty());
        assert!(w.state.is_idle(), "{mode:?}");
    }
    let mut w = World::new();
    let desired = ids(&["a"]);
    let servers: IdMap<_> = [(ServerId::from("a"), ObservedPower::Running)]
        .into_iter()
        .collect();
    let now = w.clock.at(0);
    let view = w.state.sync(
        &SyncRequest {
            policy: &key("p"),
            desired: &desired,
            mode: Mode::Act,
            lane: Lane::SoftStop,
            backoff: Backoff {
                base: Duration::from_secs(1),
                max: Duration::from_secs(1),
            },
            deleted: true,
            start: &[],
        },
        &Observed {
            servers: &servers,
            listed_at: now.at,
        },
        now,
    );
    assert!(view.outcome.to_stop.is_empty());
    assert!(w.state.is_idle());
}

#[test]
fn one_server_has_one_action_in_flight_across_lanes() {
    let mut w = World::new();
    w.sync("soft", &["x", "y"], 0);
    // Another policy, Hard, names x: queued in the Soft lane, so in flight for it.
    let hard = w.sync_with(
        "hard",
        &["x", "z"],
        (Mode::Act, Lane::HardStop),
        &[],
        (0, 0),
    );
    assert_eq!(hard.outcome.to_stop, ids(&["z"]));
    assert_eq!(hard.outcome.summary.stopping, 1);
    // In a call, it is in flight for every lane and policy.
    let call = w.due(Lane::SoftStop, 500).unwrap();
    assert!(call.ids.contains(&"x".into()));
    let other = w.sync_with(
        "hard2",
        &["x"],
        (Mode::Act, Lane::HardStop),
        &[],
        (500, 500),
    );
    assert!(other.outcome.to_stop.is_empty());
    // Another policy of the same lane joins the queued id: sent once, for both.
    let mut w = World::new();
    w.sync("a", &["x"], 0);
    let joined = w.sync("b", &["x"], 0);
    assert_eq!(joined.outcome.to_stop, ids(&["x"]));
    assert_eq!(w.due(Lane::SoftStop, 500).unwrap().ids, ids(&["x"]));
    assert!(w.due(Lane::HardStop, 500).is_none());
}

#[test]
fn a_policy_that_changes_its_stop_type_moves_its_ids_to_the_new_lane() {
    let mut w = World::new();
    w.sync("p", &["x"], 0);
    let hard = w.sync_with("p", &["x"], (Mode::Act, Lane::HardStop), &[], (10, 10));
    assert_eq!(hard.outcome.to_stop, ids(&["x"]));
    assert!(w.due(Lane::SoftStop, 1000).is_none());
    assert_eq!(w.due(Lane::HardStop, 1000).unwrap().ids, ids(&["x"]));
}

#[test]
fn an_unknown_outcome_waits_for_a_listing_that_began_after_it_could_show() {
    let lost = error(ErrorKind::OutcomeUnknown, None, None);
    let gateway = error(ErrorKind::OutcomeUnknown, Some(504), None);
    for answer in [lost, gateway] {
        let mut w = World::new();
        w.sync("p", &["a", "b"], 0);
        let call = w.due(Lane::SoftStop, 500).unwrap();
        let recorded = w
            .state
            .record_call(call.id, Err(&answer), w.clock.at(1_000));
        assert!(recorded.relist);
        // A listing begun before the answer came: it may predate the stop.
        let early = w.sync_with(
            "p",
            &["a", "b"],
            (Mode::Act, Lane::SoftStop),
            &[],
            (900, 3_000),
        );
        assert!(early.outcome.to_stop.is_empty(), "{answer}");
        assert_eq!(early.outcome.summary.stopping, 2);
        // Nor one begun within the settle time: the cloud may not have touched a
        // new job's servers yet.
        let settle = config().unknown_outcome_settle.as_millis() as u64;
        let busy = w.sync_with(
            "p",
            &["a", "b"],
            (Mode::Act, Lane::SoftStop),
            &[],
            (1_000 + settle, 1_000 + settle + 100),
        );
        assert!(busy.outcome.to_stop.is_empty(), "{answer}");
        // A listing begun later decides: a still ACTIVE with no task, b powering off.
        let power = [("b", ObservedPower::Stopping)];
        let late = w.sync_with(
            "p",
            &["a", "b"],
            (Mode::Act, Lane::SoftStop),
            &power,
            (1_001 + settle, 1_001 + settle + 100),
        );
        assert_eq!(late.outcome.to_stop, ids(&["a"]), "{answer}");
    }
}

#[test]
fn a_refusal_because_of_some_servers_is_bisected_down_to_them() {
    let mut w = World::new();
    w.sync("p", &["a", "b", "c", "locked"], 0);
    let locked = error(ErrorKind::Invalid, Some(400), Some("Ecs.0605"));
    let mut sent = Vec::new();
    let mut t = 500;
    while let Some(call) = w.due(Lane::SoftStop, t) {
        sent.push(call.ids.clone());
        let answer = if call.ids.contains(&"locked".into()) {
            Err(&locked)
        } else {
            Ok("job")
        };
        w.state.record_call(call.id, answer, w.clock.at(t));
        t += 10;
    }
    let sent: Vec<usize> = sent.iter().map(Vec::len).collect();
    assert_eq!(
        sent,
        [4, 2, 2, 1, 1],
        "the whole, both halves, both quarters"
    );
    let view = w.sync("p", &["a", "b", "c", "locked"], t);
    assert_eq!(view.failing["locked"].code, "Ecs.0605");
    assert_eq!(view.failing.len(), 1, "only the locked server failed");
    assert!(
        view.submit_failure.is_none(),
        "not a problem of the project"
    );
}

#[test]
fn a_throttled_call_goes_back_first_in_line_after_the_backoff() {
    let mut w = World::new();
    w.sync("p", &["a", "b"], 0);
    let call = w.due(Lane::SoftStop, 500).unwrap();
    w.sync("q", &["c"], 600);
    let throttled = error(ErrorKind::Throttled, Some(429), None);
    w.state
        .record_call(call.id, Err(&throttled), w.clock.at(700));
    assert!(w.due(Lane::SoftStop, 2_000).is_none(), "backing off");
    let again = w.due(Lane::SoftStop, 2_700).unwrap();
    assert_eq!(again.ids, ids(&["a", "b", "c"]));
}

#[test]
fn refused_credentials_are_a_problem_of_every_policy_until_a_call_is_accepted() {
    let mut w = World::new();
    w.sync("p", &["a"], 0);
    let call = w.due(Lane::SoftStop, 500).unwrap();
    let auth = error(ErrorKind::Auth, Some(403), Some("Ecs.0003"));
    w.state.record_call(call.id, Err(&auth), w.clock.at(600));
    let view = w.sync("q", &["z"], 700);
    assert_eq!(view.submit_failure.unwrap().kind, ErrorKind::Auth);
    let call = w.due(Lane::SoftStop, 1_300).unwrap();
    w.state.record_call(call.id, Ok("j"), w.clock.at(1_400));
    assert!(w.sync("q", &["z"], 1_500).submit_failure.is_none());
}

#[test]
fn a_job_whose_poll_fails_for_good_is_lost_and_its_servers_re_observed() {
    let mut w = World::new();
    w.sync("p", &["a"], 0);
    let call = w.due(Lane::SoftStop, 500).unwrap();
    w.state.record_call(call.id, Ok("j"), w.clock.at(600));
    // A poll that may work next time changes nothing.
    let busy = error(ErrorKind::Transient, Some(500), None);
    w.state.record_poll("j", Err(busy), w.clock.at(700));
    assert_eq!(w.state.unfinished_count(), 1);
    let gone = error(ErrorKind::Invalid, Some(400), Some("Common.0011"));
    w.state.record_poll("j", Err(gone), w.clock.at(800));
    assert_eq!(w.state.unfinished_count(), 0);
    assert_eq!(
        w.state.expire(w.clock.at(800)).lost,
        [LostReason::PollFailed]
    );
    let view = w.sync_with("p", &["a"], (Mode::Act, Lane::SoftStop), &[], (700, 900));
    assert_eq!(view.lost.len(), 1);
    assert_eq!(view.lost[0].reason, LostReason::PollFailed);
    assert!(view.jobs[0].lost);
    assert!(
        view.outcome.to_stop.is_empty(),
        "listed before the job was lost"
    );
    // A listing begun after: still running, stopped once more.
    let view = w.sync_with("p", &["a"], (Mode::Act, Lane::SoftStop), &[], (801, 1_000));
    assert_eq!(view.outcome.to_stop, ids(&["a"]));
    // The status still lists the job: it is not followed again.
    w.state.adopt(
        &key("p"),
        [("j".to_owned(), w.clock.wall0, JobAction::Stop)],
        &ids(&["a"]),
    );
    assert_eq!(w.state.unfinished_count(), 0);
}

#[test]
fn a_job_unfinished_past_the_deadline_is_lost_and_retention_forgets_it() {
    let mut w = World::new();
    w.state.adopt(
        &key("p"),
        [("j".to_owned(), w.clock.wall0, JobAction::Stop)],
        &ids(&["a"]),
    );
    assert!(w.state.expire(w.clock.at(59_000)).lost.is_empty());
    let running = job(JobStatus::Running, Vec::new());
    w.state.record_poll("j", Ok(running), w.clock.at(59_500));
    assert_eq!(
        w.state.expire(w.clock.at(60_000)).lost,
        [LostReason::Deadline]
    );
    assert_eq!(w.sync("p", &["a"], 60_100).lost.len(), 1);
    let retention = config().finished_job_retention.as_millis() as u64;
    w.state.expire(w.clock.at(60_000 + retention));
    assert!(w.sync("p", &["a"], 60_000 + retention).lost.is_empty());
}

#[test]
fn waiting_for_budget_means_only_queued() {
    let mut w = World::new();
    let view = w.sync("p", &["a", "b"], 0);
    assert!(view.waiting_for_budget);
    assert!(!w.sync("q", &["c"], 0).waiting_for_budget || w.state.lanes.len() == 1);
    let call = w.due(Lane::SoftStop, 500).unwrap();
    w.sync("p", &["a", "b", "d"], 600);
    // "a" and "b" are in a call: there is news to wait for, not only budget.
    assert!(!w.sync("p", &["a", "b", "d"], 600).waiting_for_budget);
    w.state.record_call(call.id, Ok("j"), w.clock.at(700));
    assert!(
        !w.sync("p", &["a", "b", "d"], 800).waiting_for_budget,
        "a job runs"
    );
}

#[test]
fn a_call_the_worker_slept_for_holds_it_from_when_the_budget_covered_it() {
    let mut w = World::new();
    let window_ms = u64::try_from(w.budget.limits().window.as_millis()).unwrap();
    let many: Vec<String> = (0..3000).map(|i| format!("s{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    w.sync("p", &many, 0);
    let first = w.due(Lane::SoftStop, 0).expect("a full call");
    // The budget counts a call from its answer.
    assert!(w.budget.try_take_at(first.ids.len(), w.clock.at(10).at));
    let recorded = w.state.record_call(first.id, Ok("j1"), w.clock.at(10));
    assert_eq!(recorded.took, Duration::from_millis(10));
    let covered = window_ms + 10;
    assert!(w.due(Lane::SoftStop, 20).is_none(), "the budget is spent");
    // Woken 3 ms after the budget covers the next call, answered 10 ms after that.
    let second = w.due(Lane::SoftStop, covered + 3).expect("the next call");
    assert!(
        w.budget
            .try_take_at(second.ids.len(), w.clock.at(covered + 13).at)
    );
    let recorded = w
        .state
        .record_call(second.id, Ok("j2"), w.clock.at(covered + 13));
    assert_eq!(
        recorded.took,
        Duration::from_millis(13),
        "the wake-up counts"
    );
    // A wait for the budget that something else ended does not count: here the
    // policy was suspended, and queued its servers again later.
    assert!(w.due(Lane::SoftStop, covered + 20).is_none());
    w.sync_with(
        "p",
        &many,
        (Mode::Idle, Lane::SoftStop),
        &[],
        (covered + 30, covered + 30),
    );
    assert!(
        w.due(Lane::SoftStop, covered + 40).is_none(),
        "nothing queued"
    );
    let later = 2 * window_ms + 500;
    w.sync("p", &many, later);
    let third = w.due(Lane::SoftStop, later + 5).expect("the last call");
    let recorded = w
        .state
        .record_call(third.id, Ok("j3"), w.clock.at(later + 15));
    assert_eq!(recorded.took, Duration::from_millis(10), "from its taking");
}

#[test]
fn a_fleet_with_a_call_under_way_is_not_idle() {
    let mut w = World::new();
    w.sync("p", &["a"], 0);
    let call = w.due(Lane::SoftStop, 500).unwrap();
    assert!(!w.state.is_idle());
    w.state.record_call(call.id, Ok("j"), w.clock.at(600));
    assert!(!w.state.is_idle(), "its job is unfinished");
    let done = succeeded_on("a");
    w.state.record_poll("j", Ok(done), w.clock.at(700));
    assert!(w.state.is_idle());
}

#[test]
fn a_partial_batch_waits_while_the_queue_grows_but_not_forever() {
    let linger = Duration::from_millis(500);
    let t0 = Instant::now();
    let mut lingering = Lingering::new(t0);
    assert!(!lingering.partial_batch_due(t0 + Duration::from_millis(400), linger, OPEN));
    lingering.grown_at = t0 + Duration::from_millis(400);
    assert!(!lingering.partial_batch_due(t0 + Duration::from_millis(600), linger, OPEN));
    assert!(lingering.partial_batch_due(t0 + Duration::from_millis(900), linger, OPEN));
    // Growing every 100 ms: due after MAX_LINGERS lingers all the same.
    lingering.grown_at = t0 + linger * MAX_LINGERS - Duration::from_millis(100);
    let almost = t0 + linger * MAX_LINGERS - Duration::from_millis(1);
    assert!(!lingering.partial_batch_due(almost, linger, OPEN));
    assert!(lingering.partial_batch_due(t0 + linger * MAX_LINGERS, linger, OPEN));
}

#[test]
fn during_the_first_round_a_partial_batch_waits_and_at_its_end_goes() {
    let linger = Duration::from_millis(500);
    let t0 = Instant::now();
    let lingering = Lingering::new(t0);
    // However quiet the queue, the first round holds it.
    let late = t0 + linger * (MAX_LINGERS + 1);
    assert!(!lingering.partial_batch_due(late, linger, Gate::Closed));
    // The round ended after the queue last grew: no need to wait for a quiet spell.
    let ended = Gate::Open {
        round_ended_at: Some(t0 + Duration::from_millis(10)),
    };
    assert!(lingering.partial_batch_due(t0 + Duration::from_millis(20), linger, ended));
    // Ids that arrived after the round ended linger as usual.
    let grown_later = Lingering::new(t0 + Duration::from_millis(50));
    assert!(!grown_later.partial_batch_due(t0 + Duration::from_millis(60), linger, ended));
}

#[test]
fn withdrawing_a_server_from_the_list_keeps_the_rest() {
    let mut w = World::new();
    w.sync("p", &["a", "b", "c"], 0);
    w.sync("p", &["b"], 10);
    assert_eq!(w.due(Lane::SoftStop, 600).unwrap().ids, ids(&["b"]));
    let _ = set(&[]);
}

mod properties {
    //! Over random sequences of syncs, withdrawals, due calls and answers: a call
    //! carries only ids some policy still wants in its lane, never an id in another
    //! call under way or in an unfinished job, and never an id whose last call's
    //! outcome is unknown until a listing begun after that said what happened.

    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Sync {
            policy: usize,
            servers: Vec<usize>,
            hard: bool,
            act: bool,
            /// The listing began this long before the sync.
            listing_lag_ms: u64,
        },
        Withdraw(usize),
        Due(bool),
        Answer(usize, u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0..3usize, proptest::collection::vec(0..8usize, 0..6), any::<bool>(), prop::bool::weighted(0.8), prop_oneof![Just(0u64), Just(700u64)])
                .prop_map(|(policy, servers, hard, act, listing_lag_ms)| Op::Sync { policy, servers, hard, act, listing_lag_ms }),
            1 => (0..3usize).prop_map(Op::Withdraw),
            3 => any::<bool>().prop_map(Op::Due),
            3 => (0..4usize, 0..4u8).prop_map(|(call, answer)| Op::Answer(call, answer)),
        ]
    }

    fn server(i: usize) -> String {
        format!("s{i}")
    }

    proptest! {
        #[test]
        fn no_call_carries_an_id_it_should_not(ops in proptest::collection::vec(op(), 1..60)) {
            let mut w = World::new();
            let mut t: u64 = 1_000;
            // The model: what each policy wants now, in which lane.
            let mut wants: HashMap<usize, (Lane, IdSet)> = HashMap::new();
            let mut under_way: Vec<DueCall> = Vec::new();
            let mut in_jobs: IdSet = IdSet::default();
            let mut unknown_since: IdMap<u64> = IdMap::default();
            let throttled = error(ErrorKind::Throttled, Some(429), None);
            let lost = error(ErrorKind::OutcomeUnknown, Some(504), None);
            let locked = error(ErrorKind::Invalid, Some(400), Some("Ecs.0605"));
            for op in ops {
                t += 100;
                match op {
                    Op::Sync { policy, servers, hard, act, listing_lag_ms } => {
                        let lane = if hard { Lane::HardStop } else { Lane::SoftStop };
                        let names: Vec<String> = servers.iter().map(|i| server(*i)).collect();
                        let desired: Vec<&str> = names.iter().map(String::as_str).collect();
                        let mode = if act { Mode::Act } else { Mode::Suspend };
                        let listed = t - listing_lag_ms;
                        w.sync_with(&format!("p{policy}"), &desired, (mode, lane), &[], (listed, t));
                        unknown_since.retain(|_, since| listed <= *since);
                        let wanted = if act { names.iter().map(ServerId::from).collect() } else { IdSet::default() };
                        wants.insert(policy, (lane, wanted));
                    }
                    Op::Withdraw(policy) => {
                        w.state.withdraw_unwanted(&key(&format!("p{policy}")), None, &IdSet::default());
                        wants.remove(&policy);
                    }
                    Op::Due(hard) => {
                        let lane = if hard { Lane::HardStop } else { Lane::SoftStop };
                        // Late enough for any linger and throttle back-off.
                        t += 3_000;
                        if let Some(call) = w.due(lane, t) {
                            let distinct: HashSet<&ServerId> = call.ids.iter().collect();
                            prop_assert_eq!(distinct.len(), call.ids.len(), "an id twice in one call");
                            for id in &call.ids {
                                prop_assert!(
                                    wants.values().any(|(l, ids)| *l == lane && ids.contains(id)),
                                    "{} sent in {:?}, wanted by nobody there: {:?}", id, lane, wants
                                );
                                prop_assert!(
                                    !under_way.iter().any(|c| c.ids.contains(id)),
                                    "{} in two calls at once", id
                                );
                                prop_assert!(!in_jobs.contains(id), "{} sent while its job runs", id);
                                prop_assert!(
                                    !unknown_since.contains_key(id),
                                    "{} re-sent before a listing told its unknown outcome", id
                                );
                            }
                            under_way.push(call);
                        }
                    }
                    Op::Answer(index, answer) => {
                        if under_way.is_empty() {
                            continue;
                        }
                        let call = under_way.remove(index % under_way.len());
                        let now = w.clock.at(t);
                        match answer {
                            0 => {
                                in_jobs.extend(call.ids.iter().cloned());
                                w.state.record_call(call.id, Ok(&format!("job-{t}")), now);
                            }
                            1 => {
                                w.state.record_call(call.id, Err(&throttled), now);
                            }
                            2 => {
                                for id in &call.ids {
                                    unknown_since.insert(id.clone(), t);
                                }
                                w.state.record_call(call.id, Err(&lost), now);
                            }
                            _ => {
                                w.state.record_call(call.id, Err(&locked), now);
                            }
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn nothing_goes_during_the_first_round_not_even_a_full_call() {
    let mut w = World::new();
    let many: Vec<String> = (0..1000).map(|i| format!("s{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    w.sync("p", &many, 0);
    let at = w.clock.at(0).at;
    assert!(matches!(
        w.state
            .take_due(Lane::SoftStop, Gate::Closed, &w.budget, at),
        Due::Nothing
    ));
    assert_eq!(w.due(Lane::SoftStop, 0).unwrap().ids.len(), 1000);
}

#[test]
fn an_adopted_job_still_init_holds_every_server_of_its_policy_until_it_names_them() {
    let mut w = World::new();
    w.state.adopt(
        &key("p"),
        [("j".to_owned(), w.clock.wall0, JobAction::Stop)],
        &ids(&["a", "b", "c"]),
    );
    // A second policy shares "c": held for it too, since it may be in the job.
    let view = w.sync("q", &["c", "d"], 100);
    assert_eq!(view.outcome.to_stop, ids(&["d"]));
    let init = job(JobStatus::Init, Vec::new());
    w.state.record_poll("j", Ok(init), w.clock.at(200));
    let view = w.sync("p", &["a", "b", "c"], 300);
    assert!(
        view.outcome.to_stop.is_empty(),
        "INIT names no server: all held"
    );
    assert_eq!(view.jobs[0].servers, 3);
    // Its sub-jobs name "a" only: "b" is free to go (and "c" for q's own queue).
    let running = job(
        JobStatus::Running,
        vec![crate::fleet::jobs::tests::sub(
            "a",
            JobStatus::Running,
            None,
        )],
    );
    w.state.record_poll("j", Ok(running), w.clock.at(400));
    let view = w.sync("p", &["a", "b", "c"], 500);
    assert_eq!(view.outcome.to_stop, ids(&["b", "c"]));
}

#[test]
fn an_adopted_job_that_never_names_its_servers_holds_them_until_its_deadline() {
    let mut w = World::new();
    w.state.adopt(
        &key("p"),
        [("j".to_owned(), w.clock.wall0, JobAction::Stop)],
        &ids(&["a"]),
    );
    assert!(w.sync("p", &["a"], 59_000).outcome.to_stop.is_empty());
    assert_eq!(
        w.state.expire(w.clock.at(60_000)).lost,
        [LostReason::Deadline]
    );
    // Re-observed by a listing begun after it was given up on, then stopped.
    assert!(
        w.sync_with(
            "p",
            &["a"],
            (Mode::Act, Lane::SoftStop),
            &[],
            (59_900, 60_100)
        )
        .outcome
        .to_stop
        .is_empty()
    );
    assert_eq!(w.sync("p", &["a"], 60_200).outcome.to_stop, ids(&["a"]));
}

#[test]
fn what_the_journal_hands_over_holds_exactly_its_servers_once() {
    let mut w = World::new();
    let inherited = Inherited {
        spent: Vec::new(),
        jobs: vec![InheritedJob {
            job_id: "j".into(),
            call: InheritedCall {
                action: JobAction::Stop,
                ids: texts(&["a", "b"]),
                policies: vec![key("p")],
                sent_at: w.clock.wall0,
            },
        }],
        unknown: vec![InheritedCall {
            action: JobAction::Stop,
            ids: texts(&["u"]),
            policies: vec![key("p")],
            sent_at: w.clock.wall0,
        }],
    };
    assert!(!w.state.has_inherited());
    w.state.inherit(&inherited, w.clock.at(0));
    assert!(w.state.has_inherited());
    // Its job holds a and b (not c, another server of p), for any policy; p's
    // status shows it.
    let view = w.sync("q", &["a", "b", "c"], 100);
    assert_eq!(view.outcome.to_stop, ids(&["c"]));
    let p = w.sync("p", &["a", "d"], 100);
    assert_eq!(p.jobs.len(), 1, "p's status shows the job it carried");
    // Taken in once: handing it over again later holds nothing longer.
    let settle = config().unknown_outcome_settle.as_millis() as u64;
    w.state.inherit(&inherited, w.clock.at(settle));
    assert_eq!(w.state.unfinished_count(), 1);
    // The unknown outcome holds u until a listing begun after its settle time.
    assert!(w.sync("q", &["u"], settle).outcome.to_stop.is_empty());
    assert_eq!(w.sync("q", &["u"], settle + 1).outcome.to_stop, ids(&["u"]));
}

#[test]
fn a_call_whose_record_was_not_written_goes_back_first_in_line_after_the_backoff() {
    let mut w = World::new();
    w.sync("p", &["a", "b"], 0);
    let call = w.due(Lane::SoftStop, 500).unwrap();
    w.sync("q", &["c"], 600);
    w.state.not_sent(call.id, w.clock.at(600).at);
    let backoff = config().throttle_backoff.as_millis() as u64;
    assert!(w.due(Lane::SoftStop, 600 + backoff - 1).is_none());
    let again = w.due(Lane::SoftStop, 600 + backoff).unwrap();
    assert_eq!(again.ids, ids(&["a", "b", "c"]), "a and b first");
    assert_eq!(again.policies, vec![key("p"), key("q")]);
}

#[test]
fn a_fleet_with_an_unfinished_job_is_not_idle() {
    let mut w = World::new();
    w.state.adopt(
        &key("p"),
        [("j".to_owned(), w.clock.wall0, JobAction::Stop)],
        &ids(&["a"]),
    );
    assert!(!w.state.is_idle(), "retiring it would drop the job");
    let done = succeeded_on("a");
    w.state.record_poll("j", Ok(done), w.clock.at(100));
    assert!(w.state.is_idle());
}

fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

fn refs(ids: &[String]) -> Vec<&str> {
    ids.iter().map(String::as_str).collect()
}

impl World {
    /// Seconds from the clock's start to the estimate of `policy` at `now_ms`.
    fn eta_s(&self, policy: &str, lane: Lane, now_ms: u64) -> Option<(usize, f64)> {
        let now = self.clock.at(now_ms);
        self.state
            .queue_standing(&key(policy), lane, &self.budget, now)
            .map(|s| {
                let at = s.estimated_completion.duration_since(self.clock.wall0);
                (s.waiting, at.as_secs_f64())
            })
    }
}

#[test]
fn nothing_queued_means_no_estimate() {
    let mut w = World::new();
    assert_eq!(w.eta_s("p", Lane::SoftStop, 0), None);
    w.sync("p", &["a"], 0);
    w.due(Lane::SoftStop, 500).expect("the partial batch goes");
    assert_eq!(
        w.eta_s("p", Lane::SoftStop, 500),
        None,
        "in a call, not queued"
    );
    assert_eq!(w.eta_s("q", Lane::SoftStop, 500), None);
}

#[test]
fn a_call_the_budget_covers_now_is_done_now() {
    let mut w = World::new();
    let ids = names("s", 300);
    w.sync("p", &refs(&ids), 0);
    assert_eq!(w.eta_s("p", Lane::SoftStop, 100), Some((300, 1.1)));
}

#[test]
fn many_windows_ahead_count_what_the_window_spent() {
    let mut w = World::new();
    assert!(w.budget.try_take_at(1000, w.clock.at(0).at));
    let ids = names("s", 3500);
    w.sync("p", &refs(&ids), 10_000);
    // Calls of 1000, 1000, 1000 and 500: one per window, the first once the 1000
    // spent at 0 s leave it; then a job poll (no job has finished yet to tell more).
    assert_eq!(w.eta_s("p", Lane::SoftStop, 10_000), Some((3500, 241.0)));
}

#[test]
fn a_later_policy_sharing_the_fleet_is_done_after_the_earlier_one() {
    let mut w = World::new();
    let (small, big) = (names("a", 300), names("b", 3000));
    w.sync("p", &refs(&small), 0);
    w.sync("q", &refs(&big), 0);
    // p's 300 ride in the first call beside 700 of q's; q's last in the fourth.
    assert_eq!(w.eta_s("p", Lane::SoftStop, 0), Some((300, 1.0)));
    assert_eq!(w.eta_s("q", Lane::SoftStop, 0), Some((3000, 181.0)));
    // A hard stop waits for the soft lane the worker serves first; its 10 fit in the
    // window beside the soft lane's last 300.
    let hard = names("h", 10);
    let act_hard = (Mode::Act, Lane::HardStop);
    w.sync_with("r", &refs(&hard), act_hard, &[], (0, 0));
    assert_eq!(w.eta_s("r", Lane::HardStop, 0), Some((10, 181.0)));
    let more_hard = names("h", 800);
    w.sync_with("r", &refs(&more_hard), act_hard, &[], (0, 0));
    assert_eq!(w.eta_s("r", Lane::HardStop, 0), Some((800, 241.0)));
}

/// p's stop of "a", sent at 0.5 s as job-1, seen finished by a poll at 30.5 s.
fn world_with_a_job_of_30_s() -> World {
    let mut w = World::new();
    w.sync("p", &["a"], 0);
    let call = w.due(Lane::SoftStop, 500).unwrap();
    w.state.record_call(call.id, Ok("job-1"), w.clock.at(500));
    let done = job(JobStatus::Success, Vec::new());
    w.state.record_poll("job-1", Ok(done), w.clock.at(30_500));
    w
}

#[test]
fn an_estimate_includes_how_long_recent_jobs_took() {
    let mut w = world_with_a_job_of_30_s();
    let ids = names("s", 200);
    w.sync("q", &refs(&ids), 40_000);
    assert_eq!(w.eta_s("q", Lane::SoftStop, 40_000), Some((200, 70.0)));
}

#[test]
fn an_estimate_includes_how_long_finished_jobs_took_to_reach_their_statuses() {
    let mut w = world_with_a_job_of_30_s();
    // p's status shows it 2 s after the poll did (its sync waited for a slot).
    let view = w.sync("p", &["a"], 32_500);
    w.state
        .recorded(&key("p"), &view.jobs, w.clock.at(32_500).at);
    let ids = names("s", 200);
    w.sync("q", &refs(&ids), 40_000);
    assert_eq!(w.eta_s("q", Lane::SoftStop, 40_000), Some((200, 72.0)));
    // A second write of the same job is not a record.
    w.state
        .recorded(&key("p"), &view.jobs, w.clock.at(39_000).at);
    assert_eq!(w.eta_s("q", Lane::SoftStop, 40_000), Some((200, 72.0)));
}

#[test]
fn before_the_pace_is_known_each_call_ahead_adds_the_mean_round_trip() {
    let mut w = World::new();
    let ids = names("s", 4000);
    w.sync("p", &refs(&ids), 0);
    // Two calls, each answered 2 s after the worker took it.
    for (n, at) in [500, 70_000].into_iter().enumerate() {
        let call = w.due(Lane::SoftStop, at).expect("a full call");
        let job = format!("j{n}");
        w.state
            .record_call(call.id, Ok(&job), w.clock.at(at + 2_000));
    }
    // Two calls ahead: one now, one a window later (this ledger holds no call), each
    // 2 s more; then a job poll (no job has finished).
    assert_eq!(
        w.eta_s("p", Lane::SoftStop, 72_000),
        Some((2000, 72.0 + 60.0 + 2.0 * 2.0 + 1.0))
    );
}

#[test]
fn calls_slower_than_the_budget_set_the_pace_of_the_estimate() {
    let mut w = World::new();
    let ids = names("s", 8000);
    w.sync("p", &refs(&ids), 0);
    // Each call goes 100 s after the last (the cloud's answers, or the journal, are
    // slow), though the budget frees up every 60 s.
    for n in 0..6u64 {
        let at = 500 + n * 100_000;
        let call = w.due(Lane::SoftStop, at).expect("a full call");
        let job = format!("j{n}");
        w.state.record_call(call.id, Ok(&job), w.clock.at(at));
        if n == 4 {
            // Four gaps are no pace yet: the budget's, a call a minute (this ledger
            // holds no call, so the first of three goes now).
            assert_eq!(w.eta_s("p", Lane::SoftStop, at), Some((3000, 520.5 + 1.0)));
        }
    }
    // Two calls left, 100 s apart from the last: 700.5 s, then a job poll (1 s). At
    // the budget's pace it would have said 620.5 + 1.
    assert_eq!(w.eta_s("p", Lane::SoftStop, 500_500), Some((2000, 701.5)));
}

#[test]
fn a_gap_after_an_empty_queue_is_no_pace() {
    let mut w = World::new();
    w.sync("p", &refs(&names("a", 1000)), 0);
    let call = w.due(Lane::SoftStop, 500).expect("a full call");
    w.state.record_call(call.id, Ok("j0"), w.clock.at(500));
    // Nothing queued for 10 minutes, then 3000 more: the budget's pace (60 s a call;
    // this ledger holds no call), not a 599.5 s gap per call (1800 s).
    w.sync("q", &refs(&names("b", 3000)), 600_000);
    let call = w.due(Lane::SoftStop, 600_000).expect("a full call");
    w.state.record_call(call.id, Ok("j1"), w.clock.at(600_000));
    assert_eq!(w.eta_s("q", Lane::SoftStop, 600_000), Some((2000, 661.0)));
}

impl World {
    /// A sync of `policy` outside its window, asking to start `start`, against a
    /// listing at `now_ms` that shows `power`.
    fn sync_starting(
        &mut self,
        policy: &str,
        desired: &[&str],
        (mode, start): (Mode, &[&str]),
        power: &[(&str, ObservedPower)],
        now_ms: u64,
        deleted: bool,
    ) -> FleetView {
        let desired = ids(desired);
        let start = texts(start);
        let servers: IdMap<ObservedPower> =
            power.iter().map(|(id, p)| ((*id).into(), *p)).collect();
        let policy = key(policy);
        let now = self.clock.at(now_ms);
        self.state.sync(
            &SyncRequest {
                policy: &policy,
                desired: &desired,
                mode,
                lane: Lane::SoftStop,
                backoff: Backoff {
                    base: Duration::from_secs(10),
                    max: Duration::from_secs(60),
                },
                deleted,
                start: &start,
            },
            &Observed {
                servers: &servers,
                listed_at: now.at,
            },
            now,
        )
    }

    /// Sends the call due in `lane` and has its job succeed for every server.
    fn run_job(&mut self, lane: Lane, job_id: &str, now_ms: u64) -> Vec<ServerId> {
        let call = self.due(lane, now_ms).expect("a call is due");
        self.state
            .record_call(call.id, Ok(job_id), self.clock.at(now_ms));
        let subs = call
            .ids
            .iter()
            .map(|id| crate::fleet::jobs::tests::sub(id, JobStatus::Success, None))
            .collect();
        self.state.record_poll(
            job_id,
            Ok(job(JobStatus::Success, subs)),
            self.clock.at(now_ms + 100),
        );
        call.ids
    }
}

const SHUT_OFF: [(&str, ObservedPower); 3] = [
    ("a", ObservedPower::Stopped),
    ("b", ObservedPower::Stopped),
    ("x", ObservedPower::Stopped),
];

#[test]
fn what_a_policy_stopped_is_what_its_own_stop_jobs_stopped_until_it_starts_them() {
    let mut w = World::new();
    // q stops x, a server p names too, while p is outside its window.
    w.sync("q", &["x"], 0);
    w.sync_with("p", &["a", "x"], (Mode::Idle, Lane::SoftStop), &[], (0, 0));
    w.run_job(Lane::SoftStop, "jq", 500);
    // Calls a while apart (any gap would do).
    let apart = 30_000;
    w.sync("p", &["a"], apart);
    assert_eq!(w.run_job(Lane::SoftStop, "jp", apart + 500), ids(&["a"]));
    let at = 2 * apart + 1000;
    let view = w.sync_with(
        "p",
        &["a", "x"],
        (Mode::Act, Lane::SoftStop),
        &SHUT_OFF,
        (at, at),
    );
    assert_eq!(view.stopped, ids(&["a"]), "x was q's stop, not p's");

    // Its window ends: a is started, and from then on no longer counts as stopped.
    let idle = (Mode::Idle, &["a"][..]);
    let view = w.sync_starting("p", &["a", "x"], idle, &SHUT_OFF, at, false);
    assert_eq!(view.starts.to_start, ids(&["a"]));
    assert_eq!(w.run_job(Lane::Start, "js", at + 500), ids(&["a"]));
    let running = [("a", ObservedPower::Running), ("x", ObservedPower::Stopped)];
    let view = w.sync_starting("p", &["a", "x"], idle, &running, at + 1000, false);
    assert!(
        view.stopped.is_empty(),
        "its start job is newer than its stop job"
    );
    assert_eq!(view.starts.settled, ids(&["a"]));
    assert!(w.state.is_idle(), "nothing started twice");
}

#[test]
fn a_stop_call_with_an_unknown_outcome_counts_as_the_policys_stop_once_a_listing_shows_it_shut_off()
{
    let settle = config().unknown_outcome_settle.as_millis() as u64;
    let lost = error(ErrorKind::OutcomeUnknown, None, None);
    let mut w = World::new();
    w.sync("p", &["a", "b"], 0);
    let call = w.due(Lane::SoftStop, 500).unwrap();
    w.state.record_call(call.id, Err(&lost), w.clock.at(1_000));
    let act = (Mode::Act, Lane::SoftStop);
    // Not yet: a listing within the settle time may predate the cloud's work.
    let early = [("a", ObservedPower::Stopped)];
    let view = w.sync_with(
        "p",
        &["a", "b"],
        act,
        &early,
        (1_000 + settle, 1_000 + settle),
    );
    assert!(view.stopped.is_empty());
    // Settled: a was shut off by the call, b was not (still running: stopped again).
    let at = 1_001 + settle;
    let view = w.sync_with("p", &["a", "b"], act, &early, (at, at));
    assert_eq!(view.stopped, ids(&["a"]));
    assert_eq!(view.outcome.to_stop, ids(&["b"]));
    // A policy that names a but did not send the call: not its stop.
    let other = w.sync_with("q", &["a"], act, &early, (at, at));
    assert!(other.stopped.is_empty());
    // Its window ends: a is started; the start job is newer than the presumed stop.
    let idle = (Mode::Idle, &["a"][..]);
    let view = w.sync_starting("p", &["a"], idle, &SHUT_OFF, at + 10, false);
    assert_eq!(view.starts.to_start, ids(&["a"]));
    w.run_job(Lane::Start, "js", at + 600);
    let running = [("a", ObservedPower::Running)];
    let view = w.sync_starting("p", &["a"], idle, &running, at + 1_000, false);
    assert!(view.stopped.is_empty(), "started again");
}

#[test]
fn a_stop_call_an_earlier_process_left_unanswered_counts_as_its_policys_stop_once_shown_shut_off() {
    let settle = config().unknown_outcome_settle.as_millis() as u64;
    let mut w = World::new();
    let call = |action, id: &str| InheritedCall {
        action,
        ids: texts(&[id]),
        policies: vec![key("p")],
        sent_at: w.clock.wall0,
    };
    let inherited = Inherited {
        unknown: vec![call(JobAction::Stop, "a"), call(JobAction::Start, "b")],
        ..Inherited::default()
    };
    w.state.inherit(&inherited, w.clock.at(0));
    let act = (Mode::Act, Lane::SoftStop);
    let view = w.sync_with("p", &["a", "b"], act, &SHUT_OFF, (settle + 1, settle + 1));
    assert_eq!(view.stopped, ids(&["a"]), "b's call was a start");
}

#[test]
fn a_start_goes_only_for_a_named_shut_off_server_of_an_idle_policy() {
    let mut w = World::new();
    // "b" is in its record but it no longer names it; "a" is running already.
    let view = w.sync_starting(
        "p",
        &["a", "x"],
        (Mode::Idle, &["a", "b", "x"]),
        &[
            ("a", ObservedPower::Running),
            ("b", ObservedPower::Stopped),
            ("x", ObservedPower::Stopped),
        ],
        0,
        false,
    );
    assert_eq!(view.starts.to_start, ids(&["x"]));
    assert_eq!(view.starts.settled, ids(&["a"]));
    let call = w
        .due(Lane::Start, 500)
        .expect("a partial start batch after a linger");
    assert_eq!(call.ids, ids(&["x"]));
    assert!(w.due(Lane::SoftStop, 500).is_none());
}

#[test]
fn a_start_held_back_by_a_stop_job_the_listing_predates_waits_for_a_sync_soon() {
    let mut w = World::new();
    w.sync("p", &["a"], 0);
    // The stop job ends at 600; a listing from 550 may not show it.
    assert_eq!(w.run_job(Lane::SoftStop, "jp", 500), ids(&["a"]));
    let idle = (Mode::Idle, &["a"][..]);
    let view = w.sync_starting("p", &["a"], idle, &SHUT_OFF, 550, false);
    assert!(view.starts.to_start.is_empty());
    assert_eq!(
        view.starts.waiting,
        ids(&["a"]),
        "to start once listed again"
    );
    let view = w.sync_starting("p", &["a"], idle, &SHUT_OFF, 700, false);
    assert_eq!(view.starts.to_start, ids(&["a"]));
    // Queued: its call going out syncs the policy.
    let view = w.sync_starting("p", &["a"], idle, &SHUT_OFF, 750, false);
    assert!(view.starts.to_start.is_empty() && view.starts.waiting.is_empty());
}

#[test]
fn a_suspended_dry_run_deleted_or_window_policy_starts_nothing() {
    for mode in [Mode::Suspend, Mode::DryRun, Mode::Act] {
        let mut w = World::new();
        let view = w.sync_starting("p", &["a"], (mode, &["a"]), &SHUT_OFF, 0, false);
        assert!(view.starts.to_start.is_empty(), "{mode:?}");
        assert!(w.due(Lane::Start, 10_000).is_none(), "{mode:?}");
    }
    let mut w = World::new();
    let view = w.sync_starting("p", &["a"], (Mode::Idle, &["a"]), &SHUT_OFF, 0, true);
    assert!(
        view.starts.to_start.is_empty(),
        "deleted while its sync ran"
    );
    assert!(w.state.is_idle());
}

#[test]
fn queued_starts_are_withdrawn_when_the_policy_leaves_or_its_window_begins_again() {
    let idle = (Mode::Idle, &["a", "b"][..]);
    // The window begins again: its queued starts go, and nothing is stopped twice.
    let mut w = World::new();
    w.sync_starting("p", &["a", "b"], idle, &SHUT_OFF, 0, false);
    let view = w.sync_with(
        "p",
        &["a", "b"],
        (Mode::Act, Lane::SoftStop),
        &SHUT_OFF,
        (10, 10),
    );
    assert!(view.outcome.to_stop.is_empty(), "shut off already");
    assert!(w.state.is_idle(), "no start left queued");
    // Its schedule removed (the controller asks for no start): withdrawn too.
    let mut w = World::new();
    w.sync_starting("p", &["a", "b"], idle, &SHUT_OFF, 0, false);
    w.sync_starting("p", &["a", "b"], (Mode::Act, &[]), &SHUT_OFF, 10, false);
    assert!(w.state.is_idle());
    // Deleted: everything of it is withdrawn.
    let mut w = World::new();
    w.sync_starting("p", &["a", "b"], idle, &SHUT_OFF, 0, false);
    w.state.left(&key("p"));
    assert!(w.state.is_idle());
}

#[test]
fn the_starts_of_a_policy_that_left_no_longer_count_in_the_others_leads() {
    let mut w = World::new();
    let now = w.clock.at(0);
    let end = now.wall + Duration::from_secs(3600);
    let lead = |w: &mut World, policy: &str| {
        w.state
            .start_lead(&key(policy), (1500, Some(end)), &w.budget, now)
    };
    let alone = lead(&mut w, "p");
    assert!(lead(&mut w, "q") > alone, "q counts p's starts");
    w.state.left(&key("p"));
    assert_eq!(lead(&mut w, "q"), alone, "p was deleted");
}

#[test]
fn a_server_never_has_a_start_and_a_stop_in_flight_at_once() {
    let mut w = World::new();
    w.sync_starting("p", &["a"], (Mode::Idle, &["a"]), &SHUT_OFF, 0, false);
    // q, inside its window, wants "a" stopped while p's start is queued: it waits.
    let q = w.sync_with(
        "q",
        &["a"],
        (Mode::Act, Lane::SoftStop),
        &[("a", ObservedPower::Running)],
        (0, 0),
    );
    assert!(q.outcome.to_stop.is_empty());
    assert!(w.due(Lane::SoftStop, 500).is_none());
    // The other way round: q's stop queued, p plans no start for "a".
    let mut w = World::new();
    w.sync("q", &["a"], 0);
    let p = w.sync_starting("p", &["a"], (Mode::Idle, &["a"]), &SHUT_OFF, 0, false);
    assert!(p.starts.to_start.is_empty());
    // In a call under way, or a job not finished: the same.
    w.due(Lane::SoftStop, 500).expect("q's stop goes");
    let p = w.sync_starting("p", &["a"], (Mode::Idle, &["a"]), &SHUT_OFF, 600, false);
    assert!(p.starts.to_start.is_empty());
    assert!(w.due(Lane::Start, 10_000).is_none());
}

#[test]
fn starts_and_stops_share_the_projects_budget() {
    let mut w = World::new();
    let window = w.budget.limits().window;
    let many: Vec<String> = (0..1000).map(|i| format!("s{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    w.sync("q", &many, 0);
    let call = w.due(Lane::SoftStop, 0).expect("a full stop call");
    assert!(w.budget.try_take_at(call.ids.len(), w.clock.at(0).at));
    w.sync_starting("p", &["a"], (Mode::Idle, &["a"]), &SHUT_OFF, 0, false);
    match w
        .state
        .take_due(Lane::Start, OPEN, &w.budget, w.clock.at(600).at)
    {
        Due::BudgetAt(at) => assert_eq!(at, w.clock.at(0).at + window),
        other => panic!("the start waits for the budget the stops spent: {other:?}"),
    }
}

#[test]
fn policies_sharing_a_window_end_each_lead_for_all_their_starts() {
    let mut w = World::new();
    let minute = Duration::from_secs(60);
    let now = w.clock.at(0);
    let end = now.wall + Duration::from_secs(3600);
    // Whole windows, the margin aside.
    let lead = |w: &mut World, policy: &str, until, at: Now| {
        w.state
            .start_lead(&key(policy), (5000, until), &w.budget, at)
            - START_MARGIN
    };
    // Alone: 5 calls at 1000 a minute, the first 4 minutes before the end.
    assert_eq!(lead(&mut w, "p", Some(end), now), 4 * minute);
    // q's window ends then too: both plan for 10 calls.
    assert_eq!(lead(&mut w, "q", Some(end), now), 9 * minute);
    assert_eq!(lead(&mut w, "p", Some(end), now), 9 * minute);
    // A window that ends later does not count for one that ends earlier.
    let later = end + Duration::from_secs(600);
    lead(&mut w, "r", Some(later), now);
    assert_eq!(lead(&mut w, "p", Some(end), now), 9 * minute);
    // q has begun (or left): its starts still count until its window's end, so p
    // begins too.
    lead(&mut w, "q", None, now);
    assert_eq!(lead(&mut w, "p", Some(end), now), 9 * minute);
    // Past q's window end its entry is gone.
    let after = w.clock.at(3_600_001);
    assert_eq!(
        lead(&mut w, "p", Some(later), after),
        9 * minute,
        "r's still counts"
    );
}

#[test]
fn a_policy_that_begins_starting_has_those_whose_lead_may_lack_its_starts_synced() {
    let mut w = World::new();
    let now = w.clock.at(0);
    let end = now.wall + Duration::from_secs(3600);
    let mut lead = |policy: &str, until| {
        w.state
            .start_lead(&key(policy), (1500, Some(until)), &w.budget, now)
    };
    // p worked out its lead before q's starts counted: 1 minute, not q's 2.
    let short = lead("p", end);
    let joint = lead("q", end);
    assert!(short < joint, "{short:?} against {joint:?}");
    lead("r", end + Duration::from_secs(600));
    lead("o", end - Duration::from_secs(600));
    let mut behind = w.state.began_starting(&key("q"), end);
    behind.sort();
    // Not o, whose window ends first: its lead never counts q's starts.
    assert_eq!(behind, [key("p"), key("r")]);
    assert!(
        w.state.began_starting(&key("q"), end).is_empty(),
        "told once per window end"
    );
    // p begins too: not q again, which has begun.
    assert_eq!(w.state.began_starting(&key("p"), end), [key("r")]);
}

#[test]
fn a_finished_job_stays_in_the_journal_until_each_of_its_policies_has_recorded_it() {
    let mut w = World::new();
    w.sync("p", &["a"], 0);
    w.sync("q", &["b"], 0);
    let call = w.due(Lane::SoftStop, 600).expect("one call for both");
    w.state.record_call(call.id, Ok("j"), w.clock.at(600));
    w.state
        .record_poll("j", Ok(succeeded_on("a")), w.clock.at(1_000));
    assert!(!w.state.is_unfinished("j"));
    assert!(
        w.state.awaits_record("j"),
        "p and q have not written it yet"
    );
    let view = w.sync("p", &["a"], 1_100);
    let recorded = w
        .state
        .recorded(&key("p"), &view.jobs, w.clock.at(1_100).at);
    assert!(recorded.is_empty());
    // p has written it; q's write is the last one the job waited for.
    let view = w.sync("q", &["b"], 1_200);
    let recorded = w
        .state
        .recorded(&key("q"), &view.jobs, w.clock.at(1_200).at);
    assert_eq!(recorded, ["j"]);
    assert!(!w.state.awaits_record("j"));
}

#[test]
fn a_finished_job_a_policy_never_recorded_leaves_the_journal_with_its_retention() {
    let mut w = World::new();
    w.sync("p", &["a"], 0);
    let call = w.due(Lane::SoftStop, 600).expect("a call");
    w.state.record_call(call.id, Ok("j"), w.clock.at(600));
    w.state
        .record_poll("j", Ok(succeeded_on("a")), w.clock.at(1_000));
    let retention = config().finished_job_retention.as_millis() as u64;
    assert!(
        w.state
            .expire(w.clock.at(1_000 + retention - 1))
            .forgotten
            .is_empty()
    );
    assert_eq!(
        w.state.expire(w.clock.at(1_000 + retention)).forgotten,
        ["j"]
    );
    assert!(!w.state.awaits_record("j"));
}

#[test]
fn a_policy_that_began_starting_early_is_remembered_until_its_window_ends() {
    let mut w = World::new();
    let now = w.clock.at(0).wall;
    let end = now + Duration::from_secs(60);
    assert_eq!(w.state.starting_until(&key("p"), now), None);
    w.state.began_starting(&key("p"), end);
    // A later sync that read an older status still knows.
    assert_eq!(w.state.starting_until(&key("p"), now), Some(end));
    assert_eq!(w.state.starting_until(&key("q"), now), None);
    assert_eq!(
        w.state.starting_until(&key("p"), end),
        None,
        "the window ended"
    );
}
