//! A hook for metrics that keeps this layer free of any metrics crate: the
//! operator plugs in an observer that feeds Prometheus; tests plug in a recorder.

use std::fmt;
use std::time::Duration;

use super::error::ErrorKind;

/// One HTTP attempt, as seen by the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestEvent {
    /// `os-stop`, `os-start`, `get-job`, `list-servers`, `get-server`, `iam-token`.
    pub operation: &'static str,
    /// HTTP status, when a response arrived.
    pub status: Option<u16>,
    /// How the attempt failed, if it did.
    pub error: Option<ErrorKind>,
    /// From sending the request to the end of the response body.
    pub duration: Duration,
    /// Time spent before this attempt waiting for the action budget or backing off.
    pub waited: Duration,
    /// 1 for the first attempt.
    pub attempt: u32,
}

pub trait RequestObserver: Send + Sync + fmt::Debug {
    fn observe(&self, event: &RequestEvent);
}

/// The default: observes nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopObserver;

impl RequestObserver for NoopObserver {
    fn observe(&self, _event: &RequestEvent) {}
}
