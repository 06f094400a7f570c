//! The filters of `GET /containers/json` and `POST /containers/prune`, as moby's
//! `daemon/list.go` and `daemon/prune.go` apply them.

use std::collections::BTreeSet;

use bollard_stubs::models::PortSummary;

use super::{invalid, rfc3339_nanos, Args};
use crate::{Record, Result, Status};

/// The keys `GET /containers/json` accepts.
pub const LIST_KEYS: &[&str] = &[
    "ancestor",
    "before",
    "exited",
    "expose",
    "health",
    "id",
    "is-task",
    "isolation",
    "label",
    "name",
    "network",
    "publish",
    "since",
    "status",
    "volume",
];

/// The keys `POST /containers/prune` accepts.
pub const PRUNE_KEYS: &[&str] = &["label", "label!", "until"];

const STATES: &[&str] = &[
    "created",
    "running",
    "paused",
    "restarting",
    "removing",
    "exited",
    "dead",
];

const HEALTHS: &[&str] = &["none", "starting", "healthy", "unhealthy"];

/// `GET /containers/json`'s filters, checked and resolved.
#[derive(Debug)]
pub struct ContainerList {
    args: Args,
    all: bool,
    exited: Vec<i32>,
    before: Option<String>,
    since: Option<String>,
    is_task: Option<bool>,
    publish: BTreeSet<String>,
    expose: BTreeSet<String>,
    ancestors: Option<BTreeSet<String>>,
}

impl ContainerList {
    /// Checks `args` as dockerd does. `all`: stopped containers are listed too (`all=1`, or
    /// a `limit`); a `status` filter implies it. `container` finds a container by ID, name
    /// or ID prefix and gives its ID, or fails as Docker does (`No such container: x`), for
    /// `before` and `since`; `image` gives the ID of an image named by reference or ID, if
    /// there is one, for `ancestor`.
    pub fn new(
        args: Args,
        all: bool,
        container: impl Fn(&str) -> Result<String>,
        image: impl Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        args.validate(LIST_KEYS)?;
        let mut exited = Vec::new();
        for v in args.get("exited") {
            let code = v.parse::<i32>().map_err(|e| {
                invalid(format!(
                    "invalid filter 'exited={v}': strconv.Atoi: parsing {v:?}: {e}"
                ))
            })?;
            exited.push(code);
        }
        let mut all = all;
        for v in args.get("status") {
            if !STATES.contains(&v) {
                return Err(invalid(format!(
                    "invalid filter 'status={v}': invalid value for state ({v}): must be one of {}",
                    STATES.join(", ")
                )));
            }
            all = true;
        }
        let is_task = match args.contains("is-task") {
            true => Some(args.get_bool_or_default("is-task", false)?),
            false => None,
        };
        for v in args.get("health") {
            if !HEALTHS.contains(&v) {
                return Err(invalid(format!(
                    "invalid filter 'health={v}': invalid value for health ({v}): must be one of {}",
                    HEALTHS.join(", ")
                )));
            }
        }
        let mut before = None;
        for v in args.get("before") {
            before = Some(container(v)?);
        }
        let mut since = None;
        for v in args.get("since") {
            since = Some(container(v)?);
        }
        // As dockerd: an ancestor that names no image is passed over; if none does, no
        // container matches.
        let ancestors = args
            .contains("ancestor")
            .then(|| args.get("ancestor").filter_map(&image).collect());
        let mut publish = BTreeSet::new();
        for v in args.get("publish") {
            ports("publish", v, &mut publish)?;
        }
        let mut expose = BTreeSet::new();
        for v in args.get("expose") {
            ports("expose", v, &mut expose)?;
        }
        Ok(ContainerList {
            args,
            all,
            exited,
            before,
            since,
            is_task,
            publish,
            expose,
            ancestors,
        })
    }

