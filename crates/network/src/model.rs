//! What berth keeps about networks and endpoints, and what callers ask of it.
//!
//! On disk (`networks.json`) a network is written as it always was, with its first IPv4 pool
//! under `pool`; what came with IPv6 and several IPAM configs per network (`more_pools`,
//! `ipv6`, `pools6`) is left out when unset, so a network without them is byte for byte what
//! an older berth wrote, and an older file loads with them empty.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use crate::ipam::Pool;
use crate::ipam6::Pool6;
use crate::ports::Mapping;

fn is_false(b: &bool) -> bool {
    !*b
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
    /// IPv4 addresses (bridge driver): the first IPAM config of the family.
    pub pool: Option<Pool>,
    /// Further IPv4 IPAM configs (`--subnet` given more than once).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more_pools: Vec<Pool>,
    /// `--ipv6`: its containers get IPv6 addresses too.
    #[serde(default, skip_serializing_if = "is_false")]
    pub ipv6: bool,
    /// IPv6 addresses (with `--ipv6`), in the order of the IPAM configs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pools6: Vec<Pool6>,
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
            created: crate::now(),
            internal: false,
            attachable: false,
            labels: BTreeMap::new(),
            options: BTreeMap::new(),
            bridge: None,
            pool: None,
            more_pools: Vec::new(),
            ipv6: false,
            pools6: Vec::new(),
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

    /// Every IPv4 pool, the first one first.
    pub fn pools(&self) -> impl Iterator<Item = &Pool> {
        self.pool.iter().chain(&self.more_pools)
    }

    /// Every IPv4 pool, mutably.
    pub fn pools_mut(&mut self) -> impl Iterator<Item = &mut Pool> {
        self.pool.iter_mut().chain(&mut self.more_pools)
    }

    /// Gives back every address `owner` holds on this network; whether it held any.
    pub(crate) fn release(&mut self, owner: &str) -> bool {
        let mut held = false;
        for p in self.pools_mut() {
            held |= p.address_of(owner).is_some();
            p.release(owner);
        }
        for p in &mut self.pools6 {
            held |= p.address_of(owner).is_some();
            p.release(owner);
        }
        held
    }

    /// How NAT66 works on it (`com.docker.network.bridge.gateway_mode_ipv6`): `routed` sends
    /// the containers' own addresses out, anything else masquerades.
    pub fn routed6(&self) -> bool {
        self.options
            .get("com.docker.network.bridge.gateway_mode_ipv6")
            .is_some_and(|m| m == "routed")
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
    /// The prefix length of its address's subnet.
    pub prefix: u8,
    /// The gateway of its address's subnet.
    pub gateway: Ipv4Addr,
    /// Its IPv6 address (on a network with `--ipv6`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip6: Option<Ipv6Addr>,
    /// The prefix length of its IPv6 address's subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix6: Option<u8>,
    /// The IPv6 gateway of that subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway6: Option<Ipv6Addr>,
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

impl Endpoint {
    /// Its addresses, IPv4 first.
    pub fn addresses(&self) -> Vec<std::net::IpAddr> {
        let mut v = vec![self.ip.into()];
        v.extend(self.ip6.map(std::net::IpAddr::from));
        v
    }
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

/// One IPAM config of `network create` (`--subnet`, `--gateway`, `--ip-range`), of either
/// family.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpamRequest {
    /// `--subnet`.
    pub subnet: Option<String>,
    /// `--gateway`.
    pub gateway: Option<String>,
    /// `--ip-range`.
    pub ip_range: Option<String>,
}

/// What `network create` asks for.
#[derive(Debug, Clone, Default)]
pub struct CreateNetwork {
    /// The name.
    pub name: String,
    /// `bridge` (or empty).
    pub driver: String,
    /// The IPAM configs, any number of each family that do not overlap.
    pub ipam: Vec<IpamRequest>,
    /// `--internal`.
    pub internal: bool,
    /// `--attachable`.
    pub attachable: bool,
    /// `--ipv6`.
    pub ipv6: bool,
    /// `--label`.
    pub labels: BTreeMap<String, String>,
    /// `--opt`.
    pub options: BTreeMap<String, String>,
}

/// One network a container joins: `--network`, `--ip`, `--ip6`, `--network-alias`.
#[derive(Debug, Clone, Default)]
pub struct Join {
    /// The network's name or ID.
    pub network: String,
    /// `--ip`.
    pub ip: Option<Ipv4Addr>,
    /// `--ip6`.
    pub ip6: Option<Ipv6Addr>,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_network_of_an_older_berth_loads_and_an_ipv4_one_is_written_as_before() {
        // As berth wrote networks.json before IPv6 (and as it still writes IPv4 networks).
        let old = r#"{"id":"ab","name":"n","driver":"bridge","created":"2026-01-01T00:00:00Z","internal":false,"attachable":false,"labels":{},"options":{},"bridge":"b-ab","pool":{"subnet":"10.1.0.0/24","gateway":"10.1.0.1","range":null,"allocated":{}},"mtu":null,"endpoints":{}}"#;
        let n: Network = serde_json::from_str(old).unwrap();
        assert!(!n.ipv6 && n.pools6.is_empty() && n.more_pools.is_empty());
        assert_eq!(n.pools().count(), 1);
        assert_eq!(serde_json::to_string(&n).unwrap(), old);
        let ep = r#"{"id":"e","container":"c","name":"c","ip":"10.1.0.2","prefix":24,"gateway":"10.1.0.1","mac":"","aliases":[],"host_iface":"v","iface":"eth0","ports":[]}"#;
        let e: Endpoint = serde_json::from_str(ep).unwrap();
        assert_eq!(e.ip6, None);
        assert_eq!(serde_json::to_string(&e).unwrap(), ep);
    }
}
