//! The Docker Engine API, the part that exists so far: `_ping`, `version`, `info`, and the
//! image endpoints (list, inspect, history, tag, delete, load, get). Response bodies use
//! bollard's models of the API, so their shape is Docker's, not ours.
//!
//! Paths are accepted with or without a version prefix (`/v1.24/...` up to
//! [`API_VERSION`]), as dockerd does; the prefix is stripped before routing. The image store is
//! blocking file-system code, so each call runs on tokio's blocking pool.

use std::collections::HashSet;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use berth_engine::filters::{Args, ImageList, ImagePrune};
use berth_image::store::{ImageStore, StoreError};
use berth_image::{Digest, Reference};
use bollard_stubs::models::{ImageDeleteResponseItem, ImageSummary, SystemVersion};
use futures_util::TryStreamExt;
use serde_json::json;

use crate::{containers, networks, system, volumes};

/// The Engine API version berthd speaks.
pub const API_VERSION: &str = "1.44";
/// The oldest version clients may ask for.
pub const MIN_API_VERSION: &str = "1.24";

/// What the handlers share.
pub struct Daemon {
    /// The image store.
    pub images: Arc<ImageStore>,
    /// Containers.
    pub engine: Arc<berth_engine::Engine>,
}

/// The router, wrapped so that version prefixes are stripped before routing.
pub fn app(daemon: Arc<Daemon>) -> axum::Router {
    let routes = Router::new()
        .merge(crate::unsupported::routes())
        .route("/_ping", get(ping).head(ping))
        .route("/version", get(version))
        .route("/info", get(info))
        .route("/events", get(system::events))
        .route("/system/df", get(system::df))
        .route("/networks", get(networks::list))
        .route("/networks/create", post(networks::create))
        .route("/networks/prune", post(networks::prune))
        .route(
            "/networks/{id}",
            get(networks::inspect).delete(networks::remove),
        )
        .route("/networks/{id}/connect", post(networks::connect))
        .route("/networks/{id}/disconnect", post(networks::disconnect))
        .route("/volumes", get(volumes::list))
        .route("/volumes/create", post(volumes::create))
        .route("/volumes/prune", post(volumes::prune))
        .route(
            "/volumes/{name}",
            get(volumes::inspect).delete(volumes::remove),
        )
        .route("/images/json", get(list_images))
        .route("/images/load", post(load_images))
        .route("/images/create", post(create_image))
        .route("/images/prune", post(prune_images))
        .route("/images/get", get(get_images))
        .route("/containers/create", post(containers::create))
        .route("/containers/json", get(containers::list))
        .route("/containers/prune", post(containers::prune))
        .route("/containers/{id}/stats", get(containers::stats))
        .route("/containers/{id}/json", get(containers::inspect))
        .route("/containers/{id}/start", post(containers::start))
        .route("/containers/{id}/stop", post(containers::stop))
        .route("/containers/{id}/restart", post(containers::restart))
        .route("/containers/{id}/kill", post(containers::kill))
        .route("/containers/{id}/pause", post(containers::pause))
        .route("/containers/{id}/unpause", post(containers::unpause))
        .route("/containers/{id}/rename", post(containers::rename))
        .route("/containers/{id}/wait", post(containers::wait))
        .route("/containers/{id}/resize", post(containers::resize))
        .route("/containers/{id}/attach", post(containers::attach))
        .route("/containers/{id}/logs", get(containers::logs))
        .route("/containers/{id}/top", get(containers::top))
        .route("/containers/{id}/changes", get(containers::changes))
        .route("/containers/{id}/update", post(containers::update))
        .route("/containers/{id}/export", get(containers::export))
        .route("/commit", post(containers::commit))
        .route(
            "/containers/{id}/archive",
            get(containers::archive_get)
                .head(containers::archive_head)
                .put(containers::archive_put),
        )
        .route("/containers/{id}/exec", post(containers::exec_create))
        .route("/exec/{id}/start", post(containers::exec_start))
        .route("/exec/{id}/json", get(containers::exec_inspect))
        .route("/exec/{id}/resize", post(containers::exec_resize))
        // `docker rm --link /web/db` sends the link's name unescaped.
        .route(
            "/containers/{parent}/{alias}",
            axum::routing::delete(containers::remove_link),
        )
        .route(
            "/containers/{id}",
            axum::routing::delete(containers::remove),
        )
        .route(
            "/images/{*rest}",
            get(image_get).delete(image_delete).post(image_post),
        )
        .fallback(not_found)
        .with_state(daemon);
    Router::new()
        .fallback_service(routes)
        .layer(axum::middleware::from_fn(version_gate))
}

