//! berth's own nftables tables: outbound NAT for its networks, published ports, and what
//! `--internal` and network isolation forbid. Nothing outside them is touched.
//!
//! There is an `ip` table and, while a network has IPv6, an `ip6` table of the same name
//! and the same chains (NAT66 out of the IPv6 subnets unless the network's IPv6 gateway mode
//! is `routed`, DNAT of published ports to the containers' IPv6 addresses, the same drops).
//! Two tables rather than one `inet` table keep the IPv4 rules exactly as they were, and
//! keep hosts without IPv6 networks free of IPv6 rules. Both are rendered from the networks
//! and published ports and replaced in one `nft` transaction (`add table`, `flush table`,
//! the chains and rules), so the kernel never holds half of a change and a restart simply
//! renders them again.

use std::borrow::Cow;
use std::collections::HashSet;
use std::net::IpAddr;

use nftables::batch::Batch;
use nftables::expr::{
    Expression, Fib, FibFlag, FibResult, Meta, MetaKey, NamedExpression, Payload, PayloadField,
    Prefix, CT,
};
use nftables::schema::{Chain, NfListObject, Nftables, Rule, Table};
use nftables::stmt::{Match, Operator, Statement, NAT};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};

use crate::ipam::Cidr;
use crate::ipam6::Cidr6;
use crate::NetError;

/// One berth network, as the firewall sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetRule {
    /// Its Linux bridge.
    pub bridge: String,
    /// Its IPv4 subnets.
    pub subnets: Vec<Cidr>,
    /// Its IPv6 subnets (none: IPv4 only).
    pub subnets6: Vec<Cidr6>,
    /// `--internal`: no traffic in or out of the bridge but to the host.
    pub internal: bool,
    /// IPv6 gateway mode `routed`: the containers' IPv6 addresses go out as they are.
    pub routed6: bool,
}

/// A published port: traffic to `host_ip:host_port` (any local address of the family when
/// `host_ip` is unset) goes to `ctr_ip:ctr_port`; the family is the container address's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    /// `tcp`, `udp` or `sctp`.
    pub proto: String,
    /// The host address it is bound to (`-p 127.0.0.1:8080:80`), or any.
    pub host_ip: Option<IpAddr>,
    /// The host port.
    pub host_port: u16,
    /// The container's address.
    pub ctr_ip: IpAddr,
    /// The container's port.
    pub ctr_port: u16,
}

fn field<'a>(protocol: &'a str, name: &'a str) -> Expression<'a> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: Cow::Borrowed(protocol),
            field: Cow::Borrowed(name),
        },
    )))
}

fn meta<'a>(key: MetaKey) -> Expression<'a> {
    Expression::Named(NamedExpression::Meta(Meta { key }))
}

fn m<'a>(left: Expression<'a>, op: Operator, right: Expression<'a>) -> Statement<'a> {
    Statement::Match(Match { left, right, op })
}

fn s<'a>(v: impl Into<Cow<'a, str>>) -> Expression<'a> {
    Expression::String(v.into())
}

fn prefix(network: String, len: u8) -> Expression<'static> {
    Expression::Named(NamedExpression::Prefix(Prefix {
        addr: Box::new(Expression::String(Cow::Owned(network))),
        len: len as u32,
    }))
}

/// `fib <saddr|daddr> type local`.
fn local<'a>(flag: FibFlag) -> Statement<'a> {
    m(
        Expression::Named(NamedExpression::Fib(Fib {
            result: FibResult::Type,
            flags: HashSet::from([flag]),
        })),
        Operator::EQ,
        s("local"),
    )
}

/// `ct status dnat`: a connection to a published port.
fn dnatted<'a>() -> Statement<'a> {
    m(
        Expression::Named(NamedExpression::CT(CT {
            key: Cow::Borrowed("status"),
            family: None,
            dir: None,
        })),
        Operator::IN,
        s("dnat"),
    )
}

/// Renders berth's tables `name` for these networks and forwards, in one batch: the `ip`
/// table always, the `ip6` one when a network has IPv6. Without one, `drop6` deletes the
/// `ip6` table in the same transaction (the last IPv6 network went); a host without IPv6
/// networks never sees an `ip6` table, so a kernel without IPv6 is no obstacle.
pub fn ruleset<'a>(
    name: &'a str,
    nets: &'a [NetRule],
    ports: &'a [Forward],
    drop6: bool,
) -> Nftables<'a> {
    let mut b = Batch::new();
    table(&mut b, NfFamily::IP, name, nets, ports);
    if wants6(nets) {
        table(&mut b, NfFamily::IP6, name, nets, ports);
    } else if drop6 {
        let t = Table {
            family: NfFamily::IP6,
            name: Cow::Borrowed(name),
            handle: None,
        };
        b.add(NfListObject::Table(t.clone()));
        b.delete(NfListObject::Table(t));
    }
    b.to_nftables()
}

