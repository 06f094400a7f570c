//! The volume endpoints: create, list, inspect, remove, prune.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use berth_engine::filters::{Args, VolumeFilter};
use berth_engine::volumes::VolumeRecord;
use bollard_stubs::models::{Volume, VolumeCreateRequest, VolumeScopeEnum};
use serde::Deserialize;
use serde_json::json;

use crate::api::{ApiResult, Daemon};
use crate::containers::json_body;

fn shape(v: VolumeRecord) -> Volume {
    Volume {
        name: v.name,
        driver: v.driver,
        mountpoint: v.mountpoint.to_string_lossy().into_owned(),
        created_at: Some(v.created_at),
        labels: v.labels,
        scope: Some(VolumeScopeEnum::LOCAL),
        options: HashMap::new(),
        ..Default::default()
    }
}

/// `POST /volumes/create`.
pub async fn create(
    State(d): State<Arc<Daemon>>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Volume>)> {
    let req: VolumeCreateRequest = if body.is_empty() {
        VolumeCreateRequest::default()
    } else {
        json_body(&body)?
    };
    let v = d.engine.volume_create(
        req.name.as_deref(),
        req.driver.as_deref(),
        &req.driver_opts.unwrap_or_default(),
        req.labels.unwrap_or_default(),
    )?;
    Ok((StatusCode::CREATED, Json(shape(v))))
}

#[derive(Deserialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    filters: Option<String>,
}

/// `GET /volumes` (filters: dangling, driver, label, name).
pub async fn list(
    State(d): State<Arc<Daemon>>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    let filter = VolumeFilter::list(Args::from_json(q.filters.as_deref().unwrap_or(""))?)?;
    let vols: Vec<Volume> = d
        .engine
        .volume_list()
        .into_iter()
        .filter(|v| filter.matches(v, || !d.engine.volume_users(&v.name).is_empty()))
        .map(shape)
        .collect();
    Ok(Json(json!({"Volumes": vols, "Warnings": []})))
}

/// `GET /volumes/{name}`.
pub async fn inspect(
    State(d): State<Arc<Daemon>>,
    Path(name): Path<String>,
) -> ApiResult<Json<Volume>> {
    Ok(Json(shape(d.engine.volume_inspect(&name)?)))
}

#[derive(Deserialize, Default)]
pub struct RemoveQuery {
    #[serde(default)]
    force: Option<String>,
}

/// `DELETE /volumes/{name}`.
pub async fn remove(
    State(d): State<Arc<Daemon>>,
    Path(name): Path<String>,
    Query(q): Query<RemoveQuery>,
) -> ApiResult<StatusCode> {
    let force = matches!(q.force.as_deref(), Some("1" | "true"));
    d.engine.volume_remove(&name, force)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /volumes/prune` (unused anonymous volumes; all unused ones with the `all=true`
/// filter; `label`, `label!`).
pub async fn prune(
    State(d): State<Arc<Daemon>>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    let filter = VolumeFilter::prune(Args::from_json(q.filters.as_deref().unwrap_or(""))?)?;
    let (removed, freed) = d.engine.volume_prune(&filter)?;
    Ok(Json(
        json!({"VolumesDeleted": removed, "SpaceReclaimed": freed}),
    ))
}
