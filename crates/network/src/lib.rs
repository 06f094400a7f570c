//! berth's container networking: every change berth makes to the host's networking goes
//! through here. Bridges, veth pairs, addresses and routes over rtnetlink ([`link`]); named
//! network namespaces that the runtime joins ([`netns`]); NAT, published ports, `--internal`
//! and network isolation in a nftables table of berth's own ([`nft`]); ACCEPT rules beside
//! Docker's iptables `FORWARD` policy ([`iptables`]); address management kept on disk
//! ([`ipam`] for IPv4, [`ipam6`] for IPv6); an embedded DNS server per user-defined network
//! ([`dns`]); host ports held while published ([`ports`]).
//!
//! The [`Manager`] owns the networks (Docker's `bridge`, `host` and `none`, and the user's)
//! and the endpoints of running containers. A container's sandbox is made before the runtime
//! starts it, as dockerd prepares one: a network namespace bound on a file, a veth pair on
//! each of its networks, its address and default route, its ports; the runtime then joins
//! the namespace by path. Its teardown removes all of it.
//!
//! A user-defined network takes any number of IPAM configs of either family that overlap
//! nothing else; with `--ipv6` its bridge, its containers, the firewall and the DNS server
//! work in both families (dual stack, NAT66 or routed, as Docker 28). The default bridge is
//! IPv4 only.

mod create;
pub mod dns;
pub mod ipam;
pub mod ipam6;
pub mod iptables;
pub mod link;
mod model;
pub mod netns;
pub mod nft;
pub mod ports;
mod sandbox;
mod store;

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub use ipam::{Cidr, Pool};
pub use ipam6::{Cidr6, Pool6, Subnet};
pub use model::{Attached, CreateNetwork, Endpoint, IpamRequest, Join, Member, Network};
pub use ports::{Mapping, PortRequest};

/// Networking errors; each maps onto one of Docker's status codes in the API layer.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// No such network.
    #[error("network {0} not found")]
    NotFound(String),
    /// Taken already (a name, an address, a port, a second connect).
    #[error("{0}")]
    Conflict(String),
    /// A request that cannot be carried out as asked (a bad CIDR, a gateway outside).
    #[error("{0}")]
    Invalid(String),
    /// Not allowed (removing a predefined network, or one in use).
    #[error("{0}")]
    Forbidden(String),
    /// No address left.
    #[error("{0}")]
    Exhausted(String),
    /// The host said no (netlink, nft, a mount).
    #[error("{0}")]
    Host(String),
}

impl NetError {
    /// Docker's status code for it.
    pub fn status(&self) -> u16 {
        match self {
            NetError::NotFound(_) => 404,
            NetError::Conflict(_) => 409,
            NetError::Invalid(_) => 400,
            NetError::Forbidden(_) => 403,
            NetError::Exhausted(_) | NetError::Host(_) => 500,
        }
    }
}

/// How berthd sets networking up.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// Where the networks are kept (`<data-root>/network`).
    pub state_dir: PathBuf,
    /// Where containers' namespaces are bound (`<exec-root>/netns`).
    pub netns_dir: PathBuf,
    /// Names on the host: the default bridge is `<prefix>0`, user networks' bridges
    /// `<prefix>-<id>`, the nftables table `<prefix>`.
    pub prefix: String,
    /// The default bridge's address and subnet (`--bip`); picked from free space if unset.
    pub bip: Option<Cidr>,
    /// The bridges' MTU (`--mtu`).
    pub mtu: Option<u32>,
}

struct Served {
    zone: dns::SharedZone,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

#[derive(Default)]
struct State {
    networks: Vec<Network>,
    /// Held host ports and the forwards they stand for (none for an IPv6 binding of a
    /// container without IPv6: its relay carries it), by container.
    ports: HashMap<String, Vec<(Option<nft::Forward>, ports::Hold)>>,
    /// DNS per user-defined network, by network ID.
    dns: HashMap<String, Served>,
    /// Whether berth's `ip6` table is on the host (the last ruleset had IPv6 networks).
    table6: AtomicBool,
}

/// The networks and the endpoints on them.
pub struct Manager {
    cfg: NetConfig,
    host: rtnetlink::Handle,
    upstream: Vec<SocketAddr>,
    state: tokio::sync::Mutex<State>,
    _claim: std::fs::File,
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    let _ = rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty());
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// Docker's MAC for an address: `02:42` and the address's four bytes.
pub fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

/// A MAC address as Docker takes it (`92:d0:c6:0a:29:33`, `-` separators too), unicast.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6 {
        return None;
    }
    let mut mac = [0u8; 6];
    for (b, p) in mac.iter_mut().zip(&parts) {
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    // A multicast address (low bit of the first octet) cannot be an interface's.
    (mac[0] & 1 == 0).then_some(mac)
}

