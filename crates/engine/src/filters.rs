//! Docker's `filters` query parameter, one implementation for every list, prune and the
//! event stream: [`Args`] is moby's `api/types/filters.Args`, and the submodules say which
//! keys each kind of object accepts and what they match, as dockerd does.
//!
//! Docker's rules, kept here: the values of one key are ORed and different keys ANDed,
//! except `label`, whose values must all hold; an unknown key is refused
//! (`invalid filter 'k'`) rather than ignored, so a mistyped key never widens a `prune`, or
//! a `docker rm $(docker ps -aq --filter …)`, to everything. Pure logic: the callers hand in
//! what they know of the objects (a container's port summary, an image's creation time).

mod containers;
mod events;
mod images;
mod networks;
mod timestamp;
mod volumes;

use std::collections::{BTreeMap, BTreeSet, HashMap};

pub use containers::{ContainerList, ContainerPrune};
pub use events::EventFilter;
pub use images::{ImageList, ImagePrune};
pub use networks::NetworkFilter;
pub use timestamp::parse as parse_timestamp;
pub use volumes::VolumeFilter;

use crate::{EngineError, Result};

/// The `filters` of one request: each key with its set of values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Args {
    fields: BTreeMap<String, BTreeSet<String>>,
}

/// A 400 with `msg`.
fn invalid(msg: impl Into<String>) -> EngineError {
    EngineError::InvalidParameter(msg.into())
}

/// moby's `invalidFilter` text: `invalid filter 'k'`, or with the values,
/// `invalid filter 'k=[a b]'` (Go prints a slice so).
fn invalid_filter(key: &str, values: Option<&BTreeSet<String>>) -> EngineError {
    match values {
        None => invalid(format!("invalid filter '{key}'")),
        Some(v) => {
            let v: Vec<&str> = v.iter().map(String::as_str).collect();
            invalid(format!("invalid filter '{key}=[{}]'", v.join(" ")))
        }
    }
}

/// What a `label` filter reads labels from (containers, images and volumes keep theirs in
/// hash maps, networks in a sorted one, events in their attributes).
pub trait Labels {
    /// The value of label `key`, if it is set.
    fn label(&self, key: &str) -> Option<&str>;
}

impl<S: std::hash::BuildHasher> Labels for HashMap<String, String, S> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

impl Labels for BTreeMap<String, String> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

impl<L: Labels> Labels for Option<L> {
    fn label(&self, key: &str) -> Option<&str> {
        self.as_ref()?.label(key)
    }
}

impl<L: Labels + ?Sized> Labels for &L {
    fn label(&self, key: &str) -> Option<&str> {
        (**self).label(key)
    }
}

impl Args {
    /// Parses the `filters` parameter: `{"k":{"v":true}}`, or the form of API versions
    /// before 1.22, `{"k":["v"]}`; empty means no filters. Anything else is Docker's 400
    /// `invalid filter`. A value set to `false` in the first form is no value, as in
    /// moby (which never matches it).
    pub fn from_json(s: &str) -> Result<Args> {
        use serde_json::Value;
        let mut args = Args::default();
        if s.is_empty() {
            return Ok(args);
        }
        let bad = || invalid("invalid filter");
        let Ok(Value::Object(o)) = serde_json::from_str::<Value>(s) else {
            return Err(bad());
        };
        for (key, values) in o {
            let set = args.fields.entry(key).or_default();
            match values {
                Value::Null => {}
                Value::Object(m) => {
                    for (v, on) in m {
                        match on {
                            Value::Bool(true) => {
                                set.insert(v);
                            }
                            Value::Bool(false) | Value::Null => {}
                            _ => return Err(bad()),
                        }
                    }
                }
                Value::Array(a) => {
                    for v in a {
                        match v {
                            Value::String(v) => {
                                set.insert(v);
                            }
                            Value::Null => {}
                            _ => return Err(bad()),
                        }
                    }
                }
                _ => return Err(bad()),
            }
        }
        Ok(args)
    }

    /// Adds `value` to `key`.
    pub fn add(&mut self, key: &str, value: &str) {
        self.fields
            .entry(key.to_string())
            .or_default()
            .insert(value.to_string());
    }

    /// How many keys there are.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// No filters at all.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Whether `key` was given (even with no values).
    pub fn contains(&self, key: &str) -> bool {
        self.fields.contains_key(key)
    }

