//! Docker's legacy container links (`--link name:alias`): at start, the linked container's
//! address, ports and environment reach the linking container as `<ALIAS>_*` variables and
//! `/etc/hosts` entries, as dockerd's links package writes them. Links are checked at
//! create, kept in `HostConfig.Links` in dockerd's form (`/name:/container/alias`), and
//! dropped with `DELETE /containers/{container}/{alias}?link=1`.

use std::net::Ipv4Addr;

use crate::{Engine, EngineError, Record, Result};

/// One link: the linked container's name and the alias it goes by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The linked container's name, without `/`.
    pub name: String,
    /// The alias, without `/`.
    pub alias: String,
}

/// Parses a link as the docker CLI sends it (`name:alias`, `name`) or as dockerd keeps it
/// (`/name:/container/alias`).
pub fn parse(link: &str) -> Result<Link> {
    let (name, alias) = link.split_once(':').unwrap_or((link, link));
    let name = name.trim_start_matches('/');
    let alias = alias.rsplit('/').next().unwrap_or(alias);
    if name.is_empty() || alias.is_empty() {
        return Err(EngineError::InvalidParameter(format!(
            "invalid link format: {link}"
        )));
    }
    Ok(Link {
        name: name.to_string(),
        alias: alias.to_string(),
    })
}

/// What the linked container offers: its address, exposed ports (`80/tcp`), environment.
#[derive(Debug, Clone)]
pub struct Child {
    /// Its name, without `/`.
    pub name: String,
    /// Its ID.
    pub id: String,
    /// Its address on the network the two share.
    pub ip: Ipv4Addr,
    /// `port/proto` as in `Config.ExposedPorts`.
    pub ports: Vec<String>,
    /// Its `Config.Env`.
    pub env: Vec<String>,
}

/// The `<ALIAS>_*` variables of one link, in dockerd's order and words (its `Link.ToEnv`):
/// the default (lowest) port, runs of three or more contiguous ports as `_START`/`_END`,
/// each port, the link's name, and the child's environment (but `HOME` and `PATH`).
pub fn env(parent: &str, link: &Link, child: &Child) -> Vec<String> {
    let alias = link.alias.to_uppercase().replace('-', "_");
    let ip = child.ip;
    let mut ports: Vec<(u16, String)> = child
        .ports
        .iter()
        .filter_map(|p| {
            let (port, proto) = p.split_once('/').unwrap_or((p, "tcp"));
            Some((port.parse().ok()?, proto.to_lowercase()))
        })
        .collect();
    // dockerd's nat.Sort: by number, tcp first on a tie.
    ports.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| (b.1 == "tcp").cmp(&(a.1 == "tcp")))
    });
    let mut out = Vec::new();
    if let Some((p, proto)) = ports.first() {
        out.push(format!("{alias}_PORT={proto}://{ip}:{p}"));
    }
    let mut i = 0;
    while i < ports.len() {
        let j = next_contiguous(&ports, i);
        if j > i + 1 {
            let (p, proto) = &ports[i];
            let (q, qproto) = &ports[j];
            let up = proto.to_uppercase();
            out.push(format!("{alias}_PORT_{p}_{up}_START={proto}://{ip}:{p}"));
            out.push(format!("{alias}_PORT_{p}_{up}_ADDR={ip}"));
            out.push(format!("{alias}_PORT_{p}_{up}_PROTO={proto}"));
            out.push(format!("{alias}_PORT_{p}_{up}_PORT_START={p}"));
            let qup = qproto.to_uppercase();
            out.push(format!("{alias}_PORT_{p}_{qup}_END={qproto}://{ip}:{q}"));
            out.push(format!("{alias}_PORT_{p}_{qup}_PORT_END={q}"));
            i = j + 1;
        } else {
            i += 1;
        }
    }
    for (p, proto) in &ports {
        let up = proto.to_uppercase();
        out.push(format!("{alias}_PORT_{p}_{up}={proto}://{ip}:{p}"));
        out.push(format!("{alias}_PORT_{p}_{up}_ADDR={ip}"));
        out.push(format!("{alias}_PORT_{p}_{up}_PORT={p}"));
        out.push(format!("{alias}_PORT_{p}_{up}_PROTO={proto}"));
    }
    out.push(format!("{alias}_NAME=/{parent}/{}", link.alias));
    for e in &child.env {
        if let Some((k, v)) = e.split_once('=') {
            if k != "HOME" && k != "PATH" {
                out.push(format!("{alias}_ENV_{k}={v}"));
            }
        }
    }
    out
}