fn mac_string(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A host-wide lock around picking subnets and making bridges: several berthds (or tests)
/// on one host must not pick the same free subnet at once.
struct HostLock(#[allow(dead_code)] std::fs::File);

fn host_lock() -> Result<HostLock, NetError> {
    let p = Path::new("/run/berth-network.lock");
    let f = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(p)
        .map_err(|e| NetError::Host(format!("open {}: {e}", p.display())))?;
    rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| NetError::Host(format!("lock {}: {e}", p.display())))?;
    Ok(HostLock(f))
}

/// The file a manager locks to claim `prefix` (it stays when the manager stops, as its
/// bridges and table do; whoever removes those may remove it too).
pub fn prefix_lock_path(prefix: &str) -> PathBuf {
    PathBuf::from(format!("/run/berth-network-{prefix}.lock"))
}

/// The claim on a prefix's names on the host, held for the manager's life: two managers
/// with one prefix would replace each other's table and share bridges.
fn prefix_lock(prefix: &str) -> Result<std::fs::File, NetError> {
    let p = prefix_lock_path(prefix);
    let f = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .map_err(|e| NetError::Host(format!("open {}: {e}", p.display())))?;
    rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(|_| {
        NetError::Conflict(format!(
            "the network prefix {prefix:?} is in use by another berthd on this host: give this one its own (--network-prefix)"
        ))
    })?;
    Ok(f)
}

fn sysctl(path: &str, value: &str) {
    if let Err(e) = std::fs::write(path, value) {
        tracing::warn!("set {path} to {value}: {e}");
    }
}

/// Turns IPv6 forwarding on, as Docker does for a network with IPv6 (`default` and `all`).
/// With forwarding on, the kernel ignores router advertisements on every interface whose
/// `accept_ra` is 1 (it takes them only on hosts that do not route), and a host that learns
/// its IPv6 default route from its router would lose it when that route expires: such
/// interfaces are set to 2 first (take them even when forwarding), which keeps what they did.
/// Berth's own bridges get 0 (see [`link::ensure_bridge`]).
fn enable_ipv6_forwarding(prefix: &str) {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    if read("/proc/sys/net/ipv6/conf/all/forwarding").trim() != "1" {
        let ifaces = std::fs::read_dir("/proc/sys/net/ipv6/conf")
            .into_iter()
            .flatten();
        for e in ifaces.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if ["all", "default", "lo"].contains(&name.as_str())
                || name.starts_with(prefix)
                || name.starts_with("veth")
            {
                continue;
            }
            let p = format!("/proc/sys/net/ipv6/conf/{name}/accept_ra");
            if read(&p).trim() == "1" {
                tracing::info!(
                    iface = name,
                    "IPv6 forwarding goes on: accept_ra 1 -> 2 so that it keeps taking router advertisements"
                );
                sysctl(&p, "2");
            }
        }
    }
    for scope in ["default", "all"] {
        let p = format!("/proc/sys/net/ipv6/conf/{scope}/forwarding");
        if read(&p).trim() != "1" {
            sysctl(&p, "1");
        }
    }
}

impl Manager {
    /// Opens the networks: berth's own and Docker's predefined ones, their bridges, the
    /// firewall table and the DNS servers, as they were before a restart.
    pub async fn open(cfg: NetConfig) -> Result<Arc<Manager>, NetError> {
        let claim = prefix_lock(&cfg.prefix)?;
        let (conn, host, _) = rtnetlink::new_connection()
            .map_err(|e| NetError::Host(format!("open netlink: {e}")))?;
        tokio::spawn(conn);
        std::fs::create_dir_all(&cfg.state_dir)
            .map_err(|e| NetError::Host(format!("create {}: {e}", cfg.state_dir.display())))?;
        let upstream =
            dns::nameservers(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default());
        let m = Arc::new(Manager {
            state: tokio::sync::Mutex::new(State {
                networks: store::load(&cfg.state_dir)?,
                ..Default::default()
            }),
            cfg,
            host,
            upstream,
            _claim: claim,
        });
        m.restore().await?;
        Ok(m)
    }

    fn default_bridge(&self) -> String {
        format!("{}0", self.cfg.prefix)
    }

    fn bridge_name(&self, id: &str) -> String {
        let mut n = format!("{}-{}", self.cfg.prefix, id);
        n.truncate(15);
        n
    }

