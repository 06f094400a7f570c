//! `berth network create|ls|inspect|rm|connect|disconnect|prune` and `berth port`.

use clap::{Args, Subcommand};
use hyper::Method;
use serde_json::{json, Map, Value};

use crate::client::{each, query, seg, Api};
use crate::containers::{confirm, inspect_each, prune_and_report, PruneArgs};
use crate::format;
use crate::opts::filters;

/// The IPAM configs of `network create`, as the docker CLI makes them: one per `--subnet`,
/// each `--gateway` and `--ip-range` with the subnet that contains it.
fn ipam_configs(
    subnets: &[String],
    gateways: &[String],
    ranges: &[String],
) -> anyhow::Result<Vec<Value>> {
    let mut configs: Vec<Map<String, Value>> = subnets
        .iter()
        .map(|s| {
            cidr(s).map(|_| {
                let mut m = Map::new();
                m.insert("Subnet".into(), json!(s));
                m
            })
        })
        .collect::<anyhow::Result<_>>()?;
    if subnets.is_empty() && !(gateways.is_empty() && ranges.is_empty()) {
        anyhow::bail!("every ip-range or gateway must have a corresponding subnet");
    }
    for (key, values) in [("Gateway", gateways), ("IPRange", ranges)] {
        for v in values {
            let addr: std::net::IpAddr = match cidr(v) {
                Ok((a, _)) => a,
                Err(_) => v
                    .parse()
                    .map_err(|_| anyhow::anyhow!("invalid address {v}"))?,
            };
            let owner = subnets
                .iter()
                .position(|s| cidr(s).is_ok_and(|(net, len)| contains(net, len, addr)))
                .ok_or_else(|| {
                    anyhow::anyhow!("no matching subnet for {} {v}", key.to_lowercase())
                })?;
            if configs[owner].insert(key.into(), json!(v)).is_some() {
                anyhow::bail!(
                    "cannot configure multiple {}s for the same subnet",
                    key.to_lowercase()
                );
            }
        }
    }
    Ok(configs.into_iter().map(Value::Object).collect())
}

/// `addr/len`, IPv4 or IPv6.
fn cidr(s: &str) -> anyhow::Result<(std::net::IpAddr, u8)> {
    let (a, l) = s
        .split_once('/')
        .ok_or_else(|| anyhow::anyhow!("invalid CIDR address: {s}"))?;
    let addr: std::net::IpAddr = a
        .parse()
        .map_err(|_| anyhow::anyhow!("invalid CIDR address: {s}"))?;
    let len: u8 = l
        .parse()
        .map_err(|_| anyhow::anyhow!("invalid CIDR address: {s}"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if len > max {
        anyhow::bail!("invalid CIDR address: {s}");
    }
    Ok((addr, len))
}

fn contains(net: std::net::IpAddr, len: u8, ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr::{V4, V6};
    let (n, i, bits): (u128, u128, u32) = match (net, ip) {
        (V4(n), V4(i)) => (u32::from(n).into(), u32::from(i).into(), 32),
        (V6(n), V6(i)) => (u128::from(n), u128::from(i), 128),
        _ => return false,
    };
    let shift = bits - u32::from(len);
    shift >= bits || n >> shift == i >> shift
}

/// `berth network ...`.
#[derive(Subcommand, Debug)]
pub enum NetworkCmd {
    /// Connect a container to a network
    Connect(ConnectArgs),
    /// Create a network
    Create(CreateArgs),
    /// Disconnect a container from a network
    Disconnect(DisconnectArgs),
    /// Display detailed information on one or more networks
    Inspect(InspectArgs),
    /// List networks
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Remove all unused networks
    Prune(PruneArgs),
    /// Remove one or more networks
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
}

/// `berth network create`.
#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Driver to manage the Network
    #[arg(short, long, default_value = "bridge")]
    pub driver: String,
    /// Subnet in CIDR format that represents a network segment (e.g. 172.30.0.0/16,
    /// fd00:1::/64); repeatable, one per IPAM config
    #[arg(long)]
    pub subnet: Vec<String>,
    /// IPv4 or IPv6 Gateway for the master subnet (goes with the subnet that contains it)
    #[arg(long)]
    pub gateway: Vec<String>,
    /// Allocate container ip from a sub-range (goes with the subnet that contains it)
    #[arg(long)]
    pub ip_range: Vec<String>,
    /// Restrict external access to the network
    #[arg(long)]
    pub internal: bool,
    /// Enable manual container attachment
    #[arg(long)]
    pub attachable: bool,
    /// Enable IPv6 networking (with a --subnet of IPv6, or a ULA /64 of berthd's choosing)
    #[arg(long)]
    pub ipv6: bool,
    /// Set metadata on a network
    #[arg(long)]
    pub label: Vec<String>,
    /// Set driver specific options
    #[arg(short, long)]
    pub opt: Vec<String>,
    /// The network's name
    pub name: String,
}

/// `berth network connect`.
#[derive(Args, Debug)]
pub struct ConnectArgs {
    /// Add network-scoped alias for the container
    #[arg(long)]
    pub alias: Vec<String>,
    /// IPv4 address (e.g., 172.30.100.104)
    #[arg(long)]
    pub ip: Option<String>,
    /// IPv6 address (e.g., 2001:db8::33)
    #[arg(long)]
    pub ip6: Option<String>,
    pub network: String,
    pub container: String,
}

/// `berth network disconnect`.
#[derive(Args, Debug)]
pub struct DisconnectArgs {
    /// Force the container to disconnect from a network
    #[arg(short, long)]
    pub force: bool,
    pub network: String,
    pub container: String,
}

/// `berth network inspect`.
#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Format output using a Go template
    #[arg(short, long)]
    pub format: Option<String>,
    #[arg(required = true, value_name = "NETWORK")]
    pub networks: Vec<String>,
}

