use std::collections::{HashSet, VecDeque};

use crate::ecs::wire::MAX_SERVERS_PER_ACTION;
use crate::server_id::{IdMap, IdSet, ServerId};

/// Most new ids one policy adds to a batch before the next policy's turn.
pub const IDS_PER_TURN: usize = 100;

/// A per-project queue of servers to stop, shared by the policies of that project.
///
/// Each policy has its own FIFO. [`StopQueue::take_batch`] coalesces them into one stop
/// call, taking ids round-robin, up to [`IDS_PER_TURN`] per policy per turn, so a
/// policy of 10,000 servers cannot starve one of ten, and an id wanted by several
/// policies is sent once.
///
/// Why not one id per turn: with 1000 policies of 100 servers, every call would carry
/// one server of every policy, every policy would sit in every job (and get an Event
/// and a status write for each), and all would finish only at the very end. In turns
/// of 100, each policy is done in one call and the first are done in the first minute.
#[derive(Clone, Debug)]
pub struct StopQueue<K> {
    /// In turn order: the first goes first in the next batch.
    policies: Vec<PolicyQueue<K>>,
    /// How many of the policies queue each id; its keys are the distinct queued ids.
    /// Kept as ids come and go, so the forecast never has to count them.
    holders: IdMap<u32>,
}

#[derive(Clone, Debug)]
struct PolicyQueue<K> {
    key: K,
    ids: VecDeque<ServerId>,
    // Mirrors `ids`, so pushing the same plan twice does not queue an id twice.
    members: IdSet,
}

/// One stop call's worth of ids.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch<K> {
    /// Distinct ids, in the order they were taken.
    pub entries: Vec<BatchEntry<K>>,
}

/// One id in a batch, and every policy that had it queued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchEntry<K> {
    /// The server id.
    pub id: ServerId,
    /// The policies whose queues held it, in turn order, each once.
    pub policies: Vec<K>,
}

impl<K> Batch<K> {
    /// The ids to send, in order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.id.as_str())
    }

    /// How many ids.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there is nothing to send.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<K> Default for StopQueue<K> {
    fn default() -> Self {
        Self {
            policies: Vec::new(),
            holders: IdMap::default(),
        }
    }
}

impl<K> StopQueue<K> {
    /// Queued (policy, id) pairs: an id queued by two policies counts twice.
    pub fn len(&self) -> usize {
        self.policies.iter().map(|q| q.ids.len()).sum()
    }

    /// Distinct queued ids: what the calls will carry.
    pub fn distinct_len(&self) -> usize {
        self.holders.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// Every queued id, once per policy that queued it.
    pub fn ids(&self) -> impl Iterator<Item = &ServerId> {
        self.policies.iter().flat_map(|q| q.ids.iter())
    }
}

impl<K: Clone + PartialEq> StopQueue<K> {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends ids to the policy's FIFO, skipping those it already holds. A new policy
    /// takes its turn after those already queued.
    pub fn push(&mut self, policy: K, ids: impl IntoIterator<Item = ServerId>) {
        let index = match self.policies.iter().position(|q| q.key == policy) {
            Some(index) => index,
            None => {
                self.policies.push(PolicyQueue {
                    key: policy,
                    ids: VecDeque::new(),
                    members: IdSet::default(),
                });
                self.policies.len() - 1
            }
        };
        let queue = &mut self.policies[index];
        for id in ids {
            if queue.members.insert(id.clone()) {
                hold(&mut self.holders, &id);
                queue.ids.push_back(id);
            }
        }
        self.policies.retain(|q| !q.ids.is_empty());
    }