/// A `major.minor` API version.
fn parse_version(v: &str) -> Option<(u32, u32)> {
    let (major, minor) = v.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// Refuses a version prefix outside what berthd speaks, with dockerd's 400 and words, then
/// strips it for routing.
async fn version_gate(req: Request, next: axum::middleware::Next) -> Response {
    let asked = req
        .uri()
        .path()
        .strip_prefix("/v")
        .and_then(|rest| rest.split_once('/'))
        .map(|(v, _)| v.to_string())
        .filter(|v| parse_version(v).is_some());
    if let Some(v) = asked {
        let version = parse_version(&v);
        if version > parse_version(API_VERSION) {
            return ApiError(
                StatusCode::BAD_REQUEST,
                format!(
                    "client version {v} is too new. Maximum supported API version is {API_VERSION}"
                ),
            )
            .into_response();
        }
        if version < parse_version(MIN_API_VERSION) {
            return ApiError(
                StatusCode::BAD_REQUEST,
                format!("client version {v} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"),
            )
            .into_response();
        }
    }
    as_docker_error(next.run(strip_version(req)).await).await
}

/// A request axum's extractors refused (a query value of the wrong type, a method a route
/// does not take) gets a plain-text answer in axum's words; clients read Docker's
/// `{"message": ...}`. Such answers are rewritten, in words of our own; everything else
/// passes untouched.
async fn as_docker_error(r: Response) -> Response {
    let status = r.status();
    let plain = r
        .headers()
        .get(header::CONTENT_TYPE)
        .is_none_or(|t| t.as_bytes().starts_with(b"text/plain"));
    if !(status.is_client_error() || status.is_server_error()) || !plain {
        return r;
    }
    let body = axum::body::to_bytes(r.into_body(), 64 << 10)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&body);
    let detail = text
        .trim()
        .trim_start_matches("Failed to deserialize query string: ")
        .trim_start_matches("Failed to deserialize the JSON body into the target type: ");
    let message = match status {
        StatusCode::METHOD_NOT_ALLOWED => "method not allowed on this path".to_string(),
        _ if detail.is_empty() => status
            .canonical_reason()
            .unwrap_or("bad request")
            .to_string(),
        _ => format!("invalid request parameters: {detail}"),
    };
    ApiError(status, message).into_response()
}

/// `/v1.44/images/json` -> `/images/json`. Logs each request at debug level as dockerd does
/// (`Calling POST /v1.44/containers/create`).
fn strip_version(mut req: Request) -> Request {
    tracing::debug!("Calling {} {}", req.method(), req.uri().path());
    let path = req.uri().path();
    if let Some(rest) = path.strip_prefix("/v") {
        if let Some(slash) = rest.find('/') {
            let v = &rest[..slash];
            if parse_version(v).is_some() {
                let new_path = rest[slash..].to_string();
                let pq = match req.uri().query() {
                    Some(q) => format!("{new_path}?{q}"),
                    None => new_path,
                };
                if let Ok(uri) = pq.parse::<Uri>() {
                    *req.uri_mut() = uri;
                }
            }
        }
    }
    req
}

/// An error as Docker returns it: a status and `{"message": ...}`.
pub struct ApiError(pub StatusCode, pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"message": self.1}))).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let status = match &e {
            StoreError::NoSuchImage(_) => StatusCode::NOT_FOUND,
            StoreError::Conflict { .. } | StoreError::Ambiguous(_) => StatusCode::CONFLICT,
            StoreError::Reference(_) | StoreError::Archive(_) | StoreError::Manifest(_) => {
                StatusCode::BAD_REQUEST
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(status, chain(&e))
    }
}

pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    s
}

/// Handler results.
pub type ApiResult<T> = Result<T, ApiError>;

/// Runs blocking store code off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(ApiError::from)
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError(
        StatusCode::NOT_FOUND,
        format!("page not found: {}", uri.path()),
    )
}

async fn ping() -> Response {
    let mut r = "OK".into_response();
    let h = r.headers_mut();
    h.insert("Api-Version", HeaderValue::from_static(API_VERSION));
    h.insert("Docker-Experimental", HeaderValue::from_static("false"));
    h.insert("Ostype", HeaderValue::from_static("linux"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    r
}

async fn version() -> Json<SystemVersion> {
    let (os, arch) = berth_image::manifest::host_platform();
    let kernel = rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned();
    Json(SystemVersion {
        version: Some(env!("CARGO_PKG_VERSION").into()),
        api_version: Some(API_VERSION.into()),
        min_api_version: Some(MIN_API_VERSION.into()),
        os: Some(os.into()),
        arch: Some(arch.into()),
        kernel_version: Some(kernel),
        experimental: Some(false),
        // The docker CLI prints this as "Go version"; berthd's honest equivalent.
        go_version: Some(env!("BERTHD_RUSTC_VERSION").into()),
        platform: Some(bollard_stubs::models::SystemVersionPlatform {
            name: "berth".into(),
        }),
        ..Default::default()
    })
}

async fn info(State(d): State<Arc<Daemon>>) -> ApiResult<Json<serde_json::Value>> {
    let images = blocking({
        let d = d.clone();
        move || d.images.images()
    })
    .await?
    .len();
    let (os, _) = berth_image::manifest::host_platform();
    let all = d.engine.list();
    let count = |s: berth_engine::Status| all.iter().filter(|c| c.state.status == s).count();
    let running = count(berth_engine::Status::Running);
    let paused = count(berth_engine::Status::Paused);
    let uname = rustix::system::uname();
    let os_name = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_else(|| "Linux".into());
    let mem_total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024);
    let cfg = d.engine.config();
    Ok(Json(json!({
        "ID": "berth",
        "Containers": all.len(), "ContainersRunning": running, "ContainersPaused": paused,
        "ContainersStopped": all.len() - running - paused,
        "Images": images,
        "Driver": "overlay",
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": if d.engine.cgroup_v2() { "2" } else { "1" },
        "DefaultRuntime": berth_engine::DEFAULT_RUNTIME,
        "Runtimes": {berth_engine::DEFAULT_RUNTIME: {"path": cfg.runtime}},
        "InitBinary": cfg.init_path.as_ref().map(|p| p.to_string_lossy().into_owned()).unwrap_or_default(),
        "KernelVersion": uname.release().to_string_lossy(),
        "OperatingSystem": os_name,
        "OSType": os,
        "Architecture": uname.machine().to_string_lossy(),
        "NCPU": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "MemTotal": mem_total,
        "DockerRootDir": cfg.root,
        "ServerVersion": env!("CARGO_PKG_VERSION"),
        "Name": uname.nodename().to_string_lossy(),
        // Every container gets Docker's default seccomp profile unless told otherwise.
        "SecurityOptions": ["name=seccomp,profile=builtin"],
        // Containers run under monitors of their own and survive berthd (always on).
        "LiveRestoreEnabled": true,
        "ExperimentalBuild": false,
        "Debug": tracing::enabled!(tracing::Level::DEBUG),
        // berth does not do swarm mode (Kubernetes is its road to many machines).
        "Swarm": {
            "NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive",
            "ControlAvailable": false, "Error": "", "RemoteManagers": null,
        },
        "Warnings": [],
    })))
}

fn short_tags(tags: &[Reference]) -> Vec<String> {
    tags.iter().map(|t| t.familiar()).collect()
}

fn created_unix(created: Option<&String>) -> i64 {
    created
        .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
        .map_or(0, |t| t.timestamp())
}

/// `GET /images/json?filters=` (`before`, `dangling`, `label`, `reference`, `since`,
/// `until`).
async fn list_images(State(d): State<Arc<Daemon>>, uri: Uri) -> ApiResult<Json<Vec<ImageSummary>>> {
    let args = Args::from_json(&first_param(&query_params(&uri), "filters").unwrap_or_default())?;
    let all = blocking({
        let d = d.clone();
        move || image_summaries(&d)
    })
    .await?;
    // `before`/`since` name an image; its creation time bounds the others'.
    let filter = ImageList::new(args, |name| {
        let id = d.images.resolve(name)?.id.to_string();
        Ok(all.iter().find(|i| i.id == id).map_or(0, |i| i.created))
    })?;
    Ok(Json(
        all.into_iter().filter_map(|i| filter.select(i)).collect(),
    ))
}

/// Every image as `GET /images/json` lists it (blocking: reads the store).
pub fn image_summaries(d: &Daemon) -> Result<Vec<ImageSummary>, StoreError> {
    let containers = d.engine.list();
    {
        let mut out = Vec::new();
        for img in d.images.images()? {
            let config = d.images.config_of(&img)?;
            let tags = d.images.tags_of(&img.id)?;
            let size = d.images.size_of(&img) as i64;
            out.push(ImageSummary {
                id: img.id.to_string(),
                parent_id: String::new(),
                repo_tags: short_tags(&tags),
                repo_digests: Vec::new(),
                created: created_unix(config.created().as_ref()),
                size,
                shared_size: -1,
                labels: config
                    .config()
                    .as_ref()
                    .and_then(|c| c.labels().clone())
                    .unwrap_or_default(),
                containers: containers
                    .iter()
                    .filter(|c| c.image == img.id.to_string())
                    .count() as i64,
                ..Default::default()
            });
        }
        out.sort_by_key(|i| std::cmp::Reverse(i.created));
        Ok(out)
    }
}

/// `/images/{name}/json`, `/images/{name}/history` (names may contain slashes).
async fn image_get(State(d): State<Arc<Daemon>>, Path(rest): Path<String>) -> ApiResult<Response> {
    if let Some(name) = rest.strip_suffix("/json") {
        let name = name.to_string();
        let v = blocking(move || {
            let img = d.images.resolve(&name)?;
            let config = serde_json::to_value(d.images.config_of(&img)?).unwrap_or_default();
            // Docker's own fields of an image config, which the OCI type does not keep.
            let raw = d.images.raw_config(&img)?;
            let tags = d.images.tags_of(&img.id)?;
            Ok(json!({
                "Id": img.id.to_string(),
                "RepoTags": short_tags(&tags),
                "RepoDigests": [],
                "Parent": "",
                "Comment": config["history"].as_array().and_then(|h| h.last())
                    .and_then(|h| h["comment"].as_str()).unwrap_or(""),
                "Created": config["created"],
                // Deprecated in API 1.45 but present up to 1.44, which is berthd's newest:
                // docker-compose 1.29 reads ContainerConfig.Volumes when it recreates.
                "Container": raw["container"].as_str().unwrap_or(""),
                "ContainerConfig": match &raw["container_config"] {
                    serde_json::Value::Object(c) => json!(c),
                    _ => empty_container_config(),
                },
                "DockerVersion": raw["docker_version"].as_str().unwrap_or(""),
                "Author": raw["author"].as_str().unwrap_or(""),
                "Config": config["config"],
                "Architecture": config["architecture"],
                "Os": config["os"],
                "Size": d.images.size_of(&img),
                "RootFS": {"Type": "layers", "Layers": config["rootfs"]["diff_ids"]},
                "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
            }))
        })
        .await?;
        return Ok(Json(v).into_response());
    }
    if let Some(name) = rest.strip_suffix("/get") {
        // `GET /images/{name}/get`: the save of one image, as `/images/get?names=`.
        let uri: Uri = format!(
            "/images/get?{}",
            form_urlencoded::Serializer::new(String::new())
                .append_pair("names", name)
                .finish()
        )
        .parse()
        .map_err(|_| ApiError(StatusCode::BAD_REQUEST, format!("bad image name {name}")))?;
        return get_images(State(d), uri).await;
    }
    if let Some(name) = rest.strip_suffix("/history") {
        let name = name.to_string();
        let v = blocking(move || {
            let img = d.images.resolve(&name)?;
            let config = serde_json::to_value(d.images.config_of(&img)?).unwrap_or_default();
            let tags = short_tags(&d.images.tags_of(&img.id)?);
            // Each entry that made a layer owns the next layer from the top.
            let mut layers = img.chain.iter().rev();
            let mut out = Vec::new();
            for (i, h) in config["history"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .rev()
                .enumerate()
            {
                let size = if h["empty_layer"].as_bool().unwrap_or(false) {
                    0
                } else {
                    layers.next().map_or(0, |c| d.images.snapshots().size(c))
                };
                out.push(json!({
                    "Id": if i == 0 { img.id.to_string() } else { "<missing>".into() },
                    "Created": created_unix(h["created"].as_str().map(String::from).as_ref()),
                    "CreatedBy": h["created_by"].as_str().unwrap_or(""),
                    "Tags": if i == 0 { json!(tags) } else { json!(null) },
                    "Size": size,
                    "Comment": h["comment"].as_str().unwrap_or(""),
                }));
            }
            Ok(json!(out))
        })
        .await?;
        return Ok(Json(v).into_response());
    }
    Err(ApiError(
        StatusCode::NOT_FOUND,
        format!("page not found: /images/{rest}"),
    ))
}

/// The `ContainerConfig` dockerd shows for an image no container made (imported, loaded).
fn empty_container_config() -> serde_json::Value {
    json!({
        "Hostname": "", "Domainname": "", "User": "",
        "AttachStdin": false, "AttachStdout": false, "AttachStderr": false,
        "Tty": false, "OpenStdin": false, "StdinOnce": false,
        "Env": null, "Cmd": null, "Image": "", "Volumes": null, "WorkingDir": "",
        "Entrypoint": null, "OnBuild": null, "Labels": null,
    })
}

#[derive(serde::Deserialize)]
struct DeleteQuery {
    #[serde(default)]
    force: Option<String>,
}

fn truthy(v: &Option<String>) -> bool {
    matches!(v.as_deref(), Some("1" | "true" | "True"))
}

async fn image_delete(
    State(d): State<Arc<Daemon>>,
    Path(name): Path<String>,
    Query(q): Query<DeleteQuery>,
) -> ApiResult<Json<Vec<ImageDeleteResponseItem>>> {
    let force = truthy(&q.force);
    blocking(move || {
        let engine = d.engine.clone();
        let in_use = move |id: &Digest| engine.image_in_use(id);
        // A forced removal of an image a container uses only untags it (the store keeps it
        // while it is in use), so collecting garbage never takes a container's layers.
        let img = d.images.resolve(&name)?;
        let labels = d.engine.image_labels(&img);
        let r = d.images.remove(&name, force, &in_use)?;
        d.images.gc()?;
        image_removal_events(&d, &img.id, &r.untagged, &r.deleted, labels);
        let mut out: Vec<ImageDeleteResponseItem> = r
            .untagged
            .iter()
            .map(|t| ImageDeleteResponseItem {
                untagged: Some(t.familiar()),
                deleted: None,
            })
            .collect();
        out.extend(r.deleted.iter().map(|d| ImageDeleteResponseItem {
            untagged: None,
            deleted: Some(d.to_string()),
        }));
        Ok(out)
    })
    .await
    .map(Json)
}

/// dockerd's events for a removal: an `untag` per tag (named by the image's ID), then a
/// `delete` per image removed.
fn image_removal_events(
    d: &Daemon,
    id: &Digest,
    untagged: &[Reference],
    deleted: &[Digest],
    labels: std::collections::HashMap<String, String>,
) {
    let id = id.to_string();
    for _ in untagged {
        d.engine.image_event("untag", &id, &id, labels.clone());
    }
    image_delete_events(d, deleted);
}

/// A `delete` event per image removed (no labels: the image is gone).
fn image_delete_events(d: &Daemon, deleted: &[Digest]) {
    for x in deleted {
        let x = x.to_string();
        d.engine.image_event("delete", &x, &x, Default::default());
    }
}

/// `POST /images/{name}/tag?repo=&tag=`.
async fn image_post(
    State(d): State<Arc<Daemon>>,
    Path(rest): Path<String>,
    uri: Uri,
) -> ApiResult<StatusCode> {
    if rest.ends_with("/push") {
        return Err(crate::unsupported::no_registry_client("pushing images"));
    }
    let Some(name) = rest.strip_suffix("/tag").map(String::from) else {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("page not found: /images/{rest}"),
        ));
    };
    let params = query_params(&uri);
    let repo = first_param(&params, "repo").unwrap_or_default();
    if repo.is_empty() {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "repository name must have at least one component".into(),
        ));
    }
    let target = match first_param(&params, "tag").filter(|t| !t.is_empty()) {
        Some(t) => format!("{repo}:{t}"),
        None => repo,
    };
    blocking(move || {
        let img = d.images.resolve(&name)?;
        let reference = Reference::parse(&target)?;
        d.images.tag(&img.id, &reference)?;
        let labels = d.engine.image_labels(&img);
        d.engine
            .image_event("tag", &img.id.to_string(), &reference.familiar(), labels);
        Ok(())
    })
    .await?;
    Ok(StatusCode::CREATED)
}

