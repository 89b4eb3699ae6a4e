//! Issue 13: kill -9 at the worst moments of a stop, and a new process that neither
//! stops a server twice nor trips the cloud's budget.
//!
//! - `restart_job_init`: killed while the accepted job is still INIT (sim
//!   `--job-init-ms`: no sub-jobs, servers untouched): the new process must hold
//!   every server the job may carry until its sub-jobs name them. Before the fix it
//!   planned them ACTIVE and sent them again (1000 redundant ids).
//! - `restart_budget`: killed right after a full call spent the window's budget: the
//!   new process must count it from the call journal and wait. Before the budget
//!   was carried over it started with an empty one and its first call was refused
//!   429 `Common.1503`.
//! - `restart_answer_lost`: killed after the cloud accepted a call whose answer
//!   never arrived (accept-then-drop), before any status could name its job: the
//!   new process must neither send its servers again nor overspend the window's
//!   budget that call used.
//! - `restart_unanswered`: killed while a call the cloud accepted is still on its
//!   way back (sim `answer_delay_ms`) and its job is INIT, servers untouched: only
//!   the journal record written before the call tells the new process about it.
//!   Before the journal the new process saw 1000 servers ACTIVE with no task and
//!   sent them again (and its budget knew nothing of them).

use crate::cluster::OPERATOR_NS;
use crate::ensure_eq;
use crate::harness::{
    ACCESS_KEY, Ctx, Policy, SECRET_KEY, condition, start_sim, summary, wait_until,
};
use crate::operator::Operator;
use anyhow::Result;
use ecs_power_operator::sim::{FaultsPatch, RunningSim, SimStats};
use serde_json::Value;
use std::time::Duration;

const CREDS: &str = "otc-credentials";

fn line(s: &SimStats) -> String {
    format!(
        "sim: stop_calls={} accepted={} redundant={} 429s={} (budget {}) by_status={:?}",
        s.stop_calls,
        s.stop_ids_accepted,
        s.stop_ids_redundant,
        s.responses_429,
        s.budget_refusals,
        s.servers_by_status,
    )
}

fn jobs(s: &Value) -> Vec<Value> {
    s["jobs"].as_array().cloned().unwrap_or_default()
}

/// The status of the newest job.
fn newest_job_status(s: &Value) -> Option<String> {
    jobs(s)
        .first()
        .and_then(|j| j["status"].as_str().map(str::to_owned))
}

fn stopped_and_ready(s: &Value, n: i64) -> bool {
    s["phase"] == "Stopped"
        && summary(s, "stopped") == n
        && condition(s, "Ready").is_some_and(|c| c["status"] == "True")
}

/// Applies a policy of every server of `sim`, waits until its status lists a job
/// (the durable record), then kills the operator with SIGKILL. Returns that status
/// and the sim's counters at the kill.
async fn kill_once_recorded(
    ctx: &Ctx,
    sim: &RunningSim,
    operator: &mut Operator,
    policy: &str,
) -> Result<(Value, SimStats)> {
    let ns = &ctx.ns;
    ctx.k
        .apply_ok(&Policy::new(ns, policy, sim, &sim.server_ids()).yaml())
        .await?;
    let recorded = ctx
        .wait_status(
            ns,
            policy,
            Duration::from_secs(20),
            "a job in status.jobs",
            |s| !jobs(s).is_empty(),
        )
        .await?;
    operator.kill9();
    let before = sim.stats().await;
    eprintln!(
        "e2e {}: killed -9 with jobs {} ; {}",
        ctx.ns,
        recorded["jobs"],
        line(&before)
    );
    Ok((recorded, before))
}

