//! Properties of the planner and the stop queue over generated inputs.

use std::collections::HashSet;
use std::time::Duration;

use jiff::Timestamp;
use proptest::prelude::*;

use super::*;
use crate::ecs::wire::MAX_SERVERS_PER_ACTION;
use crate::server_id::{IdMap, IdSet, ServerId};

fn power() -> impl Strategy<Value = Option<ObservedPower>> {
    prop_oneof![
        3 => Just(Some(ObservedPower::Running)),
        1 => Just(Some(ObservedPower::Stopping)),
        1 => Just(Some(ObservedPower::Stopped)),
        1 => Just(Some(ObservedPower::Busy)),
        1 => Just(Some(ObservedPower::Error)),
        1 => Just(Some(ObservedPower::Locked)),
        1 => Just(Some(ObservedPower::NotFound)),
        1 => Just(None),
    ]
}

/// Per server: observed power, in flight, and an optional (attempts, seconds since failure).
type ServerCase = (Option<ObservedPower>, bool, Option<(u32, u64)>);

fn servers() -> impl Strategy<Value = Vec<ServerCase>> {
    prop::collection::vec(
        (
            power(),
            prop::bool::weighted(0.2),
            prop::option::weighted(0.3, (1u32..8, 0u64..2000)),
        ),
        0..200,
    )
}

fn mode() -> impl Strategy<Value = Mode> {
    prop_oneof![
        Just(Mode::Act),
        Just(Mode::DryRun),
        Just(Mode::Suspend),
        Just(Mode::Idle)
    ]
}

struct Owned {
    desired: Vec<ServerId>,
    observed: IdMap<ObservedPower>,
    in_flight: IdSet,
    retries: IdMap<RetryState>,
    now: Timestamp,
    backoff: Backoff,
}

impl Owned {
    /// `dup_every` > 0 repeats every n-th id in spec order, as a hand-edited list might.
    fn new(cases: &[ServerCase], dup_every: usize) -> Self {
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        let mut owned = Owned {
            desired: Vec::new(),
            observed: IdMap::default(),
            in_flight: IdSet::default(),
            retries: IdMap::default(),
            now,
            backoff: Backoff {
                base: Duration::from_secs(10),
                max: Duration::from_secs(600),
            },
        };
        for (i, (power, in_flight, retry)) in cases.iter().enumerate() {
            let id: ServerId = format!("00000000-0000-4000-8000-{i:012x}").into();
            owned.desired.push(id.clone());
            if dup_every > 0 && i % dup_every == 0 {
                owned.desired.push(id.clone());
            }
            if let Some(p) = power {
                owned.observed.insert(id.clone(), *p);
            }
            if *in_flight {
                owned.in_flight.insert(id.clone());
            }
            if let Some((attempts, ago)) = retry {
                let state = RetryState {
                    attempts: *attempts,
                    last_failure_at: now - Duration::from_secs(*ago),
                    code: "Ecs.0100".into(),
                    message: "failed".into(),
                };
                owned.retries.insert(id, state);
            }
        }
        owned
    }

    fn plan(&self, mode: Mode) -> PlanOutcome {
        plan_stops(&PlanInput {
            desired: &self.desired,
            observed: &self.observed,
            in_flight: &self.in_flight,
            retries: &self.retries,
            now: self.now,
            mode,
            backoff: self.backoff,
        })
    }

    fn backing_off(&self, id: &str) -> bool {
        self.retries.get(id).is_some_and(|r| {
            let elapsed = Duration::try_from(self.now.duration_since(r.last_failure_at)).unwrap();
            elapsed < self.backoff.delay(r.attempts)
        })
    }
}

