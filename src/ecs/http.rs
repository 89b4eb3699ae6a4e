//! One HTTP exchange: the request exactly as it will be signed and sent, and the
//! answer turned into bytes or a classified error. No retries here.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use tokio::time::Instant;
use url::Url;

use super::endpoint;
use super::error::{ApiFailure, EcsError, ErrorKind, NoAnswer, classify, cut_cloud_text};
use super::observer::{RequestEvent, RequestObserver};
use super::retry::parse_retry_after;
use super::sign::canonical_query;
use super::wire;

pub const USER_AGENT: &str = concat!("ecs-power-operator/", env!("CARGO_PKG_VERSION"));
/// What the SDK sends on the batch-action POST.
const JSON_UTF8: &str = "application/json;charset=utf-8";
/// What the SDK sends on GETs.
const JSON: &str = "application/json";

/// Largest 2xx body of a listing page: a page of 1000 full servers (the API's
/// largest `limit`) is ~2.3 MB in ecs-sim; this leaves room for servers with many
/// tags and metadata. A tenant's endpoint that streams more is cut off here rather
/// than held in memory (issue 14: 1 GB bodies OOM-killed the shared operator).
pub(crate) const MAX_LIST_PAGE_BODY: usize = 4 << 20;
/// Largest 2xx body of a job: one sub-job per server, at most 1000 of them.
pub(crate) const MAX_JOB_BODY: usize = 2 << 20;
/// Largest other 2xx body: an IAM token with its service catalog, one server, the
/// job id of an accepted action.
pub(crate) const MAX_OTHER_BODY: usize = 1 << 20;
/// Error bodies are read up to here and the rest dropped: the code and message
/// come first, and only [`MAX_CLOUD_TEXT`](super::error::MAX_CLOUD_TEXT) characters
/// of them are kept anyway.
pub(crate) const MAX_ERROR_BODY: usize = 64 << 10;

/// Largest 2xx body read for `operation`.
fn success_body_limit(operation: &str) -> usize {
    match operation {
        "list-servers" => MAX_LIST_PAGE_BODY,
        "get-job" => MAX_JOB_BODY,
        _ => MAX_OTHER_BODY,
    }
}

/// A request as the signature sees it. Headers set here are all signed, so the
/// ones the SDK signs (Host, Content-Type, User-Agent) are set explicitly rather
/// than left to the HTTP library.
pub(crate) struct Outgoing {
    pub method: Method,
    /// Scheme, host, port and path; the query lives in `query`.
    pub url: Url,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Outgoing {
    fn new(method: Method, url: Url, content_type: &str) -> Self {
        let headers = vec![
            ("Host".to_owned(), endpoint::host_header(&url)),
            ("Content-Type".to_owned(), content_type.to_owned()),
            ("User-Agent".to_owned(), USER_AGENT.to_owned()),
        ];
        Self {
            method,
            url,
            query: Vec::new(),
            headers,
            body: Vec::new(),
        }
    }

    pub fn get(url: Url, query: Vec<(String, String)>) -> Self {
        Self {
            query,
            ..Self::new(Method::GET, url, JSON)
        }
    }

    pub fn post(url: Url, body: Vec<u8>) -> Self {
        Self {
            body,
            ..Self::new(Method::POST, url, JSON_UTF8)
        }
    }

    /// Set a header, replacing any of the same name (case-insensitive).
    pub fn set_header(&mut self, name: &str, value: String) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.to_owned(), value));
    }

    /// The URL to send: the query is the canonical one, byte for byte what was signed.
    fn full_url(&self) -> Url {
        let mut url = self.url.clone();
        if self.query.is_empty() {
            url.set_query(None);
        } else {
            url.set_query(Some(&canonical_query(&self.query)));
        }
        url
    }

    fn header_map(&self) -> Result<HeaderMap, EcsError> {
        let mut map = HeaderMap::new();
        for (name, value) in &self.headers {
            // The value is not quoted: it may be a token.
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| EcsError::Config(format!("invalid header name `{name}`")))?;
            let value = HeaderValue::from_str(value)
                .map_err(|_| EcsError::Config(format!("invalid value for header `{name}`")))?;
            map.insert(name, value);
        }
        Ok(map)
    }
}

