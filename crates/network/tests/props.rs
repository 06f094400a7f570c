//! Property tests for what berth-network reads from untrusted hands: DNS messages from any
//! container on a network, and the strings of API requests (CIDRs, port bindings). Each
//! parser is total (an error, never a panic) and what it accepts means what it says.

use std::net::{Ipv4Addr, Ipv6Addr};

use berth_network::dns::{answer, reverse_ip, Zone};
use berth_network::ipam6::parse_ipv6_route;
use berth_network::ports::request;
use berth_network::{Cidr, Cidr6, Pool6, Subnet};
use proptest::prelude::*;

fn zone() -> Zone {
    let mut z = Zone::default();
    z.add_all(
        &[
            Ipv4Addr::new(172, 18, 0, 2).into(),
            "fd00:18::2".parse::<Ipv6Addr>().unwrap().into(),
        ],
        &["web".into(), "front".into()],
        vec![],
    );
    z
}

/// A well-formed DNS query for `name`, type `qtype` (built by hand, as a container's
/// resolver sends it).
fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut q = Vec::new();
    q.extend(id.to_be_bytes());
    q.extend([0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        q.push(label.len() as u8);
        q.extend(label.as_bytes());
    }
    q.push(0);
    q.extend(qtype.to_be_bytes());
    q.extend([0, 1]);
    q
}

