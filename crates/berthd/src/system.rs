//! `/events` (streamed, with Docker's filters) and `/system/df`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use berth_engine::Event;
use bollard_stubs::models::{
    EventActor, EventMessage, EventMessageScopeEnum, EventMessageTypeEnum,
};
use serde::Deserialize;
use serde_json::json;

use crate::api::{ApiError, ApiResult, Daemon};
use crate::containers::{parse_filters, parse_time};

#[derive(Deserialize, Default)]
pub struct EventsQuery {
    #[serde(default)]
    since: Option<String>,
    #[serde(default)]
    until: Option<String>,
    #[serde(default)]
    filters: Option<String>,
}

fn wanted(e: &Event, f: &HashMap<String, Vec<String>>) -> bool {
    f.iter().all(|(k, vals)| {
        vals.is_empty()
            || vals.iter().any(|v| match k.as_str() {
                "type" => e.typ == v,
                "event" => e.action == *v || e.action.starts_with(&format!("{v}:")),
                "container" => {
                    e.typ == "container"
                        && (e.id.starts_with(v.as_str())
                            || e.attributes.get("name").is_some_and(|n| n == v))
                }
                "volume" => e.typ == "volume" && e.id == *v,
                "image" => image_matches(e, v),
                "label" => {
                    crate::containers::label_matches(|k| e.attributes.get(k).map(String::as_str), v)
                }
                _ => true,
            })
    })
}

/// dockerd's `image=` filter: a container event's image, an image event's ID or name, with
/// or without the tag.
fn image_matches(e: &Event, v: &str) -> bool {
    // An ID's "sha256:" is not a tag.
    let strip = |n: &str| match n.rfind(':') {
        Some(i) if !n[i..].contains('/') && !n.starts_with("sha256:") => n[..i].to_string(),
        _ => n.to_string(),
    };
    let attr = if e.typ == "image" { "name" } else { "image" };
    let name = e.attributes.get(attr).map(String::as_str).unwrap_or("");
    let id = if e.typ == "image" { e.id.as_str() } else { "" };
    [name, id]
        .into_iter()
        .filter(|n| !n.is_empty())
        .any(|n| n == v || strip(n) == v)
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
    let filters = parse_filters(q.filters.as_deref().unwrap_or(""))?;
    let since = parse_time(&q.since)?;
    let until = parse_time(&q.until)?;
    let (past, rx) = d.engine.subscribe(since);
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
    let f2 = filters.clone();
    let past: Vec<Result<Bytes, std::convert::Infallible>> = past
        .into_iter()
        .filter(|e| wanted(e, &f2) && until.is_none_or(|u| e.time_nano <= u))
        .map(|e| Ok(message(&e)))
        .collect();
    let deadline = until.map(|u| {
        tokio::time::Instant::now()
            + std::time::Duration::from_nanos(u.saturating_sub(now).max(0) as u64)
    });
    let live = futures_util::stream::unfold(rx, move |mut rx| {
        let filters = filters.clone();
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
                    Ok(e) if wanted(&e, &filters) => return Some((Ok(message(&e)), rx)),
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

/// `GET /system/df`: what images, containers and volumes take on disk.
pub async fn df(State(d): State<Arc<Daemon>>) -> ApiResult<Json<serde_json::Value>> {
    let v = tokio::task::spawn_blocking(move || -> ApiResult<serde_json::Value> {
        let images = crate::api::image_summaries(&d).map_err(ApiError::from)?;
        let layers: i64 = images.iter().map(|i| i.size).sum();
        let mut containers = Vec::new();
        for r in d.engine.list() {
            let dir = d.engine.container_dir(&r.id)?;
            let mut s = serde_json::to_value(crate::containers::summary(&r)).unwrap_or_default();
            s["SizeRw"] = json!(berth_engine::volumes::dir_size(&dir.join("diff")));
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
