//! The container endpoints of the Engine API, mapped onto [`berth_engine::Engine`]. Only
//! translation lives here: query strings and bodies in, Docker's JSON shapes and stream
//! framings out.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use berth_engine::filters::{Args, ContainerList, ContainerPrune};
use berth_engine::logs::LogOptions;
use berth_engine::{AttachOptions, EngineError, Record, Status, WaitCondition};
use bollard_stubs::models::{
    ContainerCreateBody, ContainerCreateResponse, ContainerInspectResponse, ContainerState,
    ContainerStateStatusEnum, ContainerSummary, ContainerSummaryHostConfig,
    ContainerSummaryNetworkSettings, ContainerSummaryStateEnum, ContainerWaitResponse, DriverData,
    EndpointIpamConfig, EndpointSettings, ExecConfig, ExecInspectResponse, ExecStartConfig,
    NetworkSettings, PortBinding, PortSummary, PortSummaryTypeEnum, ProcessConfig,
};
use serde::Deserialize;
use serde_json::json;

use crate::api::{ApiError, ApiResult, Daemon};

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        ApiError(status, crate::api::chain(&e))
    }
}

/// 304 for "nothing to do", as dockerd answers `start` of a running container.
fn done(r: Result<(), EngineError>) -> ApiResult<StatusCode> {
    match r {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(EngineError::NotModified) => Ok(StatusCode::NOT_MODIFIED),
        Err(e) => Err(e.into()),
    }
}

fn flag(v: &Option<String>) -> bool {
    matches!(v.as_deref(), Some("1" | "true" | "True" | "yes"))
}

#[derive(Deserialize)]
pub struct CreateQuery {
    #[serde(default)]
    name: Option<String>,
}

/// An unknown restart policy name gets dockerd's words, not the typed parser's (which would
/// call it invalid JSON).
fn check_restart_policy(body: &[u8]) -> ApiResult<()> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Ok(()); // the typed parse says what is wrong
    };
    match v["HostConfig"]["RestartPolicy"]["Name"].as_str() {
        None | Some("" | "no" | "always" | "on-failure" | "unless-stopped") => Ok(()),
        Some(name) => Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("invalid restart policy: unknown policy '{name}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"),
        )),
    }
}

/// `POST /containers/create`.
pub async fn create(
    State(d): State<Arc<Daemon>>,
    Query(q): Query<CreateQuery>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<ContainerCreateResponse>)> {
    check_restart_policy(&body)?;
    let body: ContainerCreateBody = json_body(&body)?;
    let (rec, warnings) = d.engine.create(q.name.as_deref(), body).await?;
    Ok((
        StatusCode::CREATED,
        Json(ContainerCreateResponse {
            id: rec.id,
            warnings,
        }),
    ))
}

#[derive(Deserialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    all: Option<String>,
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    filters: Option<String>,
    #[serde(default)]
    size: Option<String>,
}

/// A container's `SizeRw` (its writable layer) and `SizeRootFs` (that and its image's
/// layers), as `?size=1` asks for them (blocking: walks the trees).
pub fn sizes(d: &Daemon, r: &Record) -> ApiResult<(i64, i64)> {
    let dir = d.engine.container_dir(&r.id)?;
    let rw = berth_engine::volumes::dir_size(&dir.join("diff")) as i64;
    let image = r
        .image
        .parse()
        .ok()
        .and_then(|id| d.images.record(&id).ok())
        .map_or(0, |img| d.images.size_of(&img) as i64);
    Ok((rw, rw + image))
}

/// `GET /containers/json`.
pub async fn list(
    State(d): State<Arc<Daemon>>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Vec<ContainerSummary>>> {
    let args = Args::from_json(q.filters.as_deref().unwrap_or(""))?;
    let all = flag(&q.all) || q.limit.is_some_and(|l| l > 0);
    let filter = ContainerList::new(
        args,
        all,
        |key| Ok(d.engine.inspect(key)?.id),
        |image| d.images.resolve(image).ok().map(|i| i.id.to_string()),
    )?;
    let mut selected = filter.select(d.engine.list(), port_summaries);
    if let Some(l) = q.limit.filter(|l| *l > 0) {
        selected.truncate(l as usize);
    }
    let with_sizes = flag(&q.size);
    let out = tokio::task::spawn_blocking(move || -> ApiResult<Vec<ContainerSummary>> {
        selected
            .iter()
            .map(|r| {
                let mut s = summary(r);
                if with_sizes {
                    let (rw, root) = sizes(&d, r)?;
                    s.size_rw = Some(rw);
                    s.size_root_fs = Some(root);
                }
                Ok(s)
            })
            .collect()
    })
    .await
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    Ok(Json(out))
}

/// A JSON request body, or Docker's 400 saying where it is wrong.
pub fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("invalid JSON in the request body: {e}"),
        )
    })
}

fn unix(t: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(t).map_or(0, |t| t.timestamp())
}

