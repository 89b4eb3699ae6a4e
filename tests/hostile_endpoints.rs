//! The HTTP client against hostile endpoints on loopback (`hostile_support`): what
//! each one costs is bounded — bytes read, requests made, time taken — and it ends
//! in an error that names what happened (issue 14).

mod hostile_support;

use std::time::{Duration, Instant};

use ecs_power_operator::ecs::wire::PowerActionType;
use ecs_power_operator::ecs::{
    Credentials, EcsApi, EcsClientConfig, EcsError, ErrorKind, HttpEcsClient, RetryPolicy,
    ServerFilter,
};
use hostile_support::{ENDLESS_COUNT, FLOOD_BYTES, HostileEndpoint, Hostility};
use secrecy::SecretString;
use url::Url;

fn client(endpoint: &HostileEndpoint, timeout: Duration, deadline: Duration) -> HttpEcsClient {
    let mut config = EcsClientConfig::new(
        Url::parse(&endpoint.url()).unwrap(),
        "0123456789abcdef0123456789abcdef",
        Credentials::aksk("AK", SecretString::from("SK")),
    );
    config.request_timeout = timeout;
    config.request_deadline = deadline;
    config.retry = RetryPolicy {
        max_attempts: 5,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        max_retry_after: Duration::from_secs(1),
    };
    HttpEcsClient::new(config).unwrap()
}

#[tokio::test]
async fn a_gigabyte_body_is_cut_off_at_the_page_limit() {
    let flood = HostileEndpoint::start(Hostility::Flood).await;
    let api = client(&flood, Duration::from_secs(30), Duration::from_secs(60));
    let started = Instant::now();
    let error = api
        .list_servers(&ServerFilter::default())
        .await
        .unwrap_err();
    assert!(matches!(error, EcsError::TooLarge { .. }), "{error}");
    assert!(error.to_string().contains("4096 KiB"), "{error}");
    assert!(
        !error.is_retryable(),
        "the same request gets the same flood"
    );
    assert_eq!(flood.requests(), 1);
    // What the client read and the socket buffers held, not the gigabyte.
    let sent = flood.bytes_sent();
    assert!(sent < 64 << 20, "{sent} of {FLOOD_BYTES} bytes sent");
    assert!(started.elapsed() < Duration::from_secs(5));

    let error = api.get_job("job-1").await.unwrap_err();
    assert!(matches!(error, EcsError::TooLarge { .. }), "{error}");
}

#[tokio::test]
async fn a_flooded_answer_to_a_stop_call_leaves_its_outcome_unknown() {
    let flood = HostileEndpoint::start(Hostility::Flood).await;
    let api = client(&flood, Duration::from_secs(30), Duration::from_secs(60));
    let error = api
        .stop_servers(
            &["00000000-0000-4000-8000-000000000001".into()],
            PowerActionType::Soft,
        )
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::OutcomeUnknown, "{error}");
    assert_eq!(flood.requests(), 1, "a stop call is never sent twice");
}

#[tokio::test]
async fn endless_full_pages_end_after_the_first() {
    let endless = HostileEndpoint::start(Hostility::EndlessPages).await;
    let api = client(&endless, Duration::from_secs(30), Duration::from_secs(60));
    let error = api
        .list_servers(&ServerFilter::default())
        .await
        .unwrap_err();
    assert!(matches!(error, EcsError::TooLarge { .. }), "{error}");
    assert!(
        error.to_string().contains(&ENDLESS_COUNT.to_string()),
        "the error names the count: {error}"
    );
    assert_eq!(endless.requests(), 1);
}

#[tokio::test]
async fn a_tarpit_holds_a_read_for_its_deadline_not_for_every_attempt() {
    let tarpit = HostileEndpoint::start(Hostility::Tarpit).await;
    // 5 attempts of 1 s would take 5 s; the deadline cuts it at 2 s.
    let api = client(&tarpit, Duration::from_secs(1), Duration::from_secs(2));
    let started = Instant::now();
    let error = api
        .list_servers(&ServerFilter::default())
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_millis(2500),
        "{took:?}"
    );
    assert!(matches!(error, EcsError::Unreachable { .. }), "{error}");
    assert!(error.to_string().contains("deadline"), "{error}");
    assert_eq!(
        tarpit.requests(),
        2,
        "a second attempt after the first timed out"
    );
}
