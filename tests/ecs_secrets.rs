//! Secret keys, passwords and tokens never show in Debug or Display output of the
//! credential, configuration, client and error types, including errors raised on
//! the way to the cloud.

use std::time::Duration;

use ecs_power_operator::ecs::sign::Signer;
use ecs_power_operator::ecs::{
    Credentials, EcsApi, EcsClientConfig, EcsError, HttpEcsClient, PasswordCredentials,
    RetryPolicy, ServerFilter, wire::PowerActionType,
};
use secrecy::SecretString;
use url::Url;

const SECRET_KEY: &str = "SK-never-show-me-0123456789";
const PASSWORD: &str = "pw-never-show-me-9876543210";
const PROJECT: &str = "0123456789abcdef0123456789abcdef";

fn assert_hidden(what: &str, text: &str) {
    for secret in [SECRET_KEY, PASSWORD] {
        assert!(!text.contains(secret), "{what} shows a secret: {text}");
    }
}

fn check_debug<T: std::fmt::Debug>(what: &str, value: &T) {
    assert_hidden(what, &format!("{value:?}"));
    assert_hidden(what, &format!("{value:#?}"));
}

fn check_error(what: &str, error: &EcsError) {
    check_debug(what, error);
    assert_hidden(what, &error.to_string());
}

/// A loopback port nothing listens on: bound, then released.
fn closed_port_url() -> Url {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    Url::parse(&format!("http://127.0.0.1:{port}")).unwrap()
}

fn aksk() -> Credentials {
    Credentials::aksk("AK-visible", SecretString::from(SECRET_KEY))
}

fn password(iam: Url) -> Credentials {
    Credentials::Password(PasswordCredentials {
        iam_endpoint: iam,
        user_name: "operator".into(),
        domain_name: "domain".into(),
        password: SecretString::from(PASSWORD),
        refresh_after: Duration::from_secs(3600),
    })
}

fn fast(mut config: EcsClientConfig) -> EcsClientConfig {
    config.request_timeout = Duration::from_secs(2);
    config.retry = RetryPolicy {
        max_attempts: 2,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(2),
        max_retry_after: Duration::from_secs(1),
    };
    config
}

#[test]
fn credentials_and_configs_hide_secrets() {
    let signer = Signer::new("AK-visible", SecretString::from(SECRET_KEY));
    check_debug("Signer", &signer);
    check_debug("Credentials::AkSk", &aksk());
    let iam = Url::parse("https://iam.eu-de.otc.t-systems.com").unwrap();
    check_debug("Credentials::Password", &password(iam.clone()));
    if let Credentials::Password(p) = password(iam.clone()) {
        check_debug("PasswordCredentials", &p);
    }
    let endpoint = Url::parse("https://ecs.eu-de.otc.t-systems.com").unwrap();
    let config = EcsClientConfig::new(endpoint.clone(), PROJECT, aksk());
    check_debug("EcsClientConfig", &config);
    check_debug("HttpEcsClient", &HttpEcsClient::new(config).unwrap());
    let config = EcsClientConfig::new(endpoint, PROJECT, password(iam));
    check_debug("EcsClientConfig(password)", &config);
    check_debug(
        "HttpEcsClient(password)",
        &HttpEcsClient::new(config).unwrap(),
    );
}

#[tokio::test]
async fn errors_hide_secrets() {
    // Refused configuration.
    let err = HttpEcsClient::new(EcsClientConfig::new(
        Url::parse("http://ecs.example.com").unwrap(),
        PROJECT,
        aksk(),
    ))
    .unwrap_err();
    check_error("config error", &err);

    // Refused locally before sending.
    let client = HttpEcsClient::new(fast(EcsClientConfig::new(
        closed_port_url(),
        PROJECT,
        aksk(),
    )))
    .unwrap();
    let too_many: Vec<String> = (0..1001).map(|i| format!("id-{i}")).collect();
    let err = client
        .stop_servers(&too_many, PowerActionType::Soft)
        .await
        .unwrap_err();
    check_error("too many", &err);

    // Signed request that could not connect.
    let err = client
        .list_servers(&ServerFilter::default())
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    check_error("connection refused (AK/SK)", &err);

    // Token fetch that could not connect: the password was in the request body.
    let client = HttpEcsClient::new(fast(EcsClientConfig::new(
        closed_port_url(),
        PROJECT,
        password(closed_port_url()),
    )))
    .unwrap();
    let err = client.get_server("some-id").await.unwrap_err();
    check_error("IAM unreachable", &err);
}