/// Docker's human status: `Up 5 seconds`, `Exited (0) 2 minutes ago`, `Created`.
fn human_status(r: &Record) -> String {
    let ago = |t: &str| {
        let secs = (chrono::Utc::now().timestamp() - unix(t)).max(0);
        human_duration(secs)
    };
    let health = match r.state.health.as_ref().and_then(|h| h.status) {
        Some(bollard_stubs::models::HealthStatusEnum::STARTING) => " (health: starting)",
        Some(bollard_stubs::models::HealthStatusEnum::HEALTHY) => " (healthy)",
        Some(bollard_stubs::models::HealthStatusEnum::UNHEALTHY) => " (unhealthy)",
        _ => "",
    };
    match r.state.status {
        Status::Running => format!("Up {}{health}", ago(&r.state.started_at)),
        Status::Paused => format!("Up {} (Paused)", ago(&r.state.started_at)),
        Status::Restarting => format!(
            "Restarting ({}) {} ago",
            r.state.exit_code,
            ago(&r.state.finished_at)
        ),
        Status::Exited if !r.state.finished_at.is_empty() => format!(
            "Exited ({}) {} ago",
            r.state.exit_code,
            ago(&r.state.finished_at)
        ),
        Status::Removing => "Removal In Progress".into(),
        Status::Dead => "Dead".into(),
        _ => "Created".into(),
    }
}

/// Go's `units.HumanDuration`, which `docker ps` uses.
fn human_duration(secs: i64) -> String {
    match secs {
        s if s < 1 => "Less than a second".into(),
        1 => "1 second".into(),
        s if s < 60 => format!("{s} seconds"),
        s if s / 60 == 1 => "About a minute".into(),
        s if s < 3600 => format!("{} minutes", s / 60),
        s if (s as f64 / 3600.0).round() as i64 == 1 => "About an hour".into(),
        s if s < 48 * 3600 => format!("{} hours", (s as f64 / 3600.0).round() as i64),
        s if s < 7 * 24 * 3600 * 2 => format!("{} days", s / 86400),
        s if s < 30 * 24 * 3600 * 3 => format!("{} weeks", s / (7 * 86400)),
        s if s < 365 * 24 * 3600 * 2 => format!("{} months", s / (30 * 86400)),
        s => format!("{} years", s / (365 * 86400)),
    }
}

fn command(r: &Record) -> String {
    berth_engine::spec::argv(&r.config)
        .unwrap_or_default()
        .join(" ")
}

pub fn summary(r: &Record) -> ContainerSummary {
    ContainerSummary {
        id: Some(r.id.clone()),
        names: Some(vec![r.name.clone()]),
        image: Some(r.image_name.clone()),
        image_id: Some(r.image.clone()),
        command: Some(command(r)),
        created: Some(unix(&r.created)),
        ports: Some(port_summaries(r)),
        labels: r.config.labels.clone(),
        state: r
            .state
            .status
            .as_str()
            .parse::<ContainerSummaryStateEnum>()
            .ok(),
        status: Some(human_status(r)),
        host_config: Some(ContainerSummaryHostConfig {
            network_mode: r.host_config.network_mode.clone(),
            ..Default::default()
        }),
        network_settings: Some(ContainerSummaryNetworkSettings {
            networks: Some(endpoint_settings(r)),
        }),
        mounts: Some(r.mounts.clone()),
        ..Default::default()
    }
}

