//! IPv6 address management, beside [`crate::ipam`]'s IPv4: subnets, the gateway (the first
//! address, as Docker picks it), `--ip-range`, and which address belongs to which endpoint.
//! Addresses are handed out in order from the bottom of the range, as Docker 25 and later do
//! (no longer derived from the MAC address). Pure logic; [`crate::store`] keeps it on disk.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ipam::Cidr;
use crate::NetError;

/// An IPv6 network in CIDR form (`fd00:1::/64`); the address is kept as given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr6 {
    /// The address as written.
    pub addr: Ipv6Addr,
    /// The prefix length (0-128).
    pub prefix: u8,
}

impl Cidr6 {
    /// The network's mask.
    pub fn mask(&self) -> u128 {
        if self.prefix == 0 {
            0
        } else {
            u128::MAX << (128 - u32::from(self.prefix))
        }
    }

    /// The network address (host bits cleared): the subnet-router anycast address, never
    /// a container's.
    pub fn network(&self) -> Ipv6Addr {
        Ipv6Addr::from(u128::from(self.addr) & self.mask())
    }

    /// The last address of the network.
    pub fn last(&self) -> Ipv6Addr {
        Ipv6Addr::from(u128::from(self.network()) | !self.mask())
    }

    /// This network with its host bits cleared.
    pub fn normalized(&self) -> Cidr6 {
        Cidr6 {
            addr: self.network(),
            prefix: self.prefix,
        }
    }

    /// Whether `ip` is in this network.
    pub fn contains(&self, ip: Ipv6Addr) -> bool {
        u128::from(ip) & self.mask() == u128::from(self.network())
    }

    /// Whether the two networks share an address.
    pub fn overlaps(&self, other: &Cidr6) -> bool {
        let m = self.mask() & other.mask();
        u128::from(self.addr) & m == u128::from(other.addr) & m
    }

    /// Whether all of `other` lies inside this network.
    pub fn covers(&self, other: &Cidr6) -> bool {
        other.prefix >= self.prefix && self.contains(other.network())
    }

    /// The first address after the network address (the gateway Docker picks by default).
    pub fn first_host(&self) -> Ipv6Addr {
        Ipv6Addr::from(u128::from(self.network()).wrapping_add(1))
    }
}

impl fmt::Display for Cidr6 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Cidr6 {
    type Err = NetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || NetError::Invalid(format!("invalid CIDR address: {s}"));
        let (a, p) = s.split_once('/').ok_or_else(bad)?;
        let addr: Ipv6Addr = a.parse().map_err(|_| bad())?;
        // Digits only: `u8::from_str` would take a leading `+`.
        if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let prefix: u8 = p.parse().map_err(|_| bad())?;
        if prefix > 128 {
            return Err(bad());
        }
        Ok(Cidr6 { addr, prefix })
    }
}

impl Serialize for Cidr6 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr6 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A subnet of either family, as `--subnet` and `--ip-range` take them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subnet {
    /// `172.18.0.0/16`.
    V4(Cidr),
    /// `fd00:1::/64`.
    V6(Cidr6),
}

impl FromStr for Subnet {
    type Err = NetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.contains(':') {
            s.parse().map(Subnet::V6)
        } else {
            s.parse().map(Subnet::V4)
        }
    }
}

/// 64-bit FNV-1a: stable across builds and platforms, unlike std's hasher.
fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The /48 of Unique Local Addresses that networks without an IPv6 `--subnet` draw their
/// /64s from, as Docker 27 and later derive one from the engine's ID (RFC 4193's `fd` and a
/// 40-bit global ID): here from `seed` (the machine's ID and berth's state directory), so it
/// is stable for one daemon and differs between daemons.
pub fn ula_base(seed: &[u8]) -> Cidr6 {
    let gid = fnv1a(seed) & 0xff_ffff_ffff;
    let addr = (0xfdu128 << 120) | (u128::from(gid) << 80);
    Cidr6 {
        addr: Ipv6Addr::from(addr),
        prefix: 48,
    }
}

/// The first /64 of `base` that overlaps none of `taken`.
pub fn pick_subnet6(base: Cidr6, taken: &[Cidr6]) -> Option<Cidr6> {
    if base.prefix > 64 {
        return None;
    }
    let count: u128 = 1 << (64 - base.prefix);
    (0..count.min(1 << 16))
        .map(|i| Cidr6 {
            addr: Ipv6Addr::from(u128::from(base.network()) | (i << 64)),
            prefix: 64,
        })
        .find(|c| !taken.iter().any(|t| t.overlaps(c)))
}

