//! `network create` and `network rm`: the IPAM plan of a new network (any number of
//! non-overlapping subnets of either family, picked from the defaults when none is given),
//! its bridge, and their removal.

use std::net::IpAddr;

use crate::ipam::{self, Cidr, Pool};
use crate::ipam6::{self, Cidr6, Pool6, Subnet};
use crate::model::{CreateNetwork, IpamRequest, Network};
use crate::{
    enable_ipv6_forwarding, find, host_lock, iptables, link, random_hex, store, sysctl, valid_name,
    Manager, NetError,
};

/// What the host already uses: routes of both families, for new subnets to keep clear of.
pub(crate) struct Taken<'a> {
    /// berth's networks.
    pub nets: &'a [Network],
    /// The host's IPv4 routes.
    pub routes: Vec<Cidr>,
    /// The host's IPv6 routes.
    pub routes6: Vec<Cidr6>,
    /// The /48 IPv6 subnets are picked from.
    pub ula: Cidr6,
}

impl Taken<'_> {
    fn subnets(&self) -> Vec<Cidr> {
        self.nets
            .iter()
            .flat_map(|n| n.pools().map(|p| p.subnet))
            .collect()
    }

    fn subnets6(&self) -> Vec<Cidr6> {
        self.nets
            .iter()
            .flat_map(|n| n.pools6.iter().map(|p| p.subnet))
            .collect()
    }
}

fn overlap(network: Option<&str>) -> NetError {
    NetError::Forbidden(match network {
        Some(n) => format!(
            "invalid pool request: Pool overlaps with other one on this address space (network {n})"
        ),
        None => "invalid pool request: Pool overlaps with other one on this address space".into(),
    })
}

