//! Links, addresses and routes over rtnetlink: the bridges, and each container's veth pair
//! with its address and default route.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures_util::TryStreamExt;
use rtnetlink::packet_route::link::{InfoData, InfoVeth};
use rtnetlink::{
    Handle, LinkBridge, LinkBridgePort, LinkMessageBuilder, LinkUnspec, RouteMessageBuilder,
};

use crate::ipam::Cidr;
use crate::NetError;

fn nl(what: String) -> impl Fn(rtnetlink::Error) -> NetError {
    move |e| NetError::Host(format!("{what}: {e}"))
}

/// A link's index by name, if it exists.
pub async fn index_of(h: &Handle, name: &str) -> Result<Option<u32>, NetError> {
    let mut links = h.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(Some(l)) => Ok(Some(l.header.index)),
        Ok(None) => Ok(None),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => Ok(None),
        Err(e) => Err(NetError::Host(format!("look up link {name}: {e}"))),
    }
}

/// Adds `ip/prefix` to link `index`; an IPv6 address without duplicate address detection
/// (as Docker adds them), so that it is usable at once rather than a second later.
async fn add_address(
    h: &Handle,
    index: u32,
    ip: IpAddr,
    prefix: u8,
) -> Result<(), rtnetlink::Error> {
    let mut req = h.address().add(index, ip, prefix);
    if ip.is_ipv6() {
        req.message_mut().header.flags =
            rtnetlink::packet_route::address::AddressHeaderFlags::Nodad;
    }
    req.execute().await
}

/// Makes sure bridge `name` exists with `addrs` (each gateway and its subnet's prefix
/// length, IPv4 and IPv6) and is up; returns its index.
pub async fn ensure_bridge(
    h: &Handle,
    name: &str,
    addrs: &[(IpAddr, u8)],
    mtu: Option<u32>,
) -> Result<u32, NetError> {
    let index = match index_of(h, name).await? {
        Some(i) => i,
        None => {
            let mut b = LinkBridge::new(name);
            if let Some(m) = mtu {
                b = b.mtu(m);
            }
            h.link()
                .add(b.build())
                .execute()
                .await
                .map_err(nl(format!("create bridge {name}")))?;
            index_of(h, name)
                .await?
                .ok_or_else(|| NetError::Host(format!("bridge {name} vanished after creation")))?
        }
    };
    if addrs.iter().any(|(ip, _)| ip.is_ipv6()) {
        // Docker's settings for a bridge with IPv6: enabled, and not taking router
        // advertisements from its containers.
        for (key, value) in [("disable_ipv6", "0"), ("accept_ra", "0")] {
            crate::sysctl(&format!("/proc/sys/net/ipv6/conf/{name}/{key}"), value);
        }
    }
    let has: Vec<IpAddr> = h
        .address()
        .get()
        .set_link_index_filter(index)
        .execute()
        .try_collect::<Vec<_>>()
        .await
        .map_err(nl(format!("list addresses of {name}")))?
        .iter()
        .flat_map(|a| {
            a.attributes.iter().filter_map(|attr| match attr {
                rtnetlink::packet_route::address::AddressAttribute::Address(ip) => Some(*ip),
                _ => None,
            })
        })
        .collect();
    for (gateway, prefix) in addrs {
        if !has.contains(gateway) {
            add_address(h, index, *gateway, *prefix)
                .await
                .map_err(nl(format!("add {gateway}/{prefix} to {name}")))?;
        }
    }
    h.link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(nl(format!("bring {name} up")))?;
    Ok(index)
}

/// Deletes a link by name (a bridge, or one end of a veth pair, which takes both).
pub async fn delete(h: &Handle, name: &str) -> Result<(), NetError> {
    if let Some(i) = index_of(h, name).await? {
        h.link()
            .del(i)
            .execute()
            .await
            .map_err(nl(format!("delete link {name}")))?;
    }
    Ok(())
}

/// What a container's end of its veth pair gets.
#[derive(Debug, Clone)]
pub struct Interface {
    /// Its name inside the container (`eth0`).
    pub name: String,
    /// Its MAC address.
    pub mac: [u8; 6],
    /// Its address and the network's prefix.
    pub ip: Ipv4Addr,
    /// The prefix length.
    pub prefix: u8,
    /// The default route's gateway (none: the interface gets no default route, as on a
    /// second network).
    pub gateway: Option<Ipv4Addr>,
    /// Its IPv6 address and prefix length (on a network with IPv6).
    pub ip6: Option<(Ipv6Addr, u8)>,
    /// The IPv6 default route's gateway.
    pub gateway6: Option<Ipv6Addr>,
    /// The MTU.
    pub mtu: Option<u32>,
}