/// One network's IPv6 address plan and its allocations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool6 {
    /// The network.
    pub subnet: Cidr6,
    /// The gateway (an address of the bridge).
    pub gateway: Ipv6Addr,
    /// Where container addresses come from (`--ip-range`); the whole subnet if unset.
    pub range: Option<Cidr6>,
    /// Allocated addresses and who holds them.
    #[serde(default)]
    pub allocated: BTreeMap<Ipv6Addr, String>,
}

impl Pool6 {
    /// A pool for `subnet`, checking `gateway` and `range` against it as Docker does.
    pub fn new(
        subnet: Cidr6,
        gateway: Option<Ipv6Addr>,
        range: Option<Cidr6>,
    ) -> Result<Pool6, NetError> {
        let subnet = subnet.normalized();
        if subnet.prefix > 126 {
            return Err(NetError::Invalid(format!(
                "subnet {subnet} is too small: it has no room for a gateway and a container"
            )));
        }
        let gateway = gateway.unwrap_or_else(|| subnet.first_host());
        if !subnet.contains(gateway) || gateway == subnet.network() {
            return Err(NetError::Invalid(format!(
                "no matching subnet for gateway {gateway}"
            )));
        }
        if let Some(r) = range {
            if !subnet.covers(&r.normalized()) {
                return Err(NetError::Invalid(format!(
                    "no matching subnet for range {r}"
                )));
            }
        }
        Ok(Pool6 {
            subnet,
            gateway,
            range: range.map(|r| r.normalized()),
            allocated: BTreeMap::new(),
        })
    }

    fn usable(&self, ip: Ipv6Addr) -> bool {
        self.subnet.contains(ip) && ip != self.subnet.network() && ip != self.gateway
    }

    /// Allocates `wanted` (`--ip6`) or the lowest free address of the range for `owner`.
    pub fn allocate(
        &mut self,
        owner: &str,
        wanted: Option<Ipv6Addr>,
    ) -> Result<Ipv6Addr, NetError> {
        if let Some(ip) = wanted {
            if !self.usable(ip) {
                return Err(NetError::Invalid(format!(
                    "the address {ip} is not usable in subnet {} (gateway {})",
                    self.subnet, self.gateway
                )));
            }
            if let Some(holder) = self.allocated.get(&ip) {
                if holder != owner {
                    return Err(NetError::Conflict(format!("Address already in use: {ip}")));
                }
            }
            self.allocated.insert(ip, owner.to_string());
            return Ok(ip);
        }
        let range = self.range.unwrap_or(self.subnet);
        let first = u128::from(range.network()).max(u128::from(self.subnet.network()) + 1);
        let last = u128::from(range.last());
        // Every taken address is passed at most once, so this ends after at most
        // `allocated.len() + 2` steps unless the range is full.
        let mut n = first;
        while n <= last {
            let ip = Ipv6Addr::from(n);
            if self.usable(ip) && !self.allocated.contains_key(&ip) {
                self.allocated.insert(ip, owner.to_string());
                return Ok(ip);
            }
            n += 1;
        }
        Err(NetError::Exhausted(format!(
            "no available IPv6 addresses on this network's address pools: {}",
            self.subnet
        )))
    }

    /// Gives back what `owner` holds.
    pub fn release(&mut self, owner: &str) {
        self.allocated.retain(|_, o| o != owner);
    }

    /// The address `owner` holds, if any.
    pub fn address_of(&self, owner: &str) -> Option<Ipv6Addr> {
        self.allocated
            .iter()
            .find(|(_, o)| o.as_str() == owner)
            .map(|(ip, _)| *ip)
    }
}

/// The host's IPv6 routes' destinations that a new network must not overlap, from
/// `/proc/net/ipv6_route` (every table: the host's own addresses too), without the default
/// route, link-local and multicast.
pub fn host_routes6() -> Vec<Cidr6> {
    parse_ipv6_route(&std::fs::read_to_string("/proc/net/ipv6_route").unwrap_or_default())
}

