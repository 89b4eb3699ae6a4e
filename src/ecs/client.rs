//! The ECS operations the operator needs, behind a trait the reconciler can fake,
//! and the HTTP implementation that enforces the API's rules itself.

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use url::Url;

use super::auth::Authenticator;
use super::config::EcsClientConfig;
use super::error::{ApiFailure, EcsError, ErrorKind, NoAnswer, classify};
use super::http::{Answer, Outgoing, Transport};
use super::wire::{
    self, BatchAction, Job, JobAccepted, MAX_SERVERS_PER_ACTION, PowerAction, PowerActionType,
    ServerDetail, ServerList, ServerRef, ShowServer,
};

/// Listing filters; `None` leaves a filter out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerFilter {
    /// `ACTIVE`, `SHUTOFF`, ... Note the API widens some values (`ACTIVE` also
    /// matches `REBOOT`, `RESIZE`, ...).
    pub status: Option<String>,
    /// Fuzzy match, as the API does it.
    pub name: Option<String>,
}

#[async_trait]
/// What a fleet needs of the ECS API: stop and start, follow jobs, list. A trait so
/// that the fleet's unit tests can serve listings from memory.
pub trait EcsApi: Send + Sync {
    /// Batch stop or start; returns the job id. Never re-sent: see
    /// [`EcsError::OutcomeUnknown`].
    async fn power(&self, ids: &[String], action: PowerAction) -> Result<String, EcsError>;
    /// Batch stop; returns the job id.
    async fn stop_servers(
        &self,
        ids: &[String],
        stop_type: PowerActionType,
    ) -> Result<String, EcsError> {
        self.power(ids, PowerAction::Stop(stop_type)).await
    }
    async fn get_job(&self, job_id: &str) -> Result<Job, EcsError>;
    /// Every matching server, page by page as the pages arrive, so that a listing of
    /// 100,000 servers is never held whole. A server that moves between two pages
    /// may be handed over twice.
    async fn for_each_server_page(
        &self,
        filter: &ServerFilter,
        on_page: &mut (dyn FnMut(Vec<ServerDetail>) + Send),
    ) -> Result<(), EcsError>;
    /// Every matching server, all pages, each once.
    async fn list_servers(&self, filter: &ServerFilter) -> Result<Vec<ServerDetail>, EcsError> {
        let mut servers: Vec<ServerDetail> = Vec::new();
        self.for_each_server_page(filter, &mut |page| servers.extend(page))
            .await?;
        // Servers changing state between two pages shift the pages under us; a
        // server seen twice is kept once.
        let mut seen = HashSet::with_capacity(servers.len());
        servers.retain(|s| seen.insert(s.id.clone()));
        Ok(servers)
    }
}

/// Refuse a batch the API would refuse or, worse, half-accept: no ids, more than
/// 1000, or an id twice.
pub fn check_batch(ids: &[String]) -> Result<(), EcsError> {
    if ids.is_empty() {
        return Err(EcsError::NoServers);
    }
    if ids.len() > MAX_SERVERS_PER_ACTION {
        return Err(EcsError::TooManyServers {
            count: ids.len(),
            max: MAX_SERVERS_PER_ACTION,
        });
    }
    let mut seen = HashSet::with_capacity(ids.len());
    match ids.iter().find(|id| !seen.insert(id.as_str())) {
        Some(id) => Err(EcsError::DuplicateServer { id: id.clone() }),
        None => Ok(()),
    }
}

/// Most servers one listing reads: the largest project this operator is built
/// for. An endpoint claiming more is refused after its first page rather than
/// listed for ever (issue 14: endless full pages with `count` 10^9).
pub const MAX_LISTED_SERVERS: u64 = 100_000;

/// Whether a listing has every page: `count` servers arrived, or a page came back
/// short (the last one), or empty, or the pages `count` implies all came (so pages
/// that repeat servers, or a `count` that lies, cannot loop forever).
pub fn listing_complete(
    page: u64,
    received: usize,
    count: u64,
    page_len: usize,
    limit: u32,
) -> bool {
    page_len == 0
        || page_len < limit as usize
        || received as u64 >= count
        || page >= count.div_ceil(u64::from(limit))
}