/// Creates a veth pair with `host_name` in the host namespace, a port of bridge `bridge`
/// (hairpin on, so a container can reach its own published ports), and the other end named
/// `iface.name` in the namespace of `netns_fd`; then, through `inside` (a connection in that
/// namespace), brings up `lo` and the interface with its address and route.
pub async fn add_endpoint(
    host: &Handle,
    inside: &Handle,
    bridge: u32,
    host_name: &str,
    netns_fd: std::os::fd::RawFd,
    iface: &Interface,
) -> Result<(), NetError> {
    let mut peer = LinkMessageBuilder::<LinkUnspec>::new()
        .name(iface.name.clone())
        .address(iface.mac.to_vec())
        .setns_by_fd(netns_fd);
    if let Some(m) = iface.mtu {
        peer = peer.mtu(m);
    }
    let mut veth = LinkMessageBuilder::<LinkUnspec>::new_with_info_kind(
        rtnetlink::packet_route::link::InfoKind::Veth,
    )
    .name(host_name.to_string())
    .controller(bridge)
    .up()
    .set_info_data(InfoData::Veth(InfoVeth::Peer(peer.build())));
    if let Some(m) = iface.mtu {
        veth = veth.mtu(m);
    }
    host.link()
        .add(veth.build())
        .execute()
        .await
        .map_err(nl(format!("create veth {host_name}")))?;
    let port = index_of(host, host_name)
        .await?
        .ok_or_else(|| NetError::Host(format!("veth {host_name} vanished after creation")))?;
    host.link()
        .set_port(LinkBridgePort::new(port).hairpin(true).build())
        .execute()
        .await
        .map_err(nl(format!("hairpin on {host_name}")))?;
    // Inside: loopback, the interface, its address, the default route.
    loopback_up(inside).await?;
    let eth = index_of(inside, &iface.name)
        .await?
        .ok_or_else(|| NetError::Host(format!("{} did not arrive in the namespace", iface.name)))?;
    inside
        .address()
        .add(eth, IpAddr::V4(iface.ip), iface.prefix)
        .execute()
        .await
        .map_err(nl(format!(
            "add {}/{} to {}",
            iface.ip, iface.prefix, iface.name
        )))?;
    if let Some((ip6, prefix6)) = iface.ip6 {
        add_address(inside, eth, IpAddr::V6(ip6), prefix6)
            .await
            .map_err(nl(format!("add {ip6}/{prefix6} to {}", iface.name)))?;
    }
    inside
        .link()
        .set(LinkUnspec::new_with_index(eth).up().build())
        .execute()
        .await
        .map_err(nl(format!("bring {} up", iface.name)))?;
    if let Some(gw) = iface.gateway {
        inside
            .route()
            .add(RouteMessageBuilder::<Ipv4Addr>::new().gateway(gw).build())
            .execute()
            .await
            .map_err(nl(format!("add the default route via {gw}")))?;
    }
    if let Some(gw) = iface.gateway6 {
        inside
            .route()
            .add(
                RouteMessageBuilder::<Ipv6Addr>::new()
                    .gateway(gw)
                    .output_interface(eth)
                    .build(),
            )
            .execute()
            .await
            .map_err(nl(format!("add the IPv6 default route via {gw}")))?;
    }
    Ok(())
}

/// Brings up `lo` in the namespace `inside` is connected to.
pub async fn loopback_up(inside: &Handle) -> Result<(), NetError> {
    let lo = index_of(inside, "lo")
        .await?
        .ok_or_else(|| NetError::Host("no loopback in the container's namespace".into()))?;
    inside
        .link()
        .set(LinkUnspec::new_with_index(lo).up().build())
        .execute()
        .await
        .map_err(nl("bring lo up".into()))
}

/// The host's IPv4 routes' destinations (what a new network must not overlap), from
/// `/proc/net/route`.
pub fn host_routes() -> Vec<Cidr> {
    let text = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let dest = u32::from_str_radix(f.get(1)?, 16).ok()?;
            let mask = u32::from_str_radix(f.get(7)?, 16).ok()?;
            // The kernel prints the big-endian address as a native-endian number.
            let dest = Ipv4Addr::from(dest.to_ne_bytes());
            let prefix = mask.count_ones() as u8;
            (prefix > 0).then_some(Cidr { addr: dest, prefix })
        })
        .collect()
}
