//! Schedules (issue 18), with windows a few seconds ahead in UTC (times with seconds):
//! nothing stopped before a window, its servers stopped when it begins, a server
//! started by hand inside it stopped again, nothing done after it; the keep-running
//! override holds stopping off and expires by itself; exception days decide the day;
//! an unknown zone or an unreadable override is Stalled and stops nothing; removing a
//! schedule or deleting a policy starts nothing; a stop job seen finished by a process
//! killed before any status recorded it is still started at the window's end.

use crate::ensure_eq;
use crate::harness::{Ctx, Policy, condition, start_sim, wait_until};
use anyhow::{Result, ensure};
use ecs_power_operator::sim::{FaultsPatch, RunningSim, SimStats, Status};
use jiff::Timestamp;
use serde_json::Value;
use std::time::{Duration, Instant};

/// The operators of the restart scenarios: a budget of 3 servers per 4 s, so
/// starting early takes seconds, and a sync every second.
const THREE_PER_4_S: [&str; 3] = [
    "--budget-servers=3",
    "--budget-window-ms=4000",
    "--drift-interval-ms=1000",
];

fn shutoff(stats: &SimStats) -> u64 {
    stats.servers_by_status.get("SHUTOFF").copied().unwrap_or(0)
}

/// No server stopped or started twice, and `started` started.
fn nothing_twice(stats: &SimStats, started: u64) -> Result<()> {
    ensure_eq!(stats.stop_ids_redundant, 0, "ids stopped twice");
    ensure_eq!(stats.start_ids_redundant, 0, "ids started twice");
    ensure_eq!(stats.start_ids_accepted, started, "ids started");
    Ok(())
}

/// How many servers `status.stoppedByPolicy` records (none when it is absent).
fn recorded_servers(s: &Value) -> usize {
    s["stoppedByPolicy"]["servers"]
        .as_array()
        .map_or(0, Vec::len)
}

fn ready_because(s: &Value, reason: &str) -> bool {
    condition(s, "Ready").is_some_and(|c| c["status"] == "True" && c["reason"] == reason)
}

/// A UTC wall-clock time as a window writes it, and its day.
fn wall(at: Timestamp) -> (String, String) {
    let zoned = at.to_zoned(jiff::tz::TimeZone::UTC);
    (
        zoned.strftime("%H:%M:%S").to_string(),
        zoned.strftime("%a").to_string(),
    )
}

fn utc_date(at: Timestamp) -> String {
    at.to_zoned(jiff::tz::TimeZone::UTC)
        .strftime("%Y-%m-%d")
        .to_string()
}

/// `spec.schedule` (with `extra` lines, indented as its fields) for one UTC window from
/// `from` to `to`, begun on `from`'s day. A `to` before `from` (a window across
/// midnight UTC) ends on the next day.
fn one_window(from: Timestamp, to: Timestamp, extra: &str) -> String {
    let ((from_text, day), (to_text, _)) = (wall(from), wall(to));
    format!(
        "  schedule:\n    timeZone: UTC\n{extra}    windows: [{{days: [{day}], from: \"{from_text}\", to: \"{to_text}\"}}]\n"
    )
}

/// The time left until `at` (wall clock), zero once past.
fn left_until(at: Timestamp) -> Duration {
    Duration::try_from(at.duration_since(Timestamp::now())).unwrap_or_default()
}

/// Sleeps until `at` (wall clock).
async fn sleep_until(at: Timestamp) {
    tokio::time::sleep(left_until(at)).await;
}

/// The policy's YAML with the keep-running-until annotation set to `value`.
fn keep_running_until(policy: &Policy, value: &str) -> String {
    policy.yaml().replacen(
        "metadata:\n",
        &format!("metadata:\n  annotations:\n    ecspower.dev/keep-running-until: \"{value}\"\n"),
        1,
    )
}

fn status_time(s: &Value, field: &str) -> Option<Timestamp> {
    s["schedule"][field].as_str()?.parse().ok()
}

