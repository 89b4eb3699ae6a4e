//! The simulated project: servers, jobs, the action budget and the request-rate bucket.
//!
//! Pure state with explicit `now`, no HTTP and no timers: a power action schedules
//! its completion in a min-heap and every operation first applies the transitions
//! that fell due ([`State::advance`]). That keeps 100,000 servers cheap, since idle
//! servers cost nothing and each request does work proportional to what it touches.

use super::clock::Clock;
use super::failure::{
    Failure, budget_exceeded, busy, injected_subjob_failure, interrupted, invalid_parameter,
    locked, not_found, too_many_servers, wrong_status,
};
use super::job::{ActionKind, Job, JobRecord, SubJob, SubServer, action_kind};
use super::limits::{Bucket, Budget};
use super::listing::ListQuery;
use super::profile::ProjectProfile;
use super::server::{Pending, Server, ServerSnapshot, Status, Task, VmState, canonical_uuid};
use super::tags::{Interner, check_name, check_tags};
use super::{Faults, ServerErrorMode, SimConfig, SimError};
use crate::ecs::wire::{self, BatchAction, JobStatus, MAX_SERVERS_PER_ACTION};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Something that falls due at a time: a server's action completes, or a job leaves INIT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    Server(usize),
    JobStart(usize),
}

/// An accepted batch action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub job_id: String,
    /// Ids of a stop (start) whose server was already SHUTOFF (ACTIVE) or already
    /// being stopped (started): in that task, or named by such a job still INIT; 0
    /// for a reboot.
    pub redundant: usize,
    /// Of those, ids whose server looked untouched (no task, not yet where the action
    /// heads) because the only jobs of this action naming it are still INIT and their
    /// answer never reached the client: a client may re-send those after a listing,
    /// as the operator's rules allow.
    pub resent_after_lost: usize,
}

/// Server index -> jobs of one power action (stop or start) still INIT that name it,
/// and of those the jobs whose answer was lost (a 504 or a reset connection). Empty
/// without `job_init_ms`.
#[derive(Debug, Default)]
struct Initialising {
    named: HashMap<usize, u32>,
    lost: HashMap<usize, u32>,
}

/// How the gateway answers an accepted action, drawn from the seeded faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Accepted,
    GatewayTimeout,
    Dropped,
}

/// One entry of a listing, taken under the lock and rendered after it.
#[derive(Debug, Clone)]
pub enum Listed {
    Server(ServerSnapshot),
    /// An id the `server_id` filter names that the project does not have.
    Missing(String),
}

/// A page of the listing.
#[derive(Debug, Clone)]
pub struct Listing {
    /// Every matching server, not only this page's.
    pub count: u64,
    pub entries: Vec<Listed>,
}

/// Servers a page leaves out before its first: `offset` pages, unless a `marker`
/// says where the page starts.
fn skipped(query: &ListQuery) -> usize {
    if query.marker.is_some() {
        0
    } else {
        (query.page - 1).saturating_mul(query.limit)
    }
}

fn page(query: &ListQuery, entries: impl Iterator<Item = Listed>) -> Vec<Listed> {
    entries.skip(skipped(query)).take(query.limit).collect()
}

pub struct State {
    profile: Arc<ProjectProfile>,
    servers: Vec<Server>,
    index: HashMap<Uuid, u32>,
    tags: Interner,
    due: BinaryHeap<Reverse<(Instant, u64, Due)>>,
    next_seq: u64,
    jobs: Vec<Job>,
    job_index: HashMap<String, usize>,
    initialising_stops: Initialising,
    initialising_starts: Initialising,
    budget: Budget,
    bucket: Bucket,
    pub faults: Faults,
    stop_duration: Duration,
    servers_per_window: usize,
    budget_window: Duration,
    server_errors: ServerErrorMode,
    /// Server ids come from their own stream so they depend on the seed alone,
    /// never on the traffic the simulator has seen.
    id_rng: StdRng,
    rng: StdRng,
    clock: Clock,
}