/// A listing whose `count` is over [`MAX_LISTED_SERVERS`] is refused.
pub fn check_listing_size(count: u64) -> Result<(), EcsError> {
    if count > MAX_LISTED_SERVERS {
        return Err(EcsError::TooLarge {
            operation: "list-servers",
            what: format!(
                "a listing of {count} servers; this operator lists at most {MAX_LISTED_SERVERS}"
            ),
        });
    }
    Ok(())
}

#[derive(Debug)]
pub struct HttpEcsClient {
    endpoint: Url,
    project_id: String,
    page_size: u32,
    request_deadline: Duration,
    retry: super::retry::RetryPolicy,
    budget: std::sync::Arc<super::budget::ActionBudget>,
    transport: Transport,
    auth: Authenticator,
}

impl HttpEcsClient {
    pub fn new(config: EcsClientConfig) -> Result<Self, EcsError> {
        config.validate()?;
        Ok(Self {
            transport: Transport::new(config.request_timeout, config.observer)?,
            auth: Authenticator::new(config.credentials, config.project_id.clone())?,
            endpoint: config.endpoint,
            project_id: config.project_id,
            page_size: config.page_size,
            request_deadline: config.request_deadline,
            retry: config.retry,
            budget: config.budget,
        })
    }

    /// `{endpoint}/v1/{project_id}/{segments...}`, each segment percent-encoded.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.endpoint.clone();
        url.set_query(None);
        url.set_fragment(None);
        url.path_segments_mut()
            .expect("validated endpoints have a host, so they can have a path")
            .pop_if_empty()
            .extend(["v1", self.project_id.as_str()])
            .extend(segments);
        url
    }

    /// Authorise and send once; on a 401 with a token, refresh it and send once
    /// more (the gateway refused the first, so nothing ran).
    async fn send_authorised(
        &self,
        operation: &'static str,
        mut request: Outgoing,
        idempotent: bool,
        waited: Duration,
        attempt: u32,
    ) -> Result<Answer, EcsError> {
        let used = self.auth.authorize(&self.transport, &mut request).await?;
        match self
            .transport
            .send(operation, &request, idempotent, waited, attempt)
            .await
        {
            Err(e) if is_unauthorised(&e) && self.auth.invalidate(used).await => {
                self.auth.authorize(&self.transport, &mut request).await?;
                self.transport
                    .send(operation, &request, idempotent, Duration::ZERO, attempt)
                    .await
            }
            result => result,
        }
    }

    /// A GET, retried with jittered backoff while throttled or transient, all of
    /// it within the request deadline: a tarpit holds a sync for that long, not for
    /// every attempt's timeout in turn.
    async fn get<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        segments: &[&str],
        query: Vec<(String, String)>,
    ) -> Result<T, EcsError> {
        let deadline = self.request_deadline;
        tokio::time::timeout(deadline, self.get_with_retries(operation, segments, query))
            .await
            .unwrap_or_else(|_| {
                Err(EcsError::Unreachable {
                    operation,
                    cause: NoAnswer::TimedOut,
                    failure: ApiFailure {
                        status: None,
                        code: None,
                        message: format!("no answer within the request deadline of {deadline:?}"),
                        request_id: None,
                    },
                })
            })
    }

    async fn get_with_retries<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        segments: &[&str],
        query: Vec<(String, String)>,
    ) -> Result<T, EcsError> {
        let mut retry = 0;
        let mut waited = Duration::ZERO;
        loop {
            let request = Outgoing::get(self.url(segments), query.clone());
            let result = self
                .send_authorised(operation, request, true, waited, retry + 1)
                .await
                .and_then(|answer| decode(operation, &answer));
            match result {
                Err(e) if e.is_retryable() => match self.retry.next_delay(retry, e.retry_after()) {
                    Some(delay) => {
                        tracing::debug!(operation, error = %e, ?delay, "retrying");
                        tokio::time::sleep(delay).await;
                        waited = delay;
                        retry += 1;
                    }
                    None => return Err(e),
                },
                result => return result,
            }
        }
    }

    /// A batch action: checked, paid for from the budget, sent exactly once.
    async fn act(&self, action: BatchAction) -> Result<String, EcsError> {
        let operation = action.operation();
        let taken = self.budget.wait_and_take(action.servers().len()).await?;
        if !taken.waited.is_zero() {
            tracing::info!(operation, waited = ?taken.waited, "waited for the per-project action budget");
        }
        let body = serde_json::to_vec(&action).expect("batch actions always serialise");
        let request = Outgoing::post(self.url(&["cloudservers", "action"]), body);
        let result = self
            .send_authorised(operation, request, false, taken.waited, 1)
            .await;
        self.budget.settle(&taken, tokio::time::Instant::now());
        job_id_of(operation, &result?)
    }
}