/// The pools a create's IPAM configs come to, checked as dockerd checks them: each config
/// of a subnet, its gateway and range of the subnet's family; no subnet overlapping
/// another of the request, another network's, or a route of the host (but a network's own
/// route); IPv6 configs only with `ipv6` (ignored without, as Docker ignores them); a
/// family without a config gets a free subnet (IPv4 always, IPv6 with `ipv6`).
pub(crate) fn plan(
    configs: &[IpamRequest],
    ipv6: bool,
    taken: &Taken,
) -> Result<(Vec<Pool>, Vec<Pool6>), NetError> {
    let (mut pools, mut pools6) = (Vec::new(), Vec::new());
    for c in configs {
        let nonempty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
        let (subnet, gateway, range) = (
            nonempty(&c.subnet),
            nonempty(&c.gateway),
            nonempty(&c.ip_range),
        );
        let Some(subnet) = subnet else {
            if gateway.is_some() || range.is_some() {
                return Err(NetError::Invalid(
                    "a gateway or an IP range needs a subnet (--subnet)".into(),
                ));
            }
            continue;
        };
        let gateway = gateway
            .map(|g| {
                g.parse::<IpAddr>()
                    .map_err(|_| NetError::Invalid(format!("invalid gateway address: {g}")))
            })
            .transpose()?;
        let range = range.map(|r| r.parse::<Subnet>()).transpose()?;
        match subnet.parse::<Subnet>()? {
            Subnet::V4(s) => {
                let gateway = match gateway {
                    None => None,
                    Some(IpAddr::V4(g)) => Some(g),
                    Some(g) => {
                        return Err(NetError::Invalid(format!(
                            "no matching subnet for gateway {g}"
                        )))
                    }
                };
                let range = match range {
                    None => None,
                    Some(Subnet::V4(r)) => Some(r),
                    Some(Subnet::V6(r)) => {
                        return Err(NetError::Invalid(format!(
                            "no matching subnet for range {r}"
                        )))
                    }
                };
                pools.push(Pool::new(s, gateway, range)?);
            }
            Subnet::V6(_) if !ipv6 => {}
            Subnet::V6(s) => {
                let gateway = match gateway {
                    None => None,
                    Some(IpAddr::V6(g)) => Some(g),
                    Some(g) => {
                        return Err(NetError::Invalid(format!(
                            "no matching subnet for gateway {g}"
                        )))
                    }
                };
                let range = match range {
                    None => None,
                    Some(Subnet::V6(r)) => Some(r),
                    Some(Subnet::V4(r)) => {
                        return Err(NetError::Invalid(format!(
                            "no matching subnet for range {r}"
                        )))
                    }
                };
                pools6.push(Pool6::new(s, gateway, range)?);
            }
        }
    }
    // IPv4: against each other, the other networks, the host's routes.
    for (i, p) in pools.iter().enumerate() {
        let s = p.subnet;
        if pools[..i].iter().any(|o| o.subnet.overlaps(&s)) {
            return Err(overlap(None));
        }
        if let Some(o) = taken
            .nets
            .iter()
            .find(|n| n.pools().any(|q| q.subnet.overlaps(&s)))
        {
            return Err(overlap(Some(&o.name)));
        }
        let ours = taken.subnets();
        if taken
            .routes
            .iter()
            .any(|r| r.prefix > 0 && r.overlaps(&s) && !ours.contains(&r.normalized()))
        {
            return Err(NetError::Forbidden(format!(
                "invalid pool request: {s} overlaps with a route on the host"
            )));
        }
    }
    for (i, p) in pools6.iter().enumerate() {
        let s = p.subnet;
        if pools6[..i].iter().any(|o| o.subnet.overlaps(&s)) {
            return Err(overlap(None));
        }
        if let Some(o) = taken
            .nets
            .iter()
            .find(|n| n.pools6.iter().any(|q| q.subnet.overlaps(&s)))
        {
            return Err(overlap(Some(&o.name)));
        }
        // A network's own routes (its subnet, its gateway's local /128) are not the host's.
        let ours = taken.subnets6();
        if taken
            .routes6
            .iter()
            .any(|r| r.overlaps(&s) && !ours.iter().any(|o| o.covers(r)))
        {
            return Err(NetError::Forbidden(format!(
                "invalid pool request: {s} overlaps with a route on the host"
            )));
        }
    }
    if pools.is_empty() {
        let mut used = taken.routes.clone();
        used.extend(taken.subnets());
        let s = ipam::pick_subnet(&ipam::default_pools(), &used).ok_or_else(|| {
            NetError::Exhausted("could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network".into())
        })?;
        pools.push(Pool::new(s, None, None)?);
    }
    if ipv6 && pools6.is_empty() {
        let mut used = taken.routes6.clone();
        used.extend(taken.subnets6());
        let s = ipam6::pick_subnet6(taken.ula, &used).ok_or_else(|| {
            NetError::Exhausted("could not find an available, non-overlapping IPv6 address pool among the defaults to assign to the network".into())
        })?;
        pools6.push(Pool6::new(s, None, None)?);
    }
    Ok((pools, pools6))
}

/// Docker's IPv6 gateway modes that berth knows: `nat` (NAT66, the default; `nat-unprotected`
/// is the same here) and `routed` (no NAT66).
fn check_options(req: &CreateNetwork) -> Result<(), NetError> {
    let key = "com.docker.network.bridge.gateway_mode_ipv6";
    match req.options.get(key).map(String::as_str) {
        None | Some("nat" | "nat-unprotected" | "routed") => Ok(()),
        Some(m) => Err(NetError::Invalid(format!(
            "invalid value {m:?} for {key}: berth knows nat, nat-unprotected and routed"
        ))),
    }
}

impl Manager {
    /// The seed of this daemon's IPv6 ULA prefix: the machine and berth's state directory.
    fn ula(&self) -> Cidr6 {
        let mut seed = std::fs::read("/etc/machine-id").unwrap_or_default();
        seed.push(0);
        seed.extend(self.cfg.state_dir.to_string_lossy().as_bytes());
        ipam6::ula_base(&seed)
    }