/// A query string's pairs, in order, repeated keys kept (axum's Query cannot collect those).
pub fn query_params(uri: &Uri) -> Vec<(String, String)> {
    form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The first non-empty value of `key`.
pub fn first_param(params: &[(String, String)], key: &str) -> Option<String> {
    params
        .iter()
        .find(|(n, v)| n == key && !v.is_empty())
        .map(|(_, v)| v.clone())
}

/// How much of a request body the store's readers take at once, and the size of the chunks
/// of a streamed archive.
const CHUNK: usize = 1 << 20;

/// A request body as a blocking reader for the store's synchronous readers (use it inside
/// `blocking`; it is made here, in the runtime, whose handle the bridge keeps). A client that
/// disconnects halfway makes a read fail, and the store refuses what it was reading as it
/// refuses a truncated file: loads and imports store verified blobs first and record images
/// only once the whole archive was read.
fn body_reader(body: Body) -> impl std::io::Read + Send + 'static {
    let stream = body.into_data_stream().map_err(|e| {
        // axum and hyper each wrap the cause in "error reading a body from connection".
        let mut cause: &dyn std::error::Error = &e;
        while let Some(s) = cause.source() {
            cause = s;
        }
        std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("the request body was cut off ({cause})"),
        )
    });
    std::io::BufReader::with_capacity(
        CHUNK,
        tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(stream)),
    )
}