fn is_unauthorised(error: &EcsError) -> bool {
    error.kind() == ErrorKind::Auth && error.failure().and_then(|f| f.status) == Some(401)
}

/// Parse a 2xx body. One that does not parse but names an error code is that
/// error (the job API reports its own failures so); otherwise it is garbled in
/// transit, worth another read.
fn decode<T: DeserializeOwned>(operation: &'static str, answer: &Answer) -> Result<T, EcsError> {
    serde_json::from_slice(&answer.body).map_err(|e| {
        let (kind, code, message) = match wire::error_code_and_message(&answer.body) {
            Some((code, message)) => (classify(answer.status, Some(&code)), Some(code), message),
            None => (
                ErrorKind::Transient,
                None,
                format!("unreadable response body: {e}"),
            ),
        };
        EcsError::from_failure(
            kind,
            operation,
            ApiFailure {
                status: Some(answer.status),
                code,
                message,
                request_id: answer.request_id.clone(),
            },
            None,
        )
    })
}

/// The job id of an accepted batch action. A 2xx without one is flow control
/// (`Common.0024` comes as a 202): nothing was done. A body that is not JSON at
/// all tells nothing about whether the action was taken.
fn job_id_of(operation: &'static str, answer: &Answer) -> Result<String, EcsError> {
    let failure = |code: Option<String>, message: String| ApiFailure {
        status: Some(answer.status),
        code,
        message,
        request_id: answer.request_id.clone(),
    };
    match serde_json::from_slice::<JobAccepted>(&answer.body) {
        Ok(JobAccepted {
            job_id: Some(job_id),
        }) if !job_id.is_empty() => Ok(job_id),
        Ok(_) => {
            let (code, message) = wire::error_code_and_message(&answer.body)
                .map_or((None, "accepted without a job_id".to_owned()), |(c, m)| {
                    (Some(c), m)
                });
            Err(EcsError::Throttled {
                operation,
                failure: failure(code, message),
                retry_after: None,
            })
        }
        Err(e) => Err(EcsError::OutcomeUnknown {
            operation,
            failure: failure(
                None,
                format!("unreadable answer to an accepted action: {e}"),
            ),
        }),
    }
}

fn refs(ids: &[String]) -> Vec<ServerRef> {
    ids.iter().map(|id| ServerRef { id: id.clone() }).collect()
}

#[async_trait]
impl EcsApi for HttpEcsClient {
    async fn power(&self, ids: &[String], action: PowerAction) -> Result<String, EcsError> {
        check_batch(ids)?;
        self.act(BatchAction::of(action, refs(ids))).await
    }

    async fn get_job(&self, job_id: &str) -> Result<Job, EcsError> {
        self.get("get-job", &["jobs", job_id], Vec::new()).await
    }

    async fn for_each_server_page(
        &self,
        filter: &ServerFilter,
        on_page: &mut (dyn FnMut(Vec<ServerDetail>) + Send),
    ) -> Result<(), EcsError> {
        let limit = self.page_size;
        let mut received = 0;
        // `offset` is a page number, from 1.
        for page in 1u64.. {
            let mut query = vec![
                ("offset".to_owned(), page.to_string()),
                ("limit".to_owned(), limit.to_string()),
            ];
            if let Some(status) = &filter.status {
                query.push(("status".to_owned(), status.clone()));
            }
            if let Some(name) = &filter.name {
                query.push(("name".to_owned(), name.clone()));
            }
            let list: ServerList = self
                .get("list-servers", &["cloudservers", "detail"], query)
                .await?;
            check_listing_size(list.count)?;
            let page_len = list.servers.len();
            received += page_len;
            on_page(list.servers);
            if listing_complete(page, received, list.count, page_len, limit) {
                break;
            }
        }
        Ok(())
    }
}

/// What the operator's fleets do not need of the API ([`EcsApi`] is theirs).
impl HttpEcsClient {
    /// Batch start; returns the job id.
    pub async fn start_servers(&self, ids: &[String]) -> Result<String, EcsError> {
        self.power(ids, PowerAction::Start).await
    }

