//! Published ports: which host port each container port gets, held while the container runs.
//!
//! A port is reserved by binding it on the host (and, for TCP, listening), as Docker's proxy
//! holds it: another program then cannot take it, and a second container asking for it gets
//! "port is already allocated" before anything is made. Traffic itself never reaches these
//! sockets: the DNAT of [`crate::nft`] sends it to the container first.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket};
use std::os::fd::OwnedFd;

use serde::{Deserialize, Serialize};

use crate::NetError;

/// What a container asks for: `-p [ip:][host_port[-end]:]ctr_port[/proto]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRequest {
    /// `tcp`, `udp` or `sctp`.
    pub proto: String,
    /// The container's port.
    pub ctr_port: u16,
    /// The host address. None: every address of each family the container has (0.0.0.0,
    /// and `[::]` on the same port when it has an IPv6 address), as Docker binds a port
    /// given without one; `0.0.0.0` or `::`: every address of that family only.
    pub host_ip: Option<IpAddr>,
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
    /// The host address (None: every IPv4 address, 0.0.0.0; `::` for every IPv6 one).
    pub host_ip: Option<IpAddr>,
    /// The host port.
    pub host_port: u16,
}

impl Mapping {
    /// Whether it is an IPv6 binding.
    pub fn is_v6(&self) -> bool {
        self.host_ip.is_some_and(|ip| ip.is_ipv6())
    }
}

/// A held port.
#[derive(Debug)]
pub enum Hold {
    /// A TCP listener.
    Tcp(TcpListener),
    /// A UDP socket.
    Udp(UdpSocket),
    /// A TCP listener whose connections are relayed to the container (see [`relay`]).
    Relayed(Relay),
    /// Nothing held (SCTP).
    None,
}

/// A socket bound on `ip:port`; an IPv6 one is IPv6-only, so that `[::]:port` and
/// `0.0.0.0:port` are held apart (as Docker holds them) whatever `bindv6only` says.
fn bind(proto: &str, ip: IpAddr, port: u16) -> std::io::Result<OwnedFd> {
    use rustix::net::{sockopt, AddressFamily, SocketFlags, SocketType};
    let addr = SocketAddr::new(ip, port);
    let (family, tcp) = (
        if ip.is_ipv6() {
            AddressFamily::INET6
        } else {
            AddressFamily::INET
        },
        proto == "tcp",
    );
    let ty = if tcp {
        SocketType::STREAM
    } else {
        SocketType::DGRAM
    };
    let fd = rustix::net::socket_with(family, ty, SocketFlags::CLOEXEC, None)?;
    if ip.is_ipv6() {
        sockopt::set_ipv6_v6only(&fd, true)?;
    }
    if tcp {
        // As std's TcpListener::bind: a port whose last connections are in TIME_WAIT can
        // be held again at once.
        sockopt::set_socket_reuseaddr(&fd, true)?;
    }
    rustix::net::bind(&fd, &addr)?;
    if tcp {
        rustix::net::listen(&fd, 128)?;
    }
    Ok(fd)
}

fn hold(proto: &str, ip: IpAddr, port: u16) -> std::io::Result<(Hold, u16)> {
    let port_of = |fd: &OwnedFd| -> std::io::Result<u16> {
        let a = rustix::net::getsockname(fd)?;
        SocketAddr::try_from(a)
            .map(|a| a.port())
            .map_err(|_| std::io::Error::other("not an IP socket"))
    };
    match proto {
        "tcp" => {
            let fd = bind(proto, ip, port)?;
            let p = port_of(&fd)?;
            Ok((Hold::Tcp(TcpListener::from(fd)), p))
        }
        "udp" => {
            let fd = bind(proto, ip, port)?;
            let p = port_of(&fd)?;
            Ok((Hold::Udp(UdpSocket::from(fd)), p))
        }
        _ => Ok((Hold::None, if port == 0 { 49152 } else { port })),
    }
}

/// The addresses a request is held on: its own, or 0.0.0.0 and (for a container with an
/// IPv6 address) `[::]`.
fn addresses(r: &PortRequest, v6: bool) -> Vec<IpAddr> {
    match r.host_ip {
        Some(ip) => vec![ip],
        None if v6 => vec![Ipv4Addr::UNSPECIFIED.into(), Ipv6Addr::UNSPECIFIED.into()],
        None => vec![Ipv4Addr::UNSPECIFIED.into()],
    }
}

/// Holds `port` (0: any free one) on every address of `ips`, one port number for all;
/// nothing stays held on failure.
fn hold_all(proto: &str, ips: &[IpAddr], port: u16) -> std::io::Result<Vec<(IpAddr, Hold, u16)>> {
    let mut held = Vec::new();
    let mut port = port;
    for ip in ips {
        let (h, p) = hold(proto, *ip, port)?;
        port = p;
        held.push((*ip, h, p));
    }
    Ok(held)
}

fn shown(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) => format!("[{v6}]"),
        IpAddr::V4(v4) => v4.to_string(),
    }
}