proptest! {
    #[test]
    fn any_bytes_get_an_answer_or_none_never_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = answer(&zone(), &bytes);
    }

    #[test]
    fn mangled_queries_never_panic(id in any::<u16>(), cut in 0usize..40, flip in 0usize..40, with in any::<u8>()) {
        let mut q = query(id, "web", 1);
        if flip < q.len() {
            q[flip] = with;
        }
        q.truncate(q.len().saturating_sub(cut));
        let _ = answer(&zone(), &q);
    }

    #[test]
    fn known_names_are_answered_with_the_query_id(id in any::<u16>(), upper in any::<bool>()) {
        let name = if upper { "WEB." } else { "web." };
        let r = answer(&zone(), &query(id, name, 1)).expect("a known name is answered");
        prop_assert_eq!(&r[..2], &id.to_be_bytes()[..]);
        // The address is in the answer.
        prop_assert!(r.windows(4).any(|w| w == [172, 18, 0, 2]));
    }

    #[test]
    fn unknown_names_are_left_to_the_upstream(label in "[a-z]{1,20}") {
        prop_assume!(label != "web" && label != "front");
        let name = format!("{label}.example.");
        prop_assert!(answer(&zone(), &query(1, &name, 1)).is_none());
    }

    #[test]
    fn cidrs_parse_totally_and_round_trip(s in ".{0,24}", a in any::<u32>(), p in 0u8..=32) {
        let _ = s.parse::<Cidr>();
        let text = format!("{}/{p}", Ipv4Addr::from(a));
        let c: Cidr = text.parse().unwrap();
        prop_assert_eq!(c.to_string(), text);
        prop_assert!(c.contains(c.network()));
        prop_assert!(c.normalized().covers(&c));
    }

    #[test]
    fn port_bindings_parse_totally(port in ".{0,12}", ip in ".{0,16}", host in ".{0,12}") {
        let _ = request(&port, &ip, &host);
    }

    #[test]
    fn accepted_bindings_say_what_was_asked(ctr in 1u16.., lo in 1u16..60000, span in 0u16..100, udp in any::<bool>()) {
        let proto = if udp { "udp" } else { "tcp" };
        let hi = lo.saturating_add(span);
        let r = request(&format!("{ctr}/{proto}"), "127.0.0.1", &format!("{lo}-{hi}")).unwrap();
        prop_assert_eq!(r.ctr_port, ctr);
        prop_assert_eq!(r.proto.as_str(), proto);
        prop_assert_eq!(r.host_ports, (lo, hi));
        prop_assert_eq!(r.host_ip, Some(Ipv4Addr::LOCALHOST.into()));
    }

    #[test]
    fn aaaa_answers_carry_the_ipv6_address(id in any::<u16>()) {
        let r = answer(&zone(), &query(id, "web.", 28)).expect("a known name is answered");
        prop_assert_eq!(&r[..2], &id.to_be_bytes()[..]);
        let want = "fd00:18::2".parse::<Ipv6Addr>().unwrap().octets();
        prop_assert!(r.windows(16).any(|w| w == want));
        prop_assert!(!r.windows(4).any(|w| w == [172, 18, 0, 2]), "no A record in an AAAA answer");
    }

    #[test]
    fn ipv6_cidrs_parse_totally_and_round_trip(s in ".{0,48}", a in any::<u128>(), p in 0u8..=128) {
        let _ = s.parse::<Cidr6>();
        let _ = s.parse::<Subnet>();
        let text = format!("{}/{p}", Ipv6Addr::from(a));
        let c: Cidr6 = text.parse().unwrap();
        prop_assert_eq!(c.to_string(), text.clone());
        prop_assert!(c.contains(c.network()) && c.contains(c.last()) && c.contains(c.addr));
        prop_assert!(c.normalized().covers(&c));
        prop_assert!(c.overlaps(&c.normalized()));
        prop_assert_eq!(text.parse::<Subnet>().unwrap(), Subnet::V6(c));
    }

    #[test]
    fn reverse_names_parse_totally(s in ".{0,80}", a in any::<u128>()) {
        let _ = reverse_ip(&s);
        let name: String = format!("{a:032x}").chars().rev().map(|c| format!("{c}.")).collect();
        prop_assert_eq!(
            reverse_ip(&format!("{name}ip6.arpa.")),
            Some(Ipv6Addr::from(a).into())
        );
    }

    #[test]
    fn ipv6_route_text_parses_totally(s in "(?s).{0,300}") {
        for c in parse_ipv6_route(&s) {
            prop_assert!(c.prefix > 0 && c.prefix <= 128);
        }
    }

    /// IPv6 IPAM: whatever is asked, an allocated address is in the subnet (and the range),
    /// never the network address or the gateway, never handed out twice; a release frees it.
    #[test]
    fn ipv6_allocations_stay_in_the_pool(
        net in any::<u128>(),
        len in 64u8..=124,
        ops in proptest::collection::vec((any::<bool>(), any::<u8>(), any::<u16>()), 1..40),
    ) {
        let subnet = Cidr6 { addr: Ipv6Addr::from(net), prefix: len }.normalized();
        let mut pool = Pool6::new(subnet, None, None).unwrap();
        let mut held: std::collections::BTreeMap<Ipv6Addr, String> = Default::default();
        for (i, (release, who, off)) in ops.into_iter().enumerate() {
            let owner = format!("c{}", who % 8);
            if release {
                pool.release(&owner);
                held.retain(|_, o| *o != owner);
                prop_assert!(pool.address_of(&owner).is_none());
                continue;
            }
            let wanted = (i % 3 == 0).then(|| {
                Ipv6Addr::from(u128::from(subnet.network()) + u128::from(off))
            });
            match pool.allocate(&owner, wanted) {
                Ok(ip) => {
                    prop_assert!(subnet.contains(ip));
                    prop_assert!(ip != subnet.network() && ip != pool.gateway);
                    if let Some(o) = held.get(&ip) {
                        prop_assert_eq!(o, &owner, "{} handed out twice", ip);
                    }
                    if let Some(w) = wanted {
                        prop_assert_eq!(ip, w);
                    }
                    held.insert(ip, owner);
                }
                Err(_) => prop_assert!(wanted.is_some() || pool.allocated.len() as u128 >= (1u128 << (128 - u32::from(len))) - 2),
            }
        }
        prop_assert_eq!(&pool.allocated, &held);
    }
}