    /// Puts ids taken in a batch that was not sent back at the front of the policy's
    /// FIFO, so they go first in its next turn.
    pub fn put_back(&mut self, policy: K, ids: impl IntoIterator<Item = ServerId>) {
        let index = match self.policies.iter().position(|q| q.key == policy) {
            Some(index) => index,
            None => {
                // First in turn order: these ids waited longest.
                self.policies.insert(
                    0,
                    PolicyQueue {
                        key: policy,
                        ids: VecDeque::new(),
                        members: IdSet::default(),
                    },
                );
                0
            }
        };
        let queue = &mut self.policies[index];
        let returned: Vec<ServerId> = ids
            .into_iter()
            .filter(|id| queue.members.insert(id.clone()))
            .collect();
        for id in &returned {
            hold(&mut self.holders, id);
        }
        for id in returned.into_iter().rev() {
            queue.ids.push_front(id);
        }
        self.policies.retain(|q| !q.ids.is_empty());
    }

    /// Keeps, of the ids the policy queued, only those in `wanted` (the others it
    /// no longer asks for: it was deleted or suspended, or a server left its list);
    /// returns how many ids were dropped.
    pub fn keep_only(&mut self, policy: &K, wanted: &IdSet) -> usize {
        let Some(queue) = self.policies.iter_mut().find(|q| q.key == *policy) else {
            return 0;
        };
        let before = queue.ids.len();
        queue.ids.retain(|id| wanted.contains(id));
        let holders = &mut self.holders;
        queue.members.retain(|id| {
            let keep = wanted.contains(id);
            if !keep {
                release(holders, id);
            }
            keep
        });
        let removed = before - queue.ids.len();
        self.policies.retain(|q| !q.ids.is_empty());
        removed
    }

    /// The ids the policy has queued.
    pub fn queued_ids(&self, policy: &K) -> Option<&IdSet> {
        self.policies
            .iter()
            .find(|q| q.key == *policy)
            .map(|q| &q.members)
    }

    /// How many ids the policy has queued.
    pub fn queued(&self, policy: &K) -> usize {
        self.queued_ids(policy).map_or(0, HashSet::len)
    }

    /// Takes one batch of at most `min(budget, MAX_SERVERS_PER_ACTION)` distinct ids,
    /// round-robin across policies, and removes every id in it from every queue (so
    /// nothing sent is sent again), attributing it to each policy that held it.
    pub fn take_batch(&mut self, budget: usize) -> Batch<K> {
        let limit = budget.min(MAX_SERVERS_PER_ACTION);
        let mut entries: Vec<BatchEntry<K>> = Vec::new();
        let mut index: IdMap<usize> = IdMap::default();

        'turns: while entries.len() < limit && !self.is_empty() {
            let mut took_any = false;
            for queue in &mut self.policies {
                // A turn ends after IDS_PER_TURN ids not yet in the batch; ids another
                // policy already contributed cost this policy nothing.
                let mut contributed = 0;
                while contributed < IDS_PER_TURN {
                    let Some(id) = queue.ids.pop_front() else {
                        break;
                    };
                    queue.members.remove(&id);
                    took_any = true;
                    match index.get(&id) {
                        Some(&e) => attribute(&mut entries[e], &queue.key),
                        None => {
                            index.insert(id.clone(), entries.len());
                            entries.push(BatchEntry {
                                id,
                                policies: vec![queue.key.clone()],
                            });
                            if entries.len() == limit {
                                break 'turns;
                            }
                            contributed += 1;
                        }
                    }
                }
            }
            if !took_any {
                break;
            }
        }

        if !entries.is_empty() {
            // Every queue gives up what the batch carries.
            for entry in &entries {
                self.holders.remove(&entry.id);
            }
            for queue in &mut self.policies {
                queue.ids.retain(|id| match index.get(id) {
                    Some(&e) => {
                        attribute(&mut entries[e], &queue.key);
                        queue.members.remove(id);
                        false
                    }
                    None => true,
                });
            }
            // Whoever went first this time goes last next time.
            self.policies.rotate_left(1);
            self.policies.retain(|q| !q.ids.is_empty());
        }
        Batch { entries }
    }
}