/// A `Write` that sends what is written as body chunks of about [`CHUNK`] bytes, for a
/// blocking writer (the store's `save`) to stream a response.
struct ChunkWriter {
    buf: Vec<u8>,
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
}

impl ChunkWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .blocking_send(Ok(Bytes::from(chunk)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client gone"))
    }
}

impl std::io::Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// Spools a request body to a temporary file. The store reads synchronously, and a client
/// that disconnects halfway must not leave a half-read archive in the store's hands.
pub async fn spool(body: Body) -> ApiResult<tempfile::NamedTempFile> {
    let spool = tempfile::NamedTempFile::with_prefix("berthd-upload-")
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let mut file = tokio::fs::File::from_std(
        spool
            .reopen()
            .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?,
    );
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream
        .try_next()
        .await
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("read request body: {e}")))?
    {
        tokio::io::AsyncWriteExt::write_all(&mut file, &chunk)
            .await
            .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    }
    Ok(spool)
}

/// `POST /images/create`: `fromSrc=-` imports the body as a root filesystem (`docker
/// import`); pulls (`fromImage`) need the registry client, which does not exist yet.
async fn create_image(State(d): State<Arc<Daemon>>, uri: Uri, body: Body) -> ApiResult<Response> {
    let params = query_params(&uri);
    let get = |k: &str| first_param(&params, k);
    if let Some(image) = get("fromImage") {
        let name = match get("tag") {
            Some(t) => format!("{image}:{t}"),
            None => image,
        };
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!(
                "pull access denied for {name}: berthd cannot pull from registries yet; bring the image in with `docker load` or `docker import`"
            ),
        ));
    }
    match get("fromSrc").as_deref() {
        Some("-") => {}
        Some(other) => {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                format!("import from {other:?} is not supported: send the tarball in the request body (fromSrc=-)"),
            ))
        }
        None => {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                "either fromImage or fromSrc is required".into(),
            ))
        }
    }
    let reference = match (get("repo"), get("tag")) {
        (Some(r), Some(t)) => Some(format!("{r}:{t}")),
        (Some(r), None) => Some(r),
        _ => None,
    }
    .map(|r| Reference::parse(&r))
    .transpose()
    .map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.to_string()))?;
    let changes: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "changes")
        .map(|(_, v)| v.clone())
        .collect();
    let reader = body_reader(body);
    let img = blocking(move || {
        let created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        let img = d
            .images
            .import(reader, reference.as_ref(), &changes, &created)?;
        let (id, labels) = (img.id.to_string(), d.engine.image_labels(&img));
        if let Some(r) = &reference {
            d.engine
                .image_event("tag", &id, &r.familiar(), labels.clone());
        }
        d.engine.image_event("import", &id, &id, labels);
        Ok(img)
    })
    .await?;
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        format!("{}\n", json!({"status": img.id.to_string()})),
    )
        .into_response())
}

