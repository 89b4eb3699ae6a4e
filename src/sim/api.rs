//! The HTTP face: an API-gateway layer (request id, latency, authentication, project
//! check, rate limit, injected errors) in front of the four ECS operations.

use super::connection::Connection;
use super::failure::{Failure, invalid_parameter, not_found};
use super::listing::ListQuery;
use super::render::{ServerJson, ServerPage, ShowServer};
use super::state::{Answer, Listed};
use super::{MAX_CLOCK_SKEW, Sim, admin};
use crate::ecs::sign::{self, DateCheck, RequestParts};
use crate::ecs::wire::{BatchAction, EcsErrorBody, EcsErrorDetail, GatewayErrorBody, JobAccepted};
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, MatchedPath, Path, RawQuery, Request, State};
use axum::http::{HeaderValue, StatusCode, request};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use secrecy::ExposeSecret;
use std::sync::Arc;
use std::time::Duration;
use subtle::ConstantTimeEq;

/// Far above the largest legal body (1000 ids is about 50 KB).
const MAX_BODY_BYTES: usize = 4 << 20;

pub(super) fn router(sim: Arc<Sim>) -> Router {
    let api = Router::new()
        .route("/v1/{project_id}/cloudservers/action", post(batch_action))
        .route("/v1/{project_id}/cloudservers/detail", get(list_servers))
        .route(
            "/v1/{project_id}/cloudservers/{server_id}",
            get(show_server),
        )
        .route("/v1/{project_id}/jobs/{job_id}", get(show_job))
        .fallback(no_such_api)
        .layer(middleware::from_fn_with_state(sim.clone(), gateway));
    api.nest("/_sim", admin::router())
        .layer(middleware::from_fn(request_id))
        .with_state(sim)
}

/// The id every response carries in `X-Request-Id`; gateway bodies repeat it.
#[derive(Debug, Clone)]
struct RequestId(String);

async fn request_id(mut req: Request, next: Next) -> Response {
    let id = uuid::Uuid::new_v4().simple().to_string();
    req.extensions_mut().insert(RequestId(id.clone()));
    let mut response = next.run(req).await;
    response.headers_mut().insert(
        "x-request-id",
        HeaderValue::from_str(&id).expect("hex is a valid header value"),
    );
    response
}

/// Name of the operation for the request counters.
fn operation(matched: Option<&MatchedPath>) -> &'static str {
    match matched.map(MatchedPath::as_str) {
        Some("/v1/{project_id}/cloudservers/action") => "batch_action",
        Some("/v1/{project_id}/cloudservers/detail") => "list_servers",
        Some("/v1/{project_id}/cloudservers/{server_id}") => "show_server",
        Some("/v1/{project_id}/jobs/{job_id}") => "show_job",
        _ => "unknown",
    }
}

async fn gateway(
    State(sim): State<Arc<Sim>>,
    matched: Option<MatchedPath>,
    Extension(request_id): Extension<RequestId>,
    req: Request,
    next: Next,
) -> Response {
    let operation = operation(matched.as_ref());
    let latency_ms = sim.state().0.faults.latency_ms;
    if latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(latency_ms)).await;
    }
    let (parts, body) = req.into_parts();
    // The signature covers the exact body bytes, so the gateway reads them first.
    let response = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Err(error) => ecs_error(&invalid_parameter(error)),
        Ok(bytes) => match admit(&sim, &parts, &bytes, &request_id) {
            Some(refusal) => refusal,
            None => {
                next.run(Request::from_parts(parts, Body::from(bytes)))
                    .await
            }
        },
    };
    if response.extensions().get::<Unanswered>().is_none() {
        sim.counters()
            .request(operation, response.status().as_u16());
    }
    response
}

/// Marks the response of a reset connection: it never reaches the client.
#[derive(Debug, Clone, Copy)]
struct Unanswered;

