//! The network endpoints: create, list, inspect, remove, connect, disconnect, prune, in
//! Docker's shapes (dual stack included), and the endpoint part of a container's inspect.
//! The networks are berth-network's; connecting a container goes through the engine, which
//! records it.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use berth_engine::filters::{Args, NetworkFilter};
use berth_engine::Record;
use berth_network::{CreateNetwork, IpamRequest, NetError, Network};
use bollard_stubs::models::EndpointSettings;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::{ApiError, ApiResult, Daemon};
use crate::containers::json_body;

impl From<NetError> for ApiError {
    fn from(e: NetError) -> Self {
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        ApiError(status, e.to_string())
    }
}

/// A network as `GET /networks/{id}` shows it: its IPAM configs (IPv4 first, then IPv6, as
/// dockerd lists them), each container's addresses of both families.
pub fn shape(n: &Network) -> Value {
    let mut config: Vec<Value> = n
        .pools()
        .map(|p| {
            let mut c = json!({"Subnet": p.subnet.to_string(), "Gateway": p.gateway.to_string()});
            if let Some(r) = p.range {
                c["IPRange"] = json!(r.to_string());
            }
            c
        })
        .collect();
    config.extend(n.pools6.iter().map(|p| {
        let mut c = json!({"Subnet": p.subnet.to_string(), "Gateway": p.gateway.to_string()});
        if let Some(r) = p.range {
            c["IPRange"] = json!(r.to_string());
        }
        c
    }));
    let containers: BTreeMap<&String, Value> = n
        .endpoints
        .iter()
        .map(|(id, e)| {
            (
                id,
                json!({
                    "Name": e.name,
                    "EndpointID": e.id,
                    "MacAddress": e.mac,
                    "IPv4Address": format!("{}/{}", e.ip, e.prefix),
                    "IPv6Address": e
                        .ip6
                        .map(|ip| format!("{ip}/{}", e.prefix6.unwrap_or(64)))
                        .unwrap_or_default(),
                }),
            )
        })
        .collect();
    json!({
        "Name": n.name,
        "Id": n.id,
        "Created": n.created,
        "Scope": "local",
        "Driver": n.driver,
        "EnableIPv4": true,
        "EnableIPv6": n.ipv6,
        "IPAM": {"Driver": "default", "Options": null, "Config": config},
        "Internal": n.internal,
        "Attachable": n.attachable,
        "Ingress": false,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": false,
        "Containers": containers,
        "Options": n.options,
        "Labels": n.labels,
    })
}

/// Completes `NetworkSettings.Networks` of a container's inspect (`v`) as dockerd shows
/// it: every endpoint carries `IPAMConfig`, `Links`, `Aliases`, `DriverOpts` and
/// `MacAddress` (null when unset), `IPAMConfig` has the `--ip6` asked for, and a running
/// container's IPv6 address, prefix length and gateway are filled in.
pub fn complete_endpoints(v: &mut Value, r: &Record) {
    let Some(nets) = v
        .pointer_mut("/NetworkSettings/Networks")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for (name, s) in nets.iter_mut() {
        let Some(s) = s.as_object_mut() else { continue };
        let Some(join) = r.networks.iter().find(|j| &j.network == name) else {
            continue;
        };
        let on = r
            .net
            .endpoints
            .iter()
            .find(|a| a.network_id == join.network_id)
            .map(|a| &a.endpoint);
        let mut ipam = serde_json::Map::new();
        if let Some(ip) = join.ip {
            ipam.insert("IPv4Address".into(), json!(ip.to_string()));
        }
        if let Some(ip) = join.ip6 {
            ipam.insert("IPv6Address".into(), json!(ip.to_string()));
        }
        s.insert(
            "IPAMConfig".into(),
            if ipam.is_empty() {
                Value::Null
            } else {
                Value::Object(ipam)
            },
        );
        s.insert("DriverOpts".into(), json!(join.driver_opts));
        for key in ["Links", "Aliases", "MacAddress"] {
            s.entry(key).or_insert(Value::Null);
        }
        s.insert(
            "GlobalIPv6Address".into(),
            json!(on
                .and_then(|e| e.ip6)
                .map(|ip| ip.to_string())
                .unwrap_or_default()),
        );
        s.insert(
            "GlobalIPv6PrefixLen".into(),
            json!(on.and_then(|e| e.prefix6).unwrap_or(0)),
        );
        s.insert(
            "IPv6Gateway".into(),
            json!(on
                .and_then(|e| e.gateway6)
                .map(|ip| ip.to_string())
                .unwrap_or_default()),
        );
    }
}

