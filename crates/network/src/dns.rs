//! The embedded DNS server of a user-defined network: it answers the names of the network's
//! containers (name, aliases, short ID) with their addresses, and forwards every other
//! question to the host's resolvers (or a container's own `--dns` servers), as Docker's
//! embedded server does. It listens on the network's gateway address (UDP and TCP port 53),
//! which the containers' `resolv.conf` names.
//!
//! Messages are read and written with hickory-proto; forwarded questions are relayed as the
//! bytes they are.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

/// How long a forwarded question may take.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(5);
/// Docker's TTL for container names.
const TTL: u32 = 600;

/// Who is who on one network.
#[derive(Debug, Default)]
pub struct Zone {
    /// Lower-case name -> addresses (IPv4 and IPv6).
    names: HashMap<String, Vec<IpAddr>>,
    /// Address -> the container's name (for PTR).
    reverse: HashMap<IpAddr, String>,
    /// A container's own upstream servers (`--dns`), by its addresses.
    upstreams: HashMap<IpAddr, Vec<SocketAddr>>,
}

impl Zone {
    /// Adds a container with one IPv4 address: `names` (its name, aliases, short ID) resolve
    /// to `ip`.
    pub fn add(&mut self, ip: Ipv4Addr, names: &[String], upstream: Vec<SocketAddr>) {
        self.add_all(&[ip.into()], names, upstream);
    }

    /// Adds a container: `names` resolve to `ips` (A for the IPv4 ones, AAAA for the IPv6
    /// ones).
    pub fn add_all(&mut self, ips: &[IpAddr], names: &[String], upstream: Vec<SocketAddr>) {
        for n in names {
            let n = n.trim_end_matches('.').to_ascii_lowercase();
            if n.is_empty() {
                continue;
            }
            let v = self.names.entry(n).or_default();
            for ip in ips {
                if !v.contains(ip) {
                    v.push(*ip);
                }
            }
        }
        for ip in ips {
            if let Some(first) = names.first() {
                self.reverse.insert(*ip, first.clone());
            }
            if !upstream.is_empty() {
                self.upstreams.insert(*ip, upstream.clone());
            }
        }
    }

    /// Removes everything about `ips`.
    pub fn remove_all(&mut self, ips: &[IpAddr]) {
        for v in self.names.values_mut() {
            v.retain(|a| !ips.contains(a));
        }
        self.names.retain(|_, v| !v.is_empty());
        for ip in ips {
            self.reverse.remove(ip);
            self.upstreams.remove(ip);
        }
    }

    fn lookup(&self, name: &str) -> Option<&Vec<IpAddr>> {
        self.names
            .get(&name.trim_end_matches('.').to_ascii_lowercase())
    }
}

/// A network's zone, shared between the server and the manager that changes it.
pub type SharedZone = Arc<RwLock<Zone>>;

/// `4.3.2.1.in-addr.arpa.` -> 1.2.3.4; the 32 nibbles of `ip6.arpa.` -> an IPv6 address.
pub fn reverse_ip(name: &str) -> Option<IpAddr> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if let Some(rest) = name.strip_suffix(".in-addr.arpa") {
        let mut parts: Vec<u8> = rest
            .split('.')
            .map(|p| {
                // Decimal digits only, as written in a name (no sign, no spaces).
                (!p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| p.parse().ok())
                    .flatten()
            })
            .collect::<Option<Vec<u8>>>()?;
        if parts.len() != 4 {
            return None;
        }
        parts.reverse();
        return Some(Ipv4Addr::new(parts[0], parts[1], parts[2], parts[3]).into());
    }
    let rest = name.strip_suffix(".ip6.arpa")?;
    let nibbles: Vec<u32> = rest
        .split('.')
        .map(|p| {
            let mut c = p.chars();
            match (c.next(), c.next()) {
                (Some(d), None) => d.to_digit(16),
                _ => None,
            }
        })
        .collect::<Option<Vec<u32>>>()?;
    if nibbles.len() != 32 {
        return None;
    }
    let v = nibbles
        .iter()
        .rev()
        .fold(0u128, |acc, n| (acc << 4) | u128::from(*n));
    Some(Ipv6Addr::from(v).into())
}