/// `POST /images/prune`: dangling images no container uses (with the `dangling=false`
/// filter, every image no container uses), narrowed by `label`, `label!` and `until`.
async fn prune_images(
    State(d): State<Arc<Daemon>>,
    uri: Uri,
) -> ApiResult<Json<serde_json::Value>> {
    let filter = ImagePrune::new(Args::from_json(
        &first_param(&query_params(&uri), "filters").unwrap_or_default(),
    )?)?;
    let all = !filter.dangling_only();
    let out = blocking(move || {
        // The images the filters let go (one stored after this look is kept).
        let mut pruned = HashSet::new();
        for img in d.images.images()? {
            let config = d.images.config_of(&img)?;
            let labels = config.config().as_ref().and_then(|c| c.labels().clone());
            if filter.matches(created_unix(config.created().as_ref()), &labels) {
                pruned.insert(img.id.to_string());
            }
        }
        let engine = d.engine.clone();
        let in_use =
            move |id: &Digest| engine.image_in_use(id) || !pruned.contains(&id.to_string());
        let total = |d: &Daemon| -> u64 {
            let snaps = d.images.snapshots();
            snaps.list().iter().map(|c| snaps.size(c)).sum()
        };
        let before = total(&d);
        let mut deleted: Vec<serde_json::Value> = Vec::new();
        if all {
            for img in d.images.images()? {
                if in_use(&img.id) {
                    continue;
                }
                let tags = d.images.tags_of(&img.id)?;
                for t in &tags {
                    deleted.push(json!({"Untagged": t.familiar()}));
                }
                let labels = d.engine.image_labels(&img);
                let r = d.images.remove(&img.id.to_string(), true, &in_use)?;
                image_removal_events(&d, &img.id, &tags, &r.deleted, labels);
                deleted.extend(r.deleted.iter().map(|x| json!({"Deleted": x.to_string()})));
            }
        }
        let (removed, _) = d.images.prune_dangling(&in_use)?;
        image_delete_events(&d, &removed);
        deleted.extend(removed.iter().map(|x| json!({"Deleted": x.to_string()})));
        let freed = before.saturating_sub(total(&d));
        d.engine.image_prune_event(freed);
        Ok(json!({"ImagesDeleted": deleted, "SpaceReclaimed": freed}))
    })
    .await?;
    Ok(Json(out))
}