/// `GET /containers/{id}/json`.
pub async fn inspect(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    uri: axum::http::Uri,
) -> ApiResult<Json<serde_json::Value>> {
    let r = d.engine.inspect(&id)?;
    let with_sizes = crate::api::first_param(&crate::api::query_params(&uri), "size")
        .is_some_and(|v| matches!(v.as_str(), "1" | "true" | "True"));
    let dir = d.engine.container_dir(&r.id)?;
    let p = |f: &str| Some(dir.join(f).to_string_lossy().into_owned());
    let argv = berth_engine::spec::argv(&r.config).unwrap_or_default();
    let s = &r.state;
    let image = d.images.record(
        &r.image
            .parse()
            .map_err(|_| ApiError(StatusCode::INTERNAL_SERVER_ERROR, "bad image ID".into()))?,
    );
    let lower = image
        .map(|img| {
            img.chain
                .iter()
                .rev()
                .map(|c| {
                    d.images
                        .snapshots()
                        .layer_dir(c)
                        .to_string_lossy()
                        .into_owned()
                })
                .collect::<Vec<_>>()
                .join(":")
        })
        .unwrap_or_default();
    let zero = "0001-01-01T00:00:00Z".to_string();
    let inspect = ContainerInspectResponse {
        id: Some(r.id.clone()),
        created: Some(r.created.clone()),
        path: argv.first().cloned(),
        args: Some(argv.iter().skip(1).cloned().collect()),
        state: Some(ContainerState {
            status: s.status.as_str().parse::<ContainerStateStatusEnum>().ok(),
            running: Some(s.status.is_running()),
            paused: Some(s.status == Status::Paused),
            restarting: Some(s.status == Status::Restarting),
            oom_killed: Some(s.oom_killed),
            dead: Some(s.status == Status::Dead),
            pid: Some(s.pid as i64),
            exit_code: Some(s.exit_code as i64),
            error: Some(s.error.clone()),
            started_at: Some(if s.started_at.is_empty() {
                zero.clone()
            } else {
                s.started_at.clone()
            }),
            finished_at: Some(if s.finished_at.is_empty() {
                zero
            } else {
                s.finished_at.clone()
            }),
            health: s.health.clone(),
        }),
        image: Some(r.image.clone()),
        resolv_conf_path: p("resolv.conf"),
        hostname_path: p("hostname"),
        hosts_path: p("hosts"),
        log_path: Some(r.log_path.clone()),
        name: Some(r.name.clone()),
        restart_count: Some(r.restart_count),
        driver: Some("overlay2".into()),
        platform: Some("linux".into()),
        mount_label: Some(String::new()),
        process_label: Some(String::new()),
        app_armor_profile: Some(String::new()),
        exec_ids: None,
        host_config: Some(r.host_config.clone()),
        graph_driver: Some(DriverData {
            name: "overlay2".into(),
            data: [
                ("LowerDir".to_string(), lower),
                (
                    "UpperDir".into(),
                    dir.join("diff").to_string_lossy().into_owned(),
                ),
                (
                    "MergedDir".into(),
                    dir.join("rootfs").to_string_lossy().into_owned(),
                ),
                (
                    "WorkDir".into(),
                    dir.join("work").to_string_lossy().into_owned(),
                ),
            ]
            .into(),
        }),
        mounts: Some(r.mounts.clone()),
        config: Some(r.config.clone()),
        network_settings: Some(NetworkSettings {
            sandbox_id: r
                .net
                .sandbox
                .as_ref()
                .map(|_| r.id.clone())
                .or(Some(String::new())),
            sandbox_key: Some(
                r.net
                    .sandbox
                    .as_ref()
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            ),
            ports: Some(port_map(&r)),
            networks: Some(endpoint_settings(&r)),
        }),
        ..Default::default()
    };
    let mut v = serde_json::to_value(inspect)
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    crate::networks::complete_endpoints(&mut v, &r);
    // The fields of the default bridge network's endpoint that API versions before 1.44
    // have at the top of NetworkSettings, which scripts read (`{{.NetworkSettings.IPAddress}}`).
    let bridge = r
        .net
        .endpoints
        .iter()
        .find(|a| a.network == "bridge")
        .map(|a| &a.endpoint);
    if let Some(ns) = v.get_mut("NetworkSettings").and_then(|n| n.as_object_mut()) {
        let ip = bridge.map(|e| e.ip.to_string()).unwrap_or_default();
        let extra = json!({
            "Bridge": "",
            "HairpinMode": false,
            "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0,
            "SecondaryIPAddresses": null,
            "SecondaryIPv6Addresses": null,
            "EndpointID": bridge.map(|e| e.id.clone()).unwrap_or_default(),
            "Gateway": bridge.map(|e| e.gateway.to_string()).unwrap_or_default(),
            "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0,
            "IPAddress": ip,
            "IPPrefixLen": bridge.map_or(0, |e| e.prefix),
            "IPv6Gateway": "",
            "MacAddress": bridge.map(|e| e.mac.clone()).unwrap_or_default(),
        });
        if let Some(o) = extra.as_object() {
            for (k, val) in o {
                ns.insert(k.clone(), val.clone());
            }
        }
    }
    if with_sizes {
        let (rw, root) = {
            let (d, r) = (d.clone(), r.clone());
            tokio::task::spawn_blocking(move || sizes(&d, &r))
                .await
                .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??
        };
        v["SizeRw"] = json!(rw);
        v["SizeRootFs"] = json!(root);
    }
    Ok(Json(v))
}

/// `NetworkSettings.Networks`: each network the container joins, with its place on it
/// while it runs (empty fields when it does not, as Docker shows them).
pub fn endpoint_settings(r: &Record) -> HashMap<String, EndpointSettings> {
    r.networks
        .iter()
        .map(|j| {
            let on = r
                .net
                .endpoints
                .iter()
                .find(|a| a.network_id == j.network_id)
                .map(|a| &a.endpoint);
            let user = !matches!(j.network.as_str(), "bridge" | "host" | "none");
            let mut aliases = j.aliases.clone();
            let mut dns_names = Vec::new();
            if user {
                let short: String = r.id.chars().take(12).collect();
                dns_names.push(r.name.trim_start_matches('/').to_string());
                dns_names.extend(j.aliases.iter().cloned());
                dns_names.push(short.clone());
                aliases.push(short);
            }
            let s = EndpointSettings {
                ipam_config: j.ip.map(|ip| EndpointIpamConfig {
                    ipv4_address: Some(ip.to_string()),
                    ..Default::default()
                }),
                // As dockerd: a container's legacy links, `child:alias`.
                links: r
                    .host_config
                    .links
                    .as_ref()
                    .filter(|l| !l.is_empty())
                    .map(|l| {
                        l.iter()
                            .filter_map(|x| berth_engine::links::parse(x).ok())
                            .map(|x| format!("{}:{}", x.name, x.alias))
                            .collect()
                    }),
                aliases: user.then_some(aliases),
                // The address it has, else the one it asked for (`--mac-address`).
                mac_address: Some(
                    on.map(|e| e.mac.clone())
                        .or_else(|| j.mac.clone())
                        .unwrap_or_default(),
                ),
                network_id: Some(j.network_id.clone()),
                endpoint_id: Some(on.map(|e| e.id.clone()).unwrap_or_default()),
                gateway: Some(on.map(|e| e.gateway.to_string()).unwrap_or_default()),
                ip_address: Some(on.map(|e| e.ip.to_string()).unwrap_or_default()),
                ip_prefix_len: Some(on.map_or(0, |e| e.prefix as i64)),
                ipv6_gateway: Some(
                    on.and_then(|e| e.gateway6)
                        .map(|g| g.to_string())
                        .unwrap_or_default(),
                ),
                global_ipv6_address: Some(
                    on.and_then(|e| e.ip6)
                        .map(|a| a.to_string())
                        .unwrap_or_default(),
                ),
                global_ipv6_prefix_len: Some(on.and_then(|e| e.prefix6).map_or(0, i64::from)),
                dns_names: user.then_some(dns_names),
                driver_opts: None,
                gw_priority: Some(0),
            };
            (j.network.clone(), s)
        })
        .collect()
}

