//! The one error type of the ECS layer, classified so that callers decide by kind
//! (retry, re-observe, report) and never by parsing messages.

use std::fmt;
use std::time::Duration;

/// What went wrong, coarsely: the label for metrics and status conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The API asked us to slow down (429, `APIGW.0308`, `Common.1503`, `Common.0024`).
    Throttled,
    /// Worth trying again later: 5xx, timeouts, connection errors, `Ecs.0603`.
    Transient,
    /// Credentials refused or not allowed (401/403, IAM failures, project mismatch).
    Auth,
    /// The server (or job) does not exist.
    NotFound,
    /// The request itself is wrong; sending it again will not help.
    Invalid,
    /// A batch action was sent but its answer was lost: it may or may not have run.
    OutcomeUnknown,
    /// Refused locally before anything was sent (too many ids, duplicates, empty list).
    Refused,
    /// The client configuration cannot work (plain http to a remote host, bad page size).
    Config,
}

impl ErrorKind {
    /// Stable snake_case label for metrics and conditions.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Throttled => "throttled",
            ErrorKind::Transient => "transient",
            ErrorKind::Auth => "auth",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Invalid => "invalid",
            ErrorKind::OutcomeUnknown => "outcome_unknown",
            ErrorKind::Refused => "refused",
            ErrorKind::Config => "config",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the cloud said, as far as it said anything. `status` is `None` when no
/// response arrived (timeout, connection error).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiFailure {
    pub status: Option<u16>,
    /// The cloud's code, e.g. `Ecs.0118` or `APIGW.0308`.
    pub code: Option<String>,
    pub message: String,
    /// `X-Request-Id` of the response, for support tickets.
    pub request_id: Option<String>,
}

impl fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(status) = self.status {
            write!(f, "HTTP {status}")?;
        } else {
            f.write_str("no response")?;
        }
        if let Some(code) = &self.code {
            write!(f, " {code}")?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        if let Some(id) = &self.request_id {
            write!(f, " (request id {id})")?;
        }
        Ok(())
    }
}

/// Why no answer came, as far as the transport can tell: each is a different thing
/// for a person to fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoAnswer {
    /// The endpoint's name does not resolve.
    Unresolved,
    /// Nobody accepts connections there.
    Refused,
    /// The TLS handshake failed (not TLS, a certificate not trusted, ...).
    Tls,
    /// No connection within the request timeout.
    TimedOut,
    /// Any other way the connection failed.
    Other,
}

impl fmt::Display for NoAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NoAnswer::Unresolved => "name not resolved",
            NoAnswer::Refused => "connection refused",
            NoAnswer::Tls => "TLS handshake failed",
            NoAnswer::TimedOut => "timed out",
            NoAnswer::Other => "connection failed",
        })
    }
}

/// Longest text of the cloud's (a code, a message, a request id) kept in an error,
/// and so in a status condition, an Event or a log line, in characters: a hostile or
/// broken endpoint must not fill a policy's status (etcd refuses objects over 1.5 MB)
/// or the logs. An HTML error page from a proxy says all it has to say in its first
/// lines.
pub const MAX_CLOUD_TEXT: usize = 300;

/// `text` cut to [`MAX_CLOUD_TEXT`] characters (never inside one), marked with `…`.
pub fn cut_cloud_text(text: &str) -> String {
    match text.char_indices().nth(MAX_CLOUD_TEXT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum EcsError {
    #[error("{operation} throttled: {failure}")]
    Throttled {
        operation: &'static str,
        failure: ApiFailure,
        /// `Retry-After` of the response, when the API sent one.
        retry_after: Option<Duration>,
    },
    #[error("{operation} failed transiently: {failure}")]
    Transient {
        operation: &'static str,
        failure: ApiFailure,
    },
    /// No answer, and nothing was sent that could have acted (a connection never
    /// made, or a request that may be repeated): transient, with the reason.
    #[error("{operation} could not reach the endpoint ({cause}): {failure}")]
    Unreachable {
        operation: &'static str,
        cause: NoAnswer,
        failure: ApiFailure,
    },
    #[error("{operation} not authorised: {failure}")]
    Auth {
        operation: &'static str,
        failure: ApiFailure,
    },
    #[error("{operation}: not found: {failure}")]
    NotFound {
        operation: &'static str,
        failure: ApiFailure,
    },
    #[error("{operation} refused as invalid: {failure}")]
    Invalid {
        operation: &'static str,
        failure: ApiFailure,
    },
    #[error(
        "{operation} was sent but its answer was lost ({failure}); re-observe before acting again"
    )]
    OutcomeUnknown {
        operation: &'static str,
        failure: ApiFailure,
    },
    /// The endpoint answered more than any ECS API sends: a body over its size
    /// limit, or a listing longer than this operator reads. Not retried: the same
    /// request gets the same answer.
    #[error("{operation}: the endpoint's answer is too large: {what}")]
    TooLarge {
        operation: &'static str,
        what: String,
    },
    #[error("{count} servers in one batch action; at most {max} are allowed")]
    TooManyServers { count: usize, max: usize },
    #[error("server {id} appears more than once in one batch action")]
    DuplicateServer { id: String },
    #[error("a batch action needs at least one server")]
    NoServers,
    #[error(
        "region `{region}` (spec.cloud.region) is not an Open Telekom Cloud region ({known}); set spec.cloud.endpoint for any other"
    )]
    UnknownRegion { region: String, known: String },
    #[error(
        "endpoint host `{host}` is not allowed by this operator's --allowed-endpoints ({allowed}); ask its administrators"
    )]
    EndpointNotAllowed { host: String, allowed: String },
    #[error("invalid ECS client configuration: {0}")]
    Config(String),
}