/// `POST /images/load`: the body is the archive. The reply is a stream of JSON messages, as
/// `docker load` expects.
async fn load_images(State(d): State<Arc<Daemon>>, body: Body) -> ApiResult<Response> {
    let reader = body_reader(body);
    let loaded = blocking(move || {
        let loaded = d.images.load(reader)?;
        for (img, _) in &loaded {
            let id = img.id.to_string();
            d.engine
                .image_event("load", &id, &id, d.engine.image_labels(img));
        }
        Ok(loaded)
    })
    .await;
    let loaded = match loaded {
        Ok(l) => l,
        // As dockerd: the answer is a stream that has begun, so a bad archive is an error
        // message inside it (the docker CLI prints it and exits 1), not a status.
        Err(ApiError(_, message)) => {
            let line = json!({"errorDetail": {"message": message}, "error": message});
            return Ok((
                [(header::CONTENT_TYPE, "application/json")],
                format!("{line}\n"),
            )
                .into_response());
        }
    };
    let mut out = String::new();
    for (img, tags) in loaded {
        if tags.is_empty() {
            out.push_str(&json!({"stream": format!("Loaded image ID: {}\n", img.id)}).to_string());
            out.push('\n');
        }
        for t in tags {
            out.push_str(
                &json!({"stream": format!("Loaded image: {}\n", t.familiar())}).to_string(),
            );
            out.push('\n');
        }
    }
    Ok(([(header::CONTENT_TYPE, "application/json")], out).into_response())
}

