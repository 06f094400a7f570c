//! The filters of `GET /events`, as moby's `daemon/events/filter.go` applies them.

use super::Args;
use crate::{Event, Result};

/// The keys `GET /events` accepts: the event types, whose values match an actor's ID or
/// `name` by prefix, and `event`, `image`, `label`, `scope`, `type`. (dockerd passes
/// unknown keys over, matching everything; berth refuses them like every other filter.)
pub const KEYS: &[&str] = &[
    "config",
    "container",
    "daemon",
    "event",
    "image",
    "label",
    "network",
    "node",
    "plugin",
    "scope",
    "secret",
    "service",
    "type",
    "volume",
];

/// The object types whose key matches an event's actor by ID or name.
const ACTOR_KEYS: &[&str] = &[
    "config",
    "container",
    "daemon",
    "network",
    "node",
    "plugin",
    "secret",
    "service",
    "volume",
];

/// Which events a `GET /events` streams.
#[derive(Debug, Clone)]
pub struct EventFilter {
    args: Args,
}

impl EventFilter {
    /// Checks `args`.
    pub fn new(args: Args) -> Result<Self> {
        args.validate(KEYS)?;
        Ok(EventFilter { args })
    }

    /// Whether event `e` is streamed.
    pub fn include(&self, e: &Event) -> bool {
        let a = &self.args;
        let name = e.attributes.get("name").map_or("", String::as_str);
        self.event(e)
            && a.exact_match("type", e.typ)
            && a.exact_match("scope", "local")
            && ACTOR_KEYS
                .iter()
                .all(|k| a.fuzzy_match(k, &e.id) || a.fuzzy_match(k, name))
            && self.image(e)
            && a.match_kv_list("label", &e.attributes)
    }

    /// `event=`: the action, or (for `health_status`, `exec_create`, `exec_start`, whose
    /// actions carry a `: detail`) its prefix.
    fn event(&self, e: &Event) -> bool {
        let a = &self.args;
        let fuzzy = a
            .get("event")
            .any(|v| matches!(v, "health_status" | "exec_create" | "exec_start"));
        match fuzzy {
            true => a.fuzzy_match("event", &e.action),
            false => a.exact_match("event", &e.action),
        }
    }

    /// `image=`: an image event's image (ID or name), a container event's image; each with
    /// or without its tag.
    fn image(&self, e: &Event) -> bool {
        let attr = if e.typ == "image" { "name" } else { "image" };
        let name = e.attributes.get(attr).map_or("", String::as_str);
        let a = &self.args;
        [e.id.as_str(), name]
            .into_iter()
            .any(|n| a.exact_match("image", n) || a.exact_match("image", &strip_tag(n)))
    }
}

/// distribution's `FamiliarName` of an image reference (`busybox:1` → `busybox`,
/// `docker.io/library/busybox` → `busybox`); an ID (`sha256:…`) stays whole.
fn strip_tag(image: &str) -> String {
    if image.starts_with("sha256:") {
        return image.to_string();
    }
    berth_image::Reference::parse(image).map_or_else(|_| image.to_string(), |r| r.familiar_name())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(typ: &'static str, action: &str, id: &str, attrs: &[(&str, &str)]) -> Event {
        Event {
            typ,
            action: action.into(),
            id: id.into(),
            attributes: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            time_nano: 0,
        }
    }

    fn inc(filters: &str, e: &Event) -> bool {
        EventFilter::new(Args::from_json(filters).unwrap())
            .unwrap()
            .include(e)
    }

    #[test]
    fn events_filter_as_dockerd() {
        let start = ev(
            "container",
            "start",
            "c0ffee",
            &[("name", "web"), ("image", "busybox:latest"), ("a", "1")],
        );
        let health = ev(
            "container",
            "health_status: healthy",
            "c0ffee",
            &[("name", "web")],
        );
        let tag = ev("image", "tag", "sha256:abcd", &[("name", "team/app:v1")]);
        assert!(inc(r#"{"type":["container"]}"#, &start) && !inc(r#"{"type":["image"]}"#, &start));
        assert!(inc(r#"{"container":["web"]}"#, &start));
        assert!(inc(r#"{"container":["c0f"]}"#, &start), "an ID prefix");
        assert!(!inc(r#"{"container":["db"]}"#, &start));
        assert!(inc(r#"{"event":["start","stop"]}"#, &start));
        assert!(!inc(r#"{"event":["health_status"]}"#, &start));
        assert!(inc(r#"{"event":["health_status"]}"#, &health));
        assert!(!inc(r#"{"event":["health"]}"#, &health));
        assert!(inc(r#"{"image":["busybox"]}"#, &start));
        assert!(inc(r#"{"image":["team/app"]}"#, &tag));
        assert!(inc(r#"{"image":["sha256:abcd"]}"#, &tag));
        assert!(!inc(r#"{"image":["sha256"]}"#, &tag));
        assert!(inc(r#"{"label":["a=1"]}"#, &start) && !inc(r#"{"label":["a","b"]}"#, &start));
        assert!(inc(r#"{"scope":["local"]}"#, &start) && !inc(r#"{"scope":["swarm"]}"#, &start));
        assert!(!inc(r#"{"volume":["x"]}"#, &start));
        assert!(EventFilter::new(Args::from_json(r#"{"bogus":["1"]}"#).unwrap()).is_err());
    }
}
