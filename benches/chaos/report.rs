//! What one chaos cell measured, its targets, and the table `hack/chaos.sh` prints.

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Kill {
    /// Seconds from the cell's start.
    pub at_s: f64,
    /// Which process: `operator-3`, `replica-2`, ...
    pub process: String,
    /// Cell (a): how long after its first round ended; (b): after it took the Lease.
    pub after_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    pub cell: String,
    pub seed: u64,
    pub servers: usize,
    pub policies: usize,
    pub kills: Vec<Kill>,
    pub all_stopped_s: f64,
    pub all_ready_s: f64,
    pub stop_calls: u64,
    pub stop_ids_sent: u64,
    pub stop_ids_accepted: u64,
    pub stop_ids_redundant: u64,
    pub stop_ids_resent_after_lost: u64,
    pub responses_429: u64,
    pub status_writes: u64,
    /// The longest time from a kill (or the black-hole) until another process could
    /// act: the restarted one serving /healthz, or a new holder of the Lease.
    pub longest_no_leader_s: f64,
    /// Cell (c): stop calls of the black-holed leader after the follower held the
    /// Lease, and after the follower's first stop call.
    pub old_leader_calls_after_takeover: Option<u64>,
    pub old_leader_calls_after_follower_first: Option<u64>,
    /// Cell (d): the schedule window and the starts after it.
    pub window: Option<WindowFigures>,
    /// Anything else worth a line.
    pub notes: Vec<String>,
}

/// Cell (d): a schedule window with afterWindow Start ending mid-cell.
#[derive(Debug, Clone, Serialize)]
pub struct WindowFigures {
    /// Seconds from the cell's start.
    pub from_s: f64,
    pub to_s: f64,
    /// Servers stopped through the simulator's admin API before the window: never
    /// the policies' to start.
    pub stopped_by_hand: usize,
    /// Every server the policies stopped ACTIVE again, from the cell's start.
    pub all_running_s: f64,
    /// The target for that: the window's end, plus the `Auto` lead for starts that
    /// could not begin early, plus `cells::RESTART_ALLOWANCE` for a process killed at the
    /// end to come back, list and sync (a start that waits for a drift check, 60 s,
    /// misses it).
    pub running_target_s: f64,
    pub start_calls: u64,
    pub start_ids_sent: u64,
    pub start_ids_accepted: u64,
    pub start_ids_redundant: u64,
    pub start_ids_resent_after_lost: u64,
    /// Servers stopped by hand that were started anyway.
    pub started_not_stopped_by_policy: usize,
}

impl Figures {
    /// The targets this cell missed (all stopped and Ready are checked as
    /// the cell runs: a cell that never gets there fails with its own error).
    pub fn missed(&self) -> Vec<String> {
        let mut missed = self
            .window
            .as_ref()
            .map_or_else(Vec::new, |w| w.missed(&self.cell));
        let plain_duplicates = self.stop_ids_redundant - self.stop_ids_resent_after_lost;
        if plain_duplicates > 0 {
            missed.push(format!(
                "{}: {plain_duplicates} ids stopped twice (stop_ids_redundant {} of which {} re-sent after a lost answer)",
                self.cell, self.stop_ids_redundant, self.stop_ids_resent_after_lost
            ));
        }
        if self.responses_429 > 0 {
            missed.push(format!(
                "{}: {} responses 429",
                self.cell, self.responses_429
            ));
        }
        for (what, calls) in [
            (
                "the Lease changed hands",
                self.old_leader_calls_after_takeover,
            ),
            (
                "the follower's first stop call",
                self.old_leader_calls_after_follower_first,
            ),
        ] {
            if let Some(calls) = calls.filter(|c| *c > 0) {
                missed.push(format!(
                    "{}: the black-holed leader sent {calls} stop calls after {what}",
                    self.cell
                ));
            }
        }
        missed
    }

    pub fn kill_lines(&self) -> String {
        self.kills
            .iter()
            .enumerate()
            .map(|(i, k)| {
                format!(
                    "  kill {:2} at {:6.2}s: {} ({:.2}s into its work)\n",
                    i + 1,
                    k.at_s,
                    k.process,
                    k.after_s
                )
            })
            .collect()
    }
}

impl WindowFigures {
    /// A server started twice while a start of it was in flight (re-sent after a lost
    /// answer apart), or one started that the policies did not stop. Every server
    /// stopped inside the window and running after it is checked as the cell runs.
    fn missed(&self, cell: &str) -> Vec<String> {
        let mut missed = Vec::new();
        let plain_duplicates = self.start_ids_redundant - self.start_ids_resent_after_lost;
        if plain_duplicates > 0 {
            missed.push(format!(
                "{cell}: {plain_duplicates} ids started twice (start_ids_redundant {} of which {} re-sent after a lost answer)",
                self.start_ids_redundant, self.start_ids_resent_after_lost
            ));
        }
        if self.started_not_stopped_by_policy > 0 {
            missed.push(format!(
                "{cell}: {} servers stopped by hand were started",
                self.started_not_stopped_by_policy
            ));
        }
        if self.all_running_s > self.running_target_s {
            missed.push(format!(
                "{cell}: every server the policies stopped ran again at {:.1} s, {:.1} s after the window's end (target: by {:.1} s)",
                self.all_running_s,
                self.all_running_s - self.to_s,
                self.running_target_s
            ));
        }
        missed
    }
}

/// The start figures of the cells with a window, or nothing.
pub fn window_table(cells: &[Figures]) -> String {
    let rows: Vec<String> = cells
        .iter()
        .filter_map(|c| {
            let w = c.window.as_ref()?;
            Some(format!(
                "| {} | {} | {:.1}–{:.1} | {} | {:.1} | {:.1} ({:.1}) | {} | {} | {} | {} | {} | {} |\n",
                c.cell,
                c.seed,
                w.from_s,
                w.to_s,
                w.stopped_by_hand,
                c.all_stopped_s,
                w.all_running_s,
                w.running_target_s,
                w.start_calls,
                w.start_ids_sent,
                w.start_ids_redundant,
                w.start_ids_resent_after_lost,
                w.started_not_stopped_by_policy,
                c.responses_429,
            ))
        })
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    let head = "| cell | seed | window s | stopped by hand | all stopped s | all running again s (target) | start calls | start ids sent | redundant starts | re-sent after a lost answer | started, not stopped by the policies | 429 |\n|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
    format!("\n{head}{}", rows.concat())
}

pub fn table(cells: &[Figures]) -> String {
    let mut out = String::from(
        "| cell | seed | N / P | kills | all stopped s | all Ready s | stop calls | stop ids sent | accepted | redundant | re-sent after a lost answer | 429 | status writes | longest with no leader acting s | old leader's calls after takeover / after follower's first |\n|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for c in cells {
        let old = match (
            c.old_leader_calls_after_takeover,
            c.old_leader_calls_after_follower_first,
        ) {
            (Some(a), Some(b)) => format!("{a} / {b}"),
            _ => "n/a".to_owned(),
        };
        out += &format!(
            "| {} | {} | {} / {} | {} | {:.1} | {:.1} | {} | {} | {} | {} | {} | {} | {} | {:.1} | {} |\n",
            c.cell,
            c.seed,
            c.servers,
            c.policies,
            c.kills.len(),
            c.all_stopped_s,
            c.all_ready_s,
            c.stop_calls,
            c.stop_ids_sent,
            c.stop_ids_accepted,
            c.stop_ids_redundant,
            c.stop_ids_resent_after_lost,
            c.responses_429,
            c.status_writes,
            c.longest_no_leader_s,
            old
        );
    }
    out
}