/// Whether these networks need the `ip6` table.
pub fn wants6(nets: &[NetRule]) -> bool {
    nets.iter().any(|n| !n.subnets6.is_empty())
}

/// The table of one family: the same chains for both, each with its own addresses.
fn table<'a>(
    b: &mut Batch<'a>,
    family: NfFamily,
    name: &'a str,
    nets: &'a [NetRule],
    ports: &'a [Forward],
) {
    let v6 = family == NfFamily::IP6;
    let (l3, t) = (if v6 { "ip6" } else { "ip" }, Cow::Borrowed(name));
    b.add(NfListObject::Table(Table {
        family,
        name: t.clone(),
        handle: None,
    }));
    b.add_cmd(nftables::schema::NfCmd::Flush(
        nftables::schema::FlushObject::Table(Table {
            family,
            name: t.clone(),
            handle: None,
        }),
    ));
    let chain = |n: &'a str, hook: Option<(NfChainType, NfHook, i32)>| {
        NfListObject::Chain(Chain {
            family,
            table: t.clone(),
            name: Cow::Borrowed(n),
            _type: hook.map(|h| h.0),
            hook: hook.map(|h| h.1),
            prio: hook.map(|h| h.2),
            policy: hook.map(|_| NfChainPolicy::Accept),
            ..Default::default()
        })
    };
    b.add(chain("ports", None));
    b.add(chain(
        "prerouting",
        Some((NfChainType::NAT, NfHook::Prerouting, -100)),
    ));
    b.add(chain(
        "output",
        Some((NfChainType::NAT, NfHook::Output, -100)),
    ));
    b.add(chain(
        "postrouting",
        Some((NfChainType::NAT, NfHook::Postrouting, 100)),
    ));
    b.add(chain(
        "forward",
        Some((NfChainType::Filter, NfHook::Forward, 0)),
    ));
    let rule = |c: &'a str, expr: Vec<Statement<'a>>| {
        NfListObject::Rule(Rule {
            family,
            table: t.clone(),
            chain: Cow::Borrowed(c),
            expr: Cow::Owned(expr),
            ..Default::default()
        })
    };
    let jump = || {
        Statement::Jump(nftables::stmt::JumpTarget {
            target: Cow::Borrowed("ports"),
        })
    };
    b.add(rule("prerouting", vec![local(FibFlag::Daddr), jump()]));
    if v6 {
        // Not [::1]: the kernel drops a loopback source routed out of the host (there is no
        // route_localnet for IPv6), so berth's relay on the held port takes those.
        b.add(rule(
            "output",
            vec![
                m(field("ip6", "daddr"), Operator::NEQ, s("::1")),
                local(FibFlag::Daddr),
                jump(),
            ],
        ));
    } else {
        b.add(rule("output", vec![local(FibFlag::Daddr), jump()]));
    }
    for p in ports.iter().filter(|p| p.ctr_ip.is_ipv6() == v6) {
        let mut e = Vec::new();
        if let Some(ip) = p.host_ip.filter(|ip| !ip.is_unspecified()) {
            e.push(m(field(l3, "daddr"), Operator::EQ, s(ip.to_string())));
        }
        e.push(m(
            field(&p.proto, "dport"),
            Operator::EQ,
            Expression::Number(p.host_port as u32),
        ));
        e.push(Statement::DNAT(Some(NAT {
            addr: Some(s(p.ctr_ip.to_string())),
            family: None,
            port: Some(Expression::Number(p.ctr_port as u32)),
            flags: None,
        })));
        b.add(rule("ports", e));
    }
    let mut isolation = Vec::new();
    for n in nets {
        let br = || s(n.bridge.clone());
        let subnets: Vec<Expression<'static>> = if v6 {
            n.subnets6
                .iter()
                .map(|c| prefix(c.network().to_string(), c.prefix))
                .collect()
        } else {
            n.subnets
                .iter()
                .map(|c| prefix(c.network().to_string(), c.prefix))
                .collect()
        };
        let nat = !(n.internal || (v6 && n.routed6));
        if nat {
            // Out to the world: the host's address.
            for sub in &subnets {
                b.add(rule(
                    "postrouting",
                    vec![
                        m(field(l3, "saddr"), Operator::EQ, sub.clone()),
                        m(meta(MetaKey::Oifname), Operator::NEQ, br()),
                        Statement::Masquerade(None),
                    ],
                ));
            }
        }
        // From the host itself (127.0.0.1 to a published port, after the DNAT) ...
        b.add(rule(
            "postrouting",
            vec![
                m(meta(MetaKey::Oifname), Operator::EQ, br()),
                local(FibFlag::Saddr),
                Statement::Masquerade(None),
            ],
        ));
        // ... and from a container to a published port of its own network (hairpin).
        for sub in &subnets {
            b.add(rule(
                "postrouting",
                vec![
                    m(meta(MetaKey::Oifname), Operator::EQ, br()),
                    m(field(l3, "saddr"), Operator::EQ, sub.clone()),
                    dnatted(),
                    Statement::Masquerade(None),
                ],
            ));
        }
        if n.internal {
            for (a, bdir) in [
                (MetaKey::Iifname, MetaKey::Oifname),
                (MetaKey::Oifname, MetaKey::Iifname),
            ] {
                b.add(rule(
                    "forward",
                    vec![
                        m(meta(a), Operator::EQ, br()),
                        m(meta(bdir), Operator::NEQ, br()),
                        Statement::Drop(None),
                    ],
                ));
            }
        }
        // Networks do not reach each other, as Docker isolates its bridges (added after
        // every network's internal drops and the published-port exception below).
        for other in nets.iter().filter(|o| o.bridge != n.bridge) {
            isolation.push(rule(
                "forward",
                vec![
                    m(meta(MetaKey::Iifname), Operator::EQ, br()),
                    m(
                        meta(MetaKey::Oifname),
                        Operator::EQ,
                        s(other.bridge.clone()),
                    ),
                    Statement::Drop(None),
                ],
            ));
        }
    }
    // A published port is for everyone who can reach the host, containers on other networks
    // too (as through Docker's userland proxy): connections to one cross the isolation.
    if !isolation.is_empty() {
        b.add(rule("forward", vec![dnatted(), Statement::Accept(None)]));
    }
    for r in isolation {
        b.add(r);
    }
}

