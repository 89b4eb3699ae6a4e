//! How an [`HttpEcsClient`](super::client::HttpEcsClient) is set up, and the checks
//! that refuse a setup that cannot work before any request is made.

use std::sync::Arc;
use std::time::Duration;

use url::Url;

use super::auth::Credentials;
use super::budget::{ActionBudget, BudgetLimits};
use super::endpoint;
use super::error::EcsError;
use super::observer::{NoopObserver, RequestObserver};
use super::retry::RetryPolicy;
use super::wire::MAX_PAGE_SIZE;

pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// A read with all its retries: twice one request's timeout.
pub const DEFAULT_REQUEST_DEADLINE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct EcsClientConfig {
    /// ECS endpoint, e.g. `https://ecs.eu-de.otc.t-systems.com`; a path prefix is kept.
    pub endpoint: Url,
    pub project_id: String,
    pub credentials: Credentials,
    /// Whole exchange, connect to last body byte.
    pub request_timeout: Duration,
    /// A read with all its retries, first connect to last body byte.
    pub request_deadline: Duration,
    /// `limit` of each listing page, 1..=1000.
    pub page_size: u32,
    /// Backoff for reads; batch actions are never retried.
    pub retry: RetryPolicy,
    /// Servers per window for stop/start. A client's own unless the caller shares
    /// one between the clients of a project.
    pub budget: Arc<ActionBudget>,
    pub observer: Arc<dyn RequestObserver>,
}

impl EcsClientConfig {
    /// Defaults for everything else, the budget the cloud's own limit.
    pub fn new(endpoint: Url, project_id: impl Into<String>, credentials: Credentials) -> Self {
        Self {
            endpoint,
            project_id: project_id.into(),
            credentials,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            request_deadline: DEFAULT_REQUEST_DEADLINE,
            page_size: MAX_PAGE_SIZE,
            retry: RetryPolicy::default(),
            budget: Arc::new(ActionBudget::new(BudgetLimits::default())),
            observer: Arc::new(NoopObserver),
        }
    }

    pub(crate) fn validate(&self) -> Result<(), EcsError> {
        endpoint::validate(&self.endpoint)?;
        // The project id goes into every path; refuse anything that could change
        // the path's shape rather than trusting percent-encoding to neutralise it.
        let id_ok = !self.project_id.is_empty()
            && self
                .project_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !id_ok {
            return Err(EcsError::Config(format!(
                "project id `{}` must be non-empty and alphanumeric",
                self.project_id
            )));
        }
        if !(1..=MAX_PAGE_SIZE).contains(&self.page_size) {
            return Err(EcsError::Config(format!(
                "page size {} is outside 1..={MAX_PAGE_SIZE}",
                self.page_size
            )));
        }
        if self.request_timeout.is_zero() || self.request_deadline.is_zero() {
            return Err(EcsError::Config(
                "request timeout and deadline must be positive".into(),
            ));
        }
        if self.retry.max_attempts == 0 {
            return Err(EcsError::Config(
                "retry policy needs at least one attempt".into(),
            ));
        }
        Ok(())
    }
}