    /// A free IPv4 subnet: none of the host's routes or berth's networks overlap it.
    pub(crate) fn free_subnet(&self, nets: &[Network]) -> Result<Cidr, NetError> {
        let mut taken = link::host_routes();
        taken.extend(nets.iter().flat_map(|n| n.pools().map(|p| p.subnet)));
        ipam::pick_subnet(&ipam::default_pools(), &taken).ok_or_else(|| {
            NetError::Exhausted("could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network".into())
        })
    }

    pub(crate) async fn make_bridge(&self, n: &Network) -> Result<(), NetError> {
        let Some(br) = &n.bridge else {
            return Ok(());
        };
        if n.pool.is_none() {
            return Ok(());
        }
        let mut addrs: Vec<(IpAddr, u8)> = n
            .pools()
            .map(|p| (IpAddr::V4(p.gateway), p.subnet.prefix))
            .collect();
        addrs.extend(
            n.pools6
                .iter()
                .map(|p| (IpAddr::V6(p.gateway), p.subnet.prefix)),
        );
        let v6 = !n.pools6.is_empty();
        if v6 {
            enable_ipv6_forwarding(&self.cfg.prefix);
        }
        link::ensure_bridge(&self.host, br, &addrs, n.mtu).await?;
        // 127.0.0.1:<published port> reaches a container only if the bridge routes
        // loopback sources; forwarding for everything else.
        sysctl(&format!("/proc/sys/net/ipv4/conf/{br}/route_localnet"), "1");
        sysctl("/proc/sys/net/ipv4/ip_forward", "1");
        iptables::allow_forwarding(br, &self.cfg.prefix, v6);
        Ok(())
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
        valid_name(&req.name)?;
        check_options(&req)?;
        let mut st = self.state.lock().await;
        if st.networks.iter().any(|n| n.name == req.name) {
            return Err(NetError::Conflict(format!(
                "network with name {} already exists",
                req.name
            )));
        }
        let _lock = host_lock()?;
        let taken = Taken {
            nets: &st.networks,
            routes: link::host_routes(),
            routes6: if req.ipv6 {
                ipam6::host_routes6()
            } else {
                Vec::new()
            },
            ula: self.ula(),
        };
        let (mut pools, pools6) = plan(&req.ipam, req.ipv6, &taken)?;
        let id = random_hex(32);
        let mtu = req
            .options
            .get("com.docker.network.driver.mtu")
            .and_then(|m| m.parse().ok())
            .or(self.cfg.mtu);
        let first = pools.remove(0);
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
            pool: Some(first),
            more_pools: pools,
            ipv6: req.ipv6,
            pools6,
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

    pub(crate) async fn drop_bridge(&self, n: &Network) {
        if let Some(br) = &n.bridge {
            if let Err(e) = link::delete(&self.host, br).await {
                tracing::warn!("{e}");
            }
            iptables::forget_forwarding(br, &self.cfg.prefix, !n.pools6.is_empty());
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn req(subnet: &str, gateway: &str, range: &str) -> IpamRequest {
        let s = |v: &str| (!v.is_empty()).then(|| v.to_string());
        IpamRequest {
            subnet: s(subnet),
            gateway: s(gateway),
            ip_range: s(range),
        }
    }

    fn taken(nets: &[Network]) -> Taken<'_> {
        Taken {
            nets,
            routes: vec!["192.0.2.0/24".parse().unwrap()],
            routes6: vec!["fd00::/64".parse().unwrap()],
            ula: "fd12:3456:789a::/48".parse().unwrap(),
        }
    }

    #[test]
    fn dual_stack_configs_become_pools_with_first_address_gateways() {
        let (v4, v6) = plan(
            &[
                req("10.40.0.0/24", "", ""),
                req("fd00:40::/64", "", "fd00:40::100/120"),
            ],
            true,
            &taken(&[]),
        )
        .unwrap();
        assert_eq!(v4.len(), 1);
        assert_eq!(v4[0].gateway, Ipv4Addr::new(10, 40, 0, 1));
        assert_eq!(v6[0].gateway.to_string(), "fd00:40::1");
        assert_eq!(v6[0].range.unwrap().to_string(), "fd00:40::100/120");
        // Several of each family.
        let (v4, v6) = plan(
            &[
                req("10.41.0.0/24", "", ""),
                req("fd00:41::/64", "fd00:41::fe", ""),
                req("10.42.0.0/24", "10.42.0.254", ""),
                req("fd00:42::/64", "", ""),
            ],
            true,
            &taken(&[]),
        )
        .unwrap();
        assert_eq!((v4.len(), v6.len()), (2, 2));
        assert_eq!(v4[1].gateway, Ipv4Addr::new(10, 42, 0, 254));
        assert_eq!(v6[0].gateway.to_string(), "fd00:41::fe");
    }

    #[test]
    fn a_missing_family_gets_a_free_subnet() {
        let (v4, v6) = plan(&[req("fd00:43::/64", "", "")], true, &taken(&[])).unwrap();
        assert_eq!(v4[0].subnet.to_string(), "172.17.0.0/16");
        assert_eq!(v6[0].subnet.to_string(), "fd00:43::/64");
        let (_, v6) = plan(&[], true, &taken(&[])).unwrap();
        assert_eq!(v6[0].subnet.to_string(), "fd12:3456:789a::/64");
        assert_eq!(v6[0].gateway.to_string(), "fd12:3456:789a::1");
        // Without --ipv6 an IPv6 config is ignored, as dockerd ignores it.
        let (v4, v6) = plan(&[req("fd00:43::/64", "", "")], false, &taken(&[])).unwrap();
        assert_eq!((v4.len(), v6.len()), (1, 0));
    }

    #[test]
    fn overlaps_and_mixed_families_are_refused() {
        let mut other = Network::for_test("x", "other");
        other.pool = Some(Pool::new("10.50.0.0/16".parse().unwrap(), None, None).unwrap());
        other.pools6 = vec![Pool6::new("fd00:50::/64".parse().unwrap(), None, None).unwrap()];
        let nets = [other];
        let t = taken(&nets);
        let err = |configs: &[IpamRequest]| plan(configs, true, &t).unwrap_err().to_string();
        assert!(err(&[req("10.50.1.0/24", "", "")]).contains("(network other)"));
        assert!(err(&[req("fd00:50::/80", "", "")]).contains("(network other)"));
        assert!(
            err(&[req("10.60.0.0/24", "", ""), req("10.60.0.128/25", "", "")])
                .contains("Pool overlaps")
        );
        assert!(
            err(&[req("fd00:60::/64", "", ""), req("fd00:60::/48", "", "")])
                .contains("Pool overlaps")
        );
        assert!(err(&[req("192.0.2.0/25", "", "")]).contains("route on the host"));
        assert!(err(&[req("fd00::/48", "", "")]).contains("route on the host"));
        assert!(err(&[req("10.61.0.0/24", "fd00:61::1", "")]).contains("gateway"));
        assert!(err(&[req("fd00:61::/64", "10.61.0.1", "")]).contains("gateway"));
        assert!(err(&[req("fd00:61::/64", "", "10.61.0.0/25")]).contains("range"));
        assert!(err(&[req("", "10.0.0.1", "")]).contains("needs a subnet"));
        assert!(err(&[req("fd00:61::/64x", "", "")]).contains("invalid CIDR"));
        // A network's own routes are not the host's: a gateway's /128 inside it.
        let mut t2 = taken(&nets);
        t2.routes6.push("fd00:50::1/128".parse().unwrap());
        assert!(plan(&[req("fd00:51::/64", "", "")], true, &t2).is_ok());
    }
}
