//! `/_sim/`: the unsigned admin surface, a thin HTTP skin over [`SimControl`] so the
//! in-process and the out-of-process controls cannot behave differently.

use super::{FaultsPatch, Sim, SimControl, SimError, Status};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

pub(super) fn router() -> Router<Arc<Sim>> {
    Router::new()
        .route("/stats", get(stats))
        .route("/faults", get(faults).post(set_faults))
        .route("/servers", get(server_ids).post(add_servers))
        .route("/jobs", get(jobs))
        .route("/servers/{id}/status", get(status).post(set_status))
        .route("/servers/{id}/lock", post(set_locked))
        .route("/servers/{id}/name", post(set_name))
        .route("/servers/{id}/tags", post(set_tags))
}

fn control(sim: Arc<Sim>) -> SimControl {
    SimControl { sim }
}

fn admin_result(result: Result<(), SimError>) -> Response {
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => {
            let status = match error {
                SimError::UnknownServer(_) => StatusCode::NOT_FOUND,
                _ => StatusCode::BAD_REQUEST,
            };
            (status, Json(json!({"error": error.to_string()}))).into_response()
        }
    }
}

/// Every server id in creation order, so a demo or a script can write a policy.
async fn server_ids(State(sim): State<Arc<Sim>>) -> Response {
    Json(json!({ "ids": sim.state().0.server_ids() })).into_response()
}

async fn stats(State(sim): State<Arc<Sim>>) -> Response {
    Json(sim.stats()).into_response()
}

async fn faults(State(sim): State<Arc<Sim>>) -> Response {
    Json(control(sim).faults()).into_response()
}

async fn set_faults(State(sim): State<Arc<Sim>>, Json(patch): Json<FaultsPatch>) -> Response {
    Json(control(sim).set_faults(patch)).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddServers {
    count: usize,
}

async fn add_servers(State(sim): State<Arc<Sim>>, Json(body): Json<AddServers>) -> Response {
    Json(json!({"ids": control(sim).add_servers(body.count)})).into_response()
}

async fn jobs(State(sim): State<Arc<Sim>>) -> Response {
    Json(json!({ "jobs": control(sim).jobs() })).into_response()
}

async fn status(State(sim): State<Arc<Sim>>, Path(id): Path<String>) -> Response {
    match control(sim).status(&id) {
        Ok(status) => Json(json!({ "status": status })).into_response(),
        Err(error) => admin_result(Err(error)),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetStatus {
    status: Status,
}

async fn set_status(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
    Json(body): Json<SetStatus>,
) -> Response {
    admin_result(control(sim).set_status(&id, body.status))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetLocked {
    locked: bool,
}

async fn set_locked(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
    Json(body): Json<SetLocked>,
) -> Response {
    admin_result(control(sim).set_locked(&id, body.locked))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetName {
    name: String,
}

async fn set_name(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
    Json(body): Json<SetName>,
) -> Response {
    admin_result(control(sim).set_name(&id, &body.name))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetTags {
    tags: Vec<String>,
}

async fn set_tags(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
    Json(body): Json<SetTags>,
) -> Response {
    admin_result(control(sim).set_tags(&id, &body.tags))
}