    /// The values of `key`, sorted; none when it was not given.
    pub fn get(&self, key: &str) -> impl Iterator<Item = &str> + '_ {
        self.fields
            .get(key)
            .into_iter()
            .flatten()
            .map(String::as_str)
    }

    fn values(&self, key: &str) -> Option<&BTreeSet<String>> {
        self.fields.get(key).filter(|v| !v.is_empty())
    }

    /// Refuses a key not in `accepted`: 400 `invalid filter 'k'` (the first, in sorted order).
    pub fn validate(&self, accepted: &[&str]) -> Result<()> {
        match self.fields.keys().find(|k| !accepted.contains(&k.as_str())) {
            Some(k) => Err(invalid_filter(k, None)),
            None => Ok(()),
        }
    }

    /// `source` is one of the values of `key`; true when `key` has none.
    pub fn exact_match(&self, key: &str, source: &str) -> bool {
        self.values(key).is_none_or(|v| v.contains(source))
    }

    /// `key` has exactly one value, and it is `source`; true when `key` has none.
    pub fn unique_exact_match(&self, key: &str, source: &str) -> bool {
        self.values(key)
            .is_none_or(|v| v.len() == 1 && v.contains(source))
    }

    /// moby's `Match`: `source` is a value of `key`, or a value read as a regular expression
    /// (unanchored) matches somewhere in it. A value that is no valid expression only
    /// matches exactly. True when `key` has none.
    pub fn matches(&self, key: &str, source: &str) -> bool {
        let Some(values) = self.values(key) else {
            return true;
        };
        values.contains(source)
            || values.iter().any(|v| {
                regex::RegexBuilder::new(v)
                    .size_limit(1 << 20)
                    .build()
                    .is_ok_and(|re| re.is_match(source))
            })
    }

    /// `source` is a value of `key` or starts with one; true when `key` has none.
    pub fn fuzzy_match(&self, key: &str, source: &str) -> bool {
        self.values(key)
            .is_none_or(|v| v.iter().any(|p| source.starts_with(p.as_str())))
    }

    /// Every value of `key` holds of `labels`: `k` (the label is set) or `k=v` (set to
    /// `v`). True when `key` has none.
    pub fn match_kv_list(&self, key: &str, labels: &impl Labels) -> bool {
        self.values(key).is_none_or(|v| {
            v.iter().all(|f| match f.split_once('=') {
                Some((k, want)) => labels.label(k) == Some(want),
                None => labels.label(f).is_some(),
            })
        })
    }

    /// The prunes' label test (moby's `matchLabels`): every `label` holds, and not all of
    /// the `label!` ones do (`label!=k`, `label!=k=v`, as Docker documents for prune).
    pub fn match_labels(&self, labels: &impl Labels) -> bool {
        self.match_kv_list("label", labels)
            && !(self.values("label!").is_some() && self.match_kv_list("label!", labels))
    }

    /// A boolean filter: `default` when `key` is absent; `true`/`1` or `false`/`0`; anything
    /// else, or both, is Docker's `invalid filter 'k=[v]'`.
    pub fn get_bool_or_default(&self, key: &str, default: bool) -> Result<bool> {
        let Some(values) = self.fields.get(key) else {
            return Ok(default);
        };
        if values.is_empty() {
            return Err(invalid_filter(key, None));
        }
        let falsy = values.contains("0") || values.contains("false");
        let truthy = values.contains("1") || values.contains("true");
        if falsy == truthy {
            return Err(invalid_filter(key, Some(values)));
        }
        Ok(truthy)
    }

    /// The prunes' `until` (moby's `getUntilFromPruneFilters`): one value, a Go duration
    /// back from now, a date or time, or unix seconds; in nanoseconds since the epoch.
    pub fn until(&self) -> Result<Option<i64>> {
        let Some(values) = self.fields.get("until") else {
            return Ok(None);
        };
        let mut it = values.iter();
        match (it.next(), it.next()) {
            (Some(v), None) => parse_timestamp(v, chrono::Local::now()).map(Some),
            (Some(_), Some(_)) => Err(invalid("more than one until filter specified")),
            (None, _) => Err(invalid_filter("until", None)),
        }
    }
}