/// Docker's `network create` body (the fields berth acts on).
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct CreateBody {
    name: String,
    driver: String,
    internal: bool,
    attachable: bool,
    #[serde(rename = "EnableIPv4")]
    enable_ipv4: Option<bool>,
    #[serde(rename = "EnableIPv6")]
    enable_ipv6: Option<bool>,
    #[serde(rename = "IPAM")]
    ipam: Option<Ipam>,
    options: Option<BTreeMap<String, String>>,
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct Ipam {
    driver: Option<String>,
    config: Option<Vec<IpamConfig>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct IpamConfig {
    subnet: Option<String>,
    #[serde(rename = "IPRange")]
    ip_range: Option<String>,
    gateway: Option<String>,
}

fn bad(m: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, m.into())
}

/// `POST /networks/create`.
pub async fn create(
    State(d): State<Arc<Daemon>>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let b: CreateBody = json_body(&body)?;
    if b.name.is_empty() {
        return Err(bad("network name is required (Name)"));
    }
    let ipam = b.ipam.unwrap_or_default();
    if let Some(drv) = ipam
        .driver
        .as_deref()
        .filter(|d| !d.is_empty() && *d != "default")
    {
        return Err(bad(format!(
            "IPAM driver {drv:?} is not supported: berth has the default one only"
        )));
    }
    if b.enable_ipv4 == Some(false) {
        return Err(bad(
            "IPv6-only networks (EnableIPv4 false, --ipv4=false) are not supported: berth's networks always have IPv4",
        ));
    }
    // Any number of configs of either family; the network manager checks them.
    let configs = ipam.config.unwrap_or_default();
    let n = d
        .engine
        .networks()
        .create(CreateNetwork {
            name: b.name,
            driver: b.driver,
            ipam: configs
                .into_iter()
                .map(|c| IpamRequest {
                    subnet: c.subnet.filter(|s| !s.is_empty()),
                    gateway: c.gateway.filter(|s| !s.is_empty()),
                    ip_range: c.ip_range.filter(|s| !s.is_empty()),
                })
                .collect(),
            internal: b.internal,
            attachable: b.attachable,
            ipv6: b.enable_ipv6.unwrap_or(false),
            labels: b.labels.unwrap_or_default(),
            options: b.options.unwrap_or_default(),
        })
        .await?;
    d.engine.network_event("create", &n, None);
    Ok((
        StatusCode::CREATED,
        Json(json!({"Id": n.id, "Warning": ""})),
    ))
}

#[derive(Deserialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    filters: Option<String>,
}

/// `GET /networks`.
pub async fn list(
    State(d): State<Arc<Daemon>>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Vec<Value>>> {
    let filter = NetworkFilter::list(Args::from_json(q.filters.as_deref().unwrap_or(""))?)?;
    let mut out = Vec::new();
    for n in d.engine.networks().list().await {
        if filter.matches(&n) {
            out.push(shape(&n));
        }
    }
    Ok(Json(out))
}

/// `GET /networks/{id}`.
pub async fn inspect(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(shape(&d.engine.networks().get(&id).await?)))
}

/// `DELETE /networks/{id}`.
pub async fn remove(State(d): State<Arc<Daemon>>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let n = d.engine.networks().get(&id).await?;
    d.engine.networks().remove(&n.id).await?;
    d.engine.network_event("destroy", &n, None);
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct ConnectBody {
    container: String,
    endpoint_config: Option<EndpointSettings>,
    force: bool,
}

/// `POST /networks/{id}/connect`.
pub async fn connect(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let b: ConnectBody = json_body(&body)?;
    if b.container.is_empty() {
        return Err(bad("no container given (Container)"));
    }
    d.engine
        .network_connect(&id, &b.container, b.endpoint_config.as_ref())
        .await?;
    Ok(StatusCode::OK)
}

/// `POST /networks/{id}/disconnect`.
pub async fn disconnect(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let b: ConnectBody = json_body(&body)?;
    if b.container.is_empty() {
        return Err(bad("no container given (Container)"));
    }
    d.engine
        .network_disconnect(&id, &b.container, b.force)
        .await?;
    Ok(StatusCode::OK)
}

/// `POST /networks/prune`: user-defined networks no container is attached to (filters:
/// label, label!, until).
pub async fn prune(
    State(d): State<Arc<Daemon>>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let filter = NetworkFilter::prune(Args::from_json(q.filters.as_deref().unwrap_or(""))?)?;
    let mut gone = Vec::new();
    for n in d.engine.networks().list().await {
        if !filter.matches(&n) {
            continue;
        }
        if d.engine.networks().remove(&n.id).await.is_ok() {
            d.engine.network_event("destroy", &n, None);
            gone.push(n.name);
        }
    }
    Ok(Json(json!({"NetworksDeleted": gone})))
}