    pub async fn get_server(&self, id: &str) -> Result<ServerDetail, EcsError> {
        let show: ShowServer = self
            .get("get-server", &["cloudservers", id], Vec::new())
            .await?;
        Ok(show.server)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("id-{i}")).collect()
    }

    #[test]
    fn batches_are_checked_before_sending() {
        assert!(check_batch(&ids(1)).is_ok());
        assert!(check_batch(&ids(1000)).is_ok());
        assert!(matches!(check_batch(&[]), Err(EcsError::NoServers)));
        assert!(matches!(
            check_batch(&ids(1001)),
            Err(EcsError::TooManyServers {
                count: 1001,
                max: 1000
            })
        ));
        let mut dup = ids(5);
        dup.push("id-3".into());
        assert!(matches!(
            check_batch(&dup),
            Err(EcsError::DuplicateServer { id }) if id == "id-3"
        ));
    }

    #[test]
    fn pagination_stops_at_count_or_short_page() {
        // 2500 servers in pages of 1000: 1000, 2000, then a short page of 500.
        assert!(!listing_complete(1, 1000, 2500, 1000, 1000));
        assert!(!listing_complete(2, 2000, 2500, 1000, 1000));
        assert!(listing_complete(3, 2500, 2500, 500, 1000));
        // Exactly full: count says done, no empty extra page needed.
        assert!(listing_complete(2, 2000, 2000, 1000, 1000));
        // A short page ends it even if count claims more.
        assert!(listing_complete(2, 1999, 5000, 999, 1000));
        // An empty page ends it whatever count says.
        assert!(listing_complete(1, 0, 10, 0, 25));
        assert!(listing_complete(1, 0, 0, 0, 25));
    }

    #[test]
    fn pagination_stops_at_the_pages_count_implies_and_refuses_huge_counts() {
        // Full pages repeating the same servers: received never reaches count, but
        // 2500 servers are 3 pages of 1000.
        assert!(!listing_complete(2, 1000, 2500, 1000, 1000));
        assert!(listing_complete(3, 1000, 2500, 1000, 1000));
        assert!(check_listing_size(MAX_LISTED_SERVERS).is_ok());
        let refused = check_listing_size(1_000_000_000).unwrap_err();
        assert!(matches!(refused, EcsError::TooLarge { .. }));
        assert!(refused.to_string().contains("1000000000"), "{refused}");
        assert!(!refused.is_retryable());
    }

    fn answer(status: u16, body: &str) -> Answer {
        Answer::for_test(status, body)
    }

    #[test]
    fn accepted_without_job_id_is_throttling() {
        assert_eq!(
            job_id_of("os-stop", &answer(200, r#"{"job_id":"ff80"}"#)).unwrap(),
            "ff80"
        );
        let err = job_id_of(
            "os-stop",
            &answer(
                202,
                r#"{"error":{"code":"Common.0024","message":"Flow limit exceeded"}}"#,
            ),
        )
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Throttled);
        assert_eq!(err.failure().unwrap().code.as_deref(), Some("Common.0024"));
        assert_eq!(
            job_id_of("os-stop", &answer(200, "{}")).unwrap_err().kind(),
            ErrorKind::Throttled
        );
        assert_eq!(
            job_id_of("os-stop", &answer(200, "")).unwrap_err().kind(),
            ErrorKind::OutcomeUnknown
        );
    }

    #[test]
    fn a_2xx_job_query_that_failed_is_classified_by_its_code() {
        let err = decode::<Job>(
            "get-job",
            &answer(
                200,
                r#"{"code":"Common.0011","message":"Failed to query system tasks"}"#,
            ),
        )
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Invalid);
        assert_eq!(
            decode::<Job>("get-job", &answer(200, "{trunc"))
                .unwrap_err()
                .kind(),
            ErrorKind::Transient
        );
    }

    #[test]
    fn urls_are_built_under_the_endpoint() {
        let config = EcsClientConfig::new(
            Url::parse("http://127.0.0.1:9/prefix/").unwrap(),
            "0123456789abcdef0123456789abcdef",
            super::super::auth::Credentials::aksk("AK", "SK".to_owned().into()),
        );
        let client = HttpEcsClient::new(config).unwrap();
        assert_eq!(
            client.url(&["cloudservers", "a/b"]).as_str(),
            "http://127.0.0.1:9/prefix/v1/0123456789abcdef0123456789abcdef/cloudservers/a%2Fb"
        );
    }
}