proptest! {
    #[test]
    fn never_plans_a_server_that_must_not_be_stopped(cases in servers(), dup in 0usize..4) {
        let input = Owned::new(&cases, dup);
        let out = input.plan(Mode::Act);
        for id in &out.to_stop {
            prop_assert_eq!(input.observed.get(id), Some(&ObservedPower::Running));
            prop_assert!(!input.in_flight.contains(id));
            prop_assert!(!input.backing_off(id));
        }
    }

    #[test]
    fn every_running_server_not_in_flight_nor_backing_off_is_planned(cases in servers(), dup in 0usize..4) {
        let input = Owned::new(&cases, dup);
        let out = input.plan(Mode::Act);
        let planned: HashSet<&ServerId> = out.to_stop.iter().collect();
        prop_assert_eq!(planned.len(), out.to_stop.len(), "to_stop has duplicates");
        for id in &input.desired {
            let eligible = input.observed.get(id) == Some(&ObservedPower::Running)
                && !input.in_flight.contains(id)
                && !input.backing_off(id);
            prop_assert_eq!(planned.contains(id), eligible, "{}", id);
        }
        // Spec order is kept.
        let order: Vec<&ServerId> = {
            let mut seen = HashSet::new();
            input.desired.iter().filter(|id| planned.contains(id) && seen.insert(*id)).collect()
        };
        prop_assert_eq!(order, out.to_stop.iter().collect::<Vec<_>>());
    }

    #[test]
    fn summary_partitions_the_distinct_desired_servers(cases in servers(), dup in 0usize..4, mode in mode()) {
        let input = Owned::new(&cases, dup);
        let s = input.plan(mode).summary;
        prop_assert_eq!(s.desired as usize, cases.len());
        prop_assert_eq!(s.stopped + s.stopping + s.pending + s.failed + s.not_found, s.desired);
    }

    #[test]
    fn only_act_stops_and_all_modes_agree_on_would_stop(cases in servers()) {
        let input = Owned::new(&cases, 0);
        let act = input.plan(Mode::Act);
        for mode in [Mode::DryRun, Mode::Suspend, Mode::Idle] {
            let out = input.plan(mode);
            prop_assert!(out.to_stop.is_empty());
            prop_assert_eq!(&out.would_stop, &act.to_stop);
            prop_assert_eq!(out.summary, act.summary);
        }
        prop_assert_eq!(input.plan(Mode::Suspend).phase, crate::policy::Phase::Suspended);
        prop_assert_eq!(input.plan(Mode::Idle).phase, crate::policy::Phase::Idle);
    }

    #[test]
    fn next_retry_is_reported_for_backing_off_running_servers(cases in servers()) {
        let input = Owned::new(&cases, 0);
        let out = input.plan(Mode::Act);
        let waiting = input.desired.iter().any(|id| {
            input.observed.get(id) == Some(&ObservedPower::Running)
                && !input.in_flight.contains(id)
                && input.backing_off(id)
        });
        prop_assert_eq!(out.next_retry_in.is_some(), waiting);
        if let Some(wait) = out.next_retry_in {
            prop_assert!(wait > Duration::ZERO && wait <= input.backoff.max);
        }
    }
}

/// Queues for up to four policies, drawing ids from a small pool so they overlap.
fn queues() -> impl Strategy<Value = Vec<Vec<u16>>> {
    prop::collection::vec(prop::collection::vec(0u16..3000, 0..2500), 1..5)
}

fn id(n: u16) -> ServerId {
    format!("srv-{n}").into()
}

fn filled(queues: &[Vec<u16>]) -> StopQueue<usize> {
    let mut q = StopQueue::new();
    for (policy, ids) in queues.iter().enumerate() {
        q.push(policy, ids.iter().map(|&n| id(n)));
    }
    q
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn batches_are_bounded_distinct_and_within_budget(queues in queues(), budget in 0usize..3000) {
        let mut q = filled(&queues);
        let before = q.len();
        let batch = q.take_batch(budget);
        prop_assert!(batch.len() <= MAX_SERVERS_PER_ACTION);
        prop_assert!(batch.len() <= budget);
        let distinct: HashSet<&str> = batch.ids().collect();
        prop_assert_eq!(distinct.len(), batch.len());
        // A batch is only short when the queue ran dry.
        if batch.len() < budget.min(MAX_SERVERS_PER_ACTION) {
            prop_assert!(q.is_empty());
        }
        if budget == 0 {
            prop_assert_eq!(q.len(), before);
        }
    }

    #[test]
    fn draining_sends_every_id_once_and_credits_every_policy(queues in queues(), budget in 1usize..1500) {
        let mut q = filled(&queues);
        let mut sent = HashSet::new();
        let mut credited: HashSet<(usize, ServerId)> = HashSet::new();
        let mut calls = 0;
        while !q.is_empty() {
            let queued: HashSet<&ServerId> = q.ids().collect();
            prop_assert_eq!(q.distinct_len(), queued.len());
            let batch = q.take_batch(budget);
            prop_assert!(!batch.is_empty());
            for entry in batch.entries {
                for policy in &entry.policies {
                    prop_assert!(credited.insert((*policy, entry.id.clone())));
                }
                prop_assert!(sent.insert(entry.id), "id sent twice");
            }
            calls += 1;
            prop_assert!(calls <= 20_000);
        }
        let expected: HashSet<(usize, ServerId)> = queues
            .iter()
            .enumerate()
            .flat_map(|(p, ids)| ids.iter().map(move |&n| (p, id(n))))
            .collect();
        prop_assert_eq!(credited, expected);
    }

    #[test]
    fn a_small_policy_gets_its_share(
        big in 0usize..5000,
        small in 0usize..1200,
        budget in 1usize..1200,
        small_first in any::<bool>(),
    ) {
        let mut q = StopQueue::new();
        let big_ids = (0..big).map(|i| ServerId::from(format!("big-{i}")));
        let small_ids = (0..small).map(|i| ServerId::from(format!("small-{i}")));
        if small_first {
            q.push("small", small_ids);
            q.push("big", big_ids);
        } else {
            q.push("big", big_ids);
            q.push("small", small_ids);
        }
        let batch = q.take_batch(budget);
        let k = batch.len();
        let got = batch.entries.iter().filter(|e| e.policies.contains(&"small")).count();
        // Turns alternate: the big policy is at most one turn ahead.
        let share = k.saturating_sub(IDS_PER_TURN) / 2;
        prop_assert!(got >= share.min(small), "k={} small got {}", k, got);
    }
}