/// The published ports of a running container (its primary endpoint's).
fn published(r: &Record) -> &[berth_network::Mapping] {
    r.net
        .endpoints
        .first()
        .map(|a| a.endpoint.ports.as_slice())
        .unwrap_or(&[])
}

/// `NetworkSettings.Ports`: while it runs, every exposed or published port, with its host
/// bindings (null for one only exposed).
fn port_map(r: &Record) -> HashMap<String, Option<Vec<PortBinding>>> {
    let mut m: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    if !r.state.status.is_running() {
        return m;
    }
    if r.net.sandbox.is_some() {
        for p in r.config.exposed_ports.iter().flatten() {
            let key = if p.contains('/') {
                p.clone()
            } else {
                format!("{p}/tcp")
            };
            m.entry(key).or_insert(None);
        }
    }
    for p in published(r) {
        m.entry(format!("{}/{}", p.ctr_port, p.proto))
            .or_insert(None)
            .get_or_insert_with(Vec::new)
            .push(PortBinding {
                host_ip: Some(
                    p.host_ip
                        .map_or_else(|| "0.0.0.0".to_string(), |ip| ip.to_string()),
                ),
                host_port: Some(p.host_port.to_string()),
            });
    }
    m
}

/// `Ports` of `GET /containers/json`.
fn port_summaries(r: &Record) -> Vec<PortSummary> {
    let mut out: Vec<PortSummary> = Vec::new();
    for (key, binds) in port_map(r) {
        let (port, proto) = key.split_once('/').unwrap_or((&key, "tcp"));
        let private_port = port.parse().unwrap_or(0);
        let typ = proto.parse::<PortSummaryTypeEnum>().ok();
        match binds {
            None => out.push(PortSummary {
                private_port,
                typ,
                ..Default::default()
            }),
            Some(bs) => out.extend(bs.into_iter().map(|b| PortSummary {
                ip: b.host_ip,
                private_port,
                public_port: b.host_port.and_then(|p| p.parse().ok()),
                typ,
            })),
        }
    }
    out.sort_by_key(|p| (p.private_port, p.public_port));
    out
}

/// `POST /containers/{id}/start`.
pub async fn start(State(d): State<Arc<Daemon>>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    done(d.engine.start(&id).await)
}

#[derive(Deserialize, Default)]
pub struct StopQuery {
    #[serde(default)]
    t: Option<i64>,
    #[serde(default)]
    signal: Option<String>,
}

/// `POST /containers/{id}/stop`.
pub async fn stop(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    Query(q): Query<StopQuery>,
) -> ApiResult<StatusCode> {
    done(d.engine.stop(&id, q.t, q.signal.as_deref()).await)
}

/// `POST /containers/{id}/restart`.
pub async fn restart(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    Query(q): Query<StopQuery>,
) -> ApiResult<StatusCode> {
    done(d.engine.restart(&id, q.t).await)
}

/// `POST /containers/{id}/kill`.
pub async fn kill(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    Query(q): Query<StopQuery>,
) -> ApiResult<StatusCode> {
    done(d.engine.kill(&id, q.signal.as_deref()).await)
}

/// `POST /containers/{id}/pause`.
pub async fn pause(State(d): State<Arc<Daemon>>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    done(d.engine.pause(&id, true).await)
}

/// `POST /containers/{id}/unpause`.
pub async fn unpause(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    done(d.engine.pause(&id, false).await)
}

#[derive(Deserialize)]
pub struct RenameQuery {
    #[serde(default)]
    name: Option<String>,
}

/// `POST /containers/{id}/rename?name=`.
pub async fn rename(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    Query(q): Query<RenameQuery>,
) -> ApiResult<StatusCode> {
    let Some(name) = q.name.filter(|n| !n.is_empty()) else {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "Neither old nor new names may be empty".into(),
        ));
    };
    done(d.engine.rename(&id, &name))
}

#[derive(Deserialize, Default)]
pub struct WaitQuery {
    #[serde(default)]
    condition: Option<String>,
}

/// `POST /containers/{id}/wait`: the headers go out at once, the body when the condition
/// holds (clients start waiting before they start the container).
pub async fn wait(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    Query(q): Query<WaitQuery>,
) -> ApiResult<Response> {
    let cond = match q.condition.as_deref() {
        None | Some("") | Some("not-running") => WaitCondition::NotRunning,
        Some("next-exit") => WaitCondition::NextExit,
        Some("removed") => WaitCondition::Removed,
        Some(other) => {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                format!("invalid condition: {other:?}"),
            ))
        }
    };
    // Unknown containers get their 404 now, not in the middle of a 200; and the wait counts
    // from before the headers go out, so a client that starts the container once it has
    // them cannot slip an exit past it.
    let waiter = d.engine.waiter(&id, cond)?;
    let body = futures_util::stream::once(async move {
        let code = waiter.await;
        let r = ContainerWaitResponse {
            status_code: code,
            error: None,
        };
        Ok::<_, std::convert::Infallible>(Bytes::from(serde_json::to_vec(&r).unwrap_or_default()))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(body),
    )
        .into_response())
}

#[derive(Deserialize, Default)]
pub struct RemoveQuery {
    #[serde(default)]
    force: Option<String>,
    #[serde(default)]
    v: Option<String>,
    #[serde(default)]
    link: Option<String>,
}

