//! What a container's network settings mean to the engine: its network mode and endpoints,
//! checked at create as dockerd checks them; the ports it publishes; its `/etc/hosts` and
//! `/etc/resolv.conf`. The sandboxes themselves are [`berth_network::Manager`]'s.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use berth_network::{Attached, Manager, Network, PortRequest};
use bollard_stubs::models::{ContainerConfig, EndpointSettings, HostConfig, NetworkingConfig};

use crate::record::NetworkJoin;
use crate::{EngineError, Result};

/// A container's network mode (`--network`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// The host's namespace.
    Host,
    /// A namespace of its own with loopback only.
    None,
    /// Another container's namespace (`container:<name|id>`).
    Container(String),
    /// A namespace of its own on networks: this one (`bridge` for `default`) and any
    /// connected later.
    Networks(String),
}

impl Mode {
    /// The mode a host config asks for.
    pub fn of(h: &HostConfig) -> Mode {
        match h.network_mode.as_deref().unwrap_or("") {
            "host" => Mode::Host,
            "none" => Mode::None,
            "" | "default" | "bridge" => Mode::Networks("bridge".into()),
            m => match m.strip_prefix("container:") {
                Some(c) => Mode::Container(c.to_string()),
                None => Mode::Networks(m.to_string()),
            },
        }
    }
}

/// What a create's network settings come to.
#[derive(Debug, Default)]
pub struct Plan {
    /// The networks it joins, the primary one first.
    pub networks: Vec<NetworkJoin>,
    /// Docker's warnings for the create response.
    pub warnings: Vec<String>,
}

fn bad(m: impl Into<String>) -> EngineError {
    EngineError::InvalidParameter(m.into())
}

fn has_ports(h: &HostConfig) -> bool {
    h.port_bindings.as_ref().is_some_and(|p| !p.is_empty()) || h.publish_all_ports == Some(true)
}

/// Checks a create's network mode, endpoints, ports, DNS and extra hosts, and resolves the
/// networks it names.
pub async fn plan(
    mgr: &Manager,
    c: &ContainerConfig,
    h: &HostConfig,
    nc: Option<&NetworkingConfig>,
) -> Result<Plan> {
    let mut endpoints: Vec<(String, EndpointSettings)> = nc
        .and_then(|n| n.endpoints_config.clone())
        .unwrap_or_default()
        .into_iter()
        .collect();
    endpoints.sort_by(|a, b| a.0.cmp(&b.0));
    port_requests(c, h)?;
    for e in h.extra_hosts.iter().flatten() {
        extra_host(e, None)?;
    }
    for d in h.dns.iter().flatten() {
        d.parse::<IpAddr>()
            .map_err(|_| bad(format!("{d} is not an ip address (--dns)")))?;
    }
    let mut plan = Plan::default();
    let mode = Mode::of(h);
    let predefined = |name: &str, endpoints: &[(String, EndpointSettings)]| -> Result<()> {
        let others: Vec<&str> = endpoints
            .iter()
            .map(|(k, _)| k.as_str())
            .filter(|k| *k != name)
            .collect();
        if others.is_empty() {
            Ok(())
        } else {
            Err(bad(format!(
                "Container cannot be connected to network endpoints: {name}, {}",
                others.join(", ")
            )))
        }
    };
    match &mode {
        Mode::Host | Mode::None => {
            let name = if mode == Mode::Host { "host" } else { "none" };
            predefined(name, &endpoints)?;
            if mode == Mode::Host && has_ports(h) {
                plan.warnings
                    .push("Published ports are discarded when using host network mode".into());
            }
            let net = mgr.get(name).await?;
            plan.networks.push(NetworkJoin {
                network: net.name,
                network_id: net.id,
                ..Default::default()
            });
        }
        Mode::Container(target) => {
            if target.is_empty() {
                return Err(bad("invalid network mode container: (no container named)"));
            }
            let conflict = |what: &str| bad(format!("conflicting options: {what}"));
            if c.hostname.as_deref().is_some_and(|n| !n.is_empty()) {
                return Err(conflict("hostname and the network mode"));
            }
            if h.dns.as_ref().is_some_and(|d| !d.is_empty()) {
                return Err(conflict("dns and the network mode"));
            }
            if h.extra_hosts.as_ref().is_some_and(|d| !d.is_empty()) {
                return Err(conflict("custom host-to-IP mapping and the network mode"));
            }
            if has_ports(h) || c.exposed_ports.as_ref().is_some_and(|p| !p.is_empty()) {
                return Err(conflict(
                    "port publishing and the container type network mode",
                ));
            }
            if !endpoints.is_empty() {
                return Err(bad(
                    "Container sharing network namespace with another container or host cannot be connected to any other network",
                ));
            }
        }
        Mode::Networks(primary) => {
            let net = mgr.get(primary).await?;
            let mine = endpoints
                .iter()
                .position(|(k, _)| {
                    k == primary
                        || *k == net.name
                        || *k == net.id
                        || Some(k.as_str()) == h.network_mode.as_deref()
                })
                .map(|i| endpoints.remove(i).1);
            plan.networks.push(join_of(&net, mine.as_ref())?);
            for (key, settings) in &endpoints {
                let other = mgr.get(key).await?;
                if other.driver != "bridge" {
                    return Err(bad(format!(
                        "Container cannot be connected to network endpoints: {}, {}",
                        net.name, other.name
                    )));
                }
                if plan.networks.iter().any(|j| j.network_id == other.id) {
                    continue;
                }
                plan.networks.push(join_of(&other, Some(settings))?);
            }
        }
    }
    Ok(plan)
}

