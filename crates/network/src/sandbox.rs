//! A container's sandbox: its namespace, an endpoint (veth pair, addresses of both
//! families, routes, DNS names) on each of its networks, its published ports; and taking
//! them apart again.

use std::collections::HashSet;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use crate::ipam::Pool;
use crate::ipam6::Pool6;
use crate::model::{Attached, Endpoint, Join, Member};
use crate::{
    dns_names, find, find_mut, link, mac_for, mac_string, netns, ports, random_hex, store, wire,
    Manager, Mapping, NetError, PortRequest,
};

/// An IPv4 address for `owner` from the first of `pools` that has one (or from the one that
/// holds `wanted`), with its subnet's prefix length and gateway.
fn allocate<'a>(
    pools: impl Iterator<Item = &'a mut Pool>,
    owner: &str,
    wanted: Option<Ipv4Addr>,
) -> Result<(Ipv4Addr, u8, Ipv4Addr), NetError> {
    let mut last = None;
    for p in pools {
        if wanted.is_some_and(|ip| !p.subnet.contains(ip)) {
            continue;
        }
        match p.allocate(owner, wanted) {
            Ok(ip) => return Ok((ip, p.subnet.prefix, p.gateway)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| match wanted {
        Some(ip) => NetError::Invalid(format!(
            "Invalid address {ip}: It does not belong to any of this network's subnets"
        )),
        None => NetError::Exhausted("no IPv4 address pool on this network".into()),
    }))
}

/// The same for IPv6: none on a network without IPv6 pools.
fn allocate6(
    pools: &mut [Pool6],
    owner: &str,
    wanted: Option<Ipv6Addr>,
) -> Result<Option<(Ipv6Addr, u8, Ipv6Addr)>, NetError> {
    if pools.is_empty() {
        return Ok(None);
    }
    let mut last = None;
    for p in pools.iter_mut() {
        if wanted.is_some_and(|ip| !p.subnet.contains(ip)) {
            continue;
        }
        match p.allocate(owner, wanted) {
            Ok(ip) => return Ok(Some((ip, p.subnet.prefix, p.gateway))),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        NetError::Invalid(format!(
            "Invalid address {}: It does not belong to any of this network's subnets",
            wanted.map(|w| w.to_string()).unwrap_or_default()
        ))
    }))
}

impl Manager {
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
                    let mapped = self.publish(&member.id, first, ports).await?;
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
        if net.pool.is_none() {
            return Err(NetError::Host("bridge network without addresses".into()));
        }
        if j.ip6.is_some() && net.pools6.is_empty() {
            return Err(NetError::Invalid(format!(
                "user specified IPv6 address is supported only on networks with IPv6 (--ipv6): {}",
                net.name
            )));
        }
        let (ip, prefix, gateway) = allocate(net.pools_mut(), &member.id, j.ip)?;
        let v6 = match allocate6(&mut net.pools6, &member.id, j.ip6) {
            Ok(v6) => v6,
            Err(e) => {
                net.release(&member.id);
                return Err(e);
            }
        };
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
            ip6: v6.map(|v| v.0),
            prefix6: v6.map(|v| v.1),
            gateway6: v6.map(|v| v.2),
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
            if v6.is_some() {
                // IPv6 on in the container's namespace, for the interfaces made from now on.
                netns::sysctls(
                    netns,
                    &[
                        ("net/ipv6/conf/all/disable_ipv6".into(), "0"),
                        ("net/ipv6/conf/default/disable_ipv6".into(), "0"),
                    ],
                )?;
            }
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
                    ip6: v6.map(|v| (v.0, v.1)),
                    gateway6: v6.filter(|_| default_route && !internal).map(|v| v.2),
                    mtu,
                },
            )
            .await
        }
        .await;
        let net = find_mut(&mut st.networks, &j.network)?;
        if let Err(e) = made {
            net.release(&member.id);
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
                s.zone.write().unwrap_or_else(|e| e.into_inner()).add_all(
                    &ep.addresses(),
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
        ep: &Endpoint,
        reqs: &[PortRequest],
    ) -> Result<Vec<Mapping>, NetError> {
        let held = ports::reserve(reqs, ep.ip6.is_some())?;
        let mut st = self.state.lock().await;
        let mapped: Vec<Mapping> = held.iter().map(|(m, _)| m.clone()).collect();
        let fw = held
            .into_iter()
            .map(|(m, h)| wire(&m, h, ep.ip, ep.ip6))
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
        net.release(ctr);
        let net_id = net.id.clone();
        if let Some(s) = st.dns.get(&net_id) {
            s.zone
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .remove_all(&ep.addresses());
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
            // Its addresses, also those held without an endpoint (a join cut short).
            changed |= n.release(ctr);
        }
        for (net_id, ep) in &gone {
            if let Some(s) = st.dns.get(net_id) {
                s.zone
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove_all(&ep.addresses());
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
}