    /// The containers to list, from `newest_first` (every container, newest first: `before`
    /// and `since` go by that order). `ports` is the port summary a container is listed
    /// with (`publish` matches its public ports, `expose` its private ones).
    pub fn select(
        &self,
        newest_first: Vec<Record>,
        ports: impl Fn(&Record) -> Vec<PortSummary>,
    ) -> Vec<Record> {
        // As dockerd: an `id` picks the one container it is a prefix of (a prefix two
        // containers share picks neither).
        let ids: Option<BTreeSet<String>> = self.args.contains("id").then(|| {
            self.args
                .get("id")
                .filter_map(|v| {
                    let mut hits = newest_first
                        .iter()
                        .filter(|r| !v.is_empty() && r.id.starts_with(v));
                    match (hits.next(), hits.next()) {
                        (Some(r), None) => Some(r.id.clone()),
                        _ => None,
                    }
                })
                .collect()
        });
        let mut before = self.before.as_deref();
        let mut out = Vec::new();
        for r in newest_first {
            if let Some(b) = before {
                if r.id == b {
                    before = None;
                }
                continue;
            }
            if self.since.as_deref() == Some(r.id.as_str()) {
                break;
            }
            if !self.all && !running(&r) {
                continue;
            }
            if ids.as_ref().is_some_and(|ids| !ids.contains(&r.id)) {
                continue;
            }
            if self.includes(&r, &ports) {
                out.push(r);
            }
        }
        out
    }

    fn includes(&self, r: &Record, ports: &impl Fn(&Record) -> Vec<PortSummary>) -> bool {
        let a = &self.args;
        let name = r.name.trim_start_matches('/');
        if !a.matches("name", &r.name) && !a.matches("name", name) {
            return false;
        }
        if !a.matches("id", &r.id) || self.is_task == Some(true) {
            return false;
        }
        if !a.match_kv_list("label", &r.config.labels) || !a.matches("isolation", &isolation(r)) {
            return false;
        }
        if !self.exited.is_empty()
            && (running(r)
                || r.state.started_at.is_empty()
                || !self.exited.contains(&r.state.exit_code))
        {
            return false;
        }
        if !a.matches("status", r.state.status.as_str()) || !a.exact_match("health", &health(r)) {
            return false;
        }
        if a.contains("volume") {
            let mounted = a.get("volume").any(|v| {
                r.mounts.iter().any(|m| {
                    m.destination.as_deref() == Some(v)
                        || match m.name.as_deref().filter(|n| !n.is_empty()) {
                            Some(n) => n == v,
                            None => m.source.as_deref() == Some(v),
                        }
                })
            });
            if !mounted {
                return false;
            }
        }
        if self
            .ancestors
            .as_ref()
            .is_some_and(|a| !a.contains(&r.image))
        {
            return false;
        }
        if a.contains("network") {
            let on = a.get("network").any(|v| {
                r.networks
                    .iter()
                    .any(|j| j.network == v || j.network_id.starts_with(v))
            });
            if !on {
                return false;
            }
        }
        if !self.publish.is_empty() || !self.expose.is_empty() {
            let hit = ports(r).iter().any(|p| {
                let proto = p.typ.map(|t| t.to_string()).unwrap_or_default();
                let public = format!("{}/{proto}", p.public_port.unwrap_or(0));
                let private = format!("{}/{proto}", p.private_port);
                self.publish.contains(&public) || self.expose.contains(&private)
            });
            if !hit {
                return false;
            }
        }
        true
    }
}

/// Running as dockerd counts it for `ps`: a paused or restarting container is.
fn running(r: &Record) -> bool {
    r.state.status.is_running() || r.state.status == Status::Restarting
}

/// The health word `health=` compares: `none` without a health check.
fn health(r: &Record) -> String {
    r.state
        .health
        .as_ref()
        .and_then(|h| h.status)
        .map(|s| s.to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "none".into())
}

fn isolation(r: &Record) -> String {
    r.host_config
        .isolation
        .map(|i| i.to_string().to_lowercase())
        .filter(|i| !i.is_empty())
        .unwrap_or_else(|| "default".into())
}

/// A `publish`/`expose` value, `<port>[/<proto>]` or `<start>-<end>[/<proto>]` (tcp by
/// default), added to `out` as `port/proto` keys.
fn ports(key: &str, value: &str, out: &mut BTreeSet<String>) -> Result<()> {
    if value.contains(':') {
        return Err(invalid(format!(
            "filter for '{key}' should not contain ':': {value}"
        )));
    }
    let (port, proto) = match value.split_once('/') {
        Some((p, proto)) if !proto.is_empty() => (p, proto),
        Some((p, _)) => (p, "tcp"),
        None => (value, "tcp"),
    };
    let fail = |e: String| invalid(format!("error while looking up for {key} {value}: {e}"));
    let num = |s: &str| {
        s.parse::<u16>()
            .map_err(|_| fail(format!("strconv.ParseUint: parsing {s:?}: invalid syntax")))
    };
    let (start, end) = match port.split_once('-') {
        _ if port.is_empty() => return Err(fail("empty string specified for ports".into())),
        Some((a, b)) => (num(a)?, num(b)?),
        None => (num(port)?, num(port)?),
    };
    if end < start {
        return Err(fail(format!("invalid range specified for port: {port}")));
    }
    out.extend((start..=end).map(|p| format!("{p}/{proto}")));
    Ok(())
}