impl<K: PartialEq> StopQueue<K> {
    /// The sizes of the calls [`StopQueue::take_batch`] would make with `call_size`
    /// up to and including the one that carries the policy's last queued id, if
    /// nothing joins or leaves the queue meanwhile; `None` when it has nothing queued.
    ///
    /// It replays take_batch's turns on counts alone, so that a sync can ask at
    /// 100,000 queued ids without copying them. It is exact when no id is queued by
    /// two policies. take_batch sends a shared id once, for all that queue it, and a
    /// policy's shared ids go out in other policies' turns too, so the replay counts
    /// each queue whole but ends once its calls carried as many ids as are queued
    /// distinct: four policies queuing the same 4000 ids are forecast 4 calls, not 16.
    pub fn calls_until_last(&self, policy: &K, call_size: usize) -> Option<Vec<usize>> {
        let limit = call_size.min(MAX_SERVERS_PER_ACTION);
        let mut uncarried = self.distinct_len();
        let mut turns: Vec<(bool, usize)> = self
            .policies
            .iter()
            .map(|q| (q.key == *policy, q.ids.len()))
            .collect();
        if limit == 0 || !turns.iter().any(|&(mine, left)| mine && left > 0) {
            return None;
        }
        let mut calls = Vec::new();
        loop {
            let mut size = 0;
            'turns: while size < limit && turns.iter().any(|&(_, left)| left > 0) {
                for (_, left) in &mut turns {
                    let take = (*left).min(IDS_PER_TURN).min(limit - size);
                    *left -= take;
                    size += take;
                    if size == limit {
                        break 'turns;
                    }
                }
            }
            // Once the calls carried as many ids as are queued distinct, every id has
            // gone out, shared ones included.
            let size = size.min(uncarried);
            uncarried -= size;
            calls.push(size);
            if uncarried == 0 || !turns.iter().any(|&(mine, left)| mine && left > 0) {
                return Some(calls);
            }
            turns.rotate_left(1);
            turns.retain(|&(_, left)| left > 0);
        }
    }
}

fn hold(holders: &mut IdMap<u32>, id: &ServerId) {
    *holders.entry(id.clone()).or_default() += 1;
}

fn release(holders: &mut IdMap<u32>, id: &ServerId) {
    if let Some(count) = holders.get_mut(id) {
        *count -= 1;
        if *count == 0 {
            holders.remove(id);
        }
    }
}

