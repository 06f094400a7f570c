//! berth's container networking: every change berth makes to the host's networking goes
//! through here. Bridges, veth pairs, addresses and routes over rtnetlink ([`link`]); named
//! network namespaces that the runtime joins ([`netns`]); NAT, published ports, `--internal`
//! and network isolation in a nftables table of berth's own ([`nft`]); ACCEPT rules beside
//! Docker's iptables `FORWARD` policy ([`iptables`]); address management kept on disk
//! ([`ipam`]); an embedded DNS server per user-defined network ([`dns`]); host ports held
//! while published ([`ports`]).
//!
//! The [`Manager`] owns the networks (Docker's `bridge`, `host` and `none`, and the user's)
//! and the endpoints of running containers. A container's sandbox is made before the runtime
//! starts it, as dockerd prepares one: a network namespace bound on a file, a veth pair on
//! each of its networks, its address and default route, its ports; the runtime then joins
//! the namespace by path. Its teardown removes all of it.

pub mod dns;
pub mod ipam;
pub mod iptables;
pub mod link;
pub mod netns;
pub mod nft;
pub mod ports;
mod store;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use ipam::{Cidr, Pool};
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

/// A network as berth keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Network {
    /// 64 hex digits.
    pub id: String,
    /// Its name.
    pub name: String,
    /// `bridge`, `host` or `null`.
    pub driver: String,
    /// RFC 3339.
    pub created: String,
    /// No traffic to or from outside.
    pub internal: bool,
    /// `--attachable`.
    #[serde(default)]
    pub attachable: bool,
    /// `--label`.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// `--opt`.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// The Linux bridge (bridge driver).
    pub bridge: Option<String>,
    /// Addresses (bridge driver).
    pub pool: Option<Pool>,
    /// The MTU of its interfaces.
    pub mtu: Option<u32>,
    /// The containers attached now, by container ID.
    #[serde(default)]
    pub endpoints: BTreeMap<String, Endpoint>,
}

impl Network {
    /// A network of `driver` made now, with nothing else set (no bridge, no addresses, no
    /// labels or options, nothing attached).
    pub(crate) fn new(id: String, name: &str, driver: &str) -> Network {
        Network {
            id,
            name: name.into(),
            driver: driver.into(),
            created: now(),
            internal: false,
            attachable: false,
            labels: BTreeMap::new(),
            options: BTreeMap::new(),
            bridge: None,
            pool: None,
            mtu: None,
            endpoints: BTreeMap::new(),
        }
    }

    /// A bridge network with nothing set but its ID and name, for unit tests.
    #[cfg(test)]
    pub(crate) fn for_test(id: &str, name: &str) -> Network {
        Network::new(id.into(), name, "bridge")
    }

    /// One of Docker's three predefined networks.
    pub fn predefined(&self) -> bool {
        matches!(self.name.as_str(), "bridge" | "host" | "none")
    }

    /// A user-defined network (whose containers find each other by name).
    pub fn user_defined(&self) -> bool {
        !self.predefined()
    }
}

/// A container's place on a network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// 64 hex digits.
    pub id: String,
    /// The container's ID.
    pub container: String,
    /// The container's name (without `/`).
    pub name: String,
    /// Its address.
    pub ip: Ipv4Addr,
    /// The network's prefix length.
    pub prefix: u8,
    /// The network's gateway.
    pub gateway: Ipv4Addr,
    /// Its MAC address, `02:42:...`.
    pub mac: String,
    /// Network-scoped aliases (`--network-alias`, `--alias`).
    pub aliases: Vec<String>,
    /// The host end of its veth pair.
    pub host_iface: String,
    /// Its interface in the container (`eth0`).
    pub iface: String,
    /// Ports published through it (the container's first network only).
    #[serde(default)]
    pub ports: Vec<Mapping>,
}

/// An endpoint with the network it is on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attached {
    /// The network's name.
    pub network: String,
    /// The network's ID.
    pub network_id: String,
    /// The endpoint.
    pub endpoint: Endpoint,
}