/// The index of the last port of the run of consecutive numbers that starts at `i`.
fn next_contiguous(ports: &[(u16, String)], i: usize) -> usize {
    let mut value = ports[i].0;
    for (k, (p, _)) in ports.iter().enumerate().skip(i + 1) {
        if *p > value.saturating_add(1) {
            return k - 1;
        }
        value = value.saturating_add(1);
    }
    ports.len() - 1
}

/// The `/etc/hosts` names of a link, as `--add-host` entries (`name:ip`): the alias, the
/// child's name and its short ID.
pub fn hosts(link: &Link, child: &Child) -> Vec<String> {
    let mut names = vec![link.alias.clone()];
    if child.name != link.alias {
        names.push(child.name.clone());
    }
    names.push(child.id.chars().take(12).collect());
    names
        .into_iter()
        .map(|n| format!("{n}:{}", child.ip))
        .collect()
}

impl Engine {
    /// Checks a create's links: each names a container, and the network mode allows links.
    /// Returns (the linked container's name with its `/`, the alias) for each, to be kept
    /// as dockerd keeps them once the new container's name is known.
    pub(crate) fn check_links(
        &self,
        links: &[String],
        network_mode: &str,
    ) -> Result<Vec<(String, String)>> {
        if links.is_empty() {
            return Ok(Vec::new());
        }
        let mode = if network_mode == "host" {
            Some("host type networking")
        } else if network_mode.starts_with("container:") {
            Some("container type network")
        } else {
            None
        };
        if let Some(m) = mode {
            return Err(EngineError::InvalidParameter(format!(
                "conflicting options: {m} can't be used with links. This would result in undefined behavior"
            )));
        }
        links
            .iter()
            .map(|l| {
                let link = parse(l)?;
                // dockerd's 400: a 404 would read to the docker CLI as a missing image.
                let child = self.inspect(&link.name).map_err(|_| {
                    EngineError::InvalidParameter(format!(
                        "could not get container for {}: No such container: {}",
                        link.name, link.name
                    ))
                })?;
                Ok((child.name, link.alias))
            })
            .collect()
    }

    /// `DELETE /containers/{/parent/alias}?link=1`: removes that link from the parent (the
    /// linked container is untouched; a running parent keeps what it was started with).
    pub fn remove_link(&self, name: &str) -> Result<()> {
        let name = format!("/{}", name.trim_start_matches('/'));
        let (parent, alias) = name
            .rsplit_once('/')
            .filter(|(p, _)| !p.is_empty())
            .ok_or_else(|| {
                EngineError::Conflict(
                    "Conflict, cannot remove the default link name of the container".into(),
                )
            })?;
        let ctr = self.find(parent).map_err(|_| {
            EngineError::NotFound(format!("Cannot get parent {parent} for link name {name}"))
        })?;
        {
            let mut r = ctr.rec.lock().expect("record lock");
            let links = r.host_config.links.get_or_insert_with(Vec::new);
            let before = links.len();
            links.retain(|l| parse(l).map_or(true, |x| x.alias != alias));
            if links.len() == before {
                return Err(EngineError::NotFound(format!("No such link: {name}")));
            }
        }
        self.persist(&ctr)
    }