impl State {
    pub fn new(config: &SimConfig, now: Instant) -> Self {
        let mut state = Self {
            profile: Arc::new(ProjectProfile::new(config.seed, &config.project_id)),
            servers: Vec::with_capacity(config.servers),
            index: HashMap::with_capacity(config.servers),
            tags: Interner::default(),
            due: BinaryHeap::new(),
            next_seq: 0,
            jobs: Vec::new(),
            job_index: HashMap::new(),
            initialising_stops: Initialising::default(),
            initialising_starts: Initialising::default(),
            budget: Budget::default(),
            bucket: Bucket::new(config.throttle_rps, now),
            faults: config.faults(),
            stop_duration: config.stop_duration,
            servers_per_window: config.servers_per_window,
            budget_window: config.budget_window,
            server_errors: config.server_errors,
            id_rng: StdRng::seed_from_u64(config.seed),
            rng: StdRng::seed_from_u64(config.seed ^ 0x5eed_fa17_5eed_fa17),
            clock: Clock::new(now),
        };
        state.add_servers(config.servers, now);
        state
    }

    fn random_bytes(&mut self) -> [u8; 16] {
        let mut bytes = [0u8; 16];
        self.rng.fill_bytes(&mut bytes);
        bytes
    }

    /// What every server's derived attributes come from; the wire view needs it.
    pub fn profile(&self) -> Arc<ProjectProfile> {
        self.profile.clone()
    }

    /// Appends `n` ACTIVE servers with seed-derived ids; returns their ids.
    pub fn add_servers(&mut self, n: usize, now: Instant) -> Vec<String> {
        let created = self.clock.server_second(now);
        (0..n)
            .map(|_| {
                let mut bytes = [0u8; 16];
                self.id_rng.fill_bytes(&mut bytes);
                let id = uuid::Builder::from_random_bytes(bytes).into_uuid();
                let number = u32::try_from(self.servers.len()).expect("fewer than 4e9 servers");
                self.index.insert(id, number);
                self.servers.push(Server {
                    id,
                    vm: VmState::Active,
                    task: None,
                    locked: false,
                    created,
                    updated: created,
                    pending: None,
                    custom: None,
                });
                id.to_string()
            })
            .collect()
    }

    pub fn server_ids(&self) -> Vec<String> {
        self.servers.iter().map(|s| s.id.to_string()).collect()
    }

    /// The server with exactly this id (see [`canonical_uuid`]).
    fn lookup(&self, id: &str) -> Option<usize> {
        let uuid = canonical_uuid(id)?;
        self.index.get(&uuid).map(|&i| i as usize)
    }

    fn known(&self, id: &str) -> Result<usize, SimError> {
        self.lookup(id)
            .ok_or_else(|| SimError::UnknownServer(id.to_owned()))
    }

    pub fn job_count(&self) -> usize {
        self.jobs.len()
    }

    pub fn servers_by_status(&self) -> BTreeMap<String, u64> {
        let mut counts = BTreeMap::new();
        for server in &self.servers {
            *counts
                .entry(server.status().as_str().to_owned())
                .or_default() += 1;
        }
        counts
    }

    /// Applies every transition due at `now`, in due order.
    pub fn advance(&mut self, now: Instant) {
        while let Some(&Reverse((at, seq, due))) = self.due.peek() {
            if at > now {
                break;
            }
            self.due.pop();
            match due {
                Due::JobStart(job) => self.start_job(job, at),
                // A pending entry replaced or cancelled since (admin set-state) is stale.
                Due::Server(server)
                    if self.servers[server]
                        .pending
                        .as_ref()
                        .is_some_and(|p| p.seq == seq) =>
                {
                    self.complete(server, at)
                }
                Due::Server(_) => {}
            }
        }
    }