/// The answer to `query` from the zone, or None when it must be forwarded.
pub fn answer(zone: &Zone, query: &[u8]) -> Option<Vec<u8>> {
    let msg = Message::from_vec(query).ok()?;
    let q = msg.queries.first()?.clone();
    let name = q.name.to_ascii();
    let mut resp = Message::response(msg.metadata.id, msg.metadata.op_code);
    resp.metadata.recursion_desired = msg.metadata.recursion_desired;
    resp.metadata.recursion_available = true;
    resp.metadata.authoritative = true;
    resp.add_query(q.clone());
    match q.query_type {
        RecordType::A | RecordType::AAAA | RecordType::ANY => {
            // A name without addresses of the family asked for still exists: NOERROR with
            // no answer, so that the resolver does not go on to search domains.
            for ip in zone.lookup(&name)? {
                let data = match (ip, q.query_type) {
                    (IpAddr::V4(v4), RecordType::A | RecordType::ANY) => RData::A(A(*v4)),
                    (IpAddr::V6(v6), RecordType::AAAA | RecordType::ANY) => RData::AAAA(AAAA(*v6)),
                    _ => continue,
                };
                resp.add_answer(Record::from_rdata(q.name.clone(), TTL, data));
            }
        }
        RecordType::PTR => {
            let ip = reverse_ip(&name)?;
            let owner = zone.reverse.get(&ip)?;
            let target = Name::from_ascii(format!("{owner}.")).ok()?;
            resp.add_answer(Record::from_rdata(
                q.name.clone(),
                TTL,
                RData::PTR(PTR(target)),
            ));
        }
        _ => return None,
    }
    resp.metadata.message_type = MessageType::Response;
    resp.to_vec().ok()
}

fn servfail(query: &[u8]) -> Option<Vec<u8>> {
    let msg = Message::from_vec(query).ok()?;
    let mut resp = Message::error_msg(
        msg.metadata.id,
        msg.metadata.op_code,
        ResponseCode::ServFail,
    );
    resp.add_queries(msg.queries.clone());
    resp.to_vec().ok()
}

async fn forward_udp(upstream: &[SocketAddr], query: &[u8]) -> Option<Vec<u8>> {
    for server in upstream {
        let bind: SocketAddr = if server.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let Ok(sock) = UdpSocket::bind(bind).await else {
            continue;
        };
        if sock.send_to(query, server).await.is_err() {
            continue;
        }
        let mut buf = vec![0u8; 4096];
        match tokio::time::timeout(UPSTREAM_TIMEOUT, sock.recv_from(&mut buf)).await {
            Ok(Ok((n, from))) if from == *server => return Some(buf[..n].to_vec()),
            _ => continue,
        }
    }
    None
}

/// Answers one question from a client at `from`.
async fn resolve(
    zone: &SharedZone,
    upstream: &[SocketAddr],
    from: IpAddr,
    query: &[u8],
) -> Option<Vec<u8>> {
    let (local, own) = {
        let z = zone.read().unwrap_or_else(|e| e.into_inner());
        let own = z.upstreams.get(&from).cloned();
        (answer(&z, query), own)
    };
    if local.is_some() {
        return local;
    }
    let servers = own.as_deref().unwrap_or(upstream);
    match forward_udp(servers, query).await {
        Some(r) => Some(r),
        None => servfail(query),
    }
}