    async fn restore(&self) -> Result<(), NetError> {
        let mut st = self.state.lock().await;
        for (name, driver) in [("host", "host"), ("none", "null")] {
            if !st.networks.iter().any(|n| n.name == name) {
                st.networks.push(Network::new(random_hex(32), name, driver));
            }
        }
        if !st.networks.iter().any(|n| n.name == "bridge") {
            let _lock = host_lock()?;
            let subnet = match self.cfg.bip {
                Some(b) => b,
                None => self.free_subnet(&st.networks)?,
            };
            let gateway = self
                .cfg
                .bip
                .map(|b| b.addr)
                .filter(|a| *a != subnet.network());
            let pool = Pool::new(subnet, gateway, None)?;
            let mut options = BTreeMap::new();
            options.insert(
                "com.docker.network.bridge.default_bridge".into(),
                "true".into(),
            );
            options.insert(
                "com.docker.network.bridge.name".into(),
                self.default_bridge(),
            );
            st.networks.push(Network {
                options,
                bridge: Some(self.default_bridge()),
                pool: Some(pool),
                mtu: self.cfg.mtu,
                ..Network::new(random_hex(32), "bridge", "bridge")
            });
            let net = st.networks.last().expect("just pushed").clone();
            self.make_bridge(&net).await?;
        }
        let nets = st.networks.clone();
        for n in nets.iter().filter(|n| n.driver == "bridge") {
            self.make_bridge(n).await?;
            if n.user_defined() {
                self.serve_dns(&mut st, n).await;
            }
            // Ports of containers still running are held again.
            for e in n.endpoints.values() {
                if e.ports.is_empty() {
                    continue;
                }
                let reqs: Vec<PortRequest> = e
                    .ports
                    .iter()
                    .map(|p| PortRequest {
                        proto: p.proto.clone(),
                        ctr_port: p.ctr_port,
                        // Each mapping is one family's: held on just that address.
                        host_ip: Some(p.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED.into())),
                        host_ports: (p.host_port, p.host_port),
                    })
                    .collect();
                let held = match ports::reserve(&reqs, false) {
                    Ok(h) => h.into_iter().map(|(_, h)| h).collect(),
                    Err(err) => {
                        tracing::warn!(
                            container = e.container,
                            "hold the published ports again: {err}"
                        );
                        reqs.iter().map(|_| ports::Hold::None).collect::<Vec<_>>()
                    }
                };
                let fw = e
                    .ports
                    .iter()
                    .zip(held)
                    .map(|(p, h)| wire(p, h, e.ip, e.ip6))
                    .collect();
                st.ports.insert(e.container.clone(), fw);
            }
        }
        if !st.networks.iter().any(|n| !n.pools6.is_empty())
            && Path::new("/proc/sys/net/ipv6").exists()
        {
            // An ip6 table left from IPv6 networks that are no longer on disk.
            let _ = nft::delete_table6(&self.cfg.prefix);
        }
        self.apply_firewall(&st)?;
        store::save(&self.cfg.state_dir, &st.networks)
    }

    async fn serve_dns(&self, st: &mut State, n: &Network) {
        let Some(pool) = &n.pool else { return };
        let zone = dns::SharedZone::default();
        {
            let mut z = zone.write().unwrap_or_else(|e| e.into_inner());
            for e in n.endpoints.values() {
                z.add_all(&e.addresses(), &dns_names(e), Vec::new());
            }
        }
        match dns::serve(
            SocketAddr::from((pool.gateway, 53)),
            zone.clone(),
            self.upstream.clone(),
        )
        .await
        {
            Ok(tasks) => {
                st.dns.insert(n.id.clone(), Served { zone, tasks });
            }
            Err(e) => tracing::warn!(
                network = n.name,
                "no embedded DNS on {}:53: {e}",
                pool.gateway
            ),
        }
    }

    /// Renders and applies berth's tables for the networks and ports of `st`, in one
    /// transaction.
    fn apply_firewall(&self, st: &State) -> Result<(), NetError> {
        let nets: Vec<nft::NetRule> = st
            .networks
            .iter()
            .filter(|n| n.pool.is_some())
            .filter_map(|n| {
                Some(nft::NetRule {
                    bridge: n.bridge.clone()?,
                    subnets: n.pools().map(|p| p.subnet).collect(),
                    subnets6: n.pools6.iter().map(|p| p.subnet).collect(),
                    internal: n.internal,
                    routed6: n.routed6(),
                })
            })
            .collect();
        let fwds: Vec<nft::Forward> = st
            .ports
            .values()
            .flat_map(|v| v.iter().filter_map(|(f, _)| f.clone()))
            .collect();
        let had6 = st.table6.load(Ordering::Relaxed);
        nft::apply(&nft::ruleset(&self.cfg.prefix, &nets, &fwds, had6))?;
        st.table6.store(nft::wants6(&nets), Ordering::Relaxed);
        Ok(())
    }

    /// Every network.
    pub async fn list(&self) -> Vec<Network> {
        self.state.lock().await.networks.clone()
    }

    /// A network by ID, name or unique ID prefix, as Docker finds them.
    pub async fn get(&self, key: &str) -> Result<Network, NetError> {
        let st = self.state.lock().await;
        find(&st.networks, key).cloned()
    }

    /// The file a container's namespace is bound on.
    pub fn netns_path(&self, ctr: &str) -> PathBuf {
        self.cfg.netns_dir.join(ctr)
    }

    /// Removes everything berth made on the host for its networks (bridges, the table, the
    /// iptables rules), keeping what is on disk: for a daemon that is shutting down for good
    /// (tests). Running containers lose their networking.
    pub async fn remove_from_host(&self) {
        let st = self.state.lock().await;
        for n in &st.networks {
            self.drop_bridge(n).await;
        }
        if let Err(e) = nft::delete_table(&self.cfg.prefix) {
            tracing::warn!("{e}");
        }
        iptables::forget_all(&self.cfg.prefix);
    }
}