    fn schedule(&mut self, at: Instant, due: Due) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.due.push(Reverse((at, seq, due)));
        seq
    }

    fn complete(&mut self, server: usize, at: Instant) {
        let time = self.clock.server_second(at);
        let s = &mut self.servers[server];
        let pending = s.pending.take().expect("caller checked pending");
        s.task = None;
        let failure = if pending.fails {
            Some(injected_subjob_failure())
        } else {
            s.vm = pending.target;
            s.updated = time;
            None
        };
        self.jobs[pending.job].finish_sub(pending.sub, failure, self.clock.job_millisecond(at));
    }

    /// Admission control for `throttle_rps`: false when the request is over the rate.
    pub fn take_request_token(&mut self, now: Instant) -> bool {
        match self.faults.throttle_rps {
            Some(rps) => self.bucket.take(rps, now),
            None => true,
        }
    }

    /// Draws from the seeded RNG: true with probability `rate`.
    pub fn chance(&mut self, rate: f64) -> bool {
        rate > 0.0 && self.rng.random::<f64>() < rate
    }

    /// Why `server` cannot take the action, if it cannot.
    fn refuse(&self, id: &str, kind: &ActionKind) -> Result<usize, Failure> {
        let index = self.lookup(id).ok_or_else(not_found)?;
        let server = &self.servers[index];
        if server.locked {
            Err(locked())
        } else if server.task.is_some() {
            Err(busy())
        } else if server.vm != kind.from {
            Err(wrong_status())
        } else {
            Ok(index)
        }
    }

    /// Validates a batch action and creates its job, which starts at once or after
    /// `job_init_ms` in INIT.
    pub fn submit(&mut self, action: &BatchAction, now: Instant) -> Result<Accepted, Failure> {
        let ids = action.servers();
        if ids.is_empty() {
            return Err(invalid_parameter("servers must not be empty"));
        }
        if ids.len() > MAX_SERVERS_PER_ACTION {
            return Err(too_many_servers(ids.len()));
        }
        let mut seen = HashSet::with_capacity(ids.len());
        for server in ids {
            if uuid::Uuid::try_parse(&server.id).is_err() {
                return Err(invalid_parameter(format!(
                    "server id `{}` is not a UUID",
                    server.id
                )));
            }
            if !seen.insert(server.id.as_str()) {
                return Err(invalid_parameter(format!(
                    "server id `{}` appears twice",
                    server.id
                )));
            }
        }
        let kind = action_kind(action);
        if self.server_errors == ServerErrorMode::Reject
            && let Some(failure) = ids.iter().find_map(|s| self.refuse(&s.id, &kind).err())
        {
            return Err(failure);
        }
        if !self
            .budget
            .try_take(now, ids.len(), self.servers_per_window, self.budget_window)
        {
            return Err(budget_exceeded(self.servers_per_window, self.budget_window));
        }

        let (redundant, resent_after_lost) = match self.initialising(&kind) {
            Some(initialising) => {
                let redundant: Vec<usize> = ids
                    .iter()
                    .filter_map(|s| self.lookup(&s.id))
                    .filter(|&index| self.already_under_way(index, &kind, initialising))
                    .collect();
                let after_lost = redundant
                    .iter()
                    .filter(|&&index| self.only_in_lost_init(index, &kind, initialising))
                    .count();
                (redundant.len(), after_lost)
            }
            None => (0, 0),
        };
        let job = self.jobs.len();
        let job_id = hex::encode(self.random_bytes());
        self.job_index.insert(job_id.clone(), job);
        self.jobs.push(Job {
            id: job_id.clone(),
            kind,
            begin: self.clock.job_millisecond(now),
            started: 0,
            end: None,
            initialising: Some(ids.iter().map(|s| s.id.clone()).collect()),
            answer_lost: false,
            subs: Vec::new(),
            running: 0,
            failed: 0,
        });
        let init = Duration::from_millis(self.faults.job_init_ms);
        if init.is_zero() {
            self.start_job(job, now);
        } else {
            let indexes: Vec<usize> = ids.iter().filter_map(|s| self.lookup(&s.id)).collect();
            if let Some(initialising) = self.initialising_mut(&kind) {
                for index in indexes {
                    *initialising.named.entry(index).or_default() += 1;
                }
            }
            self.schedule(now + init, Due::JobStart(job));
        }
        Ok(Accepted {
            job_id,
            redundant,
            resent_after_lost,
        })
    }

    /// The INIT jobs of a stop or a start (a reboot is not tracked).
    fn initialising(&self, kind: &ActionKind) -> Option<&Initialising> {
        match kind.task {
            Task::PoweringOff => Some(&self.initialising_stops),
            Task::PoweringOn => Some(&self.initialising_starts),
            Task::Rebooting | Task::RebootingHard => None,
        }
    }

    fn initialising_mut(&mut self, kind: &ActionKind) -> Option<&mut Initialising> {
        match kind.task {
            Task::PoweringOff => Some(&mut self.initialising_stops),
            Task::PoweringOn => Some(&mut self.initialising_starts),
            Task::Rebooting | Task::RebootingHard => None,
        }
    }

    /// The client never got the answer of this accepted action (504 or reset): while
    /// the job is INIT its servers look untouched, so a re-sent stop of them is told
    /// apart from a plain duplicate.
    pub fn answer_lost(&mut self, job_id: &str) {
        let Some(&job) = self.job_index.get(job_id) else {
            return;
        };
        self.jobs[job].answer_lost = true;
        let job = &self.jobs[job];
        let Some(ids) = job.initialising.as_ref() else {
            return;
        };
        let kind = job.kind;
        let indexes: Vec<usize> = ids.iter().filter_map(|id| self.lookup(id)).collect();
        if let Some(initialising) = self.initialising_mut(&kind) {
            for index in indexes {
                *initialising.lost.entry(index).or_default() += 1;
            }
        }
    }

    /// No task, not where the action heads, and named only by INIT jobs of that action
    /// whose answer was lost.
    fn only_in_lost_init(&self, index: usize, kind: &ActionKind, init: &Initialising) -> bool {
        let server = &self.servers[index];
        let lost = init.lost.get(&index).copied();
        server.task.is_none()
            && server.vm != kind.target
            && lost.is_some_and(|n| Some(n) == init.named.get(&index).copied())
    }

    /// The action would change nothing for this server: it is where the action heads
    /// (SHUTOFF for a stop, ACTIVE for a start) with no task, already in the action's
    /// task (powering off, powering on), or named by such a job still INIT.
    fn already_under_way(&self, index: usize, kind: &ActionKind, init: &Initialising) -> bool {
        let server = &self.servers[index];
        match server.task {
            Some(task) => task == kind.task,
            None => server.vm == kind.target || init.named.contains_key(&index),
        }
    }

    /// The job leaves INIT at `at`: each server is checked now (not at submission: the
    /// world may have changed meanwhile) and gets its sub-job.
    fn start_job(&mut self, job: usize, at: Instant) {
        let Some(ids) = self.jobs[job].initialising.take() else {
            return;
        };
        let kind = self.jobs[job].kind;
        let answer_lost = self.jobs[job].answer_lost;
        let begin = self.clock.job_millisecond(at);
        let due = at + self.stop_duration;
        let mut subs = Vec::with_capacity(ids.len());
        let (mut running, mut failed) = (0, 0);
        for (sub, server_id) in ids.into_iter().enumerate() {
            self.forget_initialising(&server_id, &kind, answer_lost);
            let check = self.refuse(&server_id, &kind);
            let sub_id = self.random_bytes();
            let (status, failure, end) = match check {
                Ok(index) => {
                    let fails = self.chance(self.faults.subjob_failure_rate);
                    let seq = self.schedule(due, Due::Server(index));
                    let s = &mut self.servers[index];
                    s.task = Some(kind.task);
                    s.pending = Some(Box::new(Pending {
                        seq,
                        job,
                        sub,
                        target: kind.target,
                        fails,
                    }));
                    running += 1;
                    (JobStatus::Running, None, None)
                }
                Err(failure) => {
                    failed += 1;
                    (JobStatus::Fail, Some(Box::new(failure)), Some(begin))
                }
            };
            subs.push(SubJob {
                id: sub_id,
                server: SubServer::new(&server_id),
                status,
                end,
                failure,
            });
        }
        let job = &mut self.jobs[job];
        job.started = begin;
        job.end = (running == 0).then_some(begin);
        job.subs = subs;
        job.running = running;
        job.failed = failed;
    }

    fn forget_initialising(&mut self, server_id: &str, kind: &ActionKind, answer_lost: bool) {
        let Some(index) = self.lookup(server_id) else {
            return;
        };
        let Some(initialising) = self.initialising_mut(kind) else {
            return;
        };
        decrement(&mut initialising.named, index);
        if answer_lost {
            decrement(&mut initialising.lost, index);
        }
    }

    /// How the gateway answers an action the service accepted: seeded, drawn only
    /// for rates above 0 so runs without these faults see the same stream as before.
    pub fn draw_answer(&mut self) -> Answer {
        if self.chance(self.faults.accept_then_fail_rate) {
            Answer::GatewayTimeout
        } else if self.chance(self.faults.accept_then_drop_rate) {
            Answer::Dropped
        } else {
            Answer::Accepted
        }
    }

    /// Every job, in submission order.
    pub fn job_records(&self) -> Vec<JobRecord> {
        self.jobs.iter().map(Job::record).collect()
    }

    pub fn job(&self, job_id: &str) -> Option<wire::Job> {
        self.job_index.get(job_id).map(|&j| self.jobs[j].to_wire())
    }

    pub fn server(&self, id: &str) -> Option<ServerSnapshot> {
        self.lookup(id).map(|i| self.servers[i].snapshot(i))
    }

    /// One page of the listing and the number of matching servers, in creation
    /// order. Unfiltered it is a slice; filtered, one scan. `server_id` lists those
    /// ids in the order given (unknown ones as [`Listed::Missing`]) and ignores the
    /// other filters, as the docs say.
    pub fn list(&self, query: &ListQuery) -> Result<Listing, Failure> {
        if let Some(ids) = &query.server_ids {
            let entries = ids.iter().map(|id| match self.lookup(id) {
                Some(i) => Listed::Server(self.servers[i].snapshot(i)),
                None => Listed::Missing(id.clone()),
            });
            return Ok(Listing {
                count: ids.len() as u64,
                entries: page(query, entries),
            });
        }
        let after = match &query.marker {
            None => 0,
            Some(marker) => {
                let at = self.lookup(marker).ok_or_else(|| {
                    invalid_parameter(format!("marker `{marker}` is not a server of this project"))
                })?;
                at + 1
            }
        };
        let numbered = || self.servers.iter().enumerate();
        if !query.filters() {
            let entries = numbered()
                .skip(after)
                .map(|(i, s)| Listed::Server(s.snapshot(i)));
            return Ok(Listing {
                count: self.servers.len() as u64,
                entries: page(query, entries),
            });
        }
        let mut name = String::new();
        let mut matches = |(i, s): &(usize, &Server)| {
            let profile = self.profile.server(*i);
            query.status.as_deref().is_none_or(|f| s.matches_status(f))
                && query.matches_tags(|tag| s.has_tag(&profile, tag))
                && query.name.as_ref().is_none_or(|pattern| {
                    s.write_name(&profile, &mut name);
                    pattern.matches(&name)
                })
        };
        let (mut count, mut entries, skip) = (0u64, Vec::new(), skipped(query));
        for (i, s) in numbered() {
            if !matches(&(i, s)) {
                continue;
            }
            count += 1;
            if i >= after && count > skip as u64 && entries.len() < query.limit {
                entries.push(Listed::Server(s.snapshot(i)));
            }
        }
        Ok(Listing { count, entries })
    }

    /// Admin: puts a server into a stable status at once. An action in flight on it
    /// ends now: its sub-job succeeds if the server landed where the action was
    /// heading, and fails otherwise.
    pub fn set_status(&mut self, id: &str, status: Status, now: Instant) -> Result<(), SimError> {
        let vm = match status {
            Status::Active => VmState::Active,
            Status::Shutoff => VmState::Stopped,
            Status::Error => VmState::Error,
            Status::Reboot | Status::HardReboot => return Err(SimError::TransientStatus(status)),
        };
        let index = self.known(id)?;
        let time = self.clock.server_second(now);
        let server = &mut self.servers[index];
        server.vm = vm;
        server.task = None;
        server.updated = time;
        if let Some(pending) = server.pending.take() {
            let failure = (pending.target != vm).then(interrupted);
            self.jobs[pending.job].finish_sub(
                pending.sub,
                failure,
                self.clock.job_millisecond(now),
            );
        }
        Ok(())
    }

    pub fn set_locked(&mut self, id: &str, locked: bool) -> Result<(), SimError> {
        let index = self.known(id)?;
        self.servers[index].locked = locked;
        Ok(())
    }

    /// Admin: renames a server (1 to 64 letters, digits, `_`, `-`, `.`).
    pub fn set_name(&mut self, id: &str, name: &str) -> Result<(), SimError> {
        let index = self.known(id)?;
        check_name(name).map_err(SimError::InvalidName)?;
        let server = &mut self.servers[index];
        server.custom.get_or_insert_default().name = Some(Arc::from(name));
        Ok(())
    }

    /// Admin: replaces a server's tags (`key=value` or `key`, as the listing shows).
    pub fn set_tags(&mut self, id: &str, tags: &[String]) -> Result<(), SimError> {
        let index = self.known(id)?;
        check_tags(tags).map_err(SimError::InvalidTags)?;
        let tags: Arc<[Arc<str>]> = tags.iter().map(|t| self.tags.intern(t)).collect();
        let server = &mut self.servers[index];
        server.custom.get_or_insert_default().tags = Some(tags);
        Ok(())
    }
}

