//! berth's own nftables table: outbound NAT for its networks, published ports, and what
//! `--internal` and network isolation forbid. Nothing outside this table is touched.
//!
//! The whole table is rendered from the networks and published ports and replaced in one
//! `nft` transaction (`add table`, `flush table`, the chains and rules), so the kernel never
//! holds half of a change and a restart simply renders it again.

use std::borrow::Cow;
use std::collections::HashSet;
use std::net::Ipv4Addr;

use nftables::batch::Batch;
use nftables::expr::{
    Expression, Fib, FibFlag, FibResult, Meta, MetaKey, NamedExpression, Payload, PayloadField,
    Prefix, CT,
};
use nftables::schema::{Chain, NfListObject, Nftables, Rule, Table};
use nftables::stmt::{Match, Operator, Statement, NAT};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};

use crate::ipam::Cidr;
use crate::NetError;

/// One berth network, as the firewall sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetRule {
    /// Its Linux bridge.
    pub bridge: String,
    /// Its subnet.
    pub subnet: Cidr,
    /// `--internal`: no traffic in or out of the bridge but to the host.
    pub internal: bool,
}

/// A published port: traffic to `host_ip:host_port` (any local address when `host_ip` is
/// unset) goes to `ctr_ip:ctr_port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    /// `tcp`, `udp` or `sctp`.
    pub proto: String,
    /// The host address it is bound to (`-p 127.0.0.1:8080:80`), or any.
    pub host_ip: Option<Ipv4Addr>,
    /// The host port.
    pub host_port: u16,
    /// The container's address.
    pub ctr_ip: Ipv4Addr,
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

fn prefix(c: &Cidr) -> Expression<'static> {
    Expression::Named(NamedExpression::Prefix(Prefix {
        addr: Box::new(Expression::String(Cow::Owned(c.network().to_string()))),
        len: c.prefix as u32,
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

/// Renders the table `name` for these networks and forwards.
pub fn ruleset<'a>(name: &'a str, nets: &'a [NetRule], ports: &'a [Forward]) -> Nftables<'a> {
    let t = Cow::Borrowed(name);
    let mut b = Batch::new();
    b.add(NfListObject::Table(Table {
        family: NfFamily::IP,
        name: t.clone(),
        handle: None,
    }));
    b.add_cmd(nftables::schema::NfCmd::Flush(
        nftables::schema::FlushObject::Table(Table {
            family: NfFamily::IP,
            name: t.clone(),
            handle: None,
        }),
    ));
    let chain = |n: &'a str, hook: Option<(NfChainType, NfHook, i32)>| {
        NfListObject::Chain(Chain {
            family: NfFamily::IP,
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
            family: NfFamily::IP,
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
    b.add(rule("output", vec![local(FibFlag::Daddr), jump()]));
    for p in ports {
        let mut e = Vec::new();
        if let Some(ip) = p.host_ip {
            e.push(m(field("ip", "daddr"), Operator::EQ, s(ip.to_string())));
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
        if !n.internal {
            // Out to the world: the host's address.
            b.add(rule(
                "postrouting",
                vec![
                    m(field("ip", "saddr"), Operator::EQ, prefix(&n.subnet)),
                    m(meta(MetaKey::Oifname), Operator::NEQ, br()),
                    Statement::Masquerade(None),
                ],
            ));
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
        b.add(rule(
            "postrouting",
            vec![
                m(meta(MetaKey::Oifname), Operator::EQ, br()),
                m(field("ip", "saddr"), Operator::EQ, prefix(&n.subnet)),
                dnatted(),
                Statement::Masquerade(None),
            ],
        ));
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
    b.to_nftables()
}

/// Replaces the table with `set` (one `nft` transaction).
pub fn apply(set: &Nftables) -> Result<(), NetError> {
    nftables::helper::apply_ruleset(set).map_err(|e| NetError::Host(format!("nft: {e}")))
}

/// Removes the table `name` and everything in it.
pub fn delete_table(name: &str) -> Result<(), NetError> {
    let mut b = Batch::new();
    let t = Table {
        family: NfFamily::IP,
        name: Cow::Borrowed(name),
        handle: None,
    };
    // Adding first makes the delete succeed whether or not the table exists.
    b.add(NfListObject::Table(t.clone()));
    b.delete(NfListObject::Table(t));
    apply(&b.to_nftables())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_what_the_networks_and_ports_need() {
        let nets = vec![
            NetRule {
                bridge: "berth0".into(),
                subnet: "172.18.0.0/16".parse().unwrap(),
                internal: false,
            },
            NetRule {
                bridge: "berth-abc".into(),
                subnet: "172.19.0.0/16".parse().unwrap(),
                internal: true,
            },
        ];
        let ports = vec![Forward {
            proto: "tcp".into(),
            host_ip: Some(Ipv4Addr::new(127, 0, 0, 1)),
            host_port: 8080,
            ctr_ip: Ipv4Addr::new(172, 18, 0, 2),
            ctr_port: 80,
        }];
        let json = serde_json::to_value(ruleset("berth", &nets, &ports)).unwrap();
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
}