/// A window 8 s ahead and 16 s long: nothing before it, stopped at its start, drift
/// inside stopped again, nothing after it.
pub async fn window(ctx: Ctx) -> Result<()> {
    let ns = &ctx.ns;
    let sim = start_sim(10, |_| {}).await?;
    ctx.credentials().await?;
    // Drift checked every 2 s, so that a hand-started server is seen within the window.
    let _op = ctx
        .operator("operator", ns, &["--drift-interval-ms=2000"])
        .await?;
    let ids = sim.server_ids();
    let from = Timestamp::from_second(Timestamp::now().as_second() + 8)?;
    let to = from + Duration::from_secs(16);
    let mut p = Policy::new(ns, "nightly", &sim, &ids);
    p.extra_spec = one_window(from, to, "");
    ctx.k.apply_ok(&p.yaml()).await?;

    let before = ctx
        .wait_status(
            ns,
            "nightly",
            Duration::from_secs(6),
            "phase Idle, Ready/OutsideWindow, before the window",
            |s| s["phase"] == "Idle" && ready_because(s, "OutsideWindow"),
        )
        .await?;
    ensure_eq!(
        before["schedule"]["windowActive"],
        Value::Bool(false),
        "status.schedule.windowActive before the window"
    );
    ensure_eq!(
        status_time(&before, "nextStop"),
        Some(from),
        "status.schedule.nextStop"
    );
    ensure_eq!(
        status_time(&before, "nextStart"),
        Some(to),
        "status.schedule.nextStart"
    );
    sleep_until(from - Duration::from_millis(700)).await;
    let stats = sim.stats().await;
    ensure_eq!(stats.stop_calls, 0, "stop calls before the window began");

    let t0 = Instant::now();
    wait_until(
        Duration::from_secs(10),
        "all 10 servers SHUTOFF after the window began",
        || async { Ok(shutoff(&sim.stats().await) == 10) },
    )
    .await?;
    let late = Timestamp::now().duration_since(from);
    eprintln!(
        "e2e schedule_window: all stopped {:.1}s after the window began",
        late.as_secs_f64()
    );
    ctx.wait_status(
        ns,
        "nightly",
        Duration::from_secs(5),
        "Stopped inside the window",
        |s| s["phase"] == "Stopped" && s["schedule"]["windowActive"] == true,
    )
    .await?;
    ctx.wait_event(ns, "WindowStarted", Some("Normal"), Duration::from_secs(5))
        .await?;

    // Drift inside the window: stopped again.
    sim.control().set_status(&ids[3], Status::Active)?;
    wait_until(
        Duration::from_secs(8),
        "the server started by hand inside the window to be stopped again",
        || async {
            let s = sim.stats().await;
            Ok(s.stop_calls == 2 && shutoff(&s) == 10)
        },
    )
    .await?;
    ensure!(
        Timestamp::now() < to,
        "the drift was corrected only after the window ended ({:.1}s after its start); the scenario needs a longer window",
        t0.elapsed().as_secs_f64()
    );

    // After the window: Idle, nothing started, and drift left alone.
    sleep_until(to).await;
    ctx.wait_status(
        ns,
        "nightly",
        Duration::from_secs(5),
        "phase Idle after the window",
        |s| {
            s["phase"] == "Idle"
                && s["schedule"]["windowActive"] == false
                && ready_because(s, "OutsideWindow")
        },
    )
    .await?;
    ctx.wait_event(ns, "WindowEnded", Some("Normal"), Duration::from_secs(5))
        .await?;
    let stats = sim.stats().await;
    ensure_eq!(stats.start_calls, 0, "start calls after the window");
    ensure_eq!(shutoff(&stats), 10, "servers SHUTOFF after the window");
    sim.control().set_status(&ids[5], Status::Active)?;
    // Three drift intervals: a policy that still acted would have stopped it.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let stats = sim.stats().await;
    ensure_eq!(stats.stop_calls, 2, "stop calls after the window");
    ensure_eq!(
        shutoff(&stats),
        9,
        "servers SHUTOFF after the window (the one started by hand stays ACTIVE)"
    );
    Ok(())
}