impl EcsError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            EcsError::Throttled { .. } => ErrorKind::Throttled,
            EcsError::Transient { .. } | EcsError::Unreachable { .. } => ErrorKind::Transient,
            EcsError::Auth { .. } => ErrorKind::Auth,
            EcsError::NotFound { .. } => ErrorKind::NotFound,
            EcsError::Invalid { .. } | EcsError::TooLarge { .. } => ErrorKind::Invalid,
            EcsError::OutcomeUnknown { .. } => ErrorKind::OutcomeUnknown,
            EcsError::TooManyServers { .. }
            | EcsError::DuplicateServer { .. }
            | EcsError::NoServers => ErrorKind::Refused,
            EcsError::Config(_)
            | EcsError::UnknownRegion { .. }
            | EcsError::EndpointNotAllowed { .. } => ErrorKind::Config,
        }
    }

    /// Whether the same request may simply be sent again later. An unknown outcome
    /// is not: the caller must re-observe first, or it may act twice.
    pub fn is_retryable(&self) -> bool {
        matches!(self.kind(), ErrorKind::Throttled | ErrorKind::Transient)
    }

    /// What the cloud said, for errors that came from (or were meant for) the API.
    pub fn failure(&self) -> Option<&ApiFailure> {
        match self {
            EcsError::Throttled { failure, .. }
            | EcsError::Transient { failure, .. }
            | EcsError::Unreachable { failure, .. }
            | EcsError::Auth { failure, .. }
            | EcsError::NotFound { failure, .. }
            | EcsError::Invalid { failure, .. }
            | EcsError::OutcomeUnknown { failure, .. } => Some(failure),
            _ => None,
        }
    }

    /// How long the API asked us to wait, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            EcsError::Throttled { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Build the error of `kind` for an answer (or its absence) from the API.
    /// `retry_after` is kept only where it means something (throttling).
    pub(crate) fn from_failure(
        kind: ErrorKind,
        operation: &'static str,
        failure: ApiFailure,
        retry_after: Option<Duration>,
    ) -> Self {
        match kind {
            ErrorKind::Throttled => EcsError::Throttled {
                operation,
                failure,
                retry_after,
            },
            ErrorKind::Transient => EcsError::Transient { operation, failure },
            ErrorKind::Auth => EcsError::Auth { operation, failure },
            ErrorKind::NotFound => EcsError::NotFound { operation, failure },
            ErrorKind::OutcomeUnknown => EcsError::OutcomeUnknown { operation, failure },
            // Local kinds never come from a response; an answer we cannot place is invalid.
            ErrorKind::Invalid | ErrorKind::Refused | ErrorKind::Config => {
                EcsError::Invalid { operation, failure }
            }
        }
    }
}

/// Codes that mean "slow down" whatever HTTP status carries them (`Common.0024`
/// comes with a 202).
const THROTTLE_CODES: &[&str] = &["APIGW.0308", "APIG.0308", "Common.1503", "Common.0024"];
/// "Other commands are executing, retry in about 1 minute" (501).
const BUSY_CODES: &[&str] = &["Ecs.0603"];
const NOT_FOUND_CODES: &[&str] = &["Ecs.0114", "Ecs.0614"];
/// Credentials that are wrong for this project: the token's project differs from
/// the URL's. Reported as 400, but no change of request fixes it, only of credentials.
const AUTH_CODES: &[&str] = &["Ecs.0023", "Common.0018", "Common.0013", "APIGW.0301"];