/// Who joins a network, as the network manager knows a container: its ID, its name, and
/// its `--dns` servers (where the embedded DNS forwards its questions).
pub fn member(rec: &crate::Record) -> berth_network::Member {
    berth_network::Member {
        id: rec.id.clone(),
        name: rec.name.trim_start_matches('/').to_string(),
        dns: rec
            .host_config
            .dns
            .iter()
            .flatten()
            .filter_map(|d| d.parse().ok())
            .collect(),
    }
}

/// How a container joins `net` with these endpoint settings, checked as dockerd does.
pub fn join_of(net: &Network, s: Option<&EndpointSettings>) -> Result<NetworkJoin> {
    let ip = match s
        .and_then(|s| s.ipam_config.as_ref())
        .and_then(|c| c.ipv4_address.as_deref())
        .filter(|a| !a.is_empty())
    {
        None => None,
        Some(a) => {
            let ip: Ipv4Addr = a
                .parse()
                .map_err(|_| bad(format!("invalid IPv4 address: {a}")))?;
            if !net.user_defined() {
                return Err(bad(
                    "user specified IP address is supported on user defined networks only",
                ));
            }
            if net.pool.is_some() && !net.pools().any(|p| p.subnet.contains(ip)) {
                return Err(bad(format!(
                    "Invalid address {ip}: It does not belong to any of this network's subnets"
                )));
            }
            Some(ip)
        }
    };
    let ip6 = match s
        .and_then(|s| s.ipam_config.as_ref())
        .and_then(|c| c.ipv6_address.as_deref())
        .filter(|a| !a.is_empty())
    {
        None => None,
        Some(a) => {
            let ip: Ipv6Addr = a
                .parse()
                .map_err(|_| bad(format!("invalid IPv6 address: {a}")))?;
            if !net.user_defined() {
                return Err(bad(
                    "user specified IP address is supported on user defined networks only",
                ));
            }
            if !net.pools6.iter().any(|p| p.subnet.contains(ip)) {
                return Err(bad(format!(
                    "Invalid address {ip}: It does not belong to any of this network's subnets"
                )));
            }
            Some(ip)
        }
    };
    let aliases: Vec<String> = s
        .and_then(|s| s.aliases.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|a| !a.is_empty())
        .collect();
    if !aliases.is_empty() && !net.user_defined() {
        return Err(bad(
            "network-scoped alias is supported only for containers in user defined networks",
        ));
    }
    let mac = s
        .and_then(|s| s.mac_address.clone())
        .filter(|m| !m.is_empty());
    if let Some(m) = &mac {
        if berth_network::parse_mac(m).is_none() {
            return Err(bad(format!("invalid MAC address: {m}")));
        }
    }
    Ok(NetworkJoin {
        network: net.name.clone(),
        network_id: net.id.clone(),
        ip,
        ip6,
        driver_opts: s
            .and_then(|s| s.driver_opts.clone())
            .filter(|o| !o.is_empty()),
        aliases,
        mac,
    })
}