    /// At start: each link's variables and `/etc/hosts` entries. A linked container that is
    /// not running refuses the start, as dockerd does.
    pub(crate) fn resolve_links(&self, rec: &Record) -> Result<(Vec<String>, Vec<String>)> {
        let (mut env_out, mut hosts_out) = (Vec::new(), Vec::new());
        let parent = rec.name.trim_start_matches('/');
        for l in rec.host_config.links.iter().flatten() {
            let link = parse(l)?;
            let not_running = || {
                EngineError::Conflict(format!(
                    "Cannot link to a non running container: /{} AS /{parent}/{}",
                    link.name, link.alias
                ))
            };
            let c = self.inspect(&link.name).map_err(|_| not_running())?;
            if !c.state.status.is_running() {
                return Err(not_running());
            }
            // Its address on a network the two share, else its first.
            let shared = c
                .net
                .endpoints
                .iter()
                .find(|a| rec.networks.iter().any(|j| j.network_id == a.network_id));
            let Some(ep) = shared.or(c.net.endpoints.first()) else {
                return Err(not_running());
            };
            let child = Child {
                name: c.name.trim_start_matches('/').to_string(),
                id: c.id.clone(),
                ip: ep.endpoint.ip,
                ports: c.config.exposed_ports.clone().unwrap_or_default(),
                env: c.config.env.clone().unwrap_or_default(),
            };
            env_out.extend(env(parent, &link, &child));
            hosts_out.extend(hosts(&link, &child));
        }
        Ok((env_out, hosts_out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn child(ports: &[&str]) -> Child {
        Child {
            name: "db".into(),
            id: "0123456789abcdef".into(),
            ip: Ipv4Addr::new(172, 17, 0, 2),
            ports: ports.iter().map(|p| p.to_string()).collect(),
            env: vec!["PATH=/bin".into(), "PASSWORD=s3cret".into()],
        }
    }

    #[test]
    fn links_parse_in_both_forms() {
        let l = parse("db:data-base").unwrap();
        assert_eq!((l.name.as_str(), l.alias.as_str()), ("db", "data-base"));
        let l = parse("/db:/web/data-base").unwrap();
        assert_eq!((l.name.as_str(), l.alias.as_str()), ("db", "data-base"));
        assert_eq!(parse("db").unwrap().alias, "db");
        assert!(parse(":x").is_err());
    }

    #[test]
    fn variables_are_dockerds() {
        let l = parse("db:data-base").unwrap();
        let e = env("web", &l, &child(&["5432/tcp", "53/udp"]));
        assert_eq!(
            e,
            [
                "DATA_BASE_PORT=udp://172.17.0.2:53",
                "DATA_BASE_PORT_53_UDP=udp://172.17.0.2:53",
                "DATA_BASE_PORT_53_UDP_ADDR=172.17.0.2",
                "DATA_BASE_PORT_53_UDP_PORT=53",
                "DATA_BASE_PORT_53_UDP_PROTO=udp",
                "DATA_BASE_PORT_5432_TCP=tcp://172.17.0.2:5432",
                "DATA_BASE_PORT_5432_TCP_ADDR=172.17.0.2",
                "DATA_BASE_PORT_5432_TCP_PORT=5432",
                "DATA_BASE_PORT_5432_TCP_PROTO=tcp",
                "DATA_BASE_NAME=/web/data-base",
                "DATA_BASE_ENV_PASSWORD=s3cret",
            ]
        );
        // A run of ports gets its range, too.
        let e = env("web", &l, &child(&["8000/tcp", "8001/tcp", "8002/tcp"]));
        assert!(e.contains(&"DATA_BASE_PORT_8000_TCP_START=tcp://172.17.0.2:8000".to_string()));
        assert!(e.contains(&"DATA_BASE_PORT_8000_TCP_END=tcp://172.17.0.2:8002".to_string()));
        assert!(e.contains(&"DATA_BASE_PORT_8000_TCP_PORT_END=8002".to_string()));
        assert_eq!(
            hosts(&l, &child(&[])),
            [
                "data-base:172.17.0.2",
                "db:172.17.0.2",
                "0123456789ab:172.17.0.2"
            ]
        );
    }

    proptest::proptest! {
        #[test]
        fn any_ports_give_variables_without_panicking(ports in proptest::collection::vec("[0-9]{1,6}/(tcp|udp|sctp)", 0..20)) {
            let refs: Vec<&str> = ports.iter().map(String::as_str).collect();
            let e = env("p", &parse("c:a").unwrap(), &child(&refs));
            proptest::prop_assert!(e.iter().any(|v| v == "A_NAME=/p/a"));
        }
    }
}