/// Classify an error response by HTTP status and the cloud's code. The code wins
/// over the status where the docs say the status may not be accurate.
pub fn classify(status: u16, code: Option<&str>) -> ErrorKind {
    let has = |set: &[&str]| code.is_some_and(|c| set.iter().any(|s| s.eq_ignore_ascii_case(c)));
    if has(THROTTLE_CODES) || status == 429 {
        ErrorKind::Throttled
    } else if has(BUSY_CODES) {
        ErrorKind::Transient
    } else if has(AUTH_CODES) || status == 401 || status == 403 {
        ErrorKind::Auth
    } else if has(NOT_FOUND_CODES) || status == 404 {
        ErrorKind::NotFound
    } else if status >= 500 || status == 408 {
        ErrorKind::Transient
    } else {
        ErrorKind::Invalid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_table() {
        let table: &[(u16, Option<&str>, ErrorKind)] = &[
            (429, None, ErrorKind::Throttled),
            (429, Some("APIGW.0308"), ErrorKind::Throttled),
            (429, Some("Common.1503"), ErrorKind::Throttled),
            (202, Some("Common.0024"), ErrorKind::Throttled),
            (400, Some("APIG.0308"), ErrorKind::Throttled),
            (500, None, ErrorKind::Transient),
            (500, Some("Common.0001"), ErrorKind::Transient),
            (502, None, ErrorKind::Transient),
            (503, None, ErrorKind::Transient),
            (504, None, ErrorKind::Transient),
            (408, None, ErrorKind::Transient),
            (501, Some("Ecs.0603"), ErrorKind::Transient),
            (400, Some("Ecs.0603"), ErrorKind::Transient),
            (401, None, ErrorKind::Auth),
            (401, Some("APIGW.0301"), ErrorKind::Auth),
            (401, Some("Common.0013"), ErrorKind::Auth),
            (403, Some("Ecs.0003"), ErrorKind::Auth),
            (403, Some("Pdp.0001"), ErrorKind::Auth),
            (400, Some("Ecs.0023"), ErrorKind::Auth),
            (400, Some("Common.0018"), ErrorKind::Auth),
            (404, None, ErrorKind::NotFound),
            (404, Some("Ecs.0114"), ErrorKind::NotFound),
            (404, Some("Ecs.0614"), ErrorKind::NotFound),
            (400, Some("Ecs.0114"), ErrorKind::NotFound),
            (400, Some("Ecs.0118"), ErrorKind::Invalid),
            (400, Some("Ecs.0005"), ErrorKind::Invalid),
            (400, Some("Ecs.0100"), ErrorKind::Invalid),
            (400, Some("Ecs.0605"), ErrorKind::Invalid),
            (400, Some("Common.0002"), ErrorKind::Invalid),
            (400, Some("Common.0011"), ErrorKind::Invalid),
            (400, None, ErrorKind::Invalid),
            (409, None, ErrorKind::Invalid),
        ];
        for &(status, code, kind) in table {
            assert_eq!(classify(status, code), kind, "{status} {code:?}");
        }
    }

    #[test]
    fn only_throttled_and_transient_are_retryable() {
        let failure = ApiFailure::default();
        for kind in [
            ErrorKind::Throttled,
            ErrorKind::Transient,
            ErrorKind::Auth,
            ErrorKind::NotFound,
            ErrorKind::Invalid,
            ErrorKind::OutcomeUnknown,
        ] {
            let err = EcsError::from_failure(kind, "op", failure.clone(), None);
            assert_eq!(err.kind(), kind);
            assert_eq!(
                err.is_retryable(),
                matches!(kind, ErrorKind::Throttled | ErrorKind::Transient)
            );
        }
        assert!(!EcsError::NoServers.is_retryable());
        assert_eq!(
            EcsError::TooManyServers {
                count: 1001,
                max: 1000
            }
            .kind(),
            ErrorKind::Refused
        );
    }

    #[test]
    fn cloud_text_is_cut_at_a_character_boundary() {
        let long = "é".repeat(1000);
        let cut = cut_cloud_text(&long);
        assert_eq!(cut.chars().count(), MAX_CLOUD_TEXT + 1);
        assert!(cut.ends_with('…'));
        let short = "x".repeat(MAX_CLOUD_TEXT);
        assert_eq!(cut_cloud_text(&short), short);
    }

    #[test]
    fn display_carries_status_code_message_and_request_id() {
        let err = EcsError::from_failure(
            ErrorKind::Invalid,
            "os-stop",
            ApiFailure {
                status: Some(400),
                code: Some("Ecs.0118".into()),
                message: "too many".into(),
                request_id: Some("req-1".into()),
            },
            None,
        );
        assert_eq!(
            err.to_string(),
            "os-stop refused as invalid: HTTP 400 Ecs.0118: too many (request id req-1)"
        );
    }
}