/// Takes a host port for each request (the lowest free one of a range, any free one for
/// port 0), on each of its addresses (see [`PortRequest::host_ip`]; `v6`: whether the
/// container has an IPv6 address). On any failure nothing stays held.
pub fn reserve(requests: &[PortRequest], v6: bool) -> Result<Vec<(Mapping, Hold)>, NetError> {
    let mut out = Vec::new();
    for r in requests {
        let ips = addresses(r, v6);
        let (lo, hi) = r.host_ports;
        // Any free port: the first address picks it, the others must have it free too; a
        // few tries for a port free in both families.
        let candidates: Vec<u16> = if lo == 0 {
            vec![0; if ips.len() > 1 { 8 } else { 1 }]
        } else {
            (lo..=hi.max(lo)).collect()
        };
        let mut last = None;
        let mut got = None;
        for p in candidates {
            match hold_all(&r.proto, &ips, p) {
                Ok(h) => {
                    got = Some(h);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let Some(held) = got else {
            let range = if lo == hi || hi == 0 {
                format!("{lo}")
            } else {
                format!("{lo}-{hi}")
            };
            let why = last.map(|e| e.to_string()).unwrap_or_default();
            return Err(NetError::Conflict(format!(
                "driver failed programming external connectivity: Bind for {}:{range} failed: port is already allocated ({why})",
                shown(ips[0])
            )));
        };
        for (ip, h, port) in held {
            out.push((
                Mapping {
                    proto: r.proto.clone(),
                    ctr_port: r.ctr_port,
                    // 0.0.0.0 is shown, and kept, as no address at all.
                    host_ip: Some(ip).filter(|ip| *ip != IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
                    host_port: port,
                },
                h,
            ));
        }
    }
    Ok(out)
}

/// Relays TCP connections that arrive on a held port to `target`, as Docker's userland
/// proxy does: only connections the kernel's DNAT cannot take get here, those to `[::1]`
/// (the kernel does not route IPv6 loopback sources out of the host) and, for a container
/// without IPv6, those to any IPv6 address of the host. Ends when dropped.
#[derive(Debug)]
pub struct Relay(tokio::task::AbortHandle);

impl Drop for Relay {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Turns a held TCP listener into a [`Relay`] to `target` (within a tokio runtime); any
/// other hold is given back as it is.
pub fn relay(h: Hold, target: SocketAddr) -> Hold {
    let Hold::Tcp(l) = h else { return h };
    let listener = match l
        .set_nonblocking(true)
        .and_then(|()| tokio::net::TcpListener::from_std(l))
    {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!("relay to {target}: {e}");
            return Hold::None;
        }
    };
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            };
            tokio::spawn(async move {
                let Ok(Ok(mut outbound)) = tokio::time::timeout(
                    std::time::Duration::from_secs(10),
                    tokio::net::TcpStream::connect(target),
                )
                .await
                else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            });
        }
    });
    Hold::Relayed(Relay(task.abort_handle()))
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
    let host_ip = match host_ip.trim_start_matches('[').trim_end_matches(']') {
        "" => None,
        ip => Some(ip.parse::<IpAddr>().map_err(|_| bad("host address"))?),
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
        assert_eq!(
            request("80", "[::1]", "").unwrap().host_ip,
            Some(Ipv6Addr::LOCALHOST.into())
        );
        assert_eq!(
            request("80", "::", "").unwrap().host_ip,
            Some(Ipv6Addr::UNSPECIFIED.into())
        );
        for (p, ip, hp) in [
            ("x/tcp", "", ""),
            ("80/icmp", "", ""),
            ("80", "::g", ""),
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
            host_ip: Some(Ipv4Addr::LOCALHOST.into()),
            host_ports: (0, 0),
        };
        let held = reserve(std::slice::from_ref(&any), false).unwrap();
        let port = held[0].0.host_port;
        assert_ne!(port, 0);
        let again = PortRequest {
            host_ports: (port, port),
            ..any.clone()
        };
        let e = reserve(std::slice::from_ref(&again), false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("port is already allocated"), "{e}");
        // A range skips the taken port.
        let range = PortRequest {
            host_ports: (port, port.saturating_add(5)),
            ..any.clone()
        };
        let r = reserve(&[range], false).unwrap();
        assert!(r[0].0.host_port > port);
        drop(held);
        assert!(reserve(&[again], false).is_ok(), "released with its holder");
    }

    #[test]
    fn a_port_without_an_address_is_held_on_both_families_with_ipv6() {
        let req = PortRequest {
            proto: "tcp".into(),
            ctr_port: 80,
            host_ip: None,
            host_ports: (0, 0),
        };
        let held = reserve(std::slice::from_ref(&req), true).unwrap();
        assert_eq!(held.len(), 2);
        let (v4, v6) = (&held[0].0, &held[1].0);
        assert_eq!(v4.host_ip, None);
        assert_eq!(v6.host_ip, Some(Ipv6Addr::UNSPECIFIED.into()));
        assert!(v6.is_v6() && !v4.is_v6());
        assert_eq!(v4.host_port, v6.host_port);
        // Both are taken now, each on its own: [::] alone is refused too.
        let port = v4.host_port;
        let only6 = PortRequest {
            host_ip: Some(Ipv6Addr::UNSPECIFIED.into()),
            host_ports: (port, port),
            ..req.clone()
        };
        let e = reserve(std::slice::from_ref(&only6), false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("Bind for [::]:"), "{e}");
        drop(held);
        // Without IPv6 only 0.0.0.0, which leaves [::] of the same port free.
        let held = reserve(std::slice::from_ref(&req), false).unwrap();
        assert_eq!(held.len(), 1);
        let port = held[0].0.host_port;
        let only6 = PortRequest {
            host_ports: (port, port),
            ..only6
        };
        assert!(reserve(&[only6], false).is_ok(), "[::] apart from 0.0.0.0");
    }
}