/// What a published port comes to: the forward for berth's table (to the container's
/// address of the mapping's family) and what holds the host port; an IPv6 TCP port also
/// relays what the DNAT cannot take (`[::1]`, and every IPv6 connection to a container
/// without IPv6) to the container's address.
fn wire(
    m: &Mapping,
    h: ports::Hold,
    ip: Ipv4Addr,
    ip6: Option<Ipv6Addr>,
) -> (Option<nft::Forward>, ports::Hold) {
    let target: IpAddr = match (m.is_v6(), ip6) {
        (true, Some(v6)) => v6.into(),
        _ => ip.into(),
    };
    let fw = (m.is_v6() == target.is_ipv6()).then(|| nft::Forward {
        proto: m.proto.clone(),
        host_ip: m.host_ip,
        host_port: m.host_port,
        ctr_ip: target,
        ctr_port: m.ctr_port,
    });
    let h = if m.is_v6() {
        ports::relay(h, SocketAddr::new(target, m.ctr_port))
    } else {
        h
    };
    (fw, h)
}

/// The names an endpoint answers to on its network: the container's name, its aliases, its
/// short ID.
fn dns_names(e: &Endpoint) -> Vec<String> {
    let mut v = vec![e.name.clone()];
    v.extend(e.aliases.iter().cloned());
    v.push(e.container.chars().take(12).collect());
    v
}

/// dockerd's rule for network names (libnetwork's `IsValidName`): anything but blank, so
/// `my net` is a name. Nothing on the host is named after a network (bridges and tables
/// take its ID), so any name is safe.
fn valid_name(n: &str) -> Result<(), NetError> {
    if n.trim().is_empty() {
        return Err(NetError::Invalid(format!("invalid name: {n}")));
    }
    Ok(())
}

fn find<'a>(nets: &'a [Network], key: &str) -> Result<&'a Network, NetError> {
    if let Some(n) = nets.iter().find(|n| n.id == key || n.name == key) {
        return Ok(n);
    }
    let m: Vec<&Network> = nets
        .iter()
        .filter(|n| !key.is_empty() && n.id.starts_with(key))
        .collect();
    match m.as_slice() {
        [one] => Ok(one),
        [] => Err(NetError::NotFound(key.to_string())),
        _ => Err(NetError::Conflict(format!(
            "network {key} is ambiguous ({} matches found based on ID prefix)",
            m.len()
        ))),
    }
}

fn find_mut<'a>(nets: &'a mut [Network], key: &str) -> Result<&'a mut Network, NetError> {
    let id = find(nets, key)?.id.clone();
    Ok(nets.iter_mut().find(|n| n.id == id).expect("found above"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_lookups() {
        for good in ["my-net.1_a", "my net", "-x", "ü"] {
            assert!(valid_name(good).is_ok(), "{good}");
        }
        for bad in ["", "  ", "\t"] {
            assert!(valid_name(bad).is_err(), "{bad:?}");
        }
        let n = Network::for_test;
        let nets = vec![n("abc1", "one"), n("abc2", "two")];
        assert_eq!(find(&nets, "two").unwrap().id, "abc2");
        assert_eq!(find(&nets, "abc1").unwrap().name, "one");
        assert!(matches!(find(&nets, "abc"), Err(NetError::Conflict(_))));
        assert!(matches!(find(&nets, "zzz"), Err(NetError::NotFound(_))));
        assert_eq!(
            mac_string(mac_for(Ipv4Addr::new(172, 18, 0, 2))),
            "02:42:ac:12:00:02"
        );
    }
}