/// `DELETE /containers/{id}`.
pub async fn remove(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    Query(q): Query<RemoveQuery>,
) -> ApiResult<StatusCode> {
    if flag(&q.link) {
        // `docker rm --link /web/db`: the link goes, the containers stay.
        d.engine.remove_link(&id)?;
        return Ok(StatusCode::NO_CONTENT);
    }
    d.engine.remove(&id, flag(&q.force), flag(&q.v)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /containers/{parent}/{alias}?link=1`.
pub async fn remove_link(
    State(d): State<Arc<Daemon>>,
    Path((parent, alias)): Path<(String, String)>,
    Query(q): Query<RemoveQuery>,
) -> ApiResult<StatusCode> {
    if !flag(&q.link) {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("page not found: /containers/{parent}/{alias}"),
        ));
    }
    d.engine.remove_link(&format!("/{parent}/{alias}"))?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, Default)]
pub struct ResizeQuery {
    #[serde(default)]
    h: Option<u16>,
    #[serde(default)]
    w: Option<u16>,
}

/// `POST /containers/{id}/resize?h=&w=`.
pub async fn resize(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    Query(q): Query<ResizeQuery>,
) -> ApiResult<StatusCode> {
    d.engine
        .resize(&id, q.h.unwrap_or(24), q.w.unwrap_or(80))
        .await?;
    Ok(StatusCode::OK)
}

#[derive(Deserialize, Default)]
pub struct LogsQuery {
    #[serde(default)]
    follow: Option<String>,
    #[serde(default)]
    stdout: Option<String>,
    #[serde(default)]
    stderr: Option<String>,
    #[serde(default)]
    since: Option<String>,
    #[serde(default)]
    until: Option<String>,
    #[serde(default)]
    timestamps: Option<String>,
    #[serde(default)]
    tail: Option<String>,
}

/// Docker's `since`/`until`: unix seconds with an optional fraction.
pub fn parse_time(s: &Option<String>) -> ApiResult<Option<i64>> {
    let Some(s) = s.as_deref().filter(|s| !s.is_empty() && *s != "0") else {
        return Ok(None);
    };
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = secs
        .parse()
        .map_err(|_| ApiError(StatusCode::BAD_REQUEST, format!("invalid time: {s:?}")))?;
    let mut nanos = 0i64;
    if !frac.is_empty() {
        let f = format!("{frac:0<9}");
        nanos = f[..9]
            .parse()
            .map_err(|_| ApiError(StatusCode::BAD_REQUEST, format!("invalid time: {s:?}")))?;
    }
    Ok(Some(secs * 1_000_000_000 + nanos))
}

/// `GET /containers/{id}/logs`.
pub async fn logs(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    Query(q): Query<LogsQuery>,
) -> ApiResult<Response> {
    let rec = d.engine.inspect(&id)?;
    let (stdout, stderr) = (flag(&q.stdout), flag(&q.stderr));
    if !stdout && !stderr {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "Bad parameters: you must choose at least one stream".into(),
        ));
    }
    let tail = match q.tail.as_deref() {
        None | Some("") | Some("all") => None,
        Some(n) => Some(
            n.parse::<usize>()
                .map_err(|_| ApiError(StatusCode::BAD_REQUEST, format!("invalid tail: {n:?}")))?,
        ),
    };
    let opts = LogOptions {
        stdout,
        stderr,
        since: parse_time(&q.since)?,
        until: parse_time(&q.until)?,
        tail,
        follow: flag(&q.follow),
    };
    let timestamps = flag(&q.timestamps);
    let tty = rec.config.tty.unwrap_or(false);
    let rx = d.engine.logs(&id, opts)?;
    let stream = futures_util::stream::unfold(rx, move |mut rx| async move {
        let e = rx.recv().await?;
        let out = log_frame(&e, tty, timestamps);
        Some((Ok::<_, std::convert::Infallible>(Bytes::from(out)), rx))
    });
    Ok((
        [(header::CONTENT_TYPE, stream_type(tty))],
        Body::from_stream(stream),
    )
        .into_response())
}

/// One log line as a client reads it: Docker's 8-byte frame header first unless the
/// container has a tty, its timestamp first if asked for.
fn log_frame(e: &berth_engine::logs::LogEntry, tty: bool, timestamps: bool) -> Vec<u8> {
    let mut payload = Vec::with_capacity(e.line.len() + 40);
    if timestamps {
        payload.extend_from_slice(e.time.as_bytes());
        payload.push(b' ');
    }
    payload.extend_from_slice(&e.line);
    let mut out = Vec::with_capacity(payload.len() + 8);
    if !tty {
        out.extend_from_slice(&berth_monitor::frame_header(e.stream, payload.len()));
    }
    out.extend_from_slice(&payload);
    out
}

fn stream_type(tty: bool) -> &'static str {
    if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    }
}

#[derive(Deserialize, Default)]
pub struct AttachQuery {
    #[serde(default)]
    stream: Option<String>,
    #[serde(default)]
    stdin: Option<String>,
    #[serde(default)]
    stdout: Option<String>,
    #[serde(default)]
    stderr: Option<String>,
    #[serde(default)]
    logs: Option<String>,
    #[serde(rename = "detachKeys", default)]
    detach_keys: Option<String>,
}

/// Parses a `detachKeys` value (Docker's message and 400 for a bad one).
fn detach_keys(keys: Option<&str>) -> ApiResult<Vec<u8>> {
    berth_detach::parse(keys.unwrap_or(""))
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.to_string()))
}

/// `POST /containers/{id}/attach`: the connection is taken over (HTTP upgrade to `tcp`) and
/// becomes the container's stdio, relayed to and from its monitor. With `logs`, the output
/// logged so far comes first; with `stream`, the live streams follow (neither: nothing, as in
/// Docker). Typing the detach keys on stdin ends the attach and leaves the container running.
pub async fn attach(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    Query(q): Query<AttachQuery>,
    mut req: Request,
) -> ApiResult<Response> {
    let rec = d.engine.inspect(&id)?;
    let keys = detach_keys(q.detach_keys.as_deref())?;
    let tty = rec.config.tty.unwrap_or(false);
    let opts = AttachOptions {
        stdin: flag(&q.stdin),
        stdout: flag(&q.stdout),
        stderr: flag(&q.stderr),
    };
    let (stream, logs) = (flag(&q.stream), flag(&q.logs));
    // The log so far is read now, before any live output is attached, so nothing comes twice.
    let replay = if logs && (opts.stdout || opts.stderr) {
        Some(d.engine.logs(
            &rec.id,
            LogOptions {
                stdout: opts.stdout,
                stderr: opts.stderr,
                since: None,
                until: None,
                tail: None,
                follow: false,
            },
        )?)
    } else {
        None
    };
    let upgrade = hyper::upgrade::on(&mut req);
    // A container that is not running yet is attached now, before the 101 goes out and the
    // client sends `start`; a running one once the log has been replayed.
    let running = rec.state.status.is_running();
    let early = (stream && !running)
        .then(|| d.engine.attach(&rec.id, opts))
        .transpose()?;
    let engine = d.engine.clone();
    let ctr = rec.id.clone();
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let upgraded = match upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!("attach: the client did not upgrade: {e}");
                return;
            }
        };
        let mut client = hyper_util::rt::TokioIo::new(upgraded);
        if let Some(mut rx) = replay {
            while let Some(e) = rx.recv().await {
                if client.write_all(&log_frame(&e, tty, false)).await.is_err() {
                    return;
                }
            }
        }
        let monitor = match (stream, early) {
            (false, _) => {
                let _ = client.shutdown().await;
                return;
            }
            (true, Some(m)) => m.await,
            (true, None) => match engine.attach(&ctr, opts) {
                Ok(m) => m.await,
                Err(e) => Err(e),
            },
        };
        match monitor {
            Ok(m) => relay(client, m, opts.stdin.then_some(keys)).await,
            Err(e) => tracing::debug!("attach: {e}"),
        }
    });
    upgrade_response(tty)
}

/// The 101 that hands the connection over.
pub fn upgrade_response(tty: bool) -> ApiResult<Response> {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("tcp"));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(stream_type(tty)),
    );
    Ok(r)
}

/// Copies the client's input to the monitor and the monitor's output to the client until
/// the output ends (the container exited, or the client went away), or the client types the
/// `detach` keys: then both connections are dropped and the process runs on.
pub async fn relay<C, M>(client: C, monitor: M, detach: Option<Vec<u8>>)
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    M: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut cr, mut cw) = tokio::io::split(client);
    let (mut mr, mut mw) = tokio::io::split(monitor);
    let mut input = tokio::spawn(async move {
        let mut watch = detach.map(berth_detach::Watch::new);
        let mut buf = vec![0u8; 8192];
        let mut pass = Vec::with_capacity(buf.len());
        loop {
            let n = match cr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            pass.clear();
            let detached = match &mut watch {
                Some(w) => w.feed(&buf[..n], &mut pass),
                None => {
                    pass.extend_from_slice(&buf[..n]);
                    false
                }
            };
            if mw.write_all(&pass).await.is_err() {
                return false;
            }
            if detached {
                return true;
            }
        }
        if let Some(w) = &watch {
            let _ = mw.write_all(w.held()).await;
        }
        // The client closed its input: the process's stdin sees EOF.
        let _ = mw.shutdown().await;
        false
    });
    let output = async {
        let _ = tokio::io::copy(&mut mr, &mut cw).await;
    };
    tokio::select! {
        _ = output => input.abort(),
        detached = &mut input => {
            if matches!(detached, Ok(true)) {
                tracing::debug!("a client detached");
            } else {
                // Input ended: the output goes on until the process's end.
                let _ = tokio::io::copy(&mut mr, &mut cw).await;
            }
        }
    }
    let _ = cw.shutdown().await;
}

/// `GET /containers/{id}/top`: `ps` output for the container's processes.
pub async fn top(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    uri: axum::http::Uri,
) -> ApiResult<Response> {
    let params = crate::api::query_params(&uri);
    let ps_args = crate::api::first_param(&params, "ps_args").unwrap_or_default();
    let top = d.engine.top(&id, &ps_args).await?;
    Ok(Json(json!({
        "Titles": top.titles,
        "Processes": top.processes,
    }))
    .into_response())
}

/// `POST /containers/{id}/exec`.
pub async fn exec_create(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let config: ExecConfig = json_body(&body)?;
    detach_keys(config.detach_keys.as_deref())?;
    let id = d.engine.exec_create(&id, config)?;
    Ok((StatusCode::CREATED, Json(json!({ "Id": id }))))
}

/// `POST /exec/{id}/start`: the connection becomes the process's stdio (or, detached, the
/// process runs on its own).
pub async fn exec_start(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    mut req: Request,
) -> ApiResult<Response> {
    let upgrade = req
        .headers()
        .contains_key(header::UPGRADE)
        .then(|| hyper::upgrade::on(&mut req));
    let body = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.to_string()))?;
    let start: ExecStartConfig = if body.is_empty() {
        ExecStartConfig::default()
    } else {
        json_body(&body)?
    };
    let exec = d.engine.exec_inspect(&id)?;
    // As dockerd: the start request's Tty decides the framing, whatever the exec was
    // created with; its DetachKeys, when given, win over the exec's.
    let tty = start.tty.unwrap_or(false);
    let attach_in = exec.config.attach_stdin.unwrap_or(false);
    let keys = detach_keys(
        start_detach_keys(&body)
            .as_deref()
            .or(exec.config.detach_keys.as_deref()),
    )?;
    let stream = d
        .engine
        .exec_start(&id, start.console_size.clone(), !tty)
        .await?;
    if start.detach.unwrap_or(false) {
        // Nobody reads: drain the output so the process never blocks on it.
        tokio::spawn(async move {
            let mut s = stream;
            let _ = tokio::io::copy(&mut s, &mut tokio::io::sink()).await;
        });
        return Ok(StatusCode::OK.into_response());
    }
    let Some(upgrade) = upgrade else {
        // A client that does not upgrade gets the output as the response body.
        let body = Body::from_stream(tokio_util::io::ReaderStream::new(stream));
        return Ok(([(header::CONTENT_TYPE, stream_type(tty))], body).into_response());
    };
    let keys = attach_in.then_some(keys);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        relay(hyper_util::rt::TokioIo::new(upgraded), stream, keys).await;
    });
    upgrade_response(tty)
}

/// The `DetachKeys` of an exec start request (not in bollard's model of it).
fn start_detach_keys(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v["DetachKeys"]
        .as_str()
        .filter(|k| !k.is_empty())
        .map(String::from)
}

/// `GET /exec/{id}/json`.
pub async fn exec_inspect(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
) -> ApiResult<Json<ExecInspectResponse>> {
    let e = d.engine.exec_inspect(&id)?;
    let cmd = e.config.cmd.clone().unwrap_or_default();
    Ok(Json(ExecInspectResponse {
        can_remove: Some(false),
        detach_keys: Some(String::new()),
        id: Some(e.id),
        running: Some(e.running),
        exit_code: e.exit_code,
        process_config: Some(ProcessConfig {
            privileged: e.config.privileged,
            user: e.config.user.clone(),
            tty: e.config.tty,
            entrypoint: cmd.first().cloned(),
            arguments: Some(cmd.iter().skip(1).cloned().collect()),
        }),
        open_stdin: e.config.attach_stdin,
        open_stderr: e.config.attach_stderr,
        open_stdout: e.config.attach_stdout,
        container_id: Some(e.container),
        pid: Some(e.pid),
    }))
}

/// `POST /exec/{id}/resize?h=&w=`: the exec's terminal takes the size now, or when its
/// process starts.
pub async fn exec_resize(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    Query(q): Query<ResizeQuery>,
) -> ApiResult<StatusCode> {
    d.engine
        .exec_resize(&id, q.h.unwrap_or(24), q.w.unwrap_or(80))?;
    Ok(StatusCode::OK)
}

#[derive(Deserialize, Default)]
pub struct StatsQuery {
    #[serde(default)]
    stream: Option<String>,
    #[serde(rename = "one-shot", default)]
    one_shot: Option<String>,
}

/// `GET /containers/{id}/stats`: a sample a second (`stream`, the default), or one sample
/// whose `precpu_stats` come from a second one taken a second earlier (as `docker stats
/// --no-stream` needs to show a CPU percentage), or a single sample (`one-shot`).
pub async fn stats(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    Query(q): Query<StatsQuery>,
) -> ApiResult<Response> {
    let stream = !matches!(q.stream.as_deref(), Some("0" | "false" | "False"));
    let one_shot = flag(&q.one_shot);
    let first = d.engine.stats(&id).await?;
    if !stream {
        let mut v = first.clone();
        if !one_shot {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            v = d.engine.stats(&id).await.unwrap_or(first.clone());
            v["preread"] = first["read"].clone();
            v["precpu_stats"] = first["cpu_stats"].clone();
        }
        return Ok(Json(v).into_response());
    }
    let engine = d.engine.clone();
    let body = futures_util::stream::unfold(
        (engine, id, None::<serde_json::Value>, Some(first)),
        |(engine, id, prev, next)| async move {
            let cur = match next {
                Some(v) => v,
                None => {
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    engine.stats(&id).await.ok()?
                }
            };
            let mut v = cur.clone();
            if let Some(p) = &prev {
                v["preread"] = p["read"].clone();
                v["precpu_stats"] = p["cpu_stats"].clone();
            }
            let mut line = serde_json::to_vec(&v).unwrap_or_default();
            line.push(b'\n');
            Some((
                Ok::<_, std::convert::Infallible>(Bytes::from(line)),
                (engine, id, Some(cur), None),
            ))
        },
    );
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(body),
    )
        .into_response())
}

