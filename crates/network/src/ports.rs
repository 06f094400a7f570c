//! Published ports: which host port each container port gets, held while the container runs.
//!
//! A port is reserved by binding it on the host (and, for TCP, listening), as Docker's proxy
//! holds it: another program then cannot take it, and a second container asking for it gets
//! "port is already allocated" before anything is made. Traffic itself never reaches these
//! sockets: the DNAT of [`crate::nft`] sends it to the container first.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};

use serde::{Deserialize, Serialize};

use crate::NetError;

/// What a container asks for: `-p [ip:][host_port[-end]:]ctr_port[/proto]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRequest {
    /// `tcp`, `udp` or `sctp`.
    pub proto: String,
    /// The container's port.
    pub ctr_port: u16,
    /// The host address (None: every address).
    pub host_ip: Option<Ipv4Addr>,
    /// The host port, or a range to pick from; (0, 0): any free port.
    pub host_ports: (u16, u16),
}

/// A published port as it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mapping {
    /// `tcp`, `udp` or `sctp`.
    pub proto: String,
    /// The container's port.
    pub ctr_port: u16,
    /// The host address (None: every address).
    pub host_ip: Option<Ipv4Addr>,
    /// The host port.
    pub host_port: u16,
}

/// A held port.
#[derive(Debug)]
pub enum Hold {
    /// A TCP listener.
    Tcp(TcpListener),
    /// A UDP socket.
    Udp(UdpSocket),
    /// Nothing held (SCTP).
    None,
}

fn hold(proto: &str, ip: Ipv4Addr, port: u16) -> std::io::Result<(Hold, u16)> {
    let addr = SocketAddr::from((ip, port));
    match proto {
        "tcp" => {
            let l = TcpListener::bind(addr)?;
            let p = l.local_addr()?.port();
            Ok((Hold::Tcp(l), p))
        }
        "udp" => {
            let u = UdpSocket::bind(addr)?;
            let p = u.local_addr()?.port();
            Ok((Hold::Udp(u), p))
        }
        _ => Ok((Hold::None, if port == 0 { 49152 } else { port })),
    }
}

/// Takes a host port for each request (the lowest free one of a range, any free one for
/// port 0). On any failure nothing stays held.
pub fn reserve(requests: &[PortRequest]) -> Result<Vec<(Mapping, Hold)>, NetError> {
    let mut out = Vec::new();
    for r in requests {
        let ip = r.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
        let (lo, hi) = r.host_ports;
        let candidates: Vec<u16> = if lo == 0 {
            vec![0]
        } else {
            (lo..=hi.max(lo)).collect()
        };
        let mut last = None;
        let mut got = None;
        for p in candidates {
            match hold(&r.proto, ip, p) {
                Ok(h) => {
                    got = Some(h);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let Some((h, port)) = got else {
            let shown = if lo == hi || hi == 0 {
                format!("{lo}")
            } else {
                format!("{lo}-{hi}")
            };
            let why = last.map(|e| e.to_string()).unwrap_or_default();
            return Err(NetError::Conflict(format!(
                "driver failed programming external connectivity: Bind for {ip}:{shown} failed: port is already allocated ({why})"
            )));
        };
        out.push((
            Mapping {
                proto: r.proto.clone(),
                ctr_port: r.ctr_port,
                host_ip: r.host_ip,
                host_port: port,
            },
            h,
        ));
    }
    Ok(out)
}

/// Reads Docker's `PortBindings` form: `"80/tcp"` and `{HostIp, HostPort}` with HostPort
/// `""`, `"8080"` or `"8000-8010"`.
pub fn request(port: &str, host_ip: &str, host_port: &str) -> Result<PortRequest, NetError> {
    let bad = |what: &str| {
        NetError::Invalid(format!(
            "invalid {what} in port binding {port}: {host_ip}:{host_port}"
        ))
    };
    let (p, proto) = port.split_once('/').unwrap_or((port, "tcp"));
    let proto = proto.to_ascii_lowercase();
    if !["tcp", "udp", "sctp"].contains(&proto.as_str()) {
        return Err(bad("protocol"));
    }
    let ctr_port: u16 = p.parse().map_err(|_| bad("container port"))?;
    let host_ip = match host_ip {
        "" | "0.0.0.0" => None,
        ip => Some(
            ip.parse::<Ipv4Addr>()
                .map_err(|_| bad("host address (IPv4 only)"))?,
        ),
    };
    let host_ports = match host_port {
        "" | "0" => (0, 0),
        hp => {
            let (a, b) = hp.split_once('-').unwrap_or((hp, hp));
            let a: u16 = a.parse().map_err(|_| bad("host port"))?;
            let b: u16 = b.parse().map_err(|_| bad("host port"))?;
            if b < a || a == 0 {
                return Err(bad("host port range"));
            }
            (a, b)
        }
    };
    Ok(PortRequest {
        proto,
        ctr_port,
        host_ip,
        host_ports,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_as_docker_sends_them() {
        assert_eq!(
            request("80/tcp", "", "8080").unwrap(),
            PortRequest {
                proto: "tcp".into(),
                ctr_port: 80,
                host_ip: None,
                host_ports: (8080, 8080)
            }
        );
        assert_eq!(
            request("53/udp", "127.0.0.1", "").unwrap().host_ports,
            (0, 0)
        );
        assert_eq!(
            request("80", "0.0.0.0", "8000-8010").unwrap().host_ports,
            (8000, 8010)
        );
        for (p, ip, hp) in [
            ("x/tcp", "", ""),
            ("80/icmp", "", ""),
            ("80", "::1", ""),
            ("80", "", "9-8"),
            ("80", "", "y"),
        ] {
            assert!(request(p, ip, hp).is_err(), "{p} {ip} {hp}");
        }
    }

    #[test]
    fn ports_are_held_and_a_taken_one_is_refused() {
        let any = PortRequest {
            proto: "tcp".into(),
            ctr_port: 80,
            host_ip: Some(Ipv4Addr::LOCALHOST),
            host_ports: (0, 0),
        };
        let held = reserve(std::slice::from_ref(&any)).unwrap();
        let port = held[0].0.host_port;
        assert_ne!(port, 0);
        let again = PortRequest {
            host_ports: (port, port),
            ..any.clone()
        };
        let e = reserve(std::slice::from_ref(&again))
            .unwrap_err()
            .to_string();
        assert!(e.contains("port is already allocated"), "{e}");
        // A range skips the taken port.
        let range = PortRequest {
            host_ports: (port, port.saturating_add(5)),
            ..any.clone()
        };
        let r = reserve(&[range]).unwrap();
        assert!(r[0].0.host_port > port);
        drop(held);
        assert!(reserve(&[again]).is_ok(), "released with its holder");
    }
}