/// `berth network ls`.
#[derive(Args, Debug)]
pub struct LsArgs {
    /// Provide filter values (e.g. "driver=bridge", "name=app", "type=custom")
    #[arg(short, long)]
    pub filter: Vec<String>,
    /// Format output using a Go template
    #[arg(long)]
    pub format: Option<String>,
    /// Do not truncate the output
    #[arg(long)]
    pub no_trunc: bool,
    /// Only display network IDs
    #[arg(short, long)]
    pub quiet: bool,
}

/// `berth network rm`.
#[derive(Args, Debug)]
pub struct RmArgs {
    #[arg(required = true, value_name = "NETWORK")]
    pub networks: Vec<String>,
}

/// `berth port`.
#[derive(Args, Debug)]
pub struct PortArgs {
    pub container: String,
    /// A port of the container, `80` or `80/tcp`
    #[arg(value_name = "PRIVATE_PORT[/PROTO]")]
    pub port: Option<String>,
}

fn pairs(list: &[String]) -> Map<String, Value> {
    list.iter()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or((l, ""));
            (k.to_string(), json!(v))
        })
        .collect()
}

/// `berth network ...`.
pub async fn run(api: &Api, cmd: NetworkCmd) -> anyhow::Result<()> {
    match cmd {
        NetworkCmd::Create(a) => {
            let configs = ipam_configs(&a.subnet, &a.gateway, &a.ip_range)?;
            let body = json!({
                "Name": a.name,
                "CheckDuplicate": true,
                "Driver": a.driver,
                "Internal": a.internal,
                "Attachable": a.attachable,
                "EnableIPv6": a.ipv6,
                "IPAM": {"Driver": "default", "Config": configs, "Options": {}},
                "Options": pairs(&a.opt),
                "Labels": pairs(&a.label),
            });
            let v = api.post("/networks/create", "", Some(&body)).await?;
            println!("{}", v["Id"].as_str().unwrap_or(""));
            Ok(())
        }
        NetworkCmd::Connect(a) => {
            let mut ep = Map::new();
            if !a.alias.is_empty() {
                ep.insert("Aliases".into(), json!(a.alias));
            }
            let mut ipam = Map::new();
            if let Some(ip) = &a.ip {
                ipam.insert("IPv4Address".into(), json!(ip));
            }
            if let Some(ip) = &a.ip6 {
                ipam.insert("IPv6Address".into(), json!(ip));
            }
            if !ipam.is_empty() {
                ep.insert("IPAMConfig".into(), Value::Object(ipam));
            }
            let body = json!({"Container": a.container, "EndpointConfig": Value::Object(ep)});
            api.post(
                &format!("/networks/{}/connect", seg(&a.network)),
                "",
                Some(&body),
            )
            .await?;
            Ok(())
        }
        NetworkCmd::Disconnect(a) => {
            let body = json!({"Container": a.container, "Force": a.force});
            api.post(
                &format!("/networks/{}/disconnect", seg(&a.network)),
                "",
                Some(&body),
            )
            .await?;
            Ok(())
        }
        NetworkCmd::Inspect(a) => {
            inspect_each(api, "networks", &a.networks, a.format.as_deref()).await
        }
        NetworkCmd::Ls(a) => {
            let q = if a.filter.is_empty() {
                String::new()
            } else {
                query(&[("filters", serde_json::to_string(&filters(&a.filter)?)?)])
            };
            let v = api.get("/networks", &q).await?;
            let mut nets: Vec<&Value> = v.as_array().into_iter().flatten().collect();
            nets.sort_by_key(|n| n["Name"].as_str().unwrap_or("").to_string());
            let id = |n: &Value| {
                let id = n["Id"].as_str().unwrap_or("");
                if a.no_trunc {
                    id.to_string()
                } else {
                    id.chars().take(12).collect()
                }
            };
            if a.quiet {
                for n in nets {
                    println!("{}", id(n));
                }
                return Ok(());
            }
            let rows: Vec<Map<String, Value>> = nets
                .iter()
                .map(|n| {
                    let mut labels: Vec<String> = n["Labels"]
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(k, x)| format!("{k}={}", x.as_str().unwrap_or("")))
                        .collect();
                    labels.sort();
                    let mut r = Map::new();
                    r.insert("ID".into(), json!(id(n)));
                    for k in ["Name", "Driver", "Scope", "CreatedAt"] {
                        let src = if k == "CreatedAt" { "Created" } else { k };
                        r.insert(k.into(), n[src].clone());
                    }
                    r.insert(
                        "IPv6".into(),
                        json!(n["EnableIPv6"].as_bool().unwrap_or(false)),
                    );
                    r.insert(
                        "Internal".into(),
                        json!(n["Internal"].as_bool().unwrap_or(false)),
                    );
                    r.insert("Labels".into(), json!(labels.join(",")));
                    r
                })
                .collect();
            let cols = [
                ("ID", "NETWORK ID"),
                ("Name", "NAME"),
                ("Driver", "DRIVER"),
                ("Scope", "SCOPE"),
            ];
            print!("{}", format::render(&rows, &cols, a.format.as_deref())?);
            Ok(())
        }
        NetworkCmd::Rm(a) => {
            each(&a.networks, |n| async move {
                api.call(Method::DELETE, &format!("/networks/{}", seg(&n)), "", None)
                    .await?;
                Ok(Some(n))
            })
            .await
        }
        NetworkCmd::Prune(a) => {
            if !a.force
                && !confirm(
                    "WARNING! This will remove all custom networks not used by at least one container.",
                )?
            {
                return Ok(());
            }
            prune_and_report(api, "networks", filters(&a.filter)?).await
        }
    }
}