/// Killed with the job INIT and naming no server: no id goes out twice.
pub async fn restart_job_init(ctx: Ctx) -> Result<()> {
    let ns = &ctx.ns;
    let sim = start_sim(1000, |c| {
        c.job_init = Duration::from_secs(5);
        c.stop_duration = Duration::from_millis(300);
    })
    .await?;
    ctx.secret(ns, CREDS, ACCESS_KEY, SECRET_KEY).await?;
    let mut first = ctx.operator("operator-1", ns, &[]).await?;
    let (recorded, before) = kill_once_recorded(&ctx, &sim, &mut first, "init").await?;
    ensure_eq!(
        before.stop_ids_accepted,
        1000,
        "ids accepted before the kill"
    );
    ensure_eq!(
        newest_job_status(&recorded),
        Some("INIT".to_owned()),
        "the job at the kill (the window this scenario needs)"
    );
    let _second = ctx.operator("operator-2", ns, &[]).await?;
    let done = ctx
        .wait_status(
            ns,
            "init",
            Duration::from_secs(40),
            "phase Stopped, 1000 stopped, Ready=True",
            |s| stopped_and_ready(s, 1000),
        )
        .await?;
    let after = sim.stats().await;
    let line = line(&after);
    ensure_eq!(after.stop_ids_redundant, 0, "ids sent again ({line})");
    ensure_eq!(after.stop_calls, 1, "stop calls in total ({line})");
    ensure_eq!(
        newest_job_status(&done),
        Some("SUCCESS".to_owned()),
        "the adopted job, followed to its end"
    );
    Ok(())
}

/// Killed right after a full call: the new process waits for the window.
pub async fn restart_budget(ctx: Ctx) -> Result<()> {
    let ns = &ctx.ns;
    // Long enough that the status poll (kubectl, slow on a loaded machine) sees the
    // first job well before the first operator's own second call is due.
    let window = Duration::from_secs(15);
    let sim = start_sim(2000, |c| {
        c.budget_window = window;
        c.stop_duration = Duration::from_millis(300);
    })
    .await?;
    ctx.secret(ns, CREDS, ACCESS_KEY, SECRET_KEY).await?;
    let window_flag = format!("--budget-window-ms={}", window.as_millis());
    let flags = [window_flag.as_str()];
    let mut first = ctx.operator("operator-1", ns, &flags).await?;
    let (_, before) = kill_once_recorded(&ctx, &sim, &mut first, "budget").await?;
    ensure_eq!(
        before.stop_ids_accepted,
        1000,
        "one full call before the kill"
    );
    let _second = ctx.operator("operator-2", ns, &flags).await?;
    ctx.wait_status(
        ns,
        "budget",
        Duration::from_secs(40),
        "phase Stopped, 2000 stopped, Ready=True",
        |s| stopped_and_ready(s, 2000),
    )
    .await?;
    let after = sim.stats().await;
    let line = line(&after);
    ensure_eq!(
        after.responses_429,
        0,
        "429s from the cloud's budget ({line})"
    );
    ensure_eq!(after.stop_calls, 2, "stop calls in total ({line})");
    ensure_eq!(after.stop_ids_redundant, 0, "ids sent again ({line})");
    Ok(())
}

/// A policy of 1500 servers on `sim`, whose fault keeps the answer of its first call
/// (1000 servers) from arriving: [`Self::run`] SIGKILLs the operator once the cloud
/// accepted that call, switches the fault off (`fault_off`) and checks no status
/// lists the job; [`Self::finish`] has a second process do the rest: nothing sent
/// twice, no 429.
struct AcceptedThenKilled {
    sim: RunningSim,
    flags: Vec<String>,
}

impl AcceptedThenKilled {
    async fn run(ctx: &Ctx, policy: &str, sim: RunningSim, fault_off: FaultsPatch) -> Result<Self> {
        let ns = &ctx.ns;
        ctx.secret(ns, CREDS, ACCESS_KEY, SECRET_KEY).await?;
        let flags = vec![format!("--budget-window-ms={}", WINDOW.as_millis())];
        let flag_refs: Vec<&str> = flags.iter().map(String::as_str).collect();
        let mut first = ctx.operator("operator-1", ns, &flag_refs).await?;
        ctx.k
            .apply_ok(&Policy::new(ns, policy, &sim, &sim.server_ids()).yaml())
            .await?;
        wait_until(
            Duration::from_secs(20),
            "the first call accepted",
            || async { Ok(sim.stats().await.stop_ids_accepted > 0) },
        )
        .await?;
        first.kill9();
        sim.control().set_faults(fault_off);
        let before = sim.stats().await;
        let recorded = ctx.status(ns, policy).await?;
        eprintln!(
            "e2e {ns}: killed -9 after the accepted call, jobs in status {} ; {}",
            recorded["jobs"],
            line(&before)
        );
        ensure_eq!(
            before.stop_ids_accepted,
            1000,
            "ids accepted before the kill"
        );
        ensure_eq!(jobs(&recorded).len(), 0, "jobs in status at the kill");
        Ok(Self { sim, flags })
    }

