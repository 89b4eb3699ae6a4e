//! The HTTP client against `ecs-sim` on loopback: pagination, the rules it enforces
//! before sending, throttling, 5xx bursts, a lost POST answer, the action budget,
//! and the happy path through jobs and server status. Counters of the simulator
//! show what actually reached the wire.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ecs_power_operator::ecs::wire::{JobStatus, PowerActionType};
use ecs_power_operator::ecs::{
    ActionBudget, BudgetLimits, Credentials, EcsApi, EcsClientConfig, EcsError, ErrorKind,
    HttpEcsClient, RequestEvent, RequestObserver, RetryPolicy, ServerFilter,
};
use ecs_power_operator::sim::{self, FaultsPatch, RunningSim, SimConfig};
use secrecy::SecretString;
use url::Url;

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

async fn start_sim(config: SimConfig) -> RunningSim {
    sim::start(config, loopback())
        .await
        .expect("ecs-sim starts")
}

/// Records every HTTP attempt the client reports.
#[derive(Debug, Default)]
struct Recorder(Mutex<Vec<RequestEvent>>);

impl RequestObserver for Recorder {
    fn observe(&self, event: &RequestEvent) {
        self.0.lock().unwrap().push(event.clone());
    }
}

impl Recorder {
    fn of(&self, operation: &str) -> Vec<RequestEvent> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.operation == operation)
            .cloned()
            .collect()
    }
}

/// A client for `sim` with fast retries and its own budget (so tests do not share
/// the process-wide one).
fn config_for(sim: &RunningSim, sim_config: &SimConfig) -> EcsClientConfig {
    let mut config = EcsClientConfig::new(
        Url::parse(&sim.base_url()).unwrap(),
        sim_config.project_id.clone(),
        Credentials::aksk(sim_config.access_key.clone(), sim_config.secret_key.clone()),
    );
    config.request_timeout = Duration::from_secs(5);
    config.retry = RetryPolicy {
        max_attempts: 8,
        base_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(500),
        max_retry_after: Duration::from_secs(2),
    };
    config.budget = Arc::new(ActionBudget::new(BudgetLimits::default()));
    config
}

fn observed(mut config: EcsClientConfig) -> (HttpEcsClient, Arc<Recorder>) {
    let recorder = Arc::new(Recorder::default());
    config.observer = recorder.clone();
    (HttpEcsClient::new(config).unwrap(), recorder)
}

#[tokio::test]
async fn lists_2500_servers_over_three_pages() {
    let sim_config = SimConfig {
        servers: 2500,
        ..SimConfig::default()
    };
    let sim = start_sim(sim_config.clone()).await;
    let (client, recorder) = observed(config_for(&sim, &sim_config));

    let servers = client.list_servers(&ServerFilter::default()).await.unwrap();

    assert_eq!(servers.len(), 2500);
    let listed: HashSet<String> = servers.into_iter().map(|s| s.id).collect();
    let expected: HashSet<String> = sim.server_ids().into_iter().collect();
    assert_eq!(listed, expected);
    // offset=1,2,3 with limit=1000; the third page is short and ends the listing.
    assert_eq!(sim.stats().await.requests_with("list_servers", 200), 3);
    assert_eq!(recorder.of("list-servers").len(), 3);

    // A page size that does not divide the total, and a filter.
    let mut config = config_for(&sim, &sim_config);
    config.page_size = 999;
    let client = HttpEcsClient::new(config).unwrap();
    let active = client
        .list_servers(&ServerFilter {
            status: Some("ACTIVE".into()),
            name: None,
        })
        .await
        .unwrap();
    assert_eq!(active.len(), 2500);
    assert!(active.iter().all(|s| s.status.as_deref() == Some("ACTIVE")));
    sim.shutdown().await;
}

#[tokio::test]
async fn oversized_or_duplicate_batches_are_refused_before_sending() {
    let sim_config = SimConfig {
        servers: 1001,
        ..SimConfig::default()
    };
    let sim = start_sim(sim_config.clone()).await;
    let (client, recorder) = observed(config_for(&sim, &sim_config));
    let ids = sim.server_ids();

    let err = client
        .stop_servers(&ids, PowerActionType::Soft)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            EcsError::TooManyServers {
                count: 1001,
                max: 1000
            }
        ),
        "{err}"
    );
    let duplicated = vec![ids[0].clone(), ids[1].clone(), ids[0].clone()];
    let err = client.start_servers(&duplicated).await.unwrap_err();
    assert!(
        matches!(&err, EcsError::DuplicateServer { id } if *id == ids[0]),
        "{err}"
    );
    assert!(matches!(
        client.stop_servers(&[], PowerActionType::Hard).await,
        Err(EcsError::NoServers)
    ));

    let stats = sim.stats().await;
    assert_eq!(stats.stop_calls, 0);
    assert_eq!(stats.start_calls, 0);
    assert!(!stats.requests.contains_key("batch_action"), "{stats:?}");
    assert!(recorder.0.lock().unwrap().is_empty());
    sim.shutdown().await;
}

