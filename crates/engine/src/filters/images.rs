//! The filters of `GET /images/json` and `POST /images/prune`, as moby's
//! `daemon/images/image_list.go` and `image_prune.go` apply them.

use bollard_stubs::models::ImageSummary;

use super::{invalid, parse_timestamp, Args, Labels};
use crate::Result;

/// The keys `GET /images/json` accepts.
pub const LIST_KEYS: &[&str] = &["before", "dangling", "label", "reference", "since", "until"];

/// The keys `POST /images/prune` accepts.
pub const PRUNE_KEYS: &[&str] = &["dangling", "label", "label!", "until"];

const NANOS: i64 = 1_000_000_000;

/// `GET /images/json`'s filters, checked and resolved.
#[derive(Debug)]
pub struct ImageList {
    args: Args,
    dangling_only: bool,
    /// Listed images were made before this (ns): the oldest `before` image, or `until`.
    before: Option<i64>,
    /// And after this: the newest `since` image.
    since: Option<i64>,
    patterns: Vec<regex::Regex>,
}

impl ImageList {
    /// Checks `args`. `created` gives the creation time (unix seconds) of an image named by
    /// reference or ID, or fails as Docker does (`No such image: x`), for `before`/`since`.
    pub fn new(args: Args, created: impl Fn(&str) -> Result<i64>) -> Result<Self> {
        args.validate(LIST_KEYS)?;
        let dangling_only = args.get_bool_or_default("dangling", false)?;
        let mut before: Option<i64> = None;
        for v in args.get("before") {
            let t = created(v)? * NANOS;
            before = Some(before.map_or(t, |b| b.min(t)));
        }
        for v in args.get("until") {
            let t = parse_timestamp(v, chrono::Local::now())?;
            before = Some(before.map_or(t, |b| b.min(t)));
        }
        let mut since: Option<i64> = None;
        for v in args.get("since") {
            let t = created(v)? * NANOS;
            since = Some(since.map_or(t, |s| s.max(t)));
        }
        let patterns = args.get("reference").map(glob).collect::<Result<_>>()?;
        Ok(ImageList {
            args,
            dangling_only,
            before,
            since,
            patterns,
        })
    }

    /// The image as it is listed, its tags and digests narrowed to those a `reference`
    /// matches; `None` when it is not listed.
    pub fn select(&self, mut i: ImageSummary) -> Option<ImageSummary> {
        let created = i.created.saturating_mul(NANOS);
        if self.before.is_some_and(|b| created >= b) || self.since.is_some_and(|s| created <= s) {
            return None;
        }
        if !self.args.match_kv_list("label", &i.labels) {
            return None;
        }
        if self.args.contains("reference") {
            let keep = |r: &String| self.patterns.iter().any(|p| familiar_match(p, r));
            i.repo_tags.retain(keep);
            i.repo_digests.retain(keep);
        }
        if i.repo_tags.is_empty() && i.repo_digests.is_empty() {
            // Untagged: shown unless `dangling=false` or a `reference` asks for names.
            if (self.args.contains("dangling") && !self.dangling_only)
                || self.args.contains("reference")
            {
                return None;
            }
        } else if self.dangling_only && !i.repo_tags.is_empty() {
            return None;
        }
        Some(i)
    }
}

/// `POST /images/prune`'s filters.
#[derive(Debug)]
pub struct ImagePrune {
    args: Args,
    dangling_only: bool,
    until: Option<i64>,
}

impl ImagePrune {
    /// Checks `args`: `dangling` (true unless told otherwise: only untagged images go),
    /// `label`, `label!`, `until`.
    pub fn new(args: Args) -> Result<Self> {
        args.validate(PRUNE_KEYS)?;
        let dangling_only = args.get_bool_or_default("dangling", true)?;
        let until = args.until()?;
        Ok(ImagePrune {
            args,
            dangling_only,
            until,
        })
    }

    /// Only untagged images are pruned (`dangling=false` prunes every unused image).
    pub fn dangling_only(&self) -> bool {
        self.dangling_only
    }

    /// Whether an image made at `created` (unix seconds) with these labels may be pruned.
    pub fn matches(&self, created: i64, labels: &impl Labels) -> bool {
        self.until
            .is_none_or(|u| created.saturating_mul(NANOS) <= u)
            && self.args.match_labels(labels)
    }
}

