//! The filters of `GET /networks` and `POST /networks/prune`, as moby's
//! `daemon/network/filter.go` and `daemon/prune.go` apply them.

use berth_network::Network;

use super::{invalid, rfc3339_nanos, Args};
use crate::Result;

/// The keys `GET /networks` accepts.
pub const LIST_KEYS: &[&str] = &["dangling", "driver", "id", "label", "name", "scope", "type"];

/// The keys `POST /networks/prune` accepts.
pub const PRUNE_KEYS: &[&str] = &["label", "label!", "until"];

/// Which networks a list shows or a prune removes.
#[derive(Debug)]
pub struct NetworkFilter {
    args: Args,
    /// `Some(true)`: only user-defined networks with no container attached; `Some(false)`:
    /// only predefined or used ones.
    dangling: Option<bool>,
    until: Option<i64>,
}

impl NetworkFilter {
    /// `GET /networks`: `dangling`, `driver`, `id` and `name` (moby's match: equal, or an
    /// expression found in it), `label` (all of them), `scope` (`local`), `type`
    /// (`builtin`, `custom`).
    pub fn list(args: Args) -> Result<Self> {
        args.validate(LIST_KEYS)?;
        let dangling: Vec<&str> = args.get("dangling").collect();
        let dangling = match dangling.as_slice() {
            [] => None,
            ["1" | "true"] => Some(true),
            ["0" | "false"] => Some(false),
            [_] => {
                return Err(invalid(
                    r#"invalid value for filter 'dangling', must be "true" (or "1"), or "false" (or "0")"#,
                ))
            }
            _ => {
                return Err(invalid(
                    r#"got more than one value for filter key "dangling""#,
                ))
            }
        };
        for t in args.get("type") {
            if !matches!(t, "builtin" | "custom") {
                return Err(invalid(format!("invalid filter: 'type'='{t}'")));
            }
        }
        Ok(NetworkFilter {
            args,
            dangling,
            until: None,
        })
    }

    /// `POST /networks/prune`: user-defined networks no container is attached to, made no
    /// later than `until`, with the labels `label` and `label!` ask for.
    pub fn prune(args: Args) -> Result<Self> {
        args.validate(PRUNE_KEYS)?;
        let until = args.until()?;
        Ok(NetworkFilter {
            args,
            dangling: Some(true),
            until,
        })
    }

    /// Whether network `n` passes.
    pub fn matches(&self, n: &Network) -> bool {
        let a = &self.args;
        if !a.exact_match("driver", &n.driver) || !a.matches("name", &n.name) {
            return false;
        }
        if !a.matches("id", &n.id) || !a.match_labels(&n.labels) {
            return false;
        }
        if !a.exact_match("scope", "local") {
            return false;
        }
        if let Some(dangling) = self.dangling {
            let unused = n.user_defined() && n.endpoints.is_empty();
            if unused != dangling {
                return false;
            }
        }
        if a.contains("type") {
            let kind = if n.predefined() { "builtin" } else { "custom" };
            if !a.get("type").any(|t| t == kind) {
                return false;
            }
        }
        self.until.is_none_or(|u| rfc3339_nanos(&n.created) <= u)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(name: &str, labels: &[(&str, &str)], used: bool) -> Network {
        let mut n: Network = serde_json::from_value(serde_json::json!({
            "id": format!("{name}0123"), "name": name,
            "driver": if name == "host" { "host" } else { "bridge" },
            "created": "2024-01-01T00:00:00Z", "internal": false,
            "bridge": null, "pool": null, "mtu": null,
        }))
        .unwrap();
        n.labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if used {
            let e = serde_json::json!({"id": "e", "container": "c", "name": "c", "mac": "",
                "ip": "10.0.0.2", "prefix": 24, "gateway": "10.0.0.1", "aliases": [],
                "host_iface": "v", "iface": "eth0"});
            n.endpoints
                .insert("c".into(), serde_json::from_value(e).unwrap());
        }
        n
    }

    fn names(filters: &str) -> Vec<String> {
        let f = NetworkFilter::list(Args::from_json(filters).unwrap()).unwrap();
        [
            net("bridge", &[], false),
            net("host", &[], false),
            net("front", &[("a", "1"), ("b", "")], false),
            net("back", &[("a", "2")], false),
        ]
        .into_iter()
        .filter(|n| f.matches(n))
        .map(|n| n.name)
        .collect()
    }

    #[test]
    fn list_filters() {
        assert_eq!(names(r#"{"label":["a","b"]}"#), ["front"]);
        assert_eq!(names(r#"{"label":["a"]}"#), ["front", "back"]);
        assert_eq!(names(r#"{"type":["builtin"]}"#), ["bridge", "host"]);
        assert_eq!(names(r#"{"type":["custom"]}"#), ["front", "back"]);
        assert_eq!(names(r#"{"dangling":["true"]}"#), ["front", "back"]);
        assert_eq!(names(r#"{"dangling":["0"]}"#), ["bridge", "host"]);
        let f = NetworkFilter::list(Args::from_json(r#"{"dangling":["false"]}"#).unwrap());
        assert!(f.unwrap().matches(&net("taken", &[], true)));
        assert_eq!(names(r#"{"driver":["host"]}"#), ["host"]);
        assert_eq!(names(r#"{"name":["^b"]}"#), ["bridge", "back"]);
        assert_eq!(names(r#"{"id":["front0"]}"#), ["front"]);
        assert_eq!(names(r#"{"scope":["local"]}"#).len(), 4);
        assert!(names(r#"{"scope":["swarm"]}"#).is_empty());
        for bad in [
            r#"{"bogus":["1"]}"#,
            r#"{"type":["x"]}"#,
            r#"{"dangling":["x"]}"#,
            r#"{"dangling":["0","1"]}"#,
            r#"{"until":["1h"]}"#,
        ] {
            assert!(
                NetworkFilter::list(Args::from_json(bad).unwrap()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn prune_takes_unused_user_networks() {
        let p = |s: &str| NetworkFilter::prune(Args::from_json(s).unwrap()).unwrap();
        assert!(!p("{}").matches(&net("bridge", &[], false)));
        assert!(p("{}").matches(&net("spare", &[], false)));
        assert!(!p("{}").matches(&net("taken", &[], true)));
        assert!(!p(r#"{"label!":["a"]}"#).matches(&net("x", &[("a", "")], false)));
        assert!(!p(r#"{"until":["2023-01-01T00:00:00Z"]}"#).matches(&net("y", &[], false)));
        assert!(NetworkFilter::prune(Args::from_json(r#"{"name":["x"]}"#).unwrap()).is_err());
    }
}