/// What `network create` asks for.
#[derive(Debug, Clone, Default)]
pub struct CreateNetwork {
    /// The name.
    pub name: String,
    /// `bridge` (or empty).
    pub driver: String,
    /// `--subnet`.
    pub subnet: Option<String>,
    /// `--gateway`.
    pub gateway: Option<String>,
    /// `--ip-range`.
    pub ip_range: Option<String>,
    /// `--internal`.
    pub internal: bool,
    /// `--attachable`.
    pub attachable: bool,
    /// `--ipv6` (refused: IPv4 only).
    pub ipv6: bool,
    /// `--label`.
    pub labels: BTreeMap<String, String>,
    /// `--opt`.
    pub options: BTreeMap<String, String>,
}

/// One network a container joins: `--network`, `--ip`, `--network-alias`.
#[derive(Debug, Clone, Default)]
pub struct Join {
    /// The network's name or ID.
    pub network: String,
    /// `--ip`.
    pub ip: Option<Ipv4Addr>,
    /// Aliases on that network.
    pub aliases: Vec<String>,
    /// `--mac-address` (default: `02:42` and the address, as Docker's).
    pub mac: Option<[u8; 6]>,
}

/// Who is joining: its ID, name, and the upstream DNS servers it asked for (`--dns`).
#[derive(Debug, Clone, Default)]
pub struct Member {
    /// The container's ID.
    pub id: String,
    /// Its name (without `/`).
    pub name: String,
    /// `--dns` servers (the embedded DNS forwards its questions there).
    pub dns: Vec<Ipv4Addr>,
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
    /// Held host ports and the forwards they stand for, by container.
    ports: HashMap<String, Vec<(nft::Forward, ports::Hold)>>,
    /// DNS per user-defined network, by network ID.
    dns: HashMap<String, Served>,
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
                        host_ip: p.host_ip,
                        host_ports: (p.host_port, p.host_port),
                    })
                    .collect();
                let held = match ports::reserve(&reqs) {
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
                    .map(|(p, h)| (forward(p, e.ip), h))
                    .collect();
                st.ports.insert(e.container.clone(), fw);
            }
        }
        self.apply_firewall(&st)?;
        store::save(&self.cfg.state_dir, &st.networks)
    }

    /// A free subnet: none of the host's routes or berth's networks overlap it.
    fn free_subnet(&self, nets: &[Network]) -> Result<Cidr, NetError> {
        let mut taken = link::host_routes();
        taken.extend(
            nets.iter()
                .filter_map(|n| n.pool.as_ref().map(|p| p.subnet)),
        );
        ipam::pick_subnet(&ipam::default_pools(), &taken).ok_or_else(|| {
            NetError::Exhausted("could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network".into())
        })
    }

    async fn make_bridge(&self, n: &Network) -> Result<(), NetError> {
        let (Some(br), Some(pool)) = (&n.bridge, &n.pool) else {
            return Ok(());
        };
        link::ensure_bridge(&self.host, br, pool.gateway, pool.subnet, n.mtu).await?;
        // 127.0.0.1:<published port> reaches a container only if the bridge routes
        // loopback sources; forwarding for everything else.
        sysctl(&format!("/proc/sys/net/ipv4/conf/{br}/route_localnet"), "1");
        sysctl("/proc/sys/net/ipv4/ip_forward", "1");
        iptables::allow_forwarding(br, &self.cfg.prefix);
        Ok(())
    }

    async fn serve_dns(&self, st: &mut State, n: &Network) {
        let Some(pool) = &n.pool else { return };
        let zone = dns::SharedZone::default();
        {
            let mut z = zone.write().unwrap_or_else(|e| e.into_inner());
            for e in n.endpoints.values() {
                z.add(e.ip, &dns_names(e), Vec::new());
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

    fn apply_firewall(&self, st: &State) -> Result<(), NetError> {
        let nets: Vec<nft::NetRule> = st
            .networks
            .iter()
            .filter_map(|n| {
                Some(nft::NetRule {
                    bridge: n.bridge.clone()?,
                    subnet: n.pool.as_ref()?.subnet,
                    internal: n.internal,
                })
            })
            .collect();
        let fwds: Vec<nft::Forward> = st
            .ports
            .values()
            .flat_map(|v| v.iter().map(|(f, _)| f.clone()))
            .collect();
        nft::apply(&nft::ruleset(&self.cfg.prefix, &nets, &fwds))
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

    /// `network create`.
    pub async fn create(&self, req: CreateNetwork) -> Result<Network, NetError> {
        let driver = if req.driver.is_empty() {
            "bridge"
        } else {
            req.driver.as_str()
        };
        if driver != "bridge" {
            return Err(NetError::NotFound(format!(
                "plugin \"{driver}\" not found: berth creates bridge networks only"
            )));
        }
        if req.ipv6 {
            return Err(NetError::Invalid(
                "IPv6 networks are not supported yet: leave out --ipv6".into(),
            ));
        }
        valid_name(&req.name)?;
        let parse = |s: &Option<String>| s.as_deref().map(str::parse::<Cidr>).transpose();
        let subnet = parse(&req.subnet)?;
        let range = parse(&req.ip_range)?;
        let gateway = req
            .gateway
            .as_deref()
            .map(|g| {
                g.parse::<Ipv4Addr>()
                    .map_err(|_| NetError::Invalid(format!("invalid gateway address: {g}")))
            })
            .transpose()?;
        if subnet.is_none() && (gateway.is_some() || range.is_some()) {
            return Err(NetError::Invalid(
                "a gateway or an IP range needs a subnet (--subnet)".into(),
            ));
        }
        let mut st = self.state.lock().await;
        if st.networks.iter().any(|n| n.name == req.name) {
            return Err(NetError::Conflict(format!(
                "network with name {} already exists",
                req.name
            )));
        }
        let _lock = host_lock()?;
        let subnet = match subnet {
            Some(s) => {
                let s = s.normalized();
                if let Some(o) = st
                    .networks
                    .iter()
                    .find(|n| n.pool.as_ref().is_some_and(|p| p.subnet.overlaps(&s)))
                {
                    return Err(NetError::Forbidden(format!(
                        "invalid pool request: Pool overlaps with other one on this address space (network {})",
                        o.name
                    )));
                }
                if link::host_routes().iter().any(|r| {
                    r.prefix > 0
                        && r.overlaps(&s)
                        && !st
                            .networks
                            .iter()
                            .any(|n| n.pool.as_ref().is_some_and(|p| p.subnet == r.normalized()))
                }) {
                    return Err(NetError::Forbidden(format!(
                        "invalid pool request: {s} overlaps with a route on the host"
                    )));
                }
                s
            }
            None => self.free_subnet(&st.networks)?,
        };
        let pool = Pool::new(subnet, gateway, range)?;
        let id = random_hex(32);
        let mtu = req
            .options
            .get("com.docker.network.driver.mtu")
            .and_then(|m| m.parse().ok())
            .or(self.cfg.mtu);
        let net = Network {
            bridge: Some(
                req.options
                    .get("com.docker.network.bridge.name")
                    .cloned()
                    .unwrap_or_else(|| self.bridge_name(&id)),
            ),
            internal: req.internal,
            attachable: req.attachable,
            labels: req.labels,
            options: req.options,
            pool: Some(pool),
            mtu,
            ..Network::new(id, &req.name, "bridge")
        };
        self.make_bridge(&net).await?;
        st.networks.push(net.clone());
        if let Err(e) = self.apply_firewall(&st) {
            st.networks.pop();
            self.drop_bridge(&net).await;
            return Err(e);
        }
        self.serve_dns(&mut st, &net).await;
        store::save(&self.cfg.state_dir, &st.networks)?;
        Ok(net)
    }

    async fn drop_bridge(&self, n: &Network) {
        if let Some(br) = &n.bridge {
            if let Err(e) = link::delete(&self.host, br).await {
                tracing::warn!("{e}");
            }
            iptables::forget_forwarding(br, &self.cfg.prefix);
        }
    }

    /// `network rm`: refused for the predefined networks and networks in use.
    pub async fn remove(&self, key: &str) -> Result<(), NetError> {
        let mut st = self.state.lock().await;
        let n = find(&st.networks, key)?.clone();
        if n.predefined() {
            return Err(NetError::Forbidden(format!(
                "{} is a pre-defined network and cannot be removed",
                n.name
            )));
        }
        if !n.endpoints.is_empty() {
            return Err(NetError::Forbidden(format!(
                "error while removing network: network {} id {} has active endpoints",
                n.name, n.id
            )));
        }
        st.networks.retain(|x| x.id != n.id);
        st.dns.remove(&n.id);
        self.apply_firewall(&st)?;
        self.drop_bridge(&n).await;
        store::save(&self.cfg.state_dir, &st.networks)
    }

    /// The file a container's namespace is bound on.
    pub fn netns_path(&self, ctr: &str) -> PathBuf {
        self.cfg.netns_dir.join(ctr)
    }

    /// Makes a container's sandbox: a network namespace with an interface on each network
    /// of `joins` (the first one gets the default route and the published `ports`).
    /// Returns the namespace's path and the endpoints. On any failure nothing is left.
    pub async fn sandbox(
        &self,
        member: &Member,
        joins: &[Join],
        ports: &[PortRequest],
    ) -> Result<(PathBuf, Vec<Attached>), NetError> {
        let t0 = std::time::Instant::now();
        let path = self.netns_path(&member.id);
        netns::remove(&path);
        let (conn, inside) = netns::create(&path)?;
        tracing::debug!(
            container = member.id,
            "namespace made in {:?}",
            t0.elapsed()
        );
        let driver = tokio::spawn(conn);
        let mut done = Vec::new();
        let result = async {
            // On no network at all (disconnected from every one) it still has a loopback.
            if joins.is_empty() {
                link::loopback_up(&inside).await?;
            }
            for (i, j) in joins.iter().enumerate() {
                let e = self.join(member, j, &path, &inside, i, i == 0).await?;
                done.push((j.network.clone(), e));
            }
            if let Some((net, first)) = done.first() {
                if !ports.is_empty() {
                    let mapped = self.publish(&member.id, first.ip, ports).await?;
                    let mut st = self.state.lock().await;
                    if let Ok(n) = find_mut(&mut st.networks, net) {
                        if let Some(e) = n.endpoints.get_mut(&member.id) {
                            e.ports = mapped;
                        }
                    }
                    store::save_attachments(&self.cfg.state_dir, &st.networks)?;
                }
            }
            Ok::<_, NetError>(())
        }
        .await;
        driver.abort();
        tracing::debug!(container = member.id, "sandbox made in {:?}", t0.elapsed());
        match result {
            Ok(()) => {
                let st = self.state.lock().await;
                // In the order joined (the first is the primary one).
                let eps = done
                    .iter()
                    .filter_map(|(key, _)| {
                        let n = find(&st.networks, key).ok()?;
                        Some(Attached {
                            network: n.name.clone(),
                            network_id: n.id.clone(),
                            endpoint: n.endpoints.get(&member.id)?.clone(),
                        })
                    })
                    .collect();
                Ok((path, eps))
            }
            Err(e) => {
                self.teardown(&member.id).await;
                Err(e)
            }
        }
    }

    /// Connects a running container (its namespace on `netns`) to one more network.
    pub async fn connect(
        &self,
        member: &Member,
        join: &Join,
        netns: &Path,
    ) -> Result<Attached, NetError> {
        let (conn, inside) = netns::connect(netns)?;
        let driver = tokio::spawn(conn);
        let index = {
            let st = self.state.lock().await;
            if find(&st.networks, &join.network)?
                .endpoints
                .contains_key(&member.id)
            {
                driver.abort();
                return Err(NetError::Forbidden(format!(
                    "endpoint with name {} already exists in network {}",
                    member.name, join.network
                )));
            }
            st.networks
                .iter()
                .filter(|n| n.endpoints.contains_key(&member.id))
                .count()
        };
        let r = self
            .join(member, join, netns, &inside, index, index == 0)
            .await;
        driver.abort();
        let endpoint = r?;
        let st = self.state.lock().await;
        let n = find(&st.networks, &join.network)?;
        Ok(Attached {
            network: n.name.clone(),
            network_id: n.id.clone(),
            endpoint,
        })
    }

    async fn join(
        &self,
        member: &Member,
        j: &Join,
        netns: &Path,
        inside: &rtnetlink::Handle,
        index: usize,
        default_route: bool,
    ) -> Result<Endpoint, NetError> {
        let mut st = self.state.lock().await;
        let net = find_mut(&mut st.networks, &j.network)?;
        if net.driver != "bridge" {
            return Err(NetError::Invalid(format!(
                "container cannot be connected to network {}: only bridge networks take endpoints here",
                net.name
            )));
        }
        if !j.aliases.is_empty() && !net.user_defined() {
            return Err(NetError::Invalid(
                "network-scoped aliases are only supported for user-defined networks".into(),
            ));
        }
        if j.ip.is_some() && !net.user_defined() {
            return Err(NetError::Invalid(
                "user specified IP address is supported on user defined networks only".into(),
            ));
        }
        let pool = net
            .pool
            .as_mut()
            .ok_or_else(|| NetError::Host("bridge network without addresses".into()))?;
        let ip = pool.allocate(&member.id, j.ip)?;
        let (prefix, gateway) = (pool.subnet.prefix, pool.gateway);
        let bridge = net.bridge.clone().unwrap_or_default();
        let mtu = net.mtu;
        let internal = net.internal;
        let mac = j.mac.unwrap_or_else(|| mac_for(ip));
        let ep = Endpoint {
            id: random_hex(32),
            container: member.id.clone(),
            name: member.name.clone(),
            ip,
            prefix,
            gateway,
            mac: mac_string(mac),
            aliases: j.aliases.clone(),
            host_iface: format!("veth{}", random_hex(4)),
            iface: format!("eth{index}"),
            ports: Vec::new(),
        };
        let made = async {
            let br = link::index_of(&self.host, &bridge)
                .await?
                .ok_or_else(|| NetError::Host(format!("bridge {bridge} is missing")))?;
            let ns = std::fs::File::open(netns)
                .map_err(|e| NetError::Host(format!("open {}: {e}", netns.display())))?;
            link::add_endpoint(
                &self.host,
                inside,
                br,
                &ep.host_iface,
                ns.as_raw_fd(),
                &link::Interface {
                    name: ep.iface.clone(),
                    mac,
                    ip,
                    prefix,
                    // An internal network has no way out: no default route through it.
                    gateway: (default_route && !internal).then_some(gateway),
                    mtu,
                },
            )
            .await
        }
        .await;
        let net = find_mut(&mut st.networks, &j.network)?;
        if let Err(e) = made {
            if let Some(p) = net.pool.as_mut() {
                p.release(&member.id);
            }
            let _ = link::delete(&self.host, &ep.host_iface).await;
            return Err(e);
        }
        net.endpoints.insert(member.id.clone(), ep.clone());
        let user = net.user_defined();
        let net_id = net.id.clone();
        if user {
            if let Some(s) = st.dns.get(&net_id) {
                let upstream = member
                    .dns
                    .iter()
                    .map(|ip| SocketAddr::from((*ip, 53)))
                    .collect();
                s.zone.write().unwrap_or_else(|e| e.into_inner()).add(
                    ip,
                    &dns_names(&ep),
                    upstream,
                );
            }
        }
        store::save_attachments(&self.cfg.state_dir, &st.networks)?;
        Ok(ep)
    }

    /// Publishes `ports` of a container at `ip`: holds the host ports, adds the forwards.
    async fn publish(
        &self,
        ctr: &str,
        ip: Ipv4Addr,
        reqs: &[PortRequest],
    ) -> Result<Vec<Mapping>, NetError> {
        let held = ports::reserve(reqs)?;
        let mut st = self.state.lock().await;
        let mapped: Vec<Mapping> = held.iter().map(|(m, _)| m.clone()).collect();
        let fw = held
            .into_iter()
            .map(|(m, h)| (forward(&m, ip), h))
            .collect();
        st.ports.insert(ctr.to_string(), fw);
        if let Err(e) = self.apply_firewall(&st) {
            st.ports.remove(ctr);
            return Err(e);
        }
        Ok(mapped)
    }

    /// Takes a container off one network (`network disconnect`).
    pub async fn disconnect(&self, ctr: &str, network: &str) -> Result<(), NetError> {
        let mut st = self.state.lock().await;
        let net = find_mut(&mut st.networks, network)?;
        let Some(ep) = net.endpoints.remove(ctr) else {
            return Err(NetError::Forbidden(format!(
                "container {ctr} is not connected to network {network}"
            )));
        };
        if let Some(p) = net.pool.as_mut() {
            p.release(ctr);
        }
        let net_id = net.id.clone();
        if let Some(s) = st.dns.get(&net_id) {
            s.zone
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .remove(ep.ip);
        }
        if st.ports.remove(ctr).is_some() {
            self.apply_firewall(&st)?;
        }
        let _ = link::delete(&self.host, &ep.host_iface).await;
        store::save_attachments(&self.cfg.state_dir, &st.networks)
    }

    /// Removes everything of a container's sandbox: its endpoints (veths, addresses, DNS
    /// names), its published ports, its namespace. What others could notice (addresses,
    /// names, ports) is gone when this returns; the veths shortly after.
    pub async fn teardown(&self, ctr: &str) {
        let t0 = std::time::Instant::now();
        let mut st = self.state.lock().await;
        let mut gone = Vec::new();
        let mut changed = false;
        for n in st.networks.iter_mut() {
            if let Some(ep) = n.endpoints.remove(ctr) {
                gone.push((n.id.clone(), ep));
                changed = true;
            }
            // Its address, also one held without an endpoint (a join cut short).
            if let Some(p) = n.pool.as_mut() {
                if p.address_of(ctr).is_some() {
                    p.release(ctr);
                    changed = true;
                }
            }
        }
        for (net_id, ep) in &gone {
            if let Some(s) = st.dns.get(net_id) {
                s.zone
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(ep.ip);
            }
        }
        if st.ports.remove(ctr).is_some() {
            if let Err(e) = self.apply_firewall(&st) {
                tracing::warn!(container = ctr, "remove its published ports: {e}");
            }
        }
        if changed {
            if let Err(e) = store::save_attachments(&self.cfg.state_dir, &st.networks) {
                tracing::warn!(container = ctr, "{e}");
            }
        }
        drop(st);
        netns::remove(&self.netns_path(ctr));
        // The veths go with the namespace: the kernel destroys it once nothing holds it (its
        // processes are gone, and now its bind mount), and both ends of every veth in it
        // with it. Deleting them here instead would hold the rtnl lock through RCU grace
        // periods (15-40 ms on these machines) that the next container's start then waits
        // for. A veth still there a while later means something still holds the namespace;
        // it is deleted then, so that nothing leaks.
        if !gone.is_empty() {
            let host = self.host.clone();
            let ctr = ctr.to_string();
            tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_secs(10)).await;
                for (_, ep) in gone {
                    if matches!(link::index_of(&host, &ep.host_iface).await, Ok(Some(_))) {
                        tracing::warn!(
                            container = ctr,
                            veth = ep.host_iface,
                            "the namespace outlived the container: deleting its veth"
                        );
                        let _ = link::delete(&host, &ep.host_iface).await;
                    }
                }
            });
        }
        tracing::debug!(container = ctr, "torn down in {:?}", t0.elapsed());
    }

    /// Tears down the sandboxes of every container not in `alive` (after a restart: those
    /// that ended while berthd was away), and namespace files nothing refers to.
    pub async fn retain(&self, alive: &HashSet<String>) {
        let attached: HashSet<String> = self
            .list()
            .await
            .iter()
            .flat_map(|n| n.endpoints.keys().cloned())
            .collect();
        for c in attached.iter().filter(|c| !alive.contains(*c)) {
            self.teardown(c).await;
        }
        if let Ok(entries) = std::fs::read_dir(&self.cfg.netns_dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if !alive.contains(&name) {
                    netns::remove(&e.path());
                }
            }
        }
    }

    /// The published ports of a container.
    pub async fn ports_of(&self, ctr: &str) -> Vec<Mapping> {
        let st = self.state.lock().await;
        st.networks
            .iter()
            .filter_map(|n| n.endpoints.get(ctr))
            .flat_map(|e| e.ports.clone())
            .collect()
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

fn forward(m: &Mapping, ip: Ipv4Addr) -> nft::Forward {
    nft::Forward {
        proto: m.proto.clone(),
        host_ip: m.host_ip,
        host_port: m.host_port,
        ctr_ip: ip,
        ctr_port: m.ctr_port,
    }
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