/// `POST /containers/prune`: removes stopped containers (filters: label, label!, until).
pub async fn prune(
    State(d): State<Arc<Daemon>>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    let filter = ContainerPrune::new(Args::from_json(q.filters.as_deref().unwrap_or(""))?)?;
    let mut deleted = Vec::new();
    let mut freed = 0u64;
    for r in d.engine.list() {
        if r.state.status.is_running() || r.state.status == Status::Restarting {
            continue;
        }
        if !filter.matches(&r) {
            continue;
        }
        if let Ok(dir) = d.engine.container_dir(&r.id) {
            freed += berth_engine::volumes::dir_size(&dir.join("diff"));
        }
        if d.engine.remove(&r.id, false, false).await.is_ok() {
            deleted.push(r.id);
        }
    }
    Ok(Json(
        json!({"ContainersDeleted": deleted, "SpaceReclaimed": freed}),
    ))
}

#[derive(Deserialize, Default)]
pub struct ArchiveQuery {
    #[serde(default)]
    path: Option<String>,
}

fn archive_path(q: &ArchiveQuery) -> ApiResult<String> {
    q.path
        .clone()
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ApiError(StatusCode::BAD_REQUEST, "path is required".into()))
}

/// Docker's `X-Docker-Container-Path-Stat`: the stat as base64 JSON.
fn stat_header(s: &berth_engine::archive::PathStat) -> HeaderValue {
    use base64::Engine as _;
    let j = json!({
        "name": s.name, "size": s.size, "mode": s.mode, "mtime": s.mtime,
        "linkTarget": s.link_target,
    });
    let b = base64::engine::general_purpose::STANDARD.encode(j.to_string());
    HeaderValue::from_str(&b).unwrap_or(HeaderValue::from_static(""))
}