#[tokio::test]
async fn throttled_reads_back_off_and_succeed() {
    let sim_config = SimConfig {
        servers: 5,
        throttle_rps: Some(2.0),
        ..SimConfig::default()
    };
    let sim = start_sim(sim_config.clone()).await;
    let (client, recorder) = observed(config_for(&sim, &sim_config));

    for id in sim.server_ids() {
        let server = client.get_server(&id).await.unwrap();
        assert_eq!(server.id, id);
    }

    let stats = sim.stats().await;
    assert!(stats.rate_limited > 0, "{stats:?}");
    assert_eq!(stats.requests_with("show_server", 200), 5);
    let events = recorder.of("get-server");
    assert!(
        events
            .iter()
            .any(|e| e.status == Some(429) && e.error == Some(ErrorKind::Throttled))
    );
    // A retried attempt reports the backoff it waited.
    assert!(
        events
            .iter()
            .filter(|e| e.attempt > 1)
            .all(|e| e.waited >= Duration::from_millis(25))
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_burst_of_5xx_is_retried_through() {
    let sim_config = SimConfig {
        servers: 30,
        error_rate: 1.0,
        ..SimConfig::default()
    };
    let sim = start_sim(sim_config.clone()).await;
    let (client, recorder) = observed(config_for(&sim, &sim_config));
    let control = sim.control();
    let heal = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        control.set_faults(FaultsPatch {
            error_rate: Some(0.0),
            ..FaultsPatch::default()
        });
    });

    let servers = client.list_servers(&ServerFilter::default()).await.unwrap();
    heal.await.unwrap();

    assert_eq!(servers.len(), 30);
    let stats = sim.stats().await;
    assert!(stats.injected_errors >= 2, "{stats:?}");
    assert_eq!(
        stats.requests_with("list_servers", 500),
        stats.injected_errors
    );
    let events = recorder.of("list-servers");
    assert!(events.iter().any(|e| e.error == Some(ErrorKind::Transient)));
    assert_eq!(events.last().unwrap().status, Some(200));

    // A burst longer than the retry policy surfaces as a retryable error.
    sim.control().set_faults(FaultsPatch {
        error_rate: Some(1.0),
        ..FaultsPatch::default()
    });
    let mut config = config_for(&sim, &sim_config);
    config.retry.max_attempts = 3;
    let client = HttpEcsClient::new(config).unwrap();
    let err = client.get_server(&sim.server_ids()[0]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transient);
    assert!(err.is_retryable());
    let failure = err.failure().unwrap();
    assert_eq!(failure.status, Some(500));
    assert_eq!(failure.code.as_deref(), Some("Common.0001"));
    assert!(failure.request_id.is_some());
    sim.shutdown().await;
}

#[tokio::test]
async fn a_lost_stop_answer_is_outcome_unknown_and_never_resent() {
    let sim_config = SimConfig {
        servers: 3,
        stop_duration: Duration::from_millis(100),
        ..SimConfig::default()
    };
    let sim = start_sim(sim_config.clone()).await;
    let mut config = config_for(&sim, &sim_config);
    config.request_timeout = Duration::from_millis(300);
    let (client, recorder) = observed(config);
    sim.control().set_faults(FaultsPatch {
        latency_ms: Some(1000),
        ..FaultsPatch::default()
    });

    let err = client
        .stop_servers(&sim.server_ids(), PowerActionType::Soft)
        .await
        .unwrap_err();

    assert_eq!(err.kind(), ErrorKind::OutcomeUnknown, "{err}");
    assert!(!err.is_retryable());
    assert_eq!(err.failure().unwrap().status, None);
    let attempts = recorder.of("os-stop");
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    // Give a slow simulator every chance to show a second call, had one been sent.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let stats = sim.stats().await;
    assert!(stats.stop_calls <= 1, "{stats:?}");
    let batch_requests: u64 = stats
        .requests
        .get("batch_action")
        .map_or(0, |by_status| by_status.values().sum());
    assert!(batch_requests <= 1, "{stats:?}");
    sim.shutdown().await;
}

