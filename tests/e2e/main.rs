//! End-to-end suite: a real kube-apiserver + etcd (hack/cplane), the real kubectl,
//! `deploy/` applied as a user would, the operator binary running as its
//! ServiceAccount, and ecs-sim in-process.
//!
//! `cargo test --test e2e` runs everything; `cargo test --test e2e -- stop_2500` one
//! scenario. The control plane is started once, on first use, and stopped at the end
//! (also on a panic or Ctrl-C). If it cannot start, every scenario fails with the
//! reason. Scratch files (control plane, operator logs) live in target/e2e/run-*/ and
//! are kept when something failed (E2E_KEEP=1 keeps them always).
//!
//! Environment: E2E_DIR (scratch base), E2E_KEEP, E2E_OPERATOR_LOG (RUST_LOG of the
//! operators, default info). Default parallelism: 3 scenarios at a time.

mod cluster;
mod container;
mod harness;
mod kubectl;
mod operator;
mod scenarios;
mod tools;

use harness::Ctx;
use libtest_mimic::{Arguments, Failed, Trial};
use std::future::Future;
use std::time::{Duration, Instant};

/// Upper bound of one scenario, waits included.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(240);

fn scenario<F, Fut>(name: &'static str, f: F) -> Trial
where
    F: FnOnce(Ctx) -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>>,
{
    Trial::test(name, move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| Failed::from(format!("tokio runtime: {e}")))?;
        rt.block_on(async move {
            let t0 = Instant::now();
            let ctx = Ctx::new(name)
                .await
                .map_err(|e| Failed::from(format!("{e:#}")))?;
            let result = tokio::time::timeout(SCENARIO_TIMEOUT, f(ctx.clone())).await;
            let took = t0.elapsed().as_secs_f64();
            let error = match result {
                Ok(Ok(())) => {
                    eprintln!("e2e: {name} passed in {took:.1}s");
                    return Ok(());
                }
                Ok(Err(e)) => format!("{e:#}"),
                Err(_) => format!("scenario timed out after {SCENARIO_TIMEOUT:?}"),
            };
            eprintln!("e2e: {name} FAILED after {took:.1}s");
            Err(Failed::from(format!(
                "{error}\n===== diagnostics ({}) =====\n{}",
                ctx.dir.display(),
                ctx.diagnostics().await
            )))
        })
    })
}

fn trials() -> Vec<Trial> {
    use scenarios::*;
    vec![
        scenario("validation", validation::run),
        scenario("hostile_tenant", hostile::hostile_tenant),
        scenario("tenants", tenants::run),
        scenario("allowed_endpoints", hostile::allowed_endpoints),
        scenario("tarpits_take_turns", hostile::tarpits_take_turns),
        scenario("large_policies", large::run),
        scenario("many_secrets", many_secrets::run),
        scenario("rbac", rbac::run),
        scenario("stop_2500", stopping::stop_2500),
        scenario("restart_mid_job", stopping::restart_mid_job),
        scenario("throttling", stopping::throttling),
        scenario("drift", stopping::drift),
        scenario("dry_run", stopping::dry_run),
        scenario("suspend", stopping::suspend),
        scenario("coalescing", stopping::coalescing),
        scenario("first_round", stopping::first_round),
        scenario("fairness", stopping::fairness),
        scenario("small_budget", stopping::small_budget),
        scenario("restart_job_init", restarts::restart_job_init),
        scenario("restart_budget", restarts::restart_budget),
        scenario("restart_answer_lost", restarts::restart_answer_lost),
        scenario("restart_unanswered", restarts::restart_unanswered),
        scenario("queue_eta", queue::eta),
        scenario("withdrawn", stopping::withdrawn),
        scenario("metrics_health", stopping::metrics_health),
        scenario("selectors", selectors::run),
        scenario("schedule_window", scenarios::schedule::window),
        scenario("schedule_window_start", scenarios::schedule::window_start),
        scenario("schedule_start_lead", scenarios::schedule::start_lead),
        scenario(
            "schedule_killed_while_starting",
            scenarios::schedule::killed_while_starting,
        ),
        scenario(
            "schedule_restart_keeps_starting",
            scenarios::schedule::restart_keeps_starting,
        ),
        scenario(
            "schedule_unknown_outcome_start",
            scenarios::schedule::unknown_outcome_start,
        ),
        scenario(
            "schedule_killed_before_record",
            scenarios::schedule::killed_before_record,
        ),
        scenario(
            "schedule_override_exceptions",
            scenarios::schedule::override_and_exceptions,
        ),
        scenario("missing_secret", problems::missing_secret),
        scenario("journal_unavailable", problems::journal_unavailable),
        scenario("bad_credentials", problems::bad_credentials),
        scenario("two_namespaces", problems::two_namespaces),
        scenario("leader_election", scenarios::leader::run),
        scenario("gitops", gitops::run),
        scenario("image", scenarios::image::run),
        scenario("helm", scenarios::helm::run),
        scenario("monitoring", scenarios::monitoring::run),
        scenario("safety_withdrawn_in_flight", safety::withdrawn_in_flight),
        scenario(
            "safety_one_action_per_server",
            safety::one_action_per_server,
        ),
        scenario("safety_unknown_outcome", safety::unknown_outcome),
        scenario("safety_lost_job", safety::lost_job),
        scenario("safety_locked_servers", safety::locked_servers),
        scenario("safety_many_unfinished_jobs", safety::many_unfinished_jobs),
        scenario("safety_sync_failures", safety::sync_failures),
    ]
}

/// Ctrl-C / SIGTERM of the suite: stop the operators and the control plane, then exit.
fn install_signal_handler() {
    std::thread::spawn(|| {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut int), Ok(mut term)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) else {
                return;
            };
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            eprintln!("e2e: interrupted; stopping operators and the control plane");
            operator::kill_all_live();
            container::remove_all_live();
            cluster::teardown();
            std::process::exit(130);
        });
    });
}

fn main() {
    let mut args = Arguments::from_args();
    if args.test_threads.is_none() {
        args.test_threads = Some(
            std::env::var("E2E_THREADS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(3),
        );
    }
    install_signal_handler();
    let t0 = Instant::now();
    let conclusion = std::panic::catch_unwind(|| libtest_mimic::run(&args, trials()));
    operator::kill_all_live();
    container::remove_all_live();
    cluster::teardown();
    let failed = conclusion.as_ref().map(|c| c.has_failed()).unwrap_or(true);
    if let Some(dir) = cluster::started_dir() {
        if failed || std::env::var_os("E2E_KEEP").is_some() {
            eprintln!("e2e: scratch files kept in {}", dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&dir);
        }
        eprintln!("e2e: suite took {:.1}s", t0.elapsed().as_secs_f64());
    }
    match conclusion {
        Ok(c) => c.exit(),
        Err(_) => std::process::exit(101),
    }
}