/// `HEAD /containers/{id}/archive?path=`.
pub async fn archive_head(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    Query(q): Query<ArchiveQuery>,
) -> ApiResult<Response> {
    let stat = d.engine.archive_stat(&id, &archive_path(&q)?).await?;
    let mut r = StatusCode::OK.into_response();
    r.headers_mut()
        .insert("X-Docker-Container-Path-Stat", stat_header(&stat));
    Ok(r)
}

/// `GET /containers/{id}/archive?path=`: a tar of the path.
pub async fn archive_get(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    Query(q): Query<ArchiveQuery>,
) -> ApiResult<Response> {
    let (stat, file) = d.engine.archive_get(&id, &archive_path(&q)?).await?;
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(
        tokio::fs::File::from_std(file),
    ));
    let mut r = ([(header::CONTENT_TYPE, "application/x-tar")], body).into_response();
    r.headers_mut()
        .insert("X-Docker-Container-Path-Stat", stat_header(&stat));
    Ok(r)
}

/// `PUT /containers/{id}/archive?path=`: the body is a tar unpacked into the directory.
pub async fn archive_put(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    Query(q): Query<ArchiveQuery>,
    body: Body,
) -> ApiResult<StatusCode> {
    let path = archive_path(&q)?;
    // Unknown containers get their 404 before the upload is read.
    d.engine.inspect(&id)?;
    let spool = crate::api::spool(body).await?;
    let file = spool
        .reopen()
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    d.engine.archive_put(&id, &path, file).await?;
    Ok(StatusCode::OK)
}

