//! IPv4 address management: subnets, gateways, ranges, and which address belongs to which
//! endpoint. Pure logic; the [`crate::store`] keeps it on disk.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::NetError;

/// An IPv4 network in CIDR form (`172.18.0.0/16`); the address is kept as given, so a CIDR
/// with host bits (`172.18.0.1/16`, as `--bip` takes) keeps them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr {
    /// The address as written.
    pub addr: Ipv4Addr,
    /// The prefix length (0-32).
    pub prefix: u8,
}

impl Cidr {
    /// The network's mask.
    pub fn mask(&self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix)
        }
    }

    /// The network address (host bits cleared).
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & self.mask())
    }

    /// The broadcast address.
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network()) | !self.mask())
    }

    /// This network with its host bits cleared.
    pub fn normalized(&self) -> Cidr {
        Cidr {
            addr: self.network(),
            prefix: self.prefix,
        }
    }

    /// Whether `ip` is in this network.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.network())
    }

    /// Whether the two networks share an address.
    pub fn overlaps(&self, other: &Cidr) -> bool {
        let m = self.mask() & other.mask();
        u32::from(self.addr) & m == u32::from(other.addr) & m
    }

    /// Whether all of `other` lies inside this network.
    pub fn covers(&self, other: &Cidr) -> bool {
        other.prefix >= self.prefix && self.contains(other.network())
    }

    /// The first usable address (the gateway Docker picks by default).
    pub fn first_host(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network()) + 1)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Cidr {
    type Err = NetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || NetError::Invalid(format!("invalid CIDR address: {s}"));
        let (a, p) = s.split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = a.parse().map_err(|_| bad())?;
        let prefix: u8 = p.parse().map_err(|_| bad())?;
        if prefix > 32 {
            return Err(bad());
        }
        Ok(Cidr { addr, prefix })
    }
}

impl Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The pools Docker draws networks from when none is given (its local-scope defaults):
/// 172.17-31.0.0/16, then 192.168.0.0/20 in /20 steps.
pub fn default_pools() -> Vec<Cidr> {
    let mut v: Vec<Cidr> = (17..=31)
        .map(|b| Cidr {
            addr: Ipv4Addr::new(172, b, 0, 0),
            prefix: 16,
        })
        .collect();
    v.extend((0..16).map(|i| Cidr {
        addr: Ipv4Addr::new(192, 168, i * 16, 0),
        prefix: 20,
    }));
    v
}

/// The first of `pools` that overlaps none of `taken` (routes on the host, other networks).
pub fn pick_subnet(pools: &[Cidr], taken: &[Cidr]) -> Option<Cidr> {
    pools
        .iter()
        .find(|p| !taken.iter().any(|t| t.overlaps(p)))
        .copied()
}

/// One network's address plan and its allocations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    /// The network.
    pub subnet: Cidr,
    /// The gateway (the bridge's address).
    pub gateway: Ipv4Addr,
    /// Where container addresses come from (`--ip-range`); the whole subnet if unset.
    pub range: Option<Cidr>,
    /// Allocated addresses and who holds them.
    #[serde(default)]
    pub allocated: BTreeMap<Ipv4Addr, String>,
}

