//! `/events` (streamed, with Docker's filters) and `/system/df`.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use berth_engine::filters::{Args, EventFilter};
use berth_engine::Event;
use bollard_stubs::models::{
    EventActor, EventMessage, EventMessageScopeEnum, EventMessageTypeEnum,
};
use serde::Deserialize;
use serde_json::json;

use crate::api::{ApiError, ApiResult, Daemon};
use crate::containers::parse_time;

#[derive(Deserialize, Default)]
pub struct EventsQuery {
    #[serde(default)]
    since: Option<String>,
    #[serde(default)]
    until: Option<String>,
    #[serde(default)]
    filters: Option<String>,
}

fn message(e: &Event) -> Bytes {
    let m = EventMessage {
        typ: e.typ.parse::<EventMessageTypeEnum>().ok(),
        action: Some(e.action.clone()),
        actor: Some(EventActor {
            id: Some(e.id.clone()),
            attributes: Some(e.attributes.clone()),
        }),
        scope: Some(EventMessageScopeEnum::LOCAL),
        time: Some(e.time_nano / 1_000_000_000),
        time_nano: Some(e.time_nano),
    };
    // Docker still sends the old top-level fields; older clients read them.
    let mut v = serde_json::to_value(&m).unwrap_or_default();
    if e.typ == "container" {
        v["status"] = json!(e.action);
        v["id"] = json!(e.id);
        v["from"] = json!(e.attributes.get("image"));
    } else if e.typ == "image" {
        v["status"] = json!(e.action);
        if !e.id.is_empty() {
            v["id"] = json!(e.id);
        }
    }
    let mut line = serde_json::to_vec(&v).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

/// `GET /events`: past events from `since`, then live ones until `until` (or forever).
pub async fn events(
    State(d): State<Arc<Daemon>>,
    Query(q): Query<EventsQuery>,
) -> ApiResult<Response> {
    let filter = EventFilter::new(Args::from_json(q.filters.as_deref().unwrap_or(""))?)?;
    let since = parse_time(&q.since)?;
    let until = parse_time(&q.until)?;
    let (past, rx) = d.engine.subscribe(since);
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
    let past: Vec<Result<Bytes, std::convert::Infallible>> = past
        .into_iter()
        .filter(|e| filter.include(e) && until.is_none_or(|u| e.time_nano <= u))
        .map(|e| Ok(message(&e)))
        .collect();
    let deadline = until.map(|u| {
        tokio::time::Instant::now()
            + std::time::Duration::from_nanos(u.saturating_sub(now).max(0) as u64)
    });
    let live = futures_util::stream::unfold(rx, move |mut rx| {
        let filter = filter.clone();
        async move {
            loop {
                let next = match deadline {
                    Some(t) => match tokio::time::timeout_at(t, rx.recv()).await {
                        Ok(r) => r,
                        Err(_) => return None,
                    },
                    None => rx.recv().await,
                };
                match next {
                    Ok(e) if filter.include(&e) => return Some((Ok(message(&e)), rx)),
                    Ok(_) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => return None,
                }
            }
        }
    });
    let stream = futures_util::StreamExt::chain(futures_util::stream::iter(past), live);
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response())
}

/// Each image's `SharedSize`: the bytes of its layers that another image uses too (what
/// removing it alone would not free), as dockerd computes it for `system df`.
fn shared_sizes(
    d: &Daemon,
    images: &mut [bollard_stubs::models::ImageSummary],
) -> Result<(), berth_image::store::StoreError> {
    let records = d.images.images()?;
    let mut users: std::collections::HashMap<&berth_image::Digest, usize> = Default::default();
    for r in &records {
        for c in &r.chain {
            *users.entry(c).or_default() += 1;
        }
    }
    for summary in images.iter_mut() {
        summary.shared_size = records
            .iter()
            .find(|r| r.id.to_string() == summary.id)
            .map_or(0, |r| {
                r.chain
                    .iter()
                    .filter(|c| users.get(c).is_some_and(|n| *n > 1))
                    .map(|c| d.images.snapshots().size(c) as i64)
                    .sum()
            });
    }
    Ok(())
}

/// `GET /system/df`: what images, containers and volumes take on disk.
pub async fn df(State(d): State<Arc<Daemon>>) -> ApiResult<Json<serde_json::Value>> {
    let v = tokio::task::spawn_blocking(move || -> ApiResult<serde_json::Value> {
        let mut images = crate::api::image_summaries(&d).map_err(ApiError::from)?;
        shared_sizes(&d, &mut images).map_err(ApiError::from)?;
        let layers: i64 = images.iter().map(|i| i.size).sum();
        let mut containers = Vec::new();
        for r in d.engine.list() {
            let mut s = serde_json::to_value(crate::containers::summary(&r)).unwrap_or_default();
            let (rw, root) = crate::containers::sizes(&d, &r)?;
            s["SizeRw"] = json!(rw);
            s["SizeRootFs"] = json!(root);
            containers.push(s);
        }
        let volumes: Vec<serde_json::Value> = d
            .engine
            .volume_list()
            .into_iter()
            .map(|v| {
                json!({
                    "Name": v.name, "Driver": v.driver, "Mountpoint": v.mountpoint,
                    "CreatedAt": v.created_at, "Labels": v.labels, "Scope": "local",
                    "Options": {},
                    "UsageData": {
                        "Size": berth_engine::volumes::dir_size(&v.mountpoint),
                        "RefCount": d.engine.volume_users(&v.name).len(),
                    },
                })
            })
            .collect();
        Ok(json!({
            "LayersSize": layers,
            "Images": images,
            "Containers": containers,
            "Volumes": volumes,
            "BuildCache": [],
        }))
    })
    .await
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    Ok(Json(v))
}