/// `GET /containers/{id}/changes` (`docker diff`).
pub async fn changes(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let c = d.engine.changes(&id).await?;
    Ok(Json(json!(c
        .iter()
        .map(|x| json!({"Path": x.path, "Kind": x.kind}))
        .collect::<Vec<_>>())))
}

/// `GET /containers/{id}/export`: the whole filesystem as a tar.
pub async fn export(State(d): State<Arc<Daemon>>, Path(id): Path<String>) -> ApiResult<Response> {
    let file = d.engine.export(&id).await?;
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(
        tokio::fs::File::from_std(file),
    ));
    Ok(([(header::CONTENT_TYPE, "application/x-tar")], body).into_response())
}

/// `POST /commit?container=&repo=&tag=&comment=&author=&changes=`.
pub async fn commit(
    State(d): State<Arc<Daemon>>,
    uri: axum::http::Uri,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let params = crate::api::query_params(&uri);
    let get = |k: &str| crate::api::first_param(&params, k).unwrap_or_default();
    let container = get("container");
    if container.is_empty() {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "container is required".into(),
        ));
    }
    let reference = match (get("repo"), get("tag")) {
        (r, _) if r.is_empty() => None,
        (r, t) if t.is_empty() => Some(r),
        (r, t) => Some(format!("{r}:{t}")),
    }
    .map(|r| berth_image::Reference::parse(&r))
    .transpose()
    .map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.to_string()))?;
    let changes: Vec<String> = params
        .iter()
        .filter(|(k, v)| k == "changes" && !v.is_empty())
        .map(|(_, v)| v.clone())
        .collect();
    let img = d
        .engine
        .commit(
            &container,
            reference,
            &get("comment"),
            &get("author"),
            &changes,
            // Docker's BoolValueOrDefault: absent or empty is true.
            !matches!(
                get("pause").to_ascii_lowercase().as_str(),
                "0" | "no" | "false" | "none"
            ),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(json!({"Id": img.id.to_string()}))))
}

/// `POST /containers/{id}/update`.
pub async fn update(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<serde_json::Value>> {
    let u: bollard_stubs::models::ContainerUpdateBody = json_body(&body)?;
    d.engine.update(&id, u).await?;
    Ok(Json(json!({"Warnings": []})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations_match_go_units() {
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(5), "5 seconds");
        assert_eq!(human_duration(70), "About a minute");
        assert_eq!(human_duration(300), "5 minutes");
        assert_eq!(human_duration(3600), "About an hour");
        assert_eq!(human_duration(3 * 86400), "3 days");
    }

    #[test]
    fn times_parse_with_fractions() {
        assert_eq!(
            parse_time(&Some("10.5".into())).ok().flatten(),
            Some(10_500_000_000)
        );
        assert_eq!(parse_time(&Some("0".into())).ok().flatten(), None);
        assert!(parse_time(&Some("x".into())).is_err());
    }
}