/// Replaces the table with `set` (one `nft` transaction).
pub fn apply(set: &Nftables) -> Result<(), NetError> {
    nftables::helper::apply_ruleset(set).map_err(|e| NetError::Host(format!("nft: {e}")))
}

/// Removes the tables `name` of both families and everything in them (the `ip6` one in a
/// transaction of its own, so that a host without IPv6 still loses the `ip` one).
pub fn delete_table(name: &str) -> Result<(), NetError> {
    let r = delete_tables(name, &[NfFamily::IP]);
    let _ = delete_table6(name);
    r
}

/// Removes the `ip6` table `name`, if there is one (what a berth left that had IPv6
/// networks then).
pub fn delete_table6(name: &str) -> Result<(), NetError> {
    delete_tables(name, &[NfFamily::IP6])
}

fn delete_tables(name: &str, families: &[NfFamily]) -> Result<(), NetError> {
    let mut b = Batch::new();
    for family in families.iter() {
        let t = Table {
            family: *family,
            name: Cow::Borrowed(name),
            handle: None,
        };
        // Adding first makes the delete succeed whether or not the table exists.
        b.add(NfListObject::Table(t.clone()));
        b.delete(NfListObject::Table(t));
    }
    apply(&b.to_nftables())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn the_table_has_what_the_networks_and_ports_need() {
        let nets = vec![
            NetRule {
                bridge: "berth0".into(),
                subnets: vec!["172.18.0.0/16".parse().unwrap()],
                subnets6: vec![],
                internal: false,
                routed6: false,
            },
            NetRule {
                bridge: "berth-abc".into(),
                subnets: vec!["172.19.0.0/16".parse().unwrap()],
                subnets6: vec![],
                internal: true,
                routed6: false,
            },
        ];
        let ports = vec![Forward {
            proto: "tcp".into(),
            host_ip: Some(Ipv4Addr::new(127, 0, 0, 1).into()),
            host_port: 8080,
            ctr_ip: Ipv4Addr::new(172, 18, 0, 2).into(),
            ctr_port: 80,
        }];
        let json = serde_json::to_value(ruleset("berth", &nets, &ports, false)).unwrap();
        let text = json.to_string();
        let rules: Vec<&serde_json::Value> = json["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|o| o["add"]["rule"].as_object().map(|_| &o["add"]["rule"]))
            .collect();
        let in_chain = |c: &str| rules.iter().filter(|r| r["chain"] == c).count();
        assert_eq!(in_chain("ports"), 1);
        // Only the outward network masquerades to the world; both get host and hairpin NAT.
        assert_eq!(in_chain("postrouting"), 5);
        // Internal: two drops; the published-port exception; isolation: one per ordered pair.
        assert_eq!(in_chain("forward"), 5);
        let fwd: Vec<&&serde_json::Value> =
            rules.iter().filter(|r| r["chain"] == "forward").collect();
        assert!(fwd[2].to_string().contains("accept"), "{:?}", fwd[2]);
        assert!(
            text.contains(r#""dnat":{"addr":"172.18.0.2","port":80}"#),
            "{text}"
        );
        assert!(text.contains(r#""flush":{"table""#), "{text}");
        assert!(!text.contains("ip6"), "IPv4 only");
    }

    fn rules_of(set: &Nftables, family: &str) -> Vec<serde_json::Value> {
        let json = serde_json::to_value(set).unwrap();
        json["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|o| {
                o["add"]["rule"]
                    .as_object()
                    .map(|_| o["add"]["rule"].clone())
            })
            .filter(|r| r["family"] == family)
            .collect()
    }

    #[test]
    fn an_ipv6_network_gets_the_ip6_table_in_the_same_batch() {
        let nets = vec![
            NetRule {
                bridge: "b-dual".into(),
                subnets: vec![
                    "10.9.0.0/24".parse().unwrap(),
                    "10.10.0.0/24".parse().unwrap(),
                ],
                subnets6: vec!["fd00:9::/64".parse().unwrap()],
                internal: false,
                routed6: false,
            },
            NetRule {
                bridge: "b-routed".into(),
                subnets: vec!["10.11.0.0/24".parse().unwrap()],
                subnets6: vec!["fd00:b::/64".parse().unwrap()],
                internal: false,
                routed6: true,
            },
        ];
        let ports = vec![
            Forward {
                proto: "tcp".into(),
                host_ip: None,
                host_port: 8080,
                ctr_ip: Ipv4Addr::new(10, 9, 0, 2).into(),
                ctr_port: 80,
            },
            Forward {
                proto: "tcp".into(),
                host_ip: Some(std::net::Ipv6Addr::UNSPECIFIED.into()),
                host_port: 8080,
                ctr_ip: "fd00:9::2".parse::<std::net::Ipv6Addr>().unwrap().into(),
                ctr_port: 80,
            },
        ];
        let set = ruleset("berth", &nets, &ports, false);
        let (v4, v6) = (rules_of(&set, "ip"), rules_of(&set, "ip6"));
        let text = |r: &[serde_json::Value], chain: &str| -> Vec<String> {
            r.iter()
                .filter(|x| x["chain"] == chain)
                .map(|x| x.to_string())
                .collect()
        };
        // Each family forwards its own ports: IPv6 to the container's IPv6 address, with no
        // address match for [::].
        assert_eq!(text(&v4, "ports").len(), 1);
        let p6 = text(&v6, "ports");
        assert_eq!(p6.len(), 1);
        assert!(
            p6[0].contains(r#""dnat":{"addr":"fd00:9::2","port":80}"#),
            "{p6:?}"
        );
        assert!(!p6[0].contains("daddr"), "{p6:?}");
        // Loopback is left to the relay.
        let out6 = text(&v6, "output");
        assert!(out6[0].contains(r#""right":"::1""#), "{out6:?}");
        // Two IPv4 subnets: masquerade and hairpin for each; NAT66 only for the nat network.
        let post4 = text(&v4, "postrouting");
        assert_eq!(post4.iter().filter(|r| r.contains("10.10.0.0")).count(), 2);
        let post6 = text(&v6, "postrouting");
        let masq6: Vec<&String> = post6
            .iter()
            .filter(|r| r.contains(r#""op":"!=""#))
            .collect();
        assert_eq!(masq6.len(), 1, "{post6:?}");
        assert!(masq6[0].contains("fd00:9::"), "{masq6:?}");
        // Isolation for IPv6 as for IPv4.
        assert_eq!(text(&v6, "forward").len(), text(&v4, "forward").len());
        // Without IPv6 networks the ip6 table is deleted in the same batch when asked.
        let v4only = &nets[..0];
        let gone = serde_json::to_value(ruleset("berth", v4only, &[], true))
            .unwrap()
            .to_string();
        assert!(
            gone.contains(r#""delete":{"table":{"family":"ip6""#),
            "{gone}"
        );
        let none = serde_json::to_value(ruleset("berth", v4only, &[], false))
            .unwrap()
            .to_string();
        assert!(!none.contains("ip6"), "{none}");
    }
}