/// The gateway's checks in the real order: who is calling, for which project,
/// how fast; then the injected server errors. `None` lets the request through.
fn admit(
    sim: &Sim,
    parts: &request::Parts,
    body: &[u8],
    request_id: &RequestId,
) -> Option<Response> {
    if let Err(why) = authenticate(sim, parts, body) {
        sim.counters().signature_failure();
        tracing::debug!(%why, path = parts.uri.path(), "refused authentication");
        return Some(gateway_error(
            StatusCode::UNAUTHORIZED,
            "APIGW.0301",
            why,
            request_id,
        ));
    }
    if let Some(refusal) = project_mismatch(sim, parts) {
        return Some(ecs_error(&refusal));
    }
    let (mut state, now) = sim.state();
    if !state.take_request_token(now) {
        let limit = state.faults.throttle_rps.unwrap_or_default();
        drop(state);
        sim.counters().rate_limited();
        return Some(gateway_error(
            StatusCode::TOO_MANY_REQUESTS,
            "APIGW.0308",
            format!(
                "The throttling threshold has been reached: policy user over ratelimit,limit:{limit},time:1 second"
            ),
            request_id,
        ));
    }
    let error_rate = state.faults.error_rate;
    if state.chance(error_rate) {
        drop(state);
        sim.counters().injected_error();
        return Some(ecs_error(&Failure::new(
            500,
            "Common.0001",
            "A system exception occurred. Try again later or contact customer service.",
        )));
    }
    None
}

/// `X-Auth-Token` when a token is configured, else an SDK-HMAC-SHA256 signature.
fn authenticate(sim: &Sim, parts: &request::Parts, body: &[u8]) -> Result<(), String> {
    if let Some(token) = parts.headers.get("x-auth-token") {
        return match &sim.token {
            Some(expected)
                if bool::from(expected.expose_secret().as_bytes().ct_eq(token.as_bytes())) =>
            {
                Ok(())
            }
            _ => Err("Incorrect IAM authentication information: the token is invalid".into()),
        };
    }
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .filter_map(|(name, value)| {
            let value = value.to_str().ok()?;
            Some((name.as_str().to_owned(), value.to_owned()))
        })
        .collect();
    let query = sign::parse_query(parts.uri.query().unwrap_or_default());
    let request = RequestParts {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: &query,
        headers: &headers,
        body,
    };
    let date_check = DateCheck {
        now: jiff::Timestamp::now(),
        max_skew: MAX_CLOCK_SKEW,
    };
    sign::verify(&request, Some(date_check), |access_key| {
        (access_key == sim.access_key).then(|| sim.secret_key.clone())
    })
    .map(drop)
    .map_err(|e| {
        format!("Incorrect IAM authentication information: verify aksk signature fail: {e}")
    })
}

/// A path (or `X-Project-Id`) naming another project than the simulator's.
fn project_mismatch(sim: &Sim, parts: &request::Parts) -> Option<Failure> {
    let in_path = parts.uri.path().strip_prefix("/v1/")?.split('/').next();
    let in_header = parts
        .headers
        .get("x-project-id")
        .map(|v| v.to_str().unwrap_or_default());
    let wrong = |p: Option<&str>| p.is_some_and(|p| p != sim.project_id);
    (wrong(in_path) || wrong(in_header)).then(|| {
        Failure::new(
            400,
            "Ecs.0023",
            "project_id in token mismatches with project_id in url.",
        )
    })
}

fn ecs_error(failure: &Failure) -> Response {
    let status =
        StatusCode::from_u16(failure.http).expect("failures carry valid HTTP status codes");
    let body = EcsErrorBody {
        error: EcsErrorDetail {
            code: failure.code.to_owned(),
            message: failure.message.clone(),
            details: None,
        },
    };
    (status, Json(body)).into_response()
}

fn gateway_error(
    status: StatusCode,
    code: &str,
    message: impl Into<String>,
    request_id: &RequestId,
) -> Response {
    let body = GatewayErrorBody {
        error_code: code.to_owned(),
        error_msg: message.into(),
        request_id: Some(request_id.0.clone()),
    };
    (status, Json(body)).into_response()
}