#[tokio::test]
async fn the_action_budget_spaces_out_stops_with_a_short_window() {
    let window = Duration::from_millis(400);
    let sim_config = SimConfig {
        servers: 15,
        servers_per_window: 10,
        budget_window: window,
        stop_duration: Duration::from_millis(50),
        ..SimConfig::default()
    };
    let sim = start_sim(sim_config.clone()).await;
    let mut config = config_for(&sim, &sim_config);
    config.budget = Arc::new(ActionBudget::new(BudgetLimits {
        servers_per_window: 10,
        window,
    }));
    let (client, recorder) = observed(config);
    let ids = sim.server_ids();

    let started = Instant::now();
    client
        .stop_servers(&ids[..10], PowerActionType::Soft)
        .await
        .unwrap();
    client
        .stop_servers(&ids[10..], PowerActionType::Hard)
        .await
        .unwrap();
    let elapsed = started.elapsed();

    // The second call waited for the first ten to leave the window, so the
    // simulator, counting with the same window, never had to refuse.
    assert!(elapsed >= window - Duration::from_millis(50), "{elapsed:?}");
    let stats = sim.stats().await;
    assert_eq!(stats.stop_calls, 2);
    assert_eq!(stats.budget_refusals, 0, "{stats:?}");
    let stops = recorder.of("os-stop");
    assert_eq!(stops.len(), 2);
    assert_eq!(stops[0].waited, Duration::ZERO);
    assert!(stops[1].waited >= window / 2, "{:?}", stops[1].waited);
    sim.shutdown().await;
}

#[tokio::test]
async fn stop_follow_the_job_then_start_again() {
    let sim_config = SimConfig {
        servers: 3,
        stop_duration: Duration::from_millis(100),
        ..SimConfig::default()
    };
    let sim = start_sim(sim_config.clone()).await;
    let client = Arc::new(HttpEcsClient::new(config_for(&sim, &sim_config)).unwrap());
    let ids = sim.server_ids();

    let job_id = client
        .stop_servers(&ids, PowerActionType::Soft)
        .await
        .unwrap();
    let job = wait_for_job(client.as_ref(), &job_id).await;
    assert_eq!(job.status, JobStatus::Success);
    let sub_jobs = job.entities.sub_jobs.unwrap();
    let stopped: HashSet<String> = sub_jobs
        .iter()
        .filter_map(|s| s.entities.server_id.clone())
        .collect();
    assert_eq!(stopped, ids.iter().cloned().collect());
    for id in &ids {
        let server = client.get_server(id).await.unwrap();
        assert_eq!(server.status.as_deref(), Some("SHUTOFF"));
        assert_eq!(server.power_state, Some(4));
    }

    let job_id = client.start_servers(&ids).await.unwrap();
    assert_eq!(
        wait_for_job(client.as_ref(), &job_id).await.status,
        JobStatus::Success
    );
    let active = client
        .list_servers(&ServerFilter {
            status: Some("ACTIVE".into()),
            name: None,
        })
        .await
        .unwrap();
    assert_eq!(active.len(), 3);
    sim.shutdown().await;
}

async fn wait_for_job(client: &dyn EcsApi, job_id: &str) -> ecs_power_operator::ecs::wire::Job {
    for _ in 0..100 {
        let job = client.get_job(job_id).await.unwrap();
        if job.status.is_terminal() {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("job {job_id} did not finish");
}

#[tokio::test]
async fn unknown_servers_and_bad_keys_are_classified() {
    let sim_config = SimConfig {
        servers: 1,
        ..SimConfig::default()
    };
    let sim = start_sim(sim_config.clone()).await;
    let client = HttpEcsClient::new(config_for(&sim, &sim_config)).unwrap();
    let err = client
        .get_server("00000000-0000-4000-8000-000000000000")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert_eq!(err.failure().unwrap().code.as_deref(), Some("Ecs.0114"));

    let mut config = config_for(&sim, &sim_config);
    config.credentials = Credentials::aksk(
        sim_config.access_key.clone(),
        SecretString::from("not-the-secret-key"),
    );
    let client = HttpEcsClient::new(config).unwrap();
    let err = client
        .list_servers(&ServerFilter::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth, "{err}");
    let failure = err.failure().unwrap();
    assert_eq!(failure.status, Some(401));
    assert_eq!(failure.code.as_deref(), Some("APIGW.0301"));
    assert!(failure.request_id.is_some());
    assert!(!err.to_string().contains("not-the-secret-key"));
    sim.shutdown().await;
}