    async fn finish(self, ctx: &Ctx, policy: &str) -> Result<()> {
        let ns = &ctx.ns;
        let flags: Vec<&str> = self.flags.iter().map(String::as_str).collect();
        let _second = ctx.operator("operator-2", ns, &flags).await?;
        ctx.wait_status(
            ns,
            policy,
            Duration::from_secs(60),
            "phase Stopped, 1500 stopped, Ready=True",
            |s| stopped_and_ready(s, 1500),
        )
        .await?;
        let after = self.sim.stats().await;
        let line = line(&after);
        ensure_eq!(after.stop_ids_redundant, 0, "ids sent again ({line})");
        ensure_eq!(
            after.responses_429,
            0,
            "429s from the cloud's budget ({line})"
        );
        ensure_eq!(after.stop_ids_accepted, 1500, "ids accepted ({line})");
        Ok(())
    }
}

/// The budget window of the scenarios that kill after an accepted call: long
/// enough that a second call inside it would be refused.
const WINDOW: Duration = Duration::from_secs(15);

/// Killed after the cloud accepted a full call whose answer never arrived, so no
/// status names its job: no id goes out twice, and no call over the window's budget.
pub async fn restart_answer_lost(ctx: Ctx) -> Result<()> {
    let sim = start_sim(1500, |c| {
        c.budget_window = WINDOW;
        c.stop_duration = Duration::from_millis(300);
        c.accept_then_drop_rate = 1.0;
    })
    .await?;
    let fault_off = FaultsPatch {
        accept_then_drop_rate: Some(0.0),
        ..FaultsPatch::default()
    };
    AcceptedThenKilled::run(&ctx, "lost", sim, fault_off)
        .await?
        .finish(&ctx, "lost")
        .await
}

/// Killed while an accepted call's answer is on its way and its job still INIT:
/// only the journal's record, written before the call, tells of it.
pub async fn restart_unanswered(ctx: Ctx) -> Result<()> {
    let sim = start_sim(1500, |c| {
        c.budget_window = WINDOW;
        c.job_init = Duration::from_secs(3);
        c.stop_duration = Duration::from_millis(300);
    })
    .await?;
    sim.control().set_faults(FaultsPatch {
        answer_delay_ms: Some(30_000),
        ..FaultsPatch::default()
    });
    let fault_off = FaultsPatch {
        answer_delay_ms: Some(0),
        ..FaultsPatch::default()
    };
    let killed = AcceptedThenKilled::run(&ctx, "unanswered", sim, fault_off).await?;
    ensure_eq!(
        unanswered_records(&ctx, &killed.sim).await?,
        1,
        "the call's journal record, without an answer"
    );
    killed.finish(&ctx, "unanswered").await
}

/// Calls of 1000 servers without an answer in the call journal of `sim`'s endpoint.
async fn unanswered_records(ctx: &Ctx, sim: &RunningSim) -> Result<usize> {
    let journals = ctx
        .k
        .get_json(&[
            "configmaps",
            "-n",
            OPERATOR_NS,
            "-l",
            "app.kubernetes.io/component=call-journal",
        ])
        .await?
        .unwrap_or(Value::Null);
    // Other scenarios run beside this one, each with a sim (and journal) of its own.
    let origin = format!("http://{}", sim.addr());
    Ok(journals["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|map| map["metadata"]["annotations"]["ecspower.dev/endpoint"] == origin.as_str())
        .filter_map(|map| map["data"]["calls.json"].as_str())
        .filter_map(|text| serde_json::from_str::<Value>(text).ok())
        .flat_map(|journal| {
            journal["calls"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(_, call)| call.clone())
                .collect::<Vec<_>>()
        })
        .filter(|call| call["answeredAt"].is_null() && call["servers"] == 1000)
        .count())
}