/// The ports a container publishes: its `PortBindings`, and with `PublishAllPorts` every
/// exposed port not bound otherwise, on a free host port. A binding without a host address
/// is held on 0.0.0.0, and on `[::]` too when the container has IPv6 (see
/// [`berth_network::PortRequest`]).
pub fn port_requests(c: &ContainerConfig, h: &HostConfig) -> Result<Vec<PortRequest>> {
    let mut out = Vec::new();
    let mut bound = HashSet::new();
    let mut keys: Vec<_> = h.port_bindings.iter().flatten().collect();
    keys.sort_by(|a, b| a.0.cmp(b.0));
    for (key, binds) in keys {
        let binds = binds.clone().unwrap_or_default();
        if binds.is_empty() {
            continue;
        }
        for b in binds {
            let ip = b.host_ip.unwrap_or_default();
            let r = berth_network::ports::request(key, &ip, b.host_port.as_deref().unwrap_or(""))?;
            bound.insert((r.ctr_port, r.proto.clone()));
            out.push(r);
        }
    }
    if h.publish_all_ports == Some(true) {
        let mut exposed = c.exposed_ports.clone().unwrap_or_default();
        exposed.sort();
        for key in exposed {
            let r = berth_network::ports::request(&key, "", "")?;
            if bound.insert((r.ctr_port, r.proto.clone())) {
                out.push(r);
            }
        }
    }
    Ok(out)
}

/// An `--add-host` entry (`name:ip`, the API's form) as its `/etc/hosts` line;
/// `host-gateway` stands for `gateway` (the default bridge's address).
pub fn extra_host(e: &str, gateway: Option<Ipv4Addr>) -> Result<String> {
    let (name, ip) = e
        .split_once(':')
        .or_else(|| e.split_once('='))
        .filter(|(n, i)| !n.is_empty() && !i.is_empty())
        .ok_or_else(|| {
            bad(format!(
                "invalid argument {e:?} for \"--add-host\" flag: want host:ip"
            ))
        })?;
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad(format!(
            "invalid argument {e:?} for \"--add-host\" flag: the host name has spaces or control characters"
        )));
    }
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    let ip = if ip == "host-gateway" {
        match gateway {
            Some(g) => g.to_string(),
            // At create the address is not looked up yet; any IPv4 is a stand-in.
            None => Ipv4Addr::UNSPECIFIED.to_string(),
        }
    } else {
        ip.parse::<IpAddr>()
            .map_err(|_| bad(format!("invalid IP address in add-host: {ip:?}")))?
            .to_string()
    };
    Ok(format!("{ip}\t{name}"))
}

/// The container's `/etc/hosts`: the host's for host networking, otherwise Docker's
/// localhost lines; then `--add-host` entries and the container's own addresses.
pub fn hosts_file(
    host: Option<&str>,
    hostname: &str,
    domain: &str,
    endpoints: &[Attached],
    extra: &[String],
    gateway: Option<Ipv4Addr>,
) -> Result<String> {
    let mut s = match host {
        Some(h) => {
            let mut h = h.to_string();
            if !h.is_empty() && !h.ends_with('\n') {
                h.push('\n');
            }
            h
        }
        None => "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n".to_string(),
    };
    for e in extra {
        s.push_str(&extra_host(e, gateway)?);
        s.push('\n');
    }
    let names = if domain.is_empty() {
        hostname.to_string()
    } else {
        format!("{hostname}.{domain} {hostname}")
    };
    for a in endpoints {
        s.push_str(&format!("{}\t{names}\n", a.endpoint.ip));
        if let Some(ip6) = a.endpoint.ip6 {
            s.push_str(&format!("{ip6}\t{names}\n"));
        }
    }
    Ok(s)
}