impl Pool {
    /// A pool for `subnet`, checking `gateway` and `range` against it as Docker does.
    pub fn new(
        subnet: Cidr,
        gateway: Option<Ipv4Addr>,
        range: Option<Cidr>,
    ) -> Result<Pool, NetError> {
        let subnet = subnet.normalized();
        if subnet.prefix > 30 {
            return Err(NetError::Invalid(format!(
                "subnet {subnet} is too small: it has no room for a gateway and a container"
            )));
        }
        let gateway = gateway.unwrap_or_else(|| subnet.first_host());
        if !subnet.contains(gateway) || gateway == subnet.network() || gateway == subnet.broadcast()
        {
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
        Ok(Pool {
            subnet,
            gateway,
            range: range.map(|r| r.normalized()),
            allocated: BTreeMap::new(),
        })
    }

    fn usable(&self, ip: Ipv4Addr) -> bool {
        self.subnet.contains(ip)
            && ip != self.subnet.network()
            && ip != self.subnet.broadcast()
            && ip != self.gateway
    }

    /// Allocates `wanted` (`--ip`) or the lowest free address of the range for `owner`.
    pub fn allocate(
        &mut self,
        owner: &str,
        wanted: Option<Ipv4Addr>,
    ) -> Result<Ipv4Addr, NetError> {
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
        let first = u32::from(range.network()).max(u32::from(self.subnet.network()) + 1);
        let last = u32::from(range.broadcast()).min(u32::from(self.subnet.broadcast()) - 1);
        for n in first..=last {
            let ip = Ipv4Addr::from(n);
            if self.usable(ip) && !self.allocated.contains_key(&ip) {
                self.allocated.insert(ip, owner.to_string());
                return Ok(ip);
            }
        }
        Err(NetError::Exhausted(format!(
            "no available IPv4 addresses on this network's address pools: {}",
            self.subnet
        )))
    }

    /// Gives back what `owner` holds.
    pub fn release(&mut self, owner: &str) {
        self.allocated.retain(|_, o| o != owner);
    }

    /// The address `owner` holds, if any.
    pub fn address_of(&self, owner: &str) -> Option<Ipv4Addr> {
        self.allocated
            .iter()
            .find(|(_, o)| o.as_str() == owner)
            .map(|(ip, _)| *ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn cidrs_parse_and_compare() {
        assert_eq!(c("10.1.2.3/8").network(), Ipv4Addr::new(10, 0, 0, 0));
        assert_eq!(
            c("10.1.2.3/8").broadcast(),
            Ipv4Addr::new(10, 255, 255, 255)
        );
        assert!(c("10.0.0.0/8").overlaps(&c("10.9.0.0/16")));
        assert!(!c("10.0.0.0/16").overlaps(&c("10.1.0.0/16")));
        assert!(c("10.0.0.0/16").covers(&c("10.0.4.0/24")));
        assert!(!c("10.0.4.0/24").covers(&c("10.0.0.0/16")));
        assert_eq!(c("0.0.0.0/0").mask(), 0);
        for bad in ["10.0.0.0", "10.0.0.0/33", "10.0.0/8", "x/8", "10.0.0.0/-1"] {
            let e = bad.parse::<Cidr>().unwrap_err().to_string();
            assert!(e.contains("invalid CIDR address"), "{bad}: {e}");
        }
    }

    #[test]
    fn subnets_are_picked_around_what_is_taken() {
        let pools = default_pools();
        assert_eq!(pick_subnet(&pools, &[]), Some(c("172.17.0.0/16")));
        let taken = [c("172.17.0.0/16"), c("172.18.5.0/24")];
        assert_eq!(pick_subnet(&pools, &taken), Some(c("172.19.0.0/16")));
        assert_eq!(pick_subnet(&pools, &[c("0.0.0.0/0")]), None);
    }

    #[test]
    fn addresses_are_allocated_released_and_checked() {
        let mut p = Pool::new(c("10.5.0.0/29"), None, None).unwrap();
        assert_eq!(p.gateway, Ipv4Addr::new(10, 5, 0, 1));
        let a = p.allocate("a", None).unwrap();
        assert_eq!(a, Ipv4Addr::new(10, 5, 0, 2));
        assert_eq!(
            p.allocate("b", Some(Ipv4Addr::new(10, 5, 0, 6))).unwrap(),
            Ipv4Addr::new(10, 5, 0, 6)
        );
        let e = p
            .allocate("c", Some(Ipv4Addr::new(10, 5, 0, 6)))
            .unwrap_err();
        assert!(e.to_string().contains("Address already in use"), "{e}");
        for ip in [[10, 5, 0, 0], [10, 5, 0, 7], [10, 5, 0, 1], [10, 6, 0, 2]] {
            assert!(p.allocate("d", Some(Ipv4Addr::from(ip))).is_err(), "{ip:?}");
        }
        for _ in 0..3 {
            p.allocate("x", None).unwrap();
        }
        let e = p.allocate("y", None).unwrap_err();
        assert!(e.to_string().contains("no available IPv4 addresses"), "{e}");
        p.release("a");
        assert_eq!(p.allocate("y", None).unwrap(), a);
        assert_eq!(p.address_of("y"), Some(a));

        let mut r = Pool::new(
            c("10.6.0.0/16"),
            Some(Ipv4Addr::new(10, 6, 0, 254)),
            Some(c("10.6.3.0/24")),
        )
        .unwrap();
        assert_eq!(r.allocate("a", None).unwrap(), Ipv4Addr::new(10, 6, 3, 0));
        assert!(Pool::new(c("10.7.0.0/16"), Some(Ipv4Addr::new(10, 8, 0, 1)), None).is_err());
        assert!(Pool::new(c("10.7.0.0/16"), None, Some(c("10.8.0.0/24"))).is_err());
        assert!(Pool::new(c("10.7.0.0/31"), None, None).is_err());
    }
}