fn decrement(counts: &mut HashMap<usize, u32>, index: usize) {
    if let Some(count) = counts.get_mut(&index) {
        *count -= 1;
        if *count == 0 {
            counts.remove(&index);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ecs::wire::{ServerRef, StopBody};

    fn state(servers: usize) -> (State, Instant) {
        let now = Instant::now();
        let config = SimConfig {
            servers,
            stop_duration: Duration::from_secs(10),
            ..SimConfig::default()
        };
        (State::new(&config, now), now)
    }

    fn stop(ids: &[String]) -> BatchAction {
        BatchAction::Stop(StopBody {
            servers: ids.iter().map(|id| ServerRef { id: id.clone() }).collect(),
            stop_type: None,
        })
    }

    #[test]
    fn ids_depend_on_the_seed_only() {
        let (a, _) = state(3);
        let (b, _) = state(3);
        assert_eq!(a.server_ids(), b.server_ids());
        assert!(uuid::Uuid::try_parse(&a.server_ids()[0]).is_ok());
    }

    #[test]
    fn stop_is_powering_off_until_due_then_shutoff() {
        let (mut s, t0) = state(2);
        let ids = s.server_ids();
        let job = s.submit(&stop(&ids[..1]), t0).unwrap().job_id;
        let d = s.server(&ids[0]).unwrap();
        assert_eq!(
            (d.status, d.task),
            (Status::Active, Some(Task::PoweringOff))
        );
        assert_eq!(s.job(&job).unwrap().status, JobStatus::Running);
        s.advance(t0 + Duration::from_secs(10));
        let d = s.server(&ids[0]).unwrap();
        assert_eq!((d.status, d.vm), (Status::Shutoff, VmState::Stopped));
        assert_eq!(s.job(&job).unwrap().status, JobStatus::Success);
    }

    #[test]
    fn admin_override_ends_the_sub_job() {
        let (mut s, t0) = state(1);
        let ids = s.server_ids();
        let job = s.submit(&stop(&ids), t0).unwrap().job_id;
        s.set_status(&ids[0], Status::Active, t0).unwrap();
        s.advance(t0 + Duration::from_secs(60));
        let job = s.job(&job).unwrap();
        assert_eq!(job.status, JobStatus::Fail);
        assert_eq!(s.server(&ids[0]).unwrap().status, Status::Active);
    }

    #[test]
    fn another_spelling_of_a_known_id_is_an_unknown_server_echoed_as_spelled() {
        let (mut s, t0) = state(1);
        let upper = s.server_ids()[0].to_uppercase();
        let job = s
            .submit(&stop(std::slice::from_ref(&upper)), t0)
            .unwrap()
            .job_id;
        let sub = &s.job(&job).unwrap().entities.sub_jobs.unwrap()[0];
        assert_eq!(sub.entities.server_id.as_deref(), Some(upper.as_str()));
        assert_eq!(sub.error_code.as_deref(), Some("Ecs.0114"));
    }

    #[test]
    fn an_init_job_checks_its_servers_when_it_starts_not_when_submitted() {
        let (mut s, t0) = state(2);
        s.faults.job_init_ms = 1000;
        let ids = s.server_ids();
        let job = s.submit(&stop(&ids), t0).unwrap().job_id;
        assert_eq!(s.job(&job).unwrap().status, JobStatus::Init);
        assert_eq!(s.server(&ids[0]).unwrap().task, None);
        s.set_status(&ids[1], Status::Shutoff, t0).unwrap();

        s.advance(t0 + Duration::from_secs(1));
        let running = s.job(&job).unwrap();
        assert_eq!(running.status, JobStatus::Running);
        let subs = running.entities.sub_jobs.unwrap();
        assert_eq!(subs[0].status, JobStatus::Running);
        assert_eq!(subs[1].error_code.as_deref(), Some("Ecs.0100"));
        assert!(s.initialising_stops.named.is_empty());

        s.advance(t0 + Duration::from_secs(11));
        assert_eq!(s.job(&job).unwrap().status, JobStatus::Fail);
        assert_eq!(s.server(&ids[0]).unwrap().status, Status::Shutoff);
    }
}
