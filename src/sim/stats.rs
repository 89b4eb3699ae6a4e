//! Counters behind `GET /_sim/stats`: what the clients did, so tests and benchmarks
//! can assert on the traffic (never more than 1000 ids per stop, how many 429s).

use super::state::{Accepted, Answer};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The ids of one power action's calls (stops, or starts).
#[derive(Debug, Default)]
struct ActionIds {
    calls: u64,
    total: u64,
    max: u64,
    accepted: u64,
    redundant: u64,
    resent_after_lost: u64,
}

impl ActionIds {
    fn asked(&mut self, ids: usize) {
        self.calls += 1;
        self.total += ids as u64;
        self.max = self.max.max(ids as u64);
    }

    fn accepted(&mut self, ids: usize, accepted: &Accepted) {
        self.accepted += ids as u64;
        self.redundant += accepted.redundant as u64;
        self.resent_after_lost += accepted.resent_after_lost as u64;
    }
}

#[derive(Debug, Default)]
pub(super) struct Counters {
    requests: BTreeMap<&'static str, BTreeMap<u16, u64>>,
    stops: ActionIds,
    starts: ActionIds,
    accepted_then_failed: u64,
    accepted_then_dropped: u64,
    reboot_calls: u64,
    rate_limited: u64,
    budget_refusals: u64,
    signature_failures: u64,
    injected_errors: u64,
}

impl Counters {
    pub fn request(&mut self, operation: &'static str, status: u16) {
        *self
            .requests
            .entry(operation)
            .or_default()
            .entry(status)
            .or_default() += 1;
    }

    /// Every well-formed batch action, accepted or not: a client that sends
    /// 1001 ids must show up in `stop_ids_max`.
    pub fn action(&mut self, operation: &str, ids: usize) {
        match operation {
            "os-stop" => self.stops.asked(ids),
            "os-start" => self.starts.asked(ids),
            _ => self.reboot_calls += 1,
        }
    }

    /// A batch action the service accepted (job created), whatever the client got.
    pub fn accepted(&mut self, operation: &str, ids: usize, accepted: &Accepted, answer: Answer) {
        match operation {
            "os-stop" => self.stops.accepted(ids, accepted),
            "os-start" => self.starts.accepted(ids, accepted),
            _ => {}
        }
        match answer {
            Answer::Accepted => {}
            Answer::GatewayTimeout => self.accepted_then_failed += 1,
            Answer::Dropped => self.accepted_then_dropped += 1,
        }
    }

    pub fn rate_limited(&mut self) {
        self.rate_limited += 1;
    }

    pub fn budget_refusal(&mut self) {
        self.budget_refusals += 1;
    }

    pub fn signature_failure(&mut self) {
        self.signature_failures += 1;
    }

    pub fn injected_error(&mut self) {
        self.injected_errors += 1;
    }

    pub fn snapshot(&self, servers_by_status: BTreeMap<String, u64>, jobs: u64) -> SimStats {
        SimStats {
            requests: self
                .requests
                .iter()
                .map(|(op, codes)| ((*op).to_owned(), codes.clone()))
                .collect(),
            stop_calls: self.stops.calls,
            stop_ids_total: self.stops.total,
            stop_ids_max: self.stops.max,
            stop_ids_accepted: self.stops.accepted,
            stop_ids_redundant: self.stops.redundant,
            stop_ids_resent_after_lost: self.stops.resent_after_lost,
            accepted_then_failed: self.accepted_then_failed,
            accepted_then_dropped: self.accepted_then_dropped,
            start_calls: self.starts.calls,
            start_ids_total: self.starts.total,
            start_ids_max: self.starts.max,
            start_ids_accepted: self.starts.accepted,
            start_ids_redundant: self.starts.redundant,
            start_ids_resent_after_lost: self.starts.resent_after_lost,
            reboot_calls: self.reboot_calls,
            responses_429: self.rate_limited + self.budget_refusals,
            rate_limited: self.rate_limited,
            budget_refusals: self.budget_refusals,
            signature_failures: self.signature_failures,
            injected_errors: self.injected_errors,
            jobs,
            servers: servers_by_status.values().sum(),
            servers_by_status,
        }
    }
}

/// `GET /_sim/stats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimStats {
    /// Operation (`batch_action`, `list_servers`, `show_server`, `show_job`,
    /// `unknown`) -> HTTP status -> count. Admin calls are not counted.
    /// `accept_then_drop` answers are not in it: no status was sent.
    pub requests: BTreeMap<String, BTreeMap<u16, u64>>,
    /// Well-formed `os-stop` bodies, whatever the answer (refused ones included).
    pub stop_calls: u64,
    /// Ids of those bodies, also of calls refused (429, 4xx): what clients asked for.
    pub stop_ids_total: u64,
    /// The most ids in one of those bodies.
    pub stop_ids_max: u64,
    /// Ids of stop calls the service accepted (a job was created), whatever answer
    /// the client got (also a 504 or a reset connection from the faults).
    pub stop_ids_accepted: u64,
    /// Of `stop_ids_accepted`, ids whose server was already SHUTOFF or already being
    /// stopped (powering-off, or named by a stop job still INIT) when accepted.
    pub stop_ids_redundant: u64,
    /// Of `stop_ids_redundant`, ids whose server was ACTIVE with no task because the
    /// only stop naming it was a job still INIT whose answer the client never got (504
    /// or reset): a listing showed it untouched, so re-sending it was allowed.
    #[serde(default)]
    pub stop_ids_resent_after_lost: u64,
    /// Accepted batch actions answered 504 by `accept_then_fail_rate`.
    pub accepted_then_failed: u64,
    /// Accepted batch actions whose connection `accept_then_drop_rate` reset.
    pub accepted_then_dropped: u64,
    /// Well-formed `os-start` bodies, whatever the answer.
    pub start_calls: u64,
    /// The start counters, as the stop ones: ids asked for, the most in one body,
    /// ids of accepted calls, of those the redundant ones (the server already ACTIVE
    /// with no task, powering on, or named by a start job still INIT), and of those
    /// the ones re-sent after a lost answer (SHUTOFF with no task, named only by INIT
    /// start jobs whose answer the client never got).
    #[serde(default)]
    pub start_ids_total: u64,
    #[serde(default)]
    pub start_ids_max: u64,
    #[serde(default)]
    pub start_ids_accepted: u64,
    #[serde(default)]
    pub start_ids_redundant: u64,
    #[serde(default)]
    pub start_ids_resent_after_lost: u64,
    pub reboot_calls: u64,
    /// Every 429 sent: `rate_limited` + `budget_refusals`.
    pub responses_429: u64,
    /// 429 `APIGW.0308` from `throttle_rps`.
    pub rate_limited: u64,
    /// 429 `Common.1503` from the per-project budget.
    pub budget_refusals: u64,
    /// 401s: bad, missing or stale signatures and wrong tokens.
    pub signature_failures: u64,
    /// 500s injected by `error_rate`.
    pub injected_errors: u64,
    pub jobs: u64,
    pub servers: u64,
    pub servers_by_status: BTreeMap<String, u64>,
}

impl SimStats {
    /// Requests of `operation` answered with `status`.
    pub fn requests_with(&self, operation: &str, status: u16) -> u64 {
        self.requests
            .get(operation)
            .and_then(|codes| codes.get(&status))
            .copied()
            .unwrap_or(0)
    }
}