async fn no_such_api(Extension(request_id): Extension<RequestId>) -> Response {
    gateway_error(
        StatusCode::NOT_FOUND,
        "APIGW.0101",
        "The API does not exist or has not been published in the environment",
        &request_id,
    )
}

async fn batch_action(
    State(sim): State<Arc<Sim>>,
    ConnectInfo(connection): ConnectInfo<Connection>,
    Extension(request_id): Extension<RequestId>,
    body: Bytes,
) -> Response {
    if body.trim_ascii().is_empty() {
        return ecs_error(&Failure::new(
            400,
            "Common.0002",
            "The request body cannot be left blank.",
        ));
    }
    let action: BatchAction = match serde_json::from_slice(&body) {
        Ok(action) => action,
        Err(error) => return ecs_error(&invalid_parameter(error)),
    };
    let (operation, ids) = (action.operation(), action.servers().len());
    sim.counters().action(operation, ids);
    let submitted = {
        let (mut state, now) = sim.state();
        state.submit(&action, now).map(|accepted| {
            let answer = state.draw_answer();
            if answer != Answer::Accepted {
                state.answer_lost(&accepted.job_id);
            }
            (accepted, answer, state.faults.answer_delay_ms)
        })
    };
    match submitted {
        Ok((accepted, answer, delay_ms)) => {
            sim.counters().accepted(operation, ids, &accepted, answer);
            if delay_ms > 0 {
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            }
            match answer {
                Answer::Accepted => Json(JobAccepted {
                    job_id: Some(accepted.job_id),
                })
                .into_response(),
                // The gateway gave up waiting: its own body, no ECS code.
                Answer::GatewayTimeout => gateway_error(
                    StatusCode::GATEWAY_TIMEOUT,
                    "APIG.0201",
                    "Backend timeout.",
                    &request_id,
                ),
                Answer::Dropped => {
                    connection.reset();
                    let mut response = StatusCode::NO_CONTENT.into_response();
                    response.extensions_mut().insert(Unanswered);
                    response
                }
            }
        }
        Err(failure) => {
            if failure.http == StatusCode::TOO_MANY_REQUESTS.as_u16() {
                sim.counters().budget_refusal();
            }
            ecs_error(&failure)
        }
    }
}

async fn show_job(
    State(sim): State<Arc<Sim>>,
    Path((_, job_id)): Path<(String, String)>,
) -> Response {
    let job = sim.state().0.job(&job_id);
    match job {
        Some(job) => Json(job).into_response(),
        None => ecs_error(&Failure::new(
            400,
            "Common.0011",
            "Failed to query system tasks.",
        )),
    }
}

async fn show_server(
    State(sim): State<Arc<Sim>>,
    Path((_, server_id)): Path<(String, String)>,
) -> Response {
    let server = sim.state().0.server(&server_id);
    match server {
        Some(server) => Json(ShowServer {
            server: ServerJson::of(&server, &sim.profile),
        })
        .into_response(),
        None => ecs_error(&not_found()),
    }
}

async fn list_servers(State(sim): State<Arc<Sim>>, RawQuery(raw): RawQuery) -> Response {
    let listing = ListQuery::parse(raw.as_deref().unwrap_or_default())
        .and_then(|query| sim.state().0.list(&query));
    let listing = match listing {
        Ok(listing) => listing,
        Err(failure) => return ecs_error(&failure),
    };
    let now = jiff::Timestamp::now();
    let servers = listing
        .entries
        .iter()
        .map(|entry| match entry {
            Listed::Server(server) => ServerJson::of(server, &sim.profile),
            Listed::Missing(id) => ServerJson::missing(id, now),
        })
        .collect();
    Json(ServerPage {
        count: listing.count,
        servers,
    })
    .into_response()
}