/// `POST /containers/prune`'s filters: which stopped containers go.
#[derive(Debug)]
pub struct ContainerPrune {
    args: Args,
    until: Option<i64>,
}

impl ContainerPrune {
    /// Checks `args` (`label`, `label!`, `until`).
    pub fn new(args: Args) -> Result<Self> {
        args.validate(PRUNE_KEYS)?;
        let until = args.until()?;
        Ok(ContainerPrune { args, until })
    }

    /// Whether the (stopped) container is pruned: made no later than `until`, with the
    /// labels asked for.
    pub fn matches(&self, r: &Record) -> bool {
        self.until.is_none_or(|u| rfc3339_nanos(&r.created) <= u)
            && self.args.match_labels(&r.config.labels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::NetworkJoin;
    use crate::EngineError;
    use bollard_stubs::models::{Health, HealthStatusEnum, MountPoint, PortSummaryTypeEnum};

    fn rec(id: &str, name: &str, status: Status) -> Record {
        let mut r: Record = serde_json::from_value(serde_json::json!({
            "id": id, "name": format!("/{name}"), "created": "2024-01-01T00:00:00Z",
            "image": "sha256:aaaa", "image_name": "busybox", "config": {}, "host_config": {},
            "state": {"status": "created", "pid": 0, "exit_code": 0, "started_at": "",
                      "finished_at": "", "oom_killed": false, "error": ""},
            "restart_count": 0, "manually_stopped": false, "log_path": ""
        }))
        .unwrap();
        r.state.status = status;
        r
    }

    fn records() -> Vec<Record> {
        let mut web = rec("aa11", "web", Status::Running);
        web.config.labels = Some(
            [("a", "1"), ("b", "2")]
                .map(|(k, v)| (k.into(), v.into()))
                .into(),
        );
        web.mounts.push(MountPoint {
            name: Some("data".into()),
            destination: Some("/data".into()),
            ..Default::default()
        });
        web.networks.push(NetworkJoin {
            network: "front".into(),
            network_id: "f0f0".into(),
            ..Default::default()
        });
        let mut db = rec("aa22", "db", Status::Exited);
        db.state.started_at = "2024-01-01T00:00:01Z".into();
        db.state.exit_code = 3;
        db.config.labels = Some([("a".to_string(), "1".to_string())].into());
        db.mounts.push(MountPoint {
            source: Some("/srv".into()),
            destination: Some("/srv".into()),
            ..Default::default()
        });
        let mut sick = rec("bb33", "sick", Status::Running);
        sick.state.health = Some(Health {
            status: Some(HealthStatusEnum::UNHEALTHY),
            ..Default::default()
        });
        vec![web, db, sick]
    }

    fn ports(r: &Record) -> Vec<PortSummary> {
        if r.name != "/web" {
            return Vec::new();
        }
        vec![PortSummary {
            private_port: 80,
            public_port: Some(8080),
            typ: Some(PortSummaryTypeEnum::TCP),
            ip: None,
        }]
    }

    fn names(filters: &str, all: bool) -> Result<Vec<String>> {
        let recs = records();
        let find = |k: &str| {
            recs.iter()
                .find(|r| r.id == k || r.name == format!("/{k}"))
                .map(|r| r.id.clone())
                .ok_or_else(|| EngineError::NoSuchContainer(k.into()))
        };
        let image = |i: &str| (i == "busybox").then(|| "sha256:aaaa".to_string());
        let f = ContainerList::new(Args::from_json(filters)?, all, find, image)?;
        Ok(f.select(recs.clone(), ports)
            .into_iter()
            .map(|r| r.name.trim_start_matches('/').to_string())
            .collect())
    }

    fn ok(filters: &str) -> Vec<String> {
        names(filters, true).unwrap()
    }

    fn err(filters: &str) -> String {
        match names(filters, true).unwrap_err() {
            EngineError::InvalidParameter(m) => m,
            e => e.to_string(),
        }
    }

    #[test]
    fn each_key_filters_as_dockerd() {
        assert_eq!(ok(r#"{"label":["a","b"]}"#), ["web"], "labels are ANDed");
        assert_eq!(ok(r#"{"label":["a=1"]}"#), ["web", "db"]);
        assert_eq!(ok(r#"{"volume":["data"]}"#), ["web"]);
        assert_eq!(
            ok(r#"{"volume":["/srv"]}"#),
            ["db"],
            "a bind, by destination"
        );
        assert!(ok(r#"{"volume":["nothing"]}"#).is_empty());
        assert_eq!(ok(r#"{"network":["front"]}"#), ["web"]);
        assert_eq!(ok(r#"{"network":["f0"]}"#), ["web"], "by ID prefix");
        assert_eq!(ok(r#"{"publish":["8080"]}"#), ["web"]);
        assert_eq!(ok(r#"{"publish":["8000-8100/tcp"]}"#), ["web"]);
        assert!(ok(r#"{"publish":["8080/udp"]}"#).is_empty());
        assert!(ok(r#"{"publish":["80"]}"#).is_empty());
        assert_eq!(ok(r#"{"expose":["80/tcp"]}"#), ["web"]);
        assert_eq!(ok(r#"{"health":["none"]}"#), ["web", "db"]);
        assert_eq!(ok(r#"{"health":["unhealthy"]}"#), ["sick"]);
        assert_eq!(ok(r#"{"before":["db"]}"#), ["sick"]);
        assert_eq!(ok(r#"{"since":["db"]}"#), ["web"]);
        assert!(ok(r#"{"is-task":["true"]}"#).is_empty());
        assert_eq!(ok(r#"{"is-task":["false"]}"#).len(), 3);
        assert_eq!(ok(r#"{"exited":["3"]}"#), ["db"]);
        assert_eq!(ok(r#"{"status":["exited"]}"#), ["db"]);
        assert_eq!(ok(r#"{"name":["^w"]}"#), ["web"], "a regular expression");
        assert_eq!(ok(r#"{"name":["/db"]}"#), ["db"]);
        assert_eq!(ok(r#"{"id":["bb"]}"#), ["sick"]);
        assert!(ok(r#"{"id":["aa"]}"#).is_empty(), "a prefix two share");
        assert_eq!(ok(r#"{"ancestor":["busybox"]}"#).len(), 3);
        assert!(ok(r#"{"ancestor":["alpine"]}"#).is_empty());
        assert_eq!(ok(r#"{"isolation":["default"]}"#).len(), 3);
    }

    #[test]
    fn stopped_containers_need_all_or_a_status() {
        assert_eq!(names("", false).unwrap(), ["web", "sick"]);
        assert_eq!(names(r#"{"status":["exited"]}"#, false).unwrap(), ["db"]);
    }

    #[test]
    fn bad_values_get_dockers_errors() {
        assert_eq!(err(r#"{"bogus":["1"]}"#), "invalid filter 'bogus'");
        assert!(err(r#"{"status":["foo"]}"#).starts_with("invalid filter 'status=foo'"));
        assert!(err(r#"{"health":["x"]}"#).starts_with("invalid filter 'health=x'"));
        assert!(err(r#"{"exited":["x"]}"#).starts_with("invalid filter 'exited=x'"));
        assert_eq!(
            err(r#"{"is-task":["maybe"]}"#),
            "invalid filter 'is-task=[maybe]'"
        );
        assert!(err(r#"{"publish":["80:80"]}"#).contains("should not contain ':'"));
        assert!(err(r#"{"expose":["90-80"]}"#).contains("invalid range"));
        assert_eq!(err(r#"{"before":["nope"]}"#), "No such container: nope");
    }

    #[test]
    fn prune_filters_by_label_and_age() {
        let [web, db, _] = <[Record; 3]>::try_from(records()).unwrap();
        let p = |f: &str| ContainerPrune::new(Args::from_json(f).unwrap()).unwrap();
        assert!(p(r#"{"label!":["b"]}"#).matches(&db) && !p(r#"{"label!":["b"]}"#).matches(&web));
        assert!(p(r#"{"until":["2024-01-01T00:00:00Z"]}"#).matches(&db));
        assert!(!p(r#"{"until":["2023-12-31T00:00:00Z"]}"#).matches(&db));
        assert!(ContainerPrune::new(Args::from_json(r#"{"status":["x"]}"#).unwrap()).is_err());
    }
}