/// The container's `/etc/resolv.conf` from the host's: nameservers are `--dns`'s, else the
/// embedded DNS server's (`embedded`, on user-defined networks), else the host's that a
/// container can reach (not loopback, unless it shares the host's network), else Google's
/// as Docker falls back; search domains and options are the host's unless `--dns-search`
/// and `--dns-option` say otherwise.
pub fn resolv_conf(
    host: &str,
    h: &HostConfig,
    embedded: Option<Ipv4Addr>,
    host_net: bool,
) -> String {
    let mut servers = Vec::new();
    let mut search = Vec::new();
    let mut options = Vec::new();
    for line in host.lines() {
        let mut w = line.split_whitespace();
        match w.next() {
            Some("nameserver") => servers.extend(w.next().map(str::to_string)),
            Some("search") | Some("domain") => search = w.map(str::to_string).collect(),
            Some("options") => options.extend(w.map(str::to_string)),
            _ => {}
        }
    }
    let custom: Vec<String> = h.dns.clone().unwrap_or_default();
    let servers: Vec<String> = if let Some(gw) = embedded {
        // The embedded server forwards what it does not know to --dns or the host's.
        vec![gw.to_string()]
    } else if !custom.is_empty() {
        custom
    } else if host_net {
        servers
    } else {
        let reachable: Vec<String> = servers
            .into_iter()
            .filter(|s| {
                s.parse::<IpAddr>()
                    .is_ok_and(|ip| !ip.is_loopback() && ip.is_ipv4())
            })
            .collect();
        if reachable.is_empty() {
            vec!["8.8.8.8".into(), "8.8.4.4".into()]
        } else {
            reachable
        }
    };
    if let Some(s) = h.dns_search.as_ref().filter(|s| !s.is_empty()) {
        search = s.iter().filter(|d| *d != ".").cloned().collect();
    }
    if let Some(o) = h.dns_options.as_ref().filter(|o| !o.is_empty()) {
        options = o.clone();
    }
    let mut out = String::new();
    for s in servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard_stubs::models::PortBinding;

    #[test]
    fn modes_read_as_docker_names_them() {
        let m = |s: &str| {
            Mode::of(&HostConfig {
                network_mode: Some(s.into()),
                ..Default::default()
            })
        };
        assert_eq!(m("default"), Mode::Networks("bridge".into()));
        assert_eq!(m(""), Mode::Networks("bridge".into()));
        assert_eq!(m("host"), Mode::Host);
        assert_eq!(m("none"), Mode::None);
        assert_eq!(m("container:web"), Mode::Container("web".into()));
        assert_eq!(m("appnet"), Mode::Networks("appnet".into()));
    }

    #[test]
    fn published_ports_follow_bindings_and_publish_all() {
        let h = HostConfig {
            port_bindings: Some(
                [
                    (
                        "80/tcp".to_string(),
                        Some(vec![PortBinding {
                            host_ip: Some("127.0.0.1".into()),
                            host_port: Some("8080".into()),
                        }]),
                    ),
                    (
                        "53/udp".to_string(),
                        Some(vec![
                            PortBinding {
                                host_ip: Some("".into()),
                                host_port: Some("".into()),
                            },
                            PortBinding {
                                host_ip: Some("::".into()),
                                host_port: Some("".into()),
                            },
                        ]),
                    ),
                ]
                .into(),
            ),
            publish_all_ports: Some(true),
            ..Default::default()
        };
        let c = ContainerConfig {
            exposed_ports: Some(vec!["80/tcp".into(), "443/tcp".into()]),
            ..Default::default()
        };
        let r = port_requests(&c, &h).unwrap();
        let shown: Vec<String> = r
            .iter()
            .map(|p| {
                format!(
                    "{:?} {:?} {}/{}",
                    p.host_ip, p.host_ports, p.ctr_port, p.proto
                )
            })
            .collect();
        assert_eq!(
            shown,
            [
                "None (0, 0) 53/udp",
                "Some(::) (0, 0) 53/udp",
                "Some(127.0.0.1) (8080, 8080) 80/tcp",
                "None (0, 0) 443/tcp"
            ]
        );
        let bad = HostConfig {
            port_bindings: Some(
                [("eighty/tcp".to_string(), Some(vec![PortBinding::default()]))].into(),
            ),
            ..Default::default()
        };
        assert!(port_requests(&c, &bad).is_err());
    }

    #[test]
    fn extra_hosts_take_both_separators_and_the_gateway() {
        let gw = Some(Ipv4Addr::new(172, 17, 0, 1));
        assert_eq!(extra_host("db:10.0.0.5", gw).unwrap(), "10.0.0.5\tdb");
        assert_eq!(extra_host("db=10.0.0.5", gw).unwrap(), "10.0.0.5\tdb");
        assert_eq!(extra_host("v6:::1", gw).unwrap(), "::1\tv6");
        assert_eq!(
            extra_host("host.docker.internal:host-gateway", gw).unwrap(),
            "172.17.0.1\thost.docker.internal"
        );
        assert!(extra_host("db:notanip", gw).is_err());
        assert!(extra_host("db", gw).is_err());
        assert!(extra_host(":1.2.3.4", gw).is_err());
        assert!(extra_host("a\nb:1.2.3.4", gw).is_err());
    }

    #[test]
    fn resolv_conf_drops_unreachable_servers_and_takes_overrides() {
        let host = "# generated\nnameserver 127.0.0.53\nnameserver 10.0.0.2\nsearch corp.example\noptions edns0\n";
        let h = HostConfig::default();
        assert_eq!(
            resolv_conf(host, &h, None, false),
            "nameserver 10.0.0.2\nsearch corp.example\noptions edns0\n"
        );
        assert_eq!(
            resolv_conf(host, &h, None, true),
            "nameserver 127.0.0.53\nnameserver 10.0.0.2\nsearch corp.example\noptions edns0\n"
        );
        assert_eq!(
            resolv_conf("nameserver 127.0.0.1\n", &h, None, false),
            "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"
        );
        let custom = HostConfig {
            dns: Some(vec!["1.1.1.1".into()]),
            dns_search: Some(vec![".".into()]),
            dns_options: Some(vec!["ndots:2".into()]),
            ..Default::default()
        };
        assert_eq!(
            resolv_conf(host, &custom, None, false),
            "nameserver 1.1.1.1\noptions ndots:2\n"
        );
        assert_eq!(
            resolv_conf(host, &custom, Some(Ipv4Addr::new(172, 18, 0, 1)), false),
            "nameserver 172.18.0.1\noptions ndots:2\n"
        );
    }

    proptest::proptest! {
        // What API clients send for --add-host, --dns and the ports: never a panic, and an
        // accepted extra host is one line naming what was asked.
        #[test]
        fn request_strings_parse_totally(e in "(?s).{0,40}", host in "(?s).{0,60}") {
            if let Ok(line) = extra_host(&e, Some(Ipv4Addr::new(172, 17, 0, 1))) {
                proptest::prop_assert!(!line.contains('\n'));
                let name = e.split([':', '=']).next().unwrap_or("");
                let want = format!("\t{name}");
                proptest::prop_assert!(line.ends_with(&want));
            }
            let h = HostConfig {
                dns_search: Some(vec![e.clone()]),
                ..Default::default()
            };
            let _ = resolv_conf(&host, &h, None, false);
        }
    }

    #[test]
    fn hosts_name_the_container_on_each_address() {
        let ep = |ip: [u8; 4]| Attached {
            network: "n".into(),
            network_id: "i".into(),
            endpoint: berth_network::Endpoint {
                id: String::new(),
                container: String::new(),
                name: String::new(),
                ip: ip.into(),
                prefix: 16,
                gateway: Ipv4Addr::new(172, 17, 0, 1),
                ip6: (ip[3] == 3).then(|| "fd00:17::3".parse().unwrap()),
                prefix6: (ip[3] == 3).then_some(64),
                gateway6: None,
                mac: String::new(),
                aliases: vec![],
                host_iface: String::new(),
                iface: String::new(),
                ports: vec![],
            },
        };
        let s = hosts_file(
            None,
            "web",
            "example.org",
            &[ep([172, 17, 0, 2])],
            &["db:10.0.0.5".into()],
            None,
        )
        .unwrap();
        assert!(s.starts_with("127.0.0.1\tlocalhost\n"), "{s}");
        assert!(
            s.ends_with("10.0.0.5\tdb\n172.17.0.2\tweb.example.org web\n"),
            "{s}"
        );
        // A dual-stack endpoint: both addresses name it, IPv4 first, as Docker writes them.
        let s = hosts_file(None, "web", "", &[ep([172, 17, 0, 3])], &[], None).unwrap();
        assert!(s.ends_with("172.17.0.3\tweb\nfd00:17::3\tweb\n"), "{s}");
        let s = hosts_file(Some("1.2.3.4 myhost"), "h", "", &[], &[], None).unwrap();
        assert_eq!(s, "1.2.3.4 myhost\n");
    }
}
