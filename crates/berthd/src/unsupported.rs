//! What berthd answers for what it does not do (yet), as a dockerd that does not do it would:
//! swarm mode (berth's road to many machines is Kubernetes), and the registry and build
//! endpoints until the registry client and the builder land. A client gets a status and a
//! message that says what is missing, never a 404 "page not found" or a broken pipe.

use std::sync::Arc;

use axum::body::Body;
use axum::http::StatusCode;
use axum::routing::{any, post};
use axum::{Json, Router};
use futures_util::StreamExt;
use serde_json::json;

use crate::api::{ApiError, Daemon};

/// dockerd's words when it is not in a swarm.
const NOT_A_MANAGER: &str = "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.";

/// The routes, merged into the API's router.
pub fn routes() -> Router<Arc<Daemon>> {
    let mut r = Router::new()
        .route("/swarm/leave", post(not_in_a_swarm))
        .route("/build", post(build))
        .route("/build/prune", post(build_prune))
        .route("/images/search", any(search))
        .route("/auth", post(auth));
    for prefix in [
        "/swarm",
        "/nodes",
        "/services",
        "/tasks",
        "/secrets",
        "/configs",
    ] {
        r = r
            .route(prefix, any(not_a_manager))
            .route(&format!("{prefix}/{{*rest}}"), any(not_a_manager));
    }
    r
}

async fn not_a_manager() -> ApiError {
    ApiError(StatusCode::SERVICE_UNAVAILABLE, NOT_A_MANAGER.into())
}

async fn not_in_a_swarm() -> ApiError {
    ApiError(
        StatusCode::SERVICE_UNAVAILABLE,
        "This node is not part of a swarm".into(),
    )
}

/// The error for what needs the registry client (pull, push, login, search).
pub fn no_registry_client(what: &str) -> ApiError {
    ApiError(
        StatusCode::NOT_IMPLEMENTED,
        format!("{what} is not supported by berth yet (it has no registry client): bring images in with `docker load` or `docker import`"),
    )
}

/// Reads a request body to its end, so that the client sees the answer rather than a
/// connection closed under its upload.
async fn drain(body: Body) {
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        if chunk.is_err() {
            break;
        }
    }
}

/// `POST /build`: the context is read first (see [`drain`]).
async fn build(body: Body) -> ApiError {
    drain(body).await;
    ApiError(
        StatusCode::NOT_IMPLEMENTED,
        "building images is not supported by berth yet: bring images in with `docker load` or `docker import`, or build them elsewhere".into(),
    )
}

/// `POST /build/prune`: there is no build cache, so nothing to prune (`docker system prune`
/// asks for it after everything else).
async fn build_prune() -> Json<serde_json::Value> {
    Json(json!({"CachesDeleted": null, "SpaceReclaimed": 0}))
}

async fn search() -> ApiError {
    no_registry_client("searching registries")
}

async fn auth(body: Body) -> ApiError {
    drain(body).await;
    no_registry_client("logging in to a registry")
}