/// `berth port CONTAINER [PORT[/PROTO]]`: where the container's ports are published, as
/// `80/tcp -> 0.0.0.0:8080` lines (just `0.0.0.0:8080` when a port is asked for).
pub async fn port(api: &Api, a: PortArgs) -> anyhow::Result<()> {
    let c = api
        .get(&format!("/containers/{}/json", seg(&a.container)), "")
        .await?;
    let ports = c["NetworkSettings"]["Ports"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let line = |b: &Value| {
        format!(
            "{}:{}",
            b["HostIp"].as_str().unwrap_or(""),
            b["HostPort"].as_str().unwrap_or("")
        )
    };
    if let Some(p) = &a.port {
        let key = if p.contains('/') {
            p.clone()
        } else {
            format!("{p}/tcp")
        };
        let binds: Vec<&Value> = ports
            .get(&key)
            .and_then(|b| b.as_array())
            .into_iter()
            .flatten()
            .collect();
        if binds.is_empty() {
            anyhow::bail!(
                "Error: No public port '{key}' published for {}",
                a.container
            );
        }
        for b in binds {
            println!("{}", line(b));
        }
        return Ok(());
    }
    let mut keys: Vec<&String> = ports.keys().collect();
    keys.sort_by_key(|k| {
        let (n, proto) = k.split_once('/').unwrap_or((k, ""));
        (n.parse::<u32>().unwrap_or(0), proto.to_string())
    });
    for k in keys {
        for b in ports[k].as_array().into_iter().flatten() {
            println!("{k} -> {}", line(b));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateways_and_ranges_go_with_their_subnets() {
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let c = ipam_configs(
            &v(&["10.1.0.0/24", "fd00:1::/64"]),
            &v(&["fd00:1::1", "10.1.0.254"]),
            &v(&["10.1.0.128/25"]),
        )
        .unwrap();
        assert_eq!(
            c,
            [
                json!({"Subnet": "10.1.0.0/24", "Gateway": "10.1.0.254", "IPRange": "10.1.0.128/25"}),
                json!({"Subnet": "fd00:1::/64", "Gateway": "fd00:1::1"}),
            ]
        );
        assert!(ipam_configs(&v(&["10.1.0.0/24"]), &v(&["10.2.0.1"]), &[]).is_err());
        assert!(ipam_configs(&[], &v(&["10.2.0.1"]), &[]).is_err());
        assert!(ipam_configs(&v(&["10.1.0.0/33"]), &[], &[]).is_err());
    }
}