/// Serves `zone` on `addr` (UDP and TCP) until the tasks are aborted.
pub async fn serve(
    addr: SocketAddr,
    zone: SharedZone,
    upstream: Vec<SocketAddr>,
) -> std::io::Result<Vec<tokio::task::JoinHandle<()>>> {
    let udp = Arc::new(UdpSocket::bind(addr).await?);
    let tcp = TcpListener::bind(addr).await?;
    let upstream = Arc::new(upstream);
    let (z, up) = (zone.clone(), upstream.clone());
    let udp_task = tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, from)) = udp.recv_from(&mut buf).await else {
                continue;
            };
            let query = buf[..n].to_vec();
            let (udp, z, up) = (udp.clone(), z.clone(), up.clone());
            tokio::spawn(async move {
                if let Some(r) = resolve(&z, &up, from.ip(), &query).await {
                    let _ = udp.send_to(&r, from).await;
                }
            });
        }
    });
    let tcp_task = tokio::spawn(async move {
        loop {
            let Ok((mut s, from)) = tcp.accept().await else {
                continue;
            };
            let (z, up) = (zone.clone(), upstream.clone());
            tokio::spawn(async move {
                // Each message is preceded by its length (RFC 1035 4.2.2).
                loop {
                    let Ok(len) = s.read_u16().await else { return };
                    let mut q = vec![0u8; len as usize];
                    if s.read_exact(&mut q).await.is_err() {
                        return;
                    }
                    let Some(r) = resolve(&z, &up, from.ip(), &q).await else {
                        return;
                    };
                    if s.write_u16(r.len() as u16).await.is_err() || s.write_all(&r).await.is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    Ok(vec![udp_task, tcp_task])
}

/// The host's resolvers, from its `resolv.conf` text.
pub fn nameservers(resolv_conf: &str) -> Vec<SocketAddr> {
    resolv_conf
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|v| v.trim().parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;

    fn query(name: &str, t: RecordType) -> Vec<u8> {
        let mut m = Message::query();
        m.metadata.id = 7;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
        m.to_vec().unwrap()
    }

    #[test]
    fn container_names_and_aliases_are_answered_and_others_are_not() {
        let mut z = Zone::default();
        let ip = Ipv4Addr::new(172, 19, 0, 2);
        let ip6: Ipv6Addr = "fd00:19::2".parse().unwrap();
        z.add_all(
            &[ip.into(), ip6.into()],
            &["web".into(), "frontend".into(), "0123456789ab".into()],
            vec![],
        );
        z.add(Ipv4Addr::new(172, 19, 0, 3), &["old".into()], vec![]);
        for n in ["web.", "WEB.", "frontend.", "0123456789ab."] {
            let r = Message::from_vec(&answer(&z, &query(n, RecordType::A)).unwrap()).unwrap();
            assert_eq!(r.metadata.id, 7);
            assert_eq!(r.answers.len(), 1, "{n}");
            assert_eq!(r.answers[0].data, RData::A(A(ip)));
        }
        let aaaa =
            Message::from_vec(&answer(&z, &query("web.", RecordType::AAAA)).unwrap()).unwrap();
        assert_eq!(aaaa.metadata.response_code, ResponseCode::NoError);
        assert_eq!(aaaa.answers.len(), 1);
        assert_eq!(aaaa.answers[0].data, RData::AAAA(AAAA(ip6)));
        let any = Message::from_vec(&answer(&z, &query("web.", RecordType::ANY)).unwrap()).unwrap();
        assert_eq!(any.answers.len(), 2);
        // A name without IPv6: it exists, with no AAAA (NOERROR, empty).
        let none =
            Message::from_vec(&answer(&z, &query("old.", RecordType::AAAA)).unwrap()).unwrap();
        assert_eq!(none.metadata.response_code, ResponseCode::NoError);
        assert!(none.answers.is_empty());
        let ptr6 = format!(
            "{}ip6.arpa.",
            format!("{:032x}", u128::from(ip6))
                .chars()
                .rev()
                .map(|c| format!("{c}."))
                .collect::<String>()
        );
        let r = Message::from_vec(&answer(&z, &query(&ptr6, RecordType::PTR)).unwrap()).unwrap();
        assert_eq!(r.answers.len(), 1, "{ptr6}");
        let ptr = Message::from_vec(
            &answer(&z, &query("2.0.19.172.in-addr.arpa.", RecordType::PTR)).unwrap(),
        )
        .unwrap();
        assert_eq!(ptr.answers.len(), 1);
        assert!(
            answer(&z, &query("example.com.", RecordType::A)).is_none(),
            "forwarded"
        );
        assert!(answer(&z, &[1, 2, 3]).is_none());
        z.remove_all(&[ip.into(), ip6.into()]);
        assert!(answer(&z, &query("web.", RecordType::A)).is_none());
        assert!(answer(&z, &query(&ptr6, RecordType::PTR)).is_none());
        let f = Message::from_vec(&servfail(&query("x.", RecordType::A)).unwrap()).unwrap();
        assert_eq!(f.metadata.response_code, ResponseCode::ServFail);
    }

    #[test]
    fn nameservers_come_from_resolv_conf() {
        let ns = nameservers(
            "# c\nnameserver 10.0.0.53\nsearch lan\nnameserver ::1\nnameserver bogus\n",
        );
        assert_eq!(
            ns,
            vec!["10.0.0.53:53".parse().unwrap(), "[::1]:53".parse().unwrap()]
        );
        assert_eq!(
            reverse_ip("4.3.2.1.in-addr.arpa."),
            Some(Ipv4Addr::new(1, 2, 3, 4).into())
        );
        assert_eq!(reverse_ip("x.in-addr.arpa."), None);
        assert_eq!(reverse_ip("+4.3.2.1.in-addr.arpa."), None);
        assert_eq!(
            reverse_ip("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa."),
            Some("fd00::1".parse::<Ipv6Addr>().unwrap().into())
        );
        assert_eq!(reverse_ip("1.0.ip6.arpa."), None);
    }
}
