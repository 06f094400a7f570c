//! The filters of `GET /volumes` and `POST /volumes/prune`, as moby's
//! `volume/service` applies them.

use super::{invalid, Args};
use crate::volumes::VolumeRecord;
use crate::Result;

/// The keys `GET /volumes` accepts.
pub const LIST_KEYS: &[&str] = &["dangling", "driver", "label", "name"];

/// The keys `POST /volumes/prune` accepts.
pub const PRUNE_KEYS: &[&str] = &["all", "label", "label!"];

/// Which volumes a list shows or a prune removes.
#[derive(Debug)]
pub struct VolumeFilter {
    args: Args,
    /// `Some(true)`: only volumes no container uses; `Some(false)`: only used ones.
    unused: Option<bool>,
    /// Only anonymous volumes (a prune without `all=true`).
    anonymous_only: bool,
}

impl VolumeFilter {
    /// `GET /volumes`: `dangling` (unused), `driver`, `label` (all of them), `name` (moby's
    /// match: the name or an expression found in it).
    pub fn list(args: Args) -> Result<Self> {
        args.validate(LIST_KEYS)?;
        let unused = match args.contains("dangling") {
            true => Some(args.get_bool_or_default("dangling", false)?),
            false => None,
        };
        Ok(VolumeFilter {
            args,
            unused,
            anonymous_only: false,
        })
    }

    /// `POST /volumes/prune`: unused anonymous volumes, or every unused one with
    /// `all=true`; `label` and `label!` narrow them.
    pub fn prune(args: Args) -> Result<Self> {
        args.validate(PRUNE_KEYS)?;
        let all: Vec<&str> = args.get("all").collect();
        let all = match all.as_slice() {
            [] => false,
            [one] => go_bool(one).ok_or_else(|| {
                invalid(format!(
                    "invalid filter 'all': strconv.ParseBool: parsing {one:?}: invalid syntax"
                ))
            })?,
            more => {
                return Err(invalid(format!(
                    "invalid filter 'all=[{}]': only one value is expected",
                    more.join(" ")
                )))
            }
        };
        Ok(VolumeFilter {
            args,
            unused: Some(true),
            anonymous_only: !all,
        })
    }

    /// Whether volume `v` passes; `in_use` says whether a container uses it (asked only
    /// when that matters).
    pub fn matches(&self, v: &VolumeRecord, in_use: impl FnOnce() -> bool) -> bool {
        let a = &self.args;
        if !a.exact_match("driver", &v.driver) || !a.matches("name", &v.name) {
            return false;
        }
        if !a.match_labels(&v.labels) || (self.anonymous_only && !v.anonymous) {
            return false;
        }
        self.unused.is_none_or(|unused| unused != in_use())
    }
}

/// Go's `strconv.ParseBool`.
fn go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vol(name: &str, anonymous: bool, labels: &[(&str, &str)]) -> VolumeRecord {
        VolumeRecord {
            name: name.into(),
            driver: "local".into(),
            mountpoint: "/x".into(),
            created_at: String::new(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            anonymous,
        }
    }

    #[test]
    fn list_filters() {
        let f = |s: &str| VolumeFilter::list(Args::from_json(s).unwrap());
        let v = vol("data-1", false, &[("a", "1"), ("b", "2")]);
        assert!(f(r#"{"name":["data"]}"#).unwrap().matches(&v, || false));
        assert!(!f(r#"{"name":["^1"]}"#).unwrap().matches(&v, || false));
        assert!(f(r#"{"label":["a","b=2"]}"#).unwrap().matches(&v, || false));
        assert!(!f(r#"{"label":["a","c"]}"#).unwrap().matches(&v, || false));
        assert!(!f(r#"{"driver":["nfs"]}"#).unwrap().matches(&v, || false));
        assert!(f(r#"{"dangling":["true"]}"#).unwrap().matches(&v, || false));
        assert!(!f(r#"{"dangling":["1"]}"#).unwrap().matches(&v, || true));
        assert!(f(r#"{"dangling":["false"]}"#).unwrap().matches(&v, || true));
        assert!(f(r#"{"bogus":["1"]}"#).is_err());
        assert!(f(r#"{"all":["1"]}"#).is_err(), "a prune key");
        assert!(f(r#"{"dangling":["x"]}"#).is_err());
    }

    #[test]
    fn prune_takes_unused_anonymous_volumes_unless_all() {
        let p = |s: &str| VolumeFilter::prune(Args::from_json(s).unwrap());
        let named = vol("named", false, &[("keep", "")]);
        let anon = vol("0123", true, &[]);
        assert!(!p("{}").unwrap().matches(&named, || false));
        assert!(p("{}").unwrap().matches(&anon, || false));
        assert!(!p("{}").unwrap().matches(&anon, || true));
        assert!(p(r#"{"all":["true"]}"#).unwrap().matches(&named, || false));
        assert!(!p(r#"{"all":["1"],"label!":["keep"]}"#)
            .unwrap()
            .matches(&named, || false));
        assert!(p(r#"{"all":["x"]}"#).is_err());
        assert!(p(r#"{"all":["0","1"]}"#).is_err());
        assert!(p(r#"{"dangling":["true"]}"#).is_err());
    }
}