/// A 2xx answer.
pub(crate) struct Answer {
    pub status: u16,
    pub request_id: Option<String>,
    headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

#[cfg(test)]
impl Answer {
    pub fn for_test(status: u16, body: &str) -> Self {
        Self {
            status,
            request_id: None,
            headers: HeaderMap::new(),
            body: body.as_bytes().to_vec(),
        }
    }
}

fn request_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(cut_cloud_text)
}

/// Text of the body for an error message, cut at a character boundary.
fn quote_body(body: &[u8]) -> String {
    cut_cloud_text(String::from_utf8_lossy(body).trim())
}

/// A body as far as it was read.
enum Body {
    /// All of it, within the limit.
    Whole(Vec<u8>),
    /// Longer than the limit: the first `limit` bytes, the rest never read.
    Cut(Vec<u8>),
}

/// Reads at most `limit` bytes of the body. A `Content-Length` over the limit is
/// believed without reading anything; a body that grows past it is dropped there
/// (the connection with it), so no endpoint makes the operator hold more.
async fn read_body(mut response: reqwest::Response, limit: usize) -> Result<Body, reqwest::Error> {
    if response
        .content_length()
        .is_some_and(|length| length > limit as u64)
    {
        return Ok(Body::Cut(Vec::new()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > limit {
            body.extend_from_slice(&chunk[..limit - body.len()]);
            return Ok(Body::Cut(body));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Body::Whole(body))
}

/// A 2xx body over its limit. For a batch action the cloud may have acted: its
/// outcome is unknown, as for a body cut short.
fn too_large(operation: &'static str, status: u16, limit: usize, idempotent: bool) -> EcsError {
    let what = format!("a 2xx body over {} KiB", limit >> 10);
    if idempotent {
        EcsError::TooLarge { operation, what }
    } else {
        EcsError::OutcomeUnknown {
            operation,
            failure: ApiFailure {
                status: Some(status),
                code: None,
                message: what,
                request_id: None,
            },
        }
    }
}

/// Whether a gateway error may have come after the cloud accepted the request: a
/// 502, 503 or 504 without an ECS code saying what the service did. For a request
/// that must not be sent twice, its outcome is unknown.
fn maybe_accepted(status: u16, code: Option<&str>) -> bool {
    matches!(status, 502..=504) && !code.is_some_and(|c| c.starts_with("Ecs."))
}

/// The error for an answer: the cloud's code and message as the SDK finds them,
/// else the raw body.
pub(crate) fn error_from_answer(
    operation: &'static str,
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    idempotent: bool,
) -> EcsError {
    let (code, message) = match wire::error_code_and_message(body) {
        Some((code, message)) => (Some(code), message),
        None => (None, quote_body(body)),
    };
    let kind = if !idempotent && maybe_accepted(status, code.as_deref()) {
        ErrorKind::OutcomeUnknown
    } else {
        classify(status, code.as_deref())
    };
    let retry_after = headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, jiff::Timestamp::now()));
    EcsError::from_failure(
        kind,
        operation,
        ApiFailure {
            status: Some(status),
            code,
            message,
            request_id: request_id(headers),
        },
        retry_after,
    )
}

/// reqwest's Display says only "error sending request"; the cause is in the chain.
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// No answer at all. A connection that was never made carried nothing, so that
/// is transient for any request; anything later (a timeout, a reset) may have
/// come after the server read the request, so for a non-idempotent request the
/// outcome is unknown.
fn error_without_answer(
    operation: &'static str,
    error: reqwest::Error,
    idempotent: bool,
) -> EcsError {
    let cause = no_answer_cause(&error);
    let connected = !error.is_connect();
    let message = if error.is_timeout() {
        format!("timed out: {}", describe(&error.without_url()))
    } else {
        describe(&error.without_url())
    };
    let failure = ApiFailure {
        status: None,
        code: None,
        message,
        request_id: None,
    };
    if idempotent || !connected {
        EcsError::Unreachable {
            operation,
            cause,
            failure,
        }
    } else {
        EcsError::OutcomeUnknown { operation, failure }
    }
}

/// Why the connection failed, from reqwest's cause chain. TLS and socket errors are
/// typed (wrapped in `io::Error`s, sometimes twice); hyper-util's resolver failure
/// is not exported, only named by its text.
fn no_answer_cause(error: &reqwest::Error) -> NoAnswer {
    if error.is_timeout() {
        return NoAnswer::TimedOut;
    }
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(found) = typed_cause(cause) {
            return found;
        }
        if cause.to_string() == "dns error" {
            return NoAnswer::Unresolved;
        }
        source = cause.source();
    }
    NoAnswer::Other
}