/// `GET /images/get?names=a&names=b`: the archive `docker save` writes.
async fn get_images(State(d): State<Arc<Daemon>>, uri: Uri) -> ApiResult<Response> {
    // `names` repeats, which axum's Query (serde_urlencoded) cannot collect into a list.
    let names: Vec<String> = form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .filter(|(k, _)| k == "names")
        .map(|(_, v)| v.into_owned())
        .collect();
    if names.is_empty() {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "no image names given".into(),
        ));
    }
    // Unknown names get their 404 before anything is sent.
    let names = {
        let d = d.clone();
        blocking(move || {
            for n in &names {
                d.images.resolve(n)?;
            }
            Ok(names)
        })
        .await?
    };
    // The archive streams as it is written; an error halfway (a disk fault, an image
    // removed meanwhile) ends the response with an error the client sees as a broken
    // transfer, never as a complete archive.
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut w = ChunkWriter {
            buf: Vec::with_capacity(CHUNK),
            tx: tx.clone(),
        };
        let r = d
            .images
            .save(&refs, &mut w)
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(|()| std::io::Write::flush(&mut w));
        if r.is_ok() {
            let mut seen = std::collections::HashSet::new();
            for img in names.iter().filter_map(|n| d.images.resolve(n).ok()) {
                if seen.insert(img.id.clone()) {
                    let id = img.id.to_string();
                    d.engine
                        .image_event("save", &id, &id, d.engine.image_labels(&img));
                }
            }
        }
        if let Err(e) = r {
            tracing::warn!("save {}: {e}", names.join(" "));
            let _ = tx.blocking_send(Err(e));
        }
    });
    let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    Ok((
        [(header::CONTENT_TYPE, "application/x-tar")],
        Body::from_stream(stream),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_prefixes_are_stripped() {
        let req = |p: &str| {
            strip_version(Request::builder().uri(p).body(Body::empty()).unwrap())
                .uri()
                .to_string()
        };
        assert_eq!(req("/v1.44/images/json?all=1"), "/images/json?all=1");
        assert_eq!(req("/v1.24/_ping"), "/_ping");
        assert_eq!(req("/images/json"), "/images/json");
        assert_eq!(req("/vx/images"), "/vx/images");
    }

    #[test]
    fn created_times() {
        assert_eq!(created_unix(Some(&"1970-01-01T00:00:10Z".to_string())), 10);
        assert_eq!(created_unix(None), 0);
    }
}