/// The keep-running override holds stopping off until it expires; exception days
/// decide the whole day either way; removing a schedule and deleting policies start
/// nothing.
pub async fn override_and_exceptions(ctx: Ctx) -> Result<()> {
    let ns = &ctx.ns;
    let sim = start_sim(15, |_| {}).await?;
    ctx.credentials().await?;
    let _op = ctx.operator("operator", ns, &[]).await?;
    let ids = sim.server_ids();
    let now = Timestamp::now();
    // Today and tomorrow, so that the scenario holds across a midnight.
    let days = format!(
        "[\"{}\", \"{}\"]",
        utc_date(now),
        utc_date(now + Duration::from_secs(86_400))
    );
    let every_day = "[Mon, Tue, Wed, Thu, Fri, Sat, Sun]";

    // Held off for 8 s, then stopped.
    let until = Timestamp::from_second(now.as_second() + 8)?;
    let held = keep_running_until(
        &Policy::new(ns, "held", &sim, &ids[0..5]),
        &until.to_string(),
    );
    // Every day is a window, but today and tomorrow are exceptions: nothing stopped.
    let mut release = Policy::new(ns, "release-week", &sim, &ids[5..10]);
    release.extra_spec = format!(
        "  schedule:\n    timeZone: UTC\n    windows: [{{days: {every_day}}}]\n    exceptions: [{{dates: {days}, stopped: false}}]\n"
    );
    // No window today or tomorrow (a window far off on a single day would do as
    // well), but a holiday exception: stopped all day.
    let mut holiday = Policy::new(ns, "holiday", &sim, &ids[10..15]);
    let other_day = wall(now + Duration::from_secs(3 * 86_400)).1;
    holiday.extra_spec = format!(
        "  schedule:\n    timeZone: UTC\n    windows: [{{days: [{other_day}], from: \"01:00\", to: \"02:00\"}}]\n    exceptions: [{{dates: {days}, stopped: true}}]\n"
    );
    // What the schema cannot check: an unknown zone, an annotation that is no time.
    // Both on release-week's servers: they must stay ACTIVE.
    let mut atlantis = Policy::new(ns, "atlantis", &sim, &ids[5..10]);
    atlantis.extra_spec =
        "  schedule:\n    timeZone: Europe/Atlantis\n    windows: [{days: [Mon]}]\n".into();
    let tomorrow = keep_running_until(&Policy::new(ns, "tomorrow", &sim, &ids[5..10]), "tomorrow");
    ctx.k.apply_ok(&held).await?;
    ctx.k.apply_ok(&release.yaml()).await?;
    ctx.k.apply_ok(&holiday.yaml()).await?;
    ctx.k.apply_ok(&atlantis.yaml()).await?;
    ctx.k.apply_ok(&tomorrow).await?;

    let s = ctx
        .wait_status(
            ns,
            "held",
            Duration::from_secs(6),
            "phase Idle, Ready/KeepRunning",
            |s| s["phase"] == "Idle" && ready_because(s, "KeepRunning"),
        )
        .await?;
    ensure_eq!(
        status_time(&s, "keepRunningUntil"),
        Some(until),
        "status.schedule.keepRunningUntil"
    );
    ctx.wait_event(ns, "OverrideActive", Some("Normal"), Duration::from_secs(5))
        .await?;
    ctx.wait_status(
        ns,
        "holiday",
        Duration::from_secs(15),
        "Stopped on a holiday exception",
        |s| s["phase"] == "Stopped" && s["schedule"]["windowActive"] == true,
    )
    .await?;
    ctx.wait_status(
        ns,
        "release-week",
        Duration::from_secs(5),
        "Idle on a no-stop exception day",
        |s| s["phase"] == "Idle" && s["schedule"]["windowActive"] == false,
    )
    .await?;
    sleep_until(until - Duration::from_millis(700)).await;
    ensure_eq!(
        shutoff(&sim.stats().await),
        5,
        "servers SHUTOFF before the override expired (the holiday's only)"
    );

    wait_until(
        Duration::from_secs(10),
        "the held servers to be stopped once the override expired",
        || async { Ok(shutoff(&sim.stats().await) == 10) },
    )
    .await?;
    let s = ctx
        .wait_status(
            ns,
            "held",
            Duration::from_secs(5),
            "Stopped after the override",
            |s| s["phase"] == "Stopped",
        )
        .await?;
    // The expired annotation is still there: status.schedule stays, without the override.
    ensure!(
        s["schedule"]["keepRunningUntil"].is_null() && s["schedule"]["windowActive"] == true,
        "status.schedule after the override expired: {}",
        s["schedule"]
    );
    ctx.wait_event(
        ns,
        "OverrideExpired",
        Some("Normal"),
        Duration::from_secs(5),
    )
    .await?;
    for (name, reason, needle) in [
        (
            "atlantis",
            "InvalidSchedule",
            "spec.schedule.timeZone: unknown time zone `Europe/Atlantis`",
        ),
        (
            "tomorrow",
            "InvalidKeepRunningUntil",
            "annotation ecspower.dev/keep-running-until: `tomorrow`",
        ),
    ] {
        let s = ctx
            .wait_status(
                ns,
                name,
                Duration::from_secs(10),
                &format!("Stalled/{reason} naming the field"),
                |s| {
                    condition(s, "Stalled").is_some_and(|c| {
                        c["status"] == "True"
                            && c["reason"] == reason
                            && c["message"].as_str().is_some_and(|m| m.contains(needle))
                    })
                },
            )
            .await?;
        ensure!(
            s["schedule"].is_null(),
            "{name}: status.schedule shown for a schedule that cannot be read: {}",
            s["schedule"]
        );
    }
    ctx.wait_event(
        ns,
        "InvalidSchedule",
        Some("Warning"),
        Duration::from_secs(5),
    )
    .await?;
    ctx.wait_event(
        ns,
        "InvalidKeepRunningUntil",
        Some("Warning"),
        Duration::from_secs(5),
    )
    .await?;
    // The annotation fixed: synced at once (the generation stays as it was, and the
    // problem's retry backoff has grown to 10 s and more by now).
    let an_hour = Timestamp::now() + Duration::from_secs(3600);
    ctx.k
        .run(
            &[
                "annotate",
                "--overwrite",
                "epp",
                "tomorrow",
                "-n",
                ns,
                &format!("ecspower.dev/keep-running-until={an_hour}"),
            ],
            None,
        )
        .await?
        .check()?;
    ctx.wait_status(
        ns,
        "tomorrow",
        Duration::from_secs(3),
        "Ready/KeepRunning within 3 s of fixing the annotation",
        |s| s["phase"] == "Idle" && ready_because(s, "KeepRunning"),
    )
    .await?;

    // The holiday's schedule removed: always stopped now, nothing started; then every
    // policy deleted: nothing started either.
    let mut always = holiday.clone();
    always.extra_spec.clear();
    ctx.k.apply_ok(&always.yaml()).await?;
    ctx.wait_status(
        ns,
        "holiday",
        Duration::from_secs(10),
        "Stopped without its schedule",
        |s| s["phase"] == "Stopped" && s["schedule"].is_null(),
    )
    .await?;
    for name in ["held", "release-week", "holiday", "atlantis", "tomorrow"] {
        ctx.k
            .run(&["delete", "epp", name, "-n", ns, "--wait=true"], None)
            .await?
            .check()?;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let stats = sim.stats().await;
    ensure_eq!(stats.start_calls, 0, "start calls");
    ensure_eq!(shutoff(&stats), 10, "servers SHUTOFF at the end");
    ensure_eq!(stats.stop_calls, 2, "stop calls (holiday, then held)");
    Ok(())
}

/// `afterWindow: Start`, a window 7 s ahead and 10 s long: a server someone else
/// stopped before it stays SHUTOFF; the 9 the policy stopped are recorded in
/// `status.stoppedByPolicy`, started when it ends (a Start job in `status.jobs`,
/// `StartSucceeded`), and nothing is started twice.
pub async fn window_start(ctx: Ctx) -> Result<()> {
    let ns = &ctx.ns;
    let sim = start_sim(10, |_| {}).await?;
    ctx.credentials().await?;
    let _op = ctx
        .operator("operator", ns, &["--drift-interval-ms=2000"])
        .await?;
    let ids = sim.server_ids();
    // Stopped by someone else before the window: never the policy's to start.
    sim.control().set_status(&ids[0], Status::Shutoff)?;
    let from = Timestamp::from_second(Timestamp::now().as_second() + 7)?;
    let to = from + Duration::from_secs(10);
    let mut p = Policy::new(ns, "workday", &sim, &ids);
    p.extra_spec = one_window(from, to, "    afterWindow: Start\n");
    ctx.k.apply_ok(&p.yaml()).await?;

    let inside = ctx
        .wait_status(
            ns,
            "workday",
            Duration::from_secs(15),
            "Stopped inside the window, with the 9 servers it stopped recorded",
            |s| s["phase"] == "Stopped" && recorded_servers(s) == 9,
        )
        .await?;
    ensure!(
        Timestamp::now() < to,
        "the stops were recorded only after the window ended; the scenario needs a longer window"
    );
    let recorded: Vec<&str> = inside["stoppedByPolicy"]["servers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    ensure!(
        !recorded.contains(&ids[0].as_str()),
        "status.stoppedByPolicy names {}, which was SHUTOFF before the window: {recorded:?}",
        ids[0]
    );
    let stats = sim.stats().await;
    ensure_eq!(stats.start_calls, 0, "start calls inside the window");
    ensure_eq!(shutoff(&stats), 10, "servers SHUTOFF inside the window");

    sleep_until(to).await;
    wait_until(
        Duration::from_secs(10),
        "the 9 servers the policy stopped started after the window",
        || async { Ok(shutoff(&sim.stats().await) == 1) },
    )
    .await?;
    eprintln!(
        "e2e schedule_window_start: 9 started {:.1}s after the window ended",
        Timestamp::now().duration_since(to).as_secs_f64()
    );
    let after = ctx
        .wait_status(
            ns,
            "workday",
            Duration::from_secs(10),
            "a finished Start job in status.jobs and an empty stoppedByPolicy",
            |s| {
                s["phase"] == "Idle"
                    && recorded_servers(s) == 0
                    && s["jobs"].as_array().is_some_and(|jobs| {
                        jobs.iter()
                            .any(|j| j["action"] == "Start" && j["status"] == "SUCCESS")
                    })
            },
        )
        .await?;
    let jobs = after["jobs"].as_array().cloned().unwrap_or_default();
    let started: u64 = jobs
        .iter()
        .filter(|j| j["action"] == "Start")
        .filter_map(|j| j["servers"].as_u64())
        .sum();
    ensure_eq!(started, 9, "servers named by the Start jobs in status.jobs");
    ensure!(
        jobs.iter().any(|j| j["action"] == "Stop"),
        "status.jobs keeps the stop job beside the start job: {jobs:?}"
    );
    ctx.wait_event(ns, "StartSucceeded", Some("Normal"), Duration::from_secs(5))
        .await?;
    // Three drift intervals: nothing started twice, the other one left SHUTOFF.
    let calls = sim.stats().await.start_calls;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let stats = sim.stats().await;
    ensure_eq!(
        stats.start_calls,
        calls,
        "start calls after the servers ran"
    );
    ensure_eq!(shutoff(&stats), 1, "servers SHUTOFF after the window");
    Ok(())
}

/// Applies the policy `early` for every server of `sim`: one UTC window that begins
/// in 6 s and lasts `length`, `afterWindow: Start`, `startLeadTime: Auto`; waits
/// until all of them are SHUTOFF, `lead` before the window's end at the latest (when
/// starting is to begin). Returns the window's end.
async fn start_early(
    ctx: &Ctx,
    sim: &RunningSim,
    length: Duration,
    lead: Duration,
) -> Result<Timestamp> {
    let from = Timestamp::from_second(Timestamp::now().as_second() + 6)?;
    let to = from + length;
    let mut p = Policy::new(&ctx.ns, "early", sim, &sim.server_ids());
    p.extra_spec = one_window(
        from,
        to,
        "    afterWindow: Start\n    startLeadTime: Auto\n",
    );
    ctx.k.apply_ok(&p.yaml()).await?;
    let servers = sim.server_ids().len() as u64;
    wait_until(
        left_until(to - lead),
        &format!("all {servers} servers SHUTOFF inside the window"),
        || async { Ok(shutoff(&sim.stats().await) == servers) },
    )
    .await?;
    Ok(to)
}

/// `startLeadTime: Auto` under a budget of 3 servers per 2 s: the 9 servers the
/// policy stopped take 3 start calls, 2 s apart, so the first goes about 4 s before
/// the window ends and the last by its end; nothing is stopped again meanwhile.
pub async fn start_lead(ctx: Ctx) -> Result<()> {
    let ns = &ctx.ns;
    let sim = start_sim(9, |_| {}).await?;
    ctx.credentials().await?;
    let _op = ctx
        .operator(
            "operator",
            ns,
            &[
                "--budget-servers=3",
                "--budget-window-ms=2000",
                "--drift-interval-ms=2000",
            ],
        )
        .await?;
    let to = start_early(&ctx, &sim, Duration::from_secs(14), Duration::from_secs(4)).await?;
    wait_until(
        left_until(to - Duration::from_secs(1)),
        "the first start call before the window's end",
        || async { Ok(sim.stats().await.start_calls > 0) },
    )
    .await
    .map_err(|e| e.context("no start call a second before the window's end"))?;
    let first = Timestamp::now();
    let early = to.duration_since(first).as_secs_f64();
    eprintln!(
        "e2e schedule_start_lead: first start call {early:.1}s before the window's end (planned 4.0s)"
    );
    ensure!(
        early > 2.0 && early < 6.5,
        "the first start call went {early:.1}s before the window's end; 3 calls 2 s apart need 4 s"
    );
    wait_until(
        left_until(to + Duration::from_secs(3)),
        "all 9 servers running by the window's end plus a job's time",
        || async { Ok(shutoff(&sim.stats().await) == 0) },
    )
    .await?;
    let stats = sim.stats().await;
    ensure_eq!(stats.start_calls, 3, "start calls (3 servers each)");
    ensure_eq!(
        stats.stop_calls,
        3,
        "stop calls: nothing stopped again while starting"
    );
    // Past the window: nothing more.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let stats = sim.stats().await;
    ensure_eq!(
        (stats.start_calls, stats.stop_calls),
        (3, 3),
        "calls after the window"
    );
    ensure_eq!(shutoff(&stats), 0, "servers SHUTOFF after the window");
    Ok(())
}

/// The operator SIGKILLed while it starts early (`startLeadTime: Auto`, 9 servers,
/// 3 per 4 s, so starting begins 8 s before the end), once its record holds only
/// the 6 servers still to start: the next process goes on, within the budget the
/// first one spent. Nothing is stopped or started twice; all run by the window's
/// end plus the restart and a job's time. (Whether the next process reads that
/// starting began from `status.stoppedByPolicy.startingUntil` does not show here:
/// the starts fill the budget up to the end, so a stop it wanted could not go out
/// before the window ends; [`restart_keeps_starting`] shows it.)
pub async fn killed_while_starting(ctx: Ctx) -> Result<()> {
    let ns = &ctx.ns;
    let sim = start_sim(9, |_| {}).await?;
    ctx.credentials().await?;
    let mut first = ctx.operator("first", ns, &THREE_PER_4_S).await?;
    let to = start_early(&ctx, &sim, Duration::from_secs(24), Duration::from_secs(8)).await?;
    ctx.wait_status(
        ns,
        "early",
        left_until(to),
        "starting early, latched in status, the first 3 started and out of the record",
        |s| s["stoppedByPolicy"]["startingUntil"].is_string() && recorded_servers(s) == 6,
    )
    .await?;
    first.kill9();
    let killed = Timestamp::now();
    ensure!(
        killed + Duration::from_secs(2) < to,
        "killed only {:.1}s before the window's end: the next process would begin after it",
        to.duration_since(killed).as_secs_f64()
    );
    let _second = ctx.operator("second", ns, &THREE_PER_4_S).await?;
    wait_until(
        left_until(to + Duration::from_secs(6)),
        "all 9 servers running after the window's end",
        || async { Ok(shutoff(&sim.stats().await) == 0) },
    )
    .await?;
    // A few drift intervals past the end: nothing stopped again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let stats = sim.stats().await;
    ensure_eq!(
        stats.stop_calls,
        3,
        "stop calls: nothing stopped again across the restart"
    );
    ensure_eq!(shutoff(&stats), 0, "servers SHUTOFF after the window");
    ensure_eq!(
        stats.responses_429,
        0,
        "429s: the budget the first process spent"
    );
    nothing_twice(&stats, 9)
}

/// Starting that began early goes on across a restart even when the next process
/// would plan no lead: policy `early` (3 servers) begins starting long before its
/// window's end because 30 stops of policy `other` (10 calls at 3 per 4 s) are queued
/// ahead of its start call; the operator is SIGKILLed before that call goes, `other`
/// is suspended while it is down, and the next process, with nothing queued ahead,
/// reads from `status.stoppedByPolicy.startingUntil` that starting began: the start
/// goes out at once, not at the window's end (as a lead of zero would have it), and
/// nothing is stopped or started twice.
pub async fn restart_keeps_starting(ctx: Ctx) -> Result<()> {
    let ns = &ctx.ns;
    let sim = start_sim(33, |_| {}).await?;
    ctx.credentials().await?;
    let mut first = ctx.operator("first", ns, &THREE_PER_4_S).await?;
    let ids = sim.server_ids();
    let from = Timestamp::from_second(Timestamp::now().as_second() + 6)?;
    let to = from + Duration::from_secs(36);
    let mut early = Policy::new(ns, "early", &sim, &ids[..3]);
    early.extra_spec = one_window(
        from,
        to,
        "    afterWindow: Start\n    startLeadTime: Auto\n",
    );
    ctx.k.apply_ok(&early.yaml()).await?;
    ctx.wait_status(
        ns,
        "early",
        left_until(from + Duration::from_secs(8)),
        "the 3 servers early stopped at the window's start recorded",
        |s| recorded_servers(s) == 3,
    )
    .await?;
    let mut other = Policy::new(ns, "other", &sim, &ids[3..]);
    ctx.k.apply_ok(&other.yaml()).await?;
    ctx.wait_status(
        ns,
        "early",
        left_until(to - Duration::from_secs(24)),
        "early starting early behind the stops queued ahead of it, latched in status",
        |s| s["stoppedByPolicy"]["startingUntil"].is_string(),
    )
    .await?;
    first.kill9();
    let stats = sim.stats().await;
    ensure_eq!(
        stats.start_calls,
        0,
        "start calls before the kill (the stops queued ahead go first)"
    );
    ensure!(
        stats.stop_calls < 11,
        "all of other's stops went before the kill ({} calls): nothing was queued ahead",
        stats.stop_calls
    );
    other.suspend = true;
    ctx.k.apply_ok(&other.yaml()).await?;
    let _second = ctx.operator("second", ns, &THREE_PER_4_S).await?;
    wait_until(
        left_until(to - Duration::from_secs(10)),
        "early's 3 servers started 10 s before the window's end",
        || async { Ok(sim.stats().await.start_ids_accepted == 3) },
    )
    .await
    .map_err(|e| {
        e.context("the next process did not go on starting early: with nothing queued ahead, only the status says starting began")
    })?;
    eprintln!(
        "e2e schedule_restart_keeps_starting: started {:.1}s before the window's end",
        to.duration_since(Timestamp::now()).as_secs_f64()
    );
    let stops = sim.stats().await.stop_calls;
    sleep_until(to + Duration::from_secs(3)).await;
    let stats = sim.stats().await;
    ensure_eq!(
        stats.stop_calls,
        stops,
        "stop calls after the restart (other is suspended, early's servers run)"
    );
    ensure_eq!(stats.start_calls, 1, "start calls");
    ensure_eq!(stats.responses_429, 0, "429s");
    nothing_twice(&stats, 3)
}

/// `afterWindow: Start` when the stop call's answer never came (the connection
/// reset after the cloud took it) and the listing that decides its outcome comes
/// only after the window's end: the 10 servers the call stopped count as the
/// policy's once a listing shows them SHUTOFF, and are started seconds later, not a
/// drift interval (60 s here) later; nothing is stopped or started twice.
pub async fn unknown_outcome_start(ctx: Ctx) -> Result<()> {
    const SETTLE: Duration = Duration::from_secs(5);
    let ns = &ctx.ns;
    let sim = start_sim(10, |_| {}).await?;
    ctx.credentials().await?;
    let settle = format!("--unknown-outcome-settle-ms={}", SETTLE.as_millis());
    let _op = ctx
        .operator("operator", ns, &[&settle, "--drift-interval-ms=60000"])
        .await?;
    sim.control().set_faults(FaultsPatch {
        accept_then_drop_rate: Some(1.0),
        ..FaultsPatch::default()
    });
    let ids = sim.server_ids();
    let from = Timestamp::from_second(Timestamp::now().as_second() + 6)?;
    let to = from + Duration::from_secs(3);
    let mut p = Policy::new(ns, "unanswered", &sim, &ids);
    p.extra_spec = one_window(from, to, "    afterWindow: Start\n");
    ctx.k.apply_ok(&p.yaml()).await?;

    wait_until(
        left_until(to),
        "the stop call inside the window",
        || async { Ok(sim.stats().await.stop_calls > 0) },
    )
    .await?;
    sim.control().set_faults(FaultsPatch {
        accept_then_drop_rate: Some(0.0),
        ..FaultsPatch::default()
    });
    let sent = Timestamp::now();
    ensure!(
        sent + SETTLE > to,
        "the stop call went {:.1}s before the window's end: its outcome was decided inside the window, which this scenario is not about",
        to.duration_since(sent).as_secs_f64()
    );
    wait_until(
        left_until(to + Duration::from_secs(20)),
        "all 10 servers the unanswered call stopped running again after the window",
        || async {
            let stats = sim.stats().await;
            Ok(stats.start_calls > 0 && shutoff(&stats) == 0)
        },
    )
    .await?;
    eprintln!(
        "e2e schedule_unknown_outcome_start: all running {:.1}s after the window ended (the call's outcome settled {:.1}s after it)",
        Timestamp::now().duration_since(to).as_secs_f64(),
        (sent + SETTLE).duration_since(to).as_secs_f64()
    );
    let stats = sim.stats().await;
    ensure_eq!(stats.accepted_then_dropped, 1, "stop calls never answered");
    ensure_eq!(stats.stop_calls, 1, "stop calls: the unanswered one did it");
    nothing_twice(&stats, 10)?;
    Ok(())
}

/// A ValidatingAdmissionPolicy (and its binding, both named `name`) that refuses
/// every write of a policy's status in namespace `ns`.
fn refuse_status_writes(name: &str, ns: &str) -> String {
    format!(
        r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  name: {name}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
      - apiGroups: ["ecspower.dev"]
        apiVersions: ["*"]
        operations: ["UPDATE"]
        resources: ["ecspowerpolicies/status"]
  validations:
    - expression: "false"
      message: status writes refused by the e2e scenario
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: {name}
spec:
  policyName: {name}
  validationActions: [Deny]
  matchResources:
    namespaceSelector:
      matchLabels:
        kubernetes.io/metadata.name: {ns}
"#
    )
}

/// `afterWindow: Start` when the process that saw the stop job finish is killed -9
/// before any status recorded it (the API server refuses the policies' status writes
/// meanwhile) and after another call rewrote the journal: the next process finds the
/// finished job in the call journal, records the servers it stopped and starts them
/// at the window's end; nothing twice, nothing of the other policy's.
pub async fn killed_before_record(ctx: Ctx) -> Result<()> {
    let ns = &ctx.ns;
    let sim = start_sim(11, |_| {}).await?;
    ctx.credentials().await?;
    let mut first = ctx.operator("first", ns, &[]).await?;
    let ids = sim.server_ids();
    let from = Timestamp::from_second(Timestamp::now().as_second() + 10)?;
    let to = from + Duration::from_secs(20);
    let mut p = Policy::new(ns, "unrecorded", &sim, &ids[..10]);
    p.extra_spec = one_window(from, to, "    afterWindow: Start\n");
    ctx.k.apply_ok(&p.yaml()).await?;
    ctx.wait_status(
        ns,
        "unrecorded",
        Duration::from_secs(10),
        "a first status, before the window",
        |s| s["phase"].is_string(),
    )
    .await?;

    let refusal = format!("refuse-status-{ns}");
    ctx.k.apply_ok(&refuse_status_writes(&refusal, ns)).await?;
    let probe = [
        "patch",
        "ecspowerpolicy",
        "unrecorded",
        "-n",
        ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"phase":"Idle"}}"#,
        "--dry-run=server",
    ];
    wait_until(
        left_until(from),
        "the API server refusing status writes before the window begins",
        || async { Ok(!ctx.k.run(&probe, None).await?.ok()) },
    )
    .await?;

    wait_until(
        left_until(to),
        "the stop job finished inside the window",
        || async {
            Ok(sim
                .control()
                .jobs()
                .iter()
                .any(|job| job.job_type == "batchStopServers" && job.status.is_terminal()))
        },
    )
    .await?;
    // Four job polls: the first process has seen the job end.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let metrics = first.metrics().await?;
    ensure_eq!(
        crate::operator::metric_sum(&metrics, "ecs_power_operator_jobs_in_flight"),
        Some(0.0),
        "jobs the first process still follows"
    );
    let unrecorded = ctx.status(ns, "unrecorded").await?;
    ensure!(
        unrecorded["jobs"]
            .as_array()
            .is_none_or(|jobs| jobs.is_empty())
            && recorded_servers(&unrecorded) == 0,
        "a status was written despite the refusal: {unrecorded}"
    );
    // Another call, whose journal write is the first since the job's end.
    ctx.k
        .apply_ok(&Policy::new(ns, "later", &sim, &ids[10..]).yaml())
        .await?;
    wait_until(left_until(to), "a second stop call, done", || async {
        let stats = sim.stats().await;
        Ok(stats.stop_calls == 2 && shutoff(&stats) == 11)
    })
    .await?;
    first.kill9();
    ctx.k
        .run(
            &["delete", "validatingadmissionpolicybinding", &refusal],
            None,
        )
        .await?
        .check()?;
    wait_until(
        left_until(to),
        "the API server taking status writes again",
        || async { Ok(ctx.k.run(&probe, None).await?.ok()) },
    )
    .await?;
    ensure_eq!(
        shutoff(&sim.stats().await),
        11,
        "servers SHUTOFF at the kill"
    );

    let _second = ctx.operator("second", ns, &[]).await?;
    let inside = ctx
        .wait_status(
            ns,
            "unrecorded",
            left_until(to),
            "the 10 servers the first process stopped recorded by the second",
            |s| recorded_servers(s) == 10,
        )
        .await?;
    ensure!(
        inside["jobs"]
            .as_array()
            .is_some_and(|jobs| jobs.iter().any(|j| j["action"] == "Stop")),
        "the stop job recorded in status.jobs: {inside}"
    );
    sleep_until(to).await;
    wait_until(
        Duration::from_secs(10),
        "the 10 servers started after the window, the other policy's left stopped",
        || async { Ok(shutoff(&sim.stats().await) == 1) },
    )
    .await?;
    let stats = sim.stats().await;
    ensure_eq!(stats.stop_calls, 2, "stop calls");
    nothing_twice(&stats, 10)?;
    ctx.k
        .run(&["delete", "validatingadmissionpolicy", &refusal], None)
        .await?
        .check()?;
    Ok(())
}