fn attribute<K: Clone + PartialEq>(entry: &mut BatchEntry<K>, policy: &K) {
    if !entry.policies.contains(policy) {
        entry.policies.push(policy.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(prefix: &str, n: usize) -> Vec<ServerId> {
        (0..n).map(|i| format!("{prefix}{i}").into()).collect()
    }

    #[test]
    fn batch_is_capped_at_1000_and_by_budget() {
        let mut q = StopQueue::new();
        q.push("a", ids("a", 2500));
        assert_eq!(q.take_batch(5000).len(), 1000);
        assert_eq!(q.take_batch(300).len(), 300);
        assert_eq!(q.take_batch(0).len(), 0);
        assert_eq!(q.len(), 1200);
    }

    #[test]
    fn three_calls_stop_2500_servers() {
        let mut q = StopQueue::new();
        q.push("p", ids("s", 2500));
        let sizes: Vec<usize> = std::iter::from_fn(|| Some(q.take_batch(usize::MAX)))
            .take_while(|b| !b.is_empty())
            .map(|b| b.len())
            .collect();
        assert_eq!(sizes, [1000, 1000, 500]);
    }

    #[test]
    fn small_policy_is_not_starved() {
        let mut q = StopQueue::new();
        q.push("big", ids("b", 5000));
        q.push("small", ids("s", 10));
        let batch = q.take_batch(1000);
        let small = batch
            .entries
            .iter()
            .filter(|e| e.policies.contains(&"small"))
            .count();
        assert_eq!(small, 10);
        assert_eq!(q.queued(&"small"), 0);
        assert_eq!(q.queued(&"big"), 4010);
    }

    #[test]
    fn round_robin_takes_turns_of_100_ids() {
        let mut q = StopQueue::new();
        q.push("a", ids("a", 150));
        q.push("b", ids("b", 150));
        let batch: Vec<String> = q.take_batch(250).ids().map(str::to_owned).collect();
        assert_eq!(batch[..100], ids("a", 100));
        assert_eq!(batch[100..200], ids("b", 100));
        assert_eq!(batch[200..], ids("a", 150)[100..]);
        // "a" went first, so "b" goes first next time.
        let batch: Vec<String> = q.take_batch(1000).ids().map(str::to_owned).collect();
        assert_eq!(batch, ids("b", 150)[100..]);
        assert!(q.is_empty());
    }

    #[test]
    fn many_policies_each_fit_in_one_call() {
        let mut q = StopQueue::new();
        for p in 0..30 {
            q.push(p, ids(&format!("p{p}-"), 100));
        }
        for call in 0..3 {
            let batch = q.take_batch(1000);
            let mut policies: Vec<usize> = batch
                .entries
                .iter()
                .flat_map(|e| e.policies.clone())
                .collect();
            policies.dedup();
            assert_eq!(policies.len(), 10, "call {call}: policies {policies:?}");
        }
        assert!(q.is_empty());
    }

    #[test]
    fn shared_id_is_sent_once_for_both_policies() {
        let mut q = StopQueue::new();
        q.push("a", vec!["x".into(), "y".into()]);
        q.push("b", vec!["z".into(), "w".into(), "x".into()]);
        let batch = q.take_batch(3);
        assert_eq!(batch.ids().collect::<Vec<_>>(), ["x", "y", "z"]);
        assert_eq!(batch.entries[0].policies, ["a", "b"]);
        assert_eq!(batch.entries[2].policies, ["b"]);
        // x is gone from b's queue too, so it is not sent a second time.
        assert_eq!(q.queued(&"b"), 1);
        assert_eq!(q.queued(&"a"), 0);
    }

    #[test]
    fn pushing_the_same_ids_twice_queues_them_once() {
        let mut q = StopQueue::new();
        q.push("a", ids("a", 3));
        q.push("a", ids("a", 5));
        assert_eq!(q.len(), 5);
    }

    #[test]
    fn withdrawing_drops_only_what_the_policy_no_longer_wants() {
        let mut q = StopQueue::new();
        q.push("a", ids("a", 3));
        q.push("b", ids("b", 2));
        let still_wanted: IdSet = ["a1".into()].into_iter().collect();
        assert_eq!(q.keep_only(&"a", &still_wanted), 2);
        assert_eq!(q.keep_only(&"a", &still_wanted), 0);
        assert_eq!(q.keep_only(&"z", &IdSet::default()), 0);
        assert_eq!(q.len(), 3);
        assert_eq!(
            q.take_batch(10).ids().collect::<Vec<_>>(),
            ["a1", "b0", "b1"]
        );
        q.push("a", ids("a", 1));
        assert_eq!(q.keep_only(&"a", &IdSet::default()), 1);
        assert!(q.is_empty());
    }

    #[test]
    fn ids_put_back_go_first_in_the_policys_next_turn() {
        let mut q = StopQueue::new();
        q.push("a", ids("a", 4));
        let taken: Vec<ServerId> = q.take_batch(2).ids().map(ServerId::from).collect();
        q.put_back("a", taken);
        q.put_back("b", ids("b", 1));
        assert_eq!(
            q.take_batch(10).ids().collect::<Vec<_>>(),
            ["b0", "a0", "a1", "a2", "a3"]
        );
    }

    /// The call of `take_batch` (1-based) that carries `policy`'s last id, by draining.
    fn drained_until_last<K: Clone + PartialEq>(
        q: &mut StopQueue<K>,
        policy: K,
        call_size: usize,
    ) -> Vec<usize> {
        let mut sizes = Vec::new();
        while q.queued(&policy) > 0 {
            sizes.push(q.take_batch(call_size).len());
        }
        sizes
    }

    #[test]
    fn forecast_matches_what_take_batch_does() {
        // Uneven policies, calls smaller and larger than a turn, the budget's sizes.
        let shapes: [&[usize]; 5] = [
            &[2500],
            &[150, 150],
            &[300; 20],
            &[2000, 10, 730, 99, 101, 1200],
            &[100; 30],
        ];
        for shape in shapes {
            for call_size in [1000, 500, 128] {
                for policy in 0..shape.len() {
                    let mut q = StopQueue::new();
                    for (p, n) in shape.iter().enumerate() {
                        q.push(p, ids(&format!("p{p}-"), *n));
                    }
                    let forecast = q.calls_until_last(&policy, call_size);
                    let drained = drained_until_last(&mut q, policy, call_size);
                    assert_eq!(
                        forecast,
                        Some(drained),
                        "policies {shape:?}, calls of {call_size}, policy {policy}"
                    );
                }
            }
        }
    }

    #[test]
    fn forecast_of_nothing_queued_is_none() {
        let mut q = StopQueue::new();
        assert_eq!(q.calls_until_last(&"a", 1000), None);
        q.push("b", ids("b", 3));
        assert_eq!(q.calls_until_last(&"a", 1000), None);
        assert_eq!(q.calls_until_last(&"b", 0), None);
        assert_eq!(q.calls_until_last(&"b", 5000), Some(vec![3]));
    }

    #[test]
    fn forecast_counts_a_shared_id_once() {
        let mut q = StopQueue::new();
        q.push("a", ids("x", 600));
        q.push("b", ids("x", 600));
        assert_eq!(q.distinct_len(), 600);
        assert_eq!(q.calls_until_last(&"b", 1000), Some(vec![600]));
        assert_eq!(drained_until_last(&mut q, "b", 1000), [600]);
    }

    #[test]
    fn forecast_of_overlapping_policies_is_within_a_call_of_what_take_batch_does() {
        // 40 policies, 8000 servers, each server queued by 4 of them (the benchmark's
        // overlapping selectors): 32,000 pairs, 8 calls of 1000.
        let policies = 40;
        let build = || {
            let mut q = StopQueue::new();
            for p in 0..policies {
                let mine = (0..8000usize)
                    .filter(|n| (0..4).any(|k| (n * 7 + k * 13 + n / 40) % policies == p))
                    .map(|n| ServerId::from(format!("s{n}")));
                q.push(p, mine);
            }
            q
        };
        let q = build();
        assert_eq!(q.distinct_len(), 8000);
        for policy in 0..policies {
            let forecast = q.calls_until_last(&policy, 1000).map(|c| c.len());
            let drained = drained_until_last(&mut build(), policy, 1000).len();
            let forecast = forecast.expect("queued");
            assert!(
                forecast.abs_diff(drained) <= 1,
                "policy {policy}: forecast {forecast} calls, take_batch {drained}"
            );
        }
    }

    #[test]
    fn the_distinct_count_follows_every_change() {
        let mut q = StopQueue::new();
        q.push("a", ids("x", 10));
        q.push("b", ids("x", 5));
        q.push("b", ids("y", 5));
        assert_eq!((q.len(), q.distinct_len()), (20, 15));
        let batch = q.take_batch(3);
        assert_eq!((q.len(), q.distinct_len()), (14, 12));
        let taken: Vec<ServerId> = batch.ids().map(ServerId::from).collect();
        q.put_back("b", taken);
        assert_eq!((q.len(), q.distinct_len()), (17, 15));
        let keep: IdSet = ids("x", 2).into_iter().collect();
        q.keep_only(&"a", &keep);
        assert_eq!((q.len(), q.distinct_len()), (10, 10));
        while !q.take_batch(4).is_empty() {}
        assert_eq!((q.len(), q.distinct_len()), (0, 0));
    }

    #[test]
    fn empty_push_leaves_no_empty_policy_behind() {
        let mut q: StopQueue<&str> = StopQueue::new();
        q.push("a", Vec::new());
        assert!(q.is_empty());
        assert!(q.take_batch(10).is_empty());
    }
}