/// A `reference` pattern: Go's `path.Match` (`*` and `?` within a path component, `[…]`
/// classes, `\` escapes) as an anchored expression; a malformed one is Go's
/// `syntax error in pattern`.
fn glob(pattern: &str) -> Result<regex::Regex> {
    let bad = || invalid("syntax error in pattern");
    let mut re = String::from("^");
    let mut chars = pattern.chars();
    let esc = |c: char| regex::escape(c.encode_utf8(&mut [0; 4]));
    while let Some(c) = chars.next() {
        match c {
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            '\\' => re.push_str(&esc(chars.next().ok_or_else(bad)?)),
            '[' => {
                re.push('[');
                if let Some(rest) = chars.as_str().strip_prefix('^') {
                    chars = rest.chars();
                    re.push('^');
                }
                let mut first = true;
                loop {
                    let c = chars.next().ok_or_else(bad)?;
                    match c {
                        ']' if !first => break,
                        '-' => return Err(bad()),
                        _ => {
                            let lo = if c == '\\' {
                                chars.next().ok_or_else(bad)?
                            } else {
                                c
                            };
                            re.push_str(&esc(lo));
                            let rest = chars.as_str();
                            if let Some(after) = rest.strip_prefix('-') {
                                if !after.starts_with(']') {
                                    chars.next();
                                    let mut hi = chars.next().ok_or_else(bad)?;
                                    if hi == '\\' {
                                        hi = chars.next().ok_or_else(bad)?;
                                    }
                                    if hi < lo {
                                        return Err(bad());
                                    }
                                    re.push('-');
                                    re.push_str(&esc(hi));
                                }
                            }
                        }
                    }
                    first = false;
                }
                re.push(']');
            }
            c => re.push_str(&esc(c)),
        }
    }
    re.push('$');
    regex::Regex::new(&re).map_err(|_| bad())
}

/// distribution's `FamiliarMatch`: the pattern against the familiar `repo:tag` (or
/// `repo@digest`), else against the repository name alone.
fn familiar_match(pattern: &regex::Regex, reference: &str) -> bool {
    pattern.is_match(reference) || pattern.is_match(familiar_name(reference))
}

/// `repo` of `repo:tag` or `repo@digest` (a registry's `host:port/` is no tag).
fn familiar_name(reference: &str) -> &str {
    let name = reference.split_once('@').map_or(reference, |(n, _)| n);
    match name.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => repo,
        _ => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EngineError;

    fn m(p: &str, r: &str) -> bool {
        familiar_match(&glob(p).unwrap(), r)
    }

    #[test]
    fn reference_patterns_glob_like_docker() {
        assert!(m("busybox", "busybox:latest"));
        assert!(m("busy*", "busybox:latest"));
        assert!(!m("busy*", "library/busybox:latest"));
        assert!(m("*/app", "team/app:v1"));
        assert!(m("team/app:v?", "team/app:v1"));
        assert!(!m("team/app:v2", "team/app:v1"));
        assert!(!m("team?app", "team/app:v1"), "? is not a /");
        assert!(m("team/app:v[0-9]", "team/app:v1"));
        assert!(!m("team/app:v[^0-9]", "team/app:v1"));
        assert!(m("registry.local:5000/*", "registry.local:5000/app:v1"));
        assert!(m("a.b", "a.b:1") && !m("a.b", "axb:1"), "no regex meaning");
        for bad in ["[", "a[", "[]", "x\\", "[b-a]"] {
            assert!(glob(bad).is_err(), "{bad}");
        }
    }

    fn image(id: &str, created: i64, tags: &[&str]) -> ImageSummary {
        ImageSummary {
            id: id.into(),
            created,
            repo_tags: tags.iter().map(|t| t.to_string()).collect(),
            ..Default::default()
        }
    }

    fn list(filters: &str) -> Result<Vec<String>> {
        let images = [
            image("old", 100, &["busybox:1", "team/app:v1"]),
            image("mid", 200, &[]),
            image("new", 300, &["busybox:latest"]),
        ];
        let created = |n: &str| match n {
            "old" => Ok(100),
            "new" => Ok(300),
            _ => Err(EngineError::InvalidParameter(format!("No such image: {n}"))),
        };
        let f = ImageList::new(Args::from_json(filters)?, created)?;
        Ok(images
            .into_iter()
            .filter_map(|i| f.select(i))
            .map(|i| format!("{}{:?}", i.id, i.repo_tags))
            .collect())
    }

    #[test]
    fn list_filters() {
        assert_eq!(list(r#"{"dangling":["true"]}"#).unwrap(), ["mid[]"]);
        assert_eq!(list(r#"{"dangling":["false"]}"#).unwrap().len(), 2);
        assert_eq!(
            list(r#"{"reference":["busybox"]}"#).unwrap(),
            ["old[\"busybox:1\"]", "new[\"busybox:latest\"]"]
        );
        assert_eq!(list(r#"{"before":["new"]}"#).unwrap().len(), 2);
        assert_eq!(list(r#"{"since":["old"]}"#).unwrap().len(), 2);
        assert_eq!(list(r#"{"until":["150"]}"#).unwrap().len(), 1);
        assert!(list(r#"{"bogus":["1"]}"#).is_err());
        assert!(list(r#"{"dangling":["maybe"]}"#).is_err());
        assert!(list(r#"{"before":["nope"]}"#).is_err());
    }

    #[test]
    fn prune_filters() {
        let labels: std::collections::HashMap<String, String> =
            [("keep".to_string(), "1".to_string())].into();
        let p = |f: &str| ImagePrune::new(Args::from_json(f).unwrap());
        assert!(p("{}").unwrap().dangling_only());
        assert!(!p(r#"{"dangling":["false"]}"#).unwrap().dangling_only());
        assert!(!p(r#"{"label!":["keep"]}"#).unwrap().matches(0, &labels));
        assert!(p(r#"{"until":["50"]}"#).unwrap().matches(40, &labels));
        assert!(!p(r#"{"until":["50"]}"#).unwrap().matches(60, &labels));
        assert!(p(r#"{"reference":["x"]}"#).is_err());
    }
}