/// RFC 3339 to nanoseconds since the epoch (0 when it does not parse).
fn rfc3339_nanos(t: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(t)
        .ok()
        .and_then(|t| t.timestamp_nanos_opt())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn args(s: &str) -> Args {
        Args::from_json(s).expect("parses")
    }

    fn message(e: EngineError) -> String {
        match e {
            EngineError::InvalidParameter(m) => m,
            other => panic!("not a 400: {other:?}"),
        }
    }

    #[test]
    fn both_forms_parse_and_junk_is_refused() {
        let a = args(r#"{"status":{"exited":true,"dead":false},"name":{"web":true}}"#);
        assert_eq!(a.get("status").collect::<Vec<_>>(), ["exited"]);
        assert_eq!(a.get("name").collect::<Vec<_>>(), ["web"]);
        let legacy = args(r#"{"label":["a","b","a"]}"#);
        assert_eq!(legacy.get("label").collect::<Vec<_>>(), ["a", "b"]);
        assert!(args("").is_empty() && args("{}").is_empty());
        assert!(args(r#"{"k":null}"#).contains("k"));
        for bad in [
            "{bad",
            "[]",
            "3",
            r#"{"k":"v"}"#,
            r#"{"k":[1]}"#,
            r#"{"k":{"v":1}}"#,
        ] {
            assert_eq!(message(Args::from_json(bad).unwrap_err()), "invalid filter");
        }
    }

    #[test]
    fn unknown_keys_are_refused_with_dockers_text() {
        let a = args(r#"{"name":["x"],"bogus":["1"]}"#);
        assert_eq!(
            message(a.validate(&["name"]).unwrap_err()),
            "invalid filter 'bogus'"
        );
        assert!(a.validate(&["name", "bogus"]).is_ok());
    }

    #[test]
    fn matchers_follow_moby() {
        let a = args(r#"{"name":["^/?web-[0-9]+$","db"],"id":["abc"]}"#);
        assert!(a.matches("name", "/web-12") && a.matches("name", "mydb1"));
        assert!(!a.matches("name", "web-x"));
        assert!(a.matches("other", "anything"), "no values: no filter");
        // An invalid expression still matches itself.
        assert!(args(r#"{"n":["a(b"]}"#).matches("n", "a(b"));
        assert!(!args(r#"{"n":["a(b"]}"#).matches("n", "xa(bx"));
        assert!(a.fuzzy_match("id", "abcdef") && !a.fuzzy_match("id", "xabc"));
        assert!(a.exact_match("id", "abc") && !a.exact_match("id", "abcd"));
        assert!(a.unique_exact_match("id", "abc"));
        assert!(!a.unique_exact_match("name", "db"), "two values");
    }

    #[test]
    fn every_label_filter_must_hold() {
        let labels: HashMap<String, String> = [("a", "1"), ("b", "2")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into();
        assert!(args(r#"{"label":["a","b=2"]}"#).match_kv_list("label", &labels));
        assert!(!args(r#"{"label":["a","c"]}"#).match_kv_list("label", &labels));
        assert!(!args(r#"{"label":["a=2"]}"#).match_kv_list("label", &labels));
        assert!(!args(r#"{"label":["a=1=x"]}"#).match_kv_list("label", &labels));
        let none: Option<&HashMap<String, String>> = None;
        assert!(!args(r#"{"label":["a"]}"#).match_kv_list("label", &none));
        assert!(args("{}").match_kv_list("label", &none));
        // label! (prune): excluded when all of them hold.
        assert!(!args(r#"{"label!":["a"]}"#).match_labels(&labels));
        assert!(args(r#"{"label!":["a","c"]}"#).match_labels(&labels));
        assert!(args(r#"{"label":["b"],"label!":["a=9"]}"#).match_labels(&labels));
    }

    #[test]
    fn booleans_and_until() {
        assert!(args(r#"{"d":["true"]}"#)
            .get_bool_or_default("d", false)
            .unwrap());
        assert!(!args(r#"{"d":["0"]}"#)
            .get_bool_or_default("d", true)
            .unwrap());
        assert!(args("{}").get_bool_or_default("d", true).unwrap());
        assert_eq!(
            message(
                args(r#"{"d":["x"]}"#)
                    .get_bool_or_default("d", true)
                    .unwrap_err()
            ),
            "invalid filter 'd=[x]'"
        );
        assert_eq!(
            message(
                args(r#"{"d":["1","0"]}"#)
                    .get_bool_or_default("d", true)
                    .unwrap_err()
            ),
            "invalid filter 'd=[0 1]'"
        );
        assert_eq!(
            args(r#"{"until":["10.5"]}"#).until().unwrap(),
            Some(10_500_000_000)
        );
        assert_eq!(args("{}").until().unwrap(), None);
        assert_eq!(
            message(args(r#"{"until":["1","2"]}"#).until().unwrap_err()),
            "more than one until filter specified"
        );
        assert!(args(r#"{"until":["soon"]}"#).until().is_err());
    }

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        use serde_json::Value;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            ".{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
                prop::collection::btree_map(".{0,6}", inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn parsing_anything_never_panics(s in ".{0,64}", v in json_value()) {
            let _ = Args::from_json(&s);
            if let Ok(a) = Args::from_json(&v.to_string()) {
                // Whatever parsed answers every question without panicking.
                let _ = a.validate(&["label"]);
                let _ = a.get_bool_or_default("label", false);
                let _ = a.until();
                for k in a.fields.keys() {
                    let _ = a.matches(k, "x");
                }
            }
        }

        #[test]
        fn label_filters_are_anded(
            labels in prop::collection::hash_map("[a-c]", "[0-2]", 0..3),
            filters in prop::collection::vec("[a-c](=[0-2])?", 1..4),
        ) {
            let mut a = Args::default();
            for f in &filters {
                a.add("label", f);
            }
            let each = filters.iter().all(|f| {
                let mut one = Args::default();
                one.add("label", f);
                one.match_kv_list("label", &labels)
            });
            prop_assert_eq!(a.match_kv_list("label", &labels), each);
        }
    }
}