/// A TLS failure or a refused connection in `cause` or the errors its `io::Error`s
/// wrap (which `source()` skips).
fn typed_cause(cause: &(dyn std::error::Error + 'static)) -> Option<NoAnswer> {
    if cause.downcast_ref::<rustls::Error>().is_some() {
        return Some(NoAnswer::Tls);
    }
    let io = cause.downcast_ref::<std::io::Error>()?;
    if io.kind() == std::io::ErrorKind::ConnectionRefused {
        return Some(NoAnswer::Refused);
    }
    let inner: &(dyn std::error::Error + 'static) = io.get_ref()?;
    typed_cause(inner)
}

/// Sends requests with a timeout and reports each exchange to the observer.
#[derive(Debug, Clone)]
pub(crate) struct Transport {
    client: reqwest::Client,
    timeout: Duration,
    observer: Arc<dyn RequestObserver>,
}

impl Transport {
    pub fn new(timeout: Duration, observer: Arc<dyn RequestObserver>) -> Result<Self, EcsError> {
        let client = reqwest::Client::builder()
            // A redirect would carry a signature or token to wherever it points.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeout)
            .timeout(timeout)
            .build()
            .map_err(|e| EcsError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            client,
            timeout,
            observer,
        })
    }

    /// Send once. `waited` and `attempt` are only reported to the observer.
    pub async fn send(
        &self,
        operation: &'static str,
        request: &Outgoing,
        idempotent: bool,
        waited: Duration,
        attempt: u32,
    ) -> Result<Answer, EcsError> {
        let started = Instant::now();
        let result = self.exchange(operation, request, idempotent).await;
        let status = match &result {
            Ok(answer) => Some(answer.status),
            Err(error) => error.failure().and_then(|f| f.status),
        };
        self.observer.observe(&RequestEvent {
            operation,
            status,
            error: result.as_ref().err().map(EcsError::kind),
            duration: started.elapsed(),
            waited,
            attempt,
        });
        result
    }

    /// One exchange within the request timeout, connect to last body byte, whatever
    /// the endpoint does (a tarpit that accepts and never answers, a body trickled
    /// byte by byte).
    async fn exchange(
        &self,
        operation: &'static str,
        request: &Outgoing,
        idempotent: bool,
    ) -> Result<Answer, EcsError> {
        match tokio::time::timeout(
            self.timeout,
            self.exchange_once(operation, request, idempotent),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => {
                let failure = ApiFailure {
                    status: None,
                    code: None,
                    message: format!("no complete answer within {:?}", self.timeout),
                    request_id: None,
                };
                Err(if idempotent {
                    EcsError::Unreachable {
                        operation,
                        cause: NoAnswer::TimedOut,
                        failure,
                    }
                } else {
                    EcsError::OutcomeUnknown { operation, failure }
                })
            }
        }
    }

    async fn exchange_once(
        &self,
        operation: &'static str,
        request: &Outgoing,
        idempotent: bool,
    ) -> Result<Answer, EcsError> {
        let response = self
            .client
            .request(request.method.clone(), request.full_url())
            .headers(request.header_map()?)
            .body(request.body.clone())
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| error_without_answer(operation, e, idempotent))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let success = (200..300).contains(&status);
        let limit = if success {
            success_body_limit(operation)
        } else {
            MAX_ERROR_BODY
        };
        // The status arrived, but a body cut short leaves a 2xx unreadable: for a
        // batch action that is as unknown as no answer at all.
        let body = read_body(response, limit)
            .await
            .map_err(|e| error_without_answer(operation, e, idempotent))?;
        let body = match body {
            Body::Whole(body) => body,
            Body::Cut(_) if success => {
                return Err(too_large(operation, status, limit, idempotent));
            }
            Body::Cut(start) => start,
        };
        if !success {
            return Err(error_from_answer(
                operation, status, &headers, &body, idempotent,
            ));
        }
        Ok(Answer {
            status,
            request_id: request_id(&headers),
            headers,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ecs::error::MAX_CLOUD_TEXT;

    #[test]
    fn error_bodies_of_every_shape_are_classified() {
        let mut headers = HeaderMap::new();
        headers.insert("x-request-id", HeaderValue::from_static("req-9"));
        headers.insert("retry-after", HeaderValue::from_static("2"));
        let err = error_from_answer(
            "list-servers",
            429,
            &headers,
            br#"{"error_code":"APIGW.0308","error_msg":"over ratelimit","request_id":"x"}"#,
            true,
        );
        assert_eq!(err.kind(), ErrorKind::Throttled);
        assert_eq!(err.retry_after(), Some(Duration::from_secs(2)));
        let failure = err.failure().unwrap();
        assert_eq!(failure.code.as_deref(), Some("APIGW.0308"));
        assert_eq!(failure.request_id.as_deref(), Some("req-9"));

        let err = error_from_answer(
            "os-stop",
            400,
            &HeaderMap::new(),
            br#"{"error":{"code":"Ecs.0118","message":"too many"}}"#,
            false,
        );
        assert_eq!(err.kind(), ErrorKind::Invalid);
        assert_eq!(err.failure().unwrap().message, "too many");

        let err = error_from_answer(
            "get-job",
            502,
            &HeaderMap::new(),
            b"<html>bad gateway</html>",
            true,
        );
        assert_eq!(err.kind(), ErrorKind::Transient);
        assert_eq!(err.failure().unwrap().code, None);
        assert_eq!(err.failure().unwrap().message, "<html>bad gateway</html>");
    }

    #[test]
    fn a_gateway_error_on_a_batch_action_may_hide_an_accepted_one() {
        let answer = |status: u16, body: &[u8]| {
            error_from_answer("os-stop", status, &HeaderMap::new(), body, false).kind()
        };
        for status in [502, 503, 504] {
            assert_eq!(answer(status, b""), ErrorKind::OutcomeUnknown, "{status}");
            assert_eq!(
                answer(status, br#"{"error_code":"APIGW.0201","error_msg":"x"}"#),
                ErrorKind::OutcomeUnknown,
                "{status} with a gateway code"
            );
        }
        // The service itself says it did not do it: worth sending again later.
        let busy = br#"{"error":{"code":"Ecs.0603","message":"busy"}}"#;
        assert_eq!(answer(503, busy), ErrorKind::Transient);
        assert_eq!(answer(500, b""), ErrorKind::Transient);
    }

    #[tokio::test]
    async fn a_connection_failure_says_why() {
        // Something that answers plain HTTP where TLS is expected.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let plain = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                use tokio::io::AsyncWriteExt;
                let _ = socket.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
            }
        });
        // Nobody listens on a port just released.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let client = reqwest::Client::new();
        for (url, want) in [
            (format!("https://{plain}/"), NoAnswer::Tls),
            (format!("http://{closed}/"), NoAnswer::Refused),
        ] {
            let error = client.get(&url).send().await.unwrap_err();
            assert_eq!(no_answer_cause(&error), want, "{url}");
        }
    }

    #[test]
    fn quoted_bodies_and_cloud_messages_are_cut() {
        let long = "é".repeat(1000);
        let quoted = quote_body(long.as_bytes());
        assert_eq!(quoted.chars().count(), MAX_CLOUD_TEXT + 1);
        let body = format!(r#"{{"error_code":"APIGW.0101","error_msg":"{long}"}}"#);
        let err = error_from_answer(
            "list-servers",
            400,
            &HeaderMap::new(),
            body.as_bytes(),
            true,
        );
        assert_eq!(
            err.failure().unwrap().message.chars().count(),
            MAX_CLOUD_TEXT + 1
        );
    }

    #[test]
    fn requests_carry_the_signed_headers_and_canonical_query() {
        let url = Url::parse("http://127.0.0.1:8080/v1/p/cloudservers/detail").unwrap();
        let mut get = Outgoing::get(
            url,
            vec![
                ("offset".into(), "1".into()),
                ("name".into(), "web server/01".into()),
            ],
        );
        get.set_header("content-type", JSON.into());
        assert_eq!(
            get.full_url().as_str(),
            "http://127.0.0.1:8080/v1/p/cloudservers/detail?name=web%20server%2F01&offset=1"
        );
        let names: Vec<&str> = get.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["Host", "User-Agent", "content-type"]);
        assert_eq!(get.headers[0].1, "127.0.0.1:8080");
        assert!(get.headers[1].1.starts_with("ecs-power-operator/"));
    }
}