/// Reads `/proc/net/ipv6_route`'s text (32 hex digits of destination, 2 of prefix length,
/// ...).
pub fn parse_ipv6_route(text: &str) -> Vec<Cidr6> {
    let link_local = Cidr6 {
        addr: Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0),
        prefix: 10,
    };
    let multicast = Cidr6 {
        addr: Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0),
        prefix: 8,
    };
    let mut out: Vec<Cidr6> = text
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let dest = u128::from_str_radix(f.next()?, 16).ok()?;
            let prefix = u8::from_str_radix(f.next()?, 16).ok()?;
            let c = Cidr6 {
                addr: Ipv6Addr::from(dest),
                prefix,
            };
            (prefix > 0
                && prefix <= 128
                && !c.addr.is_loopback()
                && !link_local.covers(&c)
                && !multicast.covers(&c))
            .then_some(c)
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Cidr6 {
        s.parse().unwrap()
    }

    #[test]
    fn cidrs_parse_and_compare() {
        assert_eq!(
            c("fd00:1::5/64").network(),
            "fd00:1::".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(
            c("fd00:1::/64").last(),
            "fd00:1::ffff:ffff:ffff:ffff".parse::<Ipv6Addr>().unwrap()
        );
        assert!(c("fd00::/16").overlaps(&c("fd00:1::/64")));
        assert!(!c("fd00:1::/64").overlaps(&c("fd00:2::/64")));
        assert!(c("fd00:1::/64").covers(&c("fd00:1::/80")));
        assert_eq!(c("::/0").mask(), 0);
        assert_eq!(c("fd00::1/128").mask(), u128::MAX);
        for bad in [
            "fd00::",
            "fd00::/129",
            "fd00::/+6",
            "x/64",
            "10.0.0.0/8",
            "fd00::/",
        ] {
            let e = bad.parse::<Cidr6>().unwrap_err().to_string();
            assert!(e.contains("invalid CIDR address"), "{bad}: {e}");
        }
        assert!(matches!("10.1.0.0/16".parse(), Ok(Subnet::V4(_))));
        assert!(matches!("fd00::/64".parse(), Ok(Subnet::V6(_))));
        assert!("fd00::/64x".parse::<Subnet>().is_err());
    }

    #[test]
    fn addresses_are_allocated_from_the_bottom_and_checked() {
        let mut p = Pool6::new(c("fd00:7::/64"), None, None).unwrap();
        assert_eq!(p.gateway, "fd00:7::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.allocate("a", None).unwrap().to_string(), "fd00:7::2");
        assert_eq!(p.allocate("b", None).unwrap().to_string(), "fd00:7::3");
        let wanted: Ipv6Addr = "fd00:7::10".parse().unwrap();
        assert_eq!(p.allocate("c", Some(wanted)).unwrap(), wanted);
        let e = p.allocate("d", Some(wanted)).unwrap_err().to_string();
        assert!(e.contains("Address already in use"), "{e}");
        for bad in ["fd00:7::", "fd00:7::1", "fd00:8::2"] {
            assert!(
                p.allocate("d", Some(bad.parse().unwrap())).is_err(),
                "{bad}"
            );
        }
        p.release("a");
        assert_eq!(p.allocate("e", None).unwrap().to_string(), "fd00:7::2");
        assert_eq!(p.address_of("c"), Some(wanted));

        let mut small = Pool6::new(c("fd00:9::/126"), None, None).unwrap();
        assert_eq!(small.allocate("a", None).unwrap().to_string(), "fd00:9::2");
        assert_eq!(small.allocate("b", None).unwrap().to_string(), "fd00:9::3");
        let e = small.allocate("c", None).unwrap_err().to_string();
        assert!(e.contains("no available IPv6 addresses"), "{e}");

        let mut r = Pool6::new(c("fd00:a::/64"), None, Some(c("fd00:a::8:0/112"))).unwrap();
        assert_eq!(r.allocate("a", None).unwrap().to_string(), "fd00:a::8:0");
        assert!(Pool6::new(c("fd00:a::/64"), Some("fd00:b::1".parse().unwrap()), None).is_err());
        assert!(Pool6::new(c("fd00:a::/64"), None, Some(c("fd00:b::/80"))).is_err());
        assert!(Pool6::new(c("fd00:a::/127"), None, None).is_err());
    }

    #[test]
    fn ula_subnets_are_picked_around_what_is_taken() {
        let base = ula_base(b"machine\0/var/lib/berth/network");
        assert_eq!(base.prefix, 48);
        assert_eq!(base.addr.segments()[0] >> 8, 0xfd);
        assert_eq!(base, ula_base(b"machine\0/var/lib/berth/network"));
        assert_ne!(base, ula_base(b"machine\0/other"));
        let first = pick_subnet6(base, &[]).unwrap();
        assert_eq!(
            first,
            Cidr6 {
                addr: base.addr,
                prefix: 64
            }
        );
        let second = pick_subnet6(base, &[first]).unwrap();
        assert_eq!(second.addr.segments()[3], 1);
        assert_eq!(pick_subnet6(base, &[base]), None);
    }

    #[test]
    fn host_routes_skip_defaults_link_local_and_multicast() {
        let text = "\
fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
fe800000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000001 00000000 00000003     eth0
00000000000000000000000000000001 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000002 00000000 80200001       lo
fd000000000000000000000000000002 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000002 00000000 80200001     eth0
ff000000000000000000000000000000 08 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
garbage
";
        assert_eq!(
            parse_ipv6_route(text),
            vec![c("fd00::/64"), c("fd00::2/128")]
        );
    }
}
