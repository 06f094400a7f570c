//! The container commands that are one request (or one per name) and a Docker-shaped
//! answer: `ps`, `inspect`, `logs`, `stop`, `restart`, `kill`, `rm`, `wait`, `top`,
//! `rename`, `pause`, `unpause`, `update`, `diff`, `export`, `commit`, `container prune`.

use anyhow::Context;
use clap::Args;
use hyper::Method;
use serde_json::{json, Map, Value};

use crate::client::{body_reader, each, exit, query, seg, status_of, Api};
use crate::format;
use crate::opts::{filters, parse_bytes};

/// `berth ps`.
#[derive(Args, Debug)]
pub struct PsArgs {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    pub all: bool,
    /// Filter output based on conditions provided (name=, id=, status=, label=, ancestor=, exited=)
    #[arg(short, long)]
    pub filter: Vec<String>,
    /// Format output using a Go template ("table {{.ID}}\t{{.Names}}", "{{json .}}")
    #[arg(long)]
    pub format: Option<String>,
    /// Show n last created containers (includes all states)
    #[arg(short = 'n', long, default_value_t = -1, allow_hyphen_values = true)]
    pub last: i64,
    /// Show the latest created container (includes all states)
    #[arg(short, long)]
    pub latest: bool,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Only display container IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Display total file sizes
    #[arg(short, long)]
    pub size: bool,
}

/// `berth inspect` and `berth container inspect`.
#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Format output using a Go template
    #[arg(short, long)]
    pub format: Option<String>,
    /// Display total file sizes
    #[arg(short, long)]
    pub size: bool,
    /// Only this type of object (container, image, volume)
    #[arg(long = "type")]
    pub typ: Option<String>,
    #[arg(required = true, value_name = "NAME|ID")]
    pub names: Vec<String>,
}

/// `berth logs`.
#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Show extra details provided to logs
    #[arg(long)]
    pub details: bool,
    /// Follow log output
    #[arg(short, long)]
    pub follow: bool,
    /// Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)
    #[arg(long)]
    pub since: Option<String>,
    /// Number of lines to show from the end of the logs
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// Show timestamps
    #[arg(short, long)]
    pub timestamps: bool,
    /// Show logs before a timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)
    #[arg(long)]
    pub until: Option<String>,
    pub container: String,
}

/// `berth stop` and `berth restart`.
#[derive(Args, Debug)]
pub struct StopArgs {
    /// Signal to send to the container
    #[arg(short, long)]
    pub signal: Option<String>,
    /// Seconds to wait before killing the container
    #[arg(short, long)]
    pub time: Option<i64>,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// `berth kill`.
#[derive(Args, Debug)]
pub struct KillArgs {
    /// Signal to send to the container
    #[arg(short, long)]
    pub signal: Option<String>,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// `berth rm`.
#[derive(Args, Debug)]
pub struct RmArgs {
    /// Force the removal of a running container (uses SIGKILL)
    #[arg(short, long)]
    pub force: bool,
    /// Remove anonymous volumes associated with the container
    #[arg(short, long)]
    pub volumes: bool,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// Commands that take only container names (`wait`, `pause`, `unpause`).
#[derive(Args, Debug)]
pub struct NamesArgs {
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// `berth top`.
#[derive(Args, Debug)]
pub struct TopArgs {
    pub container: String,
    /// ps options
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_options: Vec<String>,
}

/// `berth rename`.
#[derive(Args, Debug)]
pub struct RenameArgs {
    pub container: String,
    pub new_name: String,
}

/// `berth update`.
#[derive(Args, Debug)]
pub struct UpdateArgs {
    /// Number of CPUs
    #[arg(long)]
    pub cpus: Option<String>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long)]
    pub cpu_shares: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) period
    #[arg(long)]
    pub cpu_period: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) quota
    #[arg(long)]
    pub cpu_quota: Option<i64>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long)]
    pub cpuset_cpus: Option<String>,
    /// Memory limit
    #[arg(short, long)]
    pub memory: Option<String>,
    /// Memory soft limit
    #[arg(long)]
    pub memory_reservation: Option<String>,
    /// Swap limit equal to memory plus swap: -1 to enable unlimited swap
    #[arg(long, allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long, allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Block IO (relative weight), between 10 and 1000, or 0 to disable
    #[arg(long)]
    pub blkio_weight: Option<u16>,
    /// Restart policy to apply when a container exits
    #[arg(long)]
    pub restart: Option<String>,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// `berth export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short, long)]
    pub output: Option<String>,
    pub container: String,
}

/// `berth commit`.
#[derive(Args, Debug)]
pub struct CommitArgs {
    /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")
    #[arg(short, long)]
    pub author: Option<String>,
    /// Apply Dockerfile instruction to the created image
    #[arg(short, long)]
    pub change: Vec<String>,
    /// Commit message
    #[arg(short, long)]
    pub message: Option<String>,
    /// Pause container during commit
    #[arg(short, long, default_value_t = true, action = clap::ArgAction::Set)]
    pub pause: bool,
    pub container: String,
    /// REPOSITORY[:TAG]
    pub repository: Option<String>,
}

/// `berth container prune`, `berth image prune`, `berth volume prune`.
#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
    /// Provide filter values (e.g. "until=<timestamp>", "label=<key>=<value>")
    #[arg(long)]
    pub filter: Vec<String>,
}

/// Docker's `Ellipsis`: at most `n` characters, the last one `…` when cut.
pub fn ellipsis(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n.saturating_sub(1)).collect::<String>() + "…"
    }
}

/// A short ID: 12 hex digits without the `sha256:`.
pub fn short_id(id: &str) -> String {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    hex.chars().take(12).collect()
}

/// Go's `time.Unix(t).String()` in UTC: `2026-11-24 12:00:00 +0000 UTC`.
pub fn go_time(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S +0000 UTC").to_string())
        .unwrap_or_default()
}

/// One `ps` row: Docker's container context, every field a string.
fn ps_row(c: &Value, trunc: bool) -> Map<String, Value> {
    let id = c["Id"].as_str().unwrap_or("");
    let command = c["Command"].as_str().unwrap_or("");
    let command = if trunc {
        ellipsis(command, 20)
    } else {
        command.to_string()
    };
    let names: Vec<&str> = c["Names"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n.as_str())
        .map(|n| n.trim_start_matches('/'))
        .filter(|n| !n.contains('/'))
        .collect();
    let image = c["Image"].as_str().unwrap_or("");
    let image = if trunc && image.starts_with("sha256:") {
        short_id(image)
    } else {
        image.to_string()
    };
    let mut labels: Vec<String> = c["Labels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    labels.sort();
    let mounts: Vec<String> = c["Mounts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            let name = m["Name"].as_str().filter(|n| !n.is_empty());
            let src = m["Source"].as_str().unwrap_or("");
            match name {
                Some(n) if trunc => ellipsis(n, 15),
                Some(n) => n.to_string(),
                None if trunc => ellipsis(src, 15),
                None => src.to_string(),
            }
        })
        .collect();
    let local_volumes = c["Mounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["Driver"] == "local")
        .count();
    let mut networks: Vec<&String> = c["NetworkSettings"]["Networks"]
        .as_object()
        .into_iter()
        .flat_map(|n| n.keys())
        .collect();
    networks.sort();
    let created = c["Created"].as_i64().unwrap_or(0);
    let size = match (c["SizeRw"].as_i64(), c["SizeRootFs"].as_i64()) {
        (Some(rw), Some(v)) => format!(
            "{} (virtual {})",
            format::human_size(rw.max(0) as u64),
            format::human_size(v.max(0) as u64)
        ),
        (Some(rw), None) => format::human_size(rw.max(0) as u64),
        _ => "0B".into(),
    };
    let mut row = Map::new();
    for (k, v) in [
        ("ID", if trunc { short_id(id) } else { id.to_string() }),
        ("Image", image),
        ("Command", json!(command).to_string()),
        ("CreatedAt", go_time(created)),
        ("RunningFor", format::ago(created)),
        ("Ports", ports(&c["Ports"])),
        ("State", c["State"].as_str().unwrap_or("").to_string()),
        ("Status", c["Status"].as_str().unwrap_or("").to_string()),
        ("Size", size),
        ("Names", names.join(",")),
        ("Labels", labels.join(",")),
        ("Mounts", mounts.join(",")),
        (
            "Networks",
            networks
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(","),
        ),
        ("LocalVolumes", local_volumes.to_string()),
    ] {
        row.insert(k.into(), json!(v));
    }
    row.insert(format::LABELS_KEY.into(), c["Labels"].clone());
    row
}

/// `0.0.0.0:8080->80/tcp, 443/tcp`.
fn ports(p: &Value) -> String {
    p.as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let private = p["PrivatePort"].as_i64().unwrap_or(0);
            let typ = p["Type"].as_str().unwrap_or("tcp");
            match p["PublicPort"].as_i64() {
                Some(public) => format!(
                    "{}:{public}->{private}/{typ}",
                    p["IP"].as_str().unwrap_or("0.0.0.0")
                ),
                None => format!("{private}/{typ}"),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

const PS_COLUMNS: &[(&str, &str)] = &[
    ("ID", "CONTAINER ID"),
    ("Image", "IMAGE"),
    ("Command", "COMMAND"),
    ("RunningFor", "CREATED"),
    ("Status", "STATUS"),
    ("Ports", "PORTS"),
    ("Names", "NAMES"),
    ("CreatedAt", "CREATED AT"),
    ("State", "STATE"),
    ("Size", "SIZE"),
    ("Labels", "LABELS"),
    ("Mounts", "MOUNTS"),
    ("Networks", "NETWORKS"),
    ("LocalVolumes", "LOCAL VOLUMES"),
];

/// `berth ps`.
pub async fn ps(api: &Api, a: PsArgs) -> anyhow::Result<()> {
    let mut params = Vec::new();
    let limit = if a.latest { 1 } else { a.last };
    if a.all || limit > 0 {
        params.push(("all", "1".to_string()));
    }
    if limit > 0 {
        params.push(("limit", limit.to_string()));
    }
    if a.size {
        params.push(("size", "1".to_string()));
    }
    if !a.filter.is_empty() {
        params.push(("filters", serde_json::to_string(&filters(&a.filter)?)?));
    }
    let list = api.get("/containers/json", &query(&params)).await?;
    let mut list: Vec<Value> = list.as_array().cloned().unwrap_or_default();
    list.sort_by_key(|c| std::cmp::Reverse(c["Created"].as_i64().unwrap_or(0)));
    if a.quiet {
        for c in &list {
            let id = c["Id"].as_str().unwrap_or("");
            println!(
                "{}",
                if a.no_trunc {
                    id.to_string()
                } else {
                    short_id(id)
                }
            );
        }
        return Ok(());
    }
    let rows: Vec<Map<String, Value>> = list.iter().map(|c| ps_row(c, !a.no_trunc)).collect();
    let mut columns: Vec<(&str, &str)> = PS_COLUMNS[..7].to_vec();
    if a.size {
        columns.push(("Size", "SIZE"));
    }
    let template = a.format.as_deref();
    if template.is_none() {
        print!("{}", format::render(&rows, &columns, None)?);
    } else {
        print!("{}", format::render(&rows, PS_COLUMNS, template)?);
    }
    Ok(())
}

/// Prints `values` as `inspect` does: a JSON array with Docker's four-space indent, or one
/// template result per value.
pub fn print_inspect(values: &[Value], template: Option<&str>) -> anyhow::Result<()> {
    match template {
        Some(t) => {
            let t = format::Template::new(t)?;
            for v in values {
                println!("{}", t.execute(v)?);
            }
        }
        None => {
            let mut out = Vec::new();
            let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
            let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
            serde::Serialize::serialize(&values, &mut ser)?;
            println!("{}", String::from_utf8_lossy(&out));
        }
    }
    Ok(())
}

/// `berth volume inspect`, `berth network inspect`: each of `names` at `<kind>/<name>`,
/// printed as [`print_inspect`] does; the ones not found are named on stderr and make the
/// exit status 1, as with docker.
pub async fn inspect_each(
    api: &Api,
    kind: &str,
    names: &[String],
    template: Option<&str>,
) -> anyhow::Result<()> {
    let mut found = Vec::new();
    let mut failed = false;
    for n in names {
        match api.get(&format!("/{kind}/{}", seg(n)), "").await {
            Ok(v) => found.push(v),
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    if !found.is_empty() || template.is_none() {
        print_inspect(&found, template)?;
    }
    if failed {
        return Err(crate::client::exit(1));
    }
    Ok(())
}

/// `berth inspect`: containers, then images, then volumes, as `docker inspect` looks.
pub async fn inspect(api: &Api, a: InspectArgs, only: Option<&str>) -> anyhow::Result<()> {
    let typ = only.map(String::from).or(a.typ.clone());
    if let Some(t) = typ.as_deref() {
        if !["container", "image", "volume"].contains(&t) {
            anyhow::bail!("\"{t}\" is not a valid value for --type");
        }
    }
    let mut found = Vec::new();
    let mut failed = false;
    for name in &a.names {
        let mut hit = None;
        for kind in ["container", "image", "volume"] {
            if typ.as_deref().is_some_and(|t| t != kind) {
                continue;
            }
            let path = match kind {
                "container" => format!("/containers/{}/json", seg(name)),
                "image" => format!("/images/{}/json", seg(name)),
                _ => format!("/volumes/{}", seg(name)),
            };
            let q = if kind == "container" && a.size {
                "size=1"
            } else {
                ""
            };
            match api.get(&path, q).await {
                Ok(v) => {
                    hit = Some(v);
                    break;
                }
                Err(e) if status_of(&e) == Some(404) => continue,
                Err(e) => return Err(e),
            }
        }
        match hit {
            Some(v) => found.push(v),
            None => {
                failed = true;
                let what = match typ.as_deref() {
                    Some("container") => "container",
                    Some("image") => "image",
                    Some("volume") => "volume",
                    _ => "object",
                };
                eprintln!("Error: No such {what}: {name}");
            }
        }
    }
    if !found.is_empty() || a.format.is_none() {
        print_inspect(&found, a.format.as_deref())?;
    }
    if failed {
        return Err(exit(1));
    }
    Ok(())
}

/// `10m` or an RFC 3339 time or Unix seconds, as the API's `since`/`until`.
pub fn timestamp(s: &str) -> anyhow::Result<String> {
    if let Ok(d) = crate::opts::parse_duration(s) {
        let t = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0) - d;
        return Ok(format!("{}.{:09}", t / 1_000_000_000, t % 1_000_000_000));
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(format!(
            "{}.{:09}",
            t.timestamp(),
            t.timestamp_subsec_nanos()
        ));
    }
    if let Ok(t) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(t
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc().timestamp())
            .unwrap_or(0)
            .to_string());
    }
    if s.parse::<f64>().is_ok() {
        return Ok(s.to_string());
    }
    anyhow::bail!("invalid value {s:?}: use a timestamp (2013-01-02T13:23:37Z) or a duration (42m)")
}

/// `berth logs`.
pub async fn logs(api: &Api, a: LogsArgs) -> anyhow::Result<()> {
    let info = api
        .get(&format!("/containers/{}/json", seg(&a.container)), "")
        .await?;
    let tty = info["Config"]["Tty"].as_bool().unwrap_or(false);
    let id = info["Id"].as_str().unwrap_or(&a.container).to_string();
    let mut params = vec![
        ("stdout", "1".to_string()),
        ("stderr", "1".to_string()),
        ("tail", a.tail.clone()),
    ];
    for (k, on) in [
        ("follow", a.follow),
        ("timestamps", a.timestamps),
        ("details", a.details),
    ] {
        if on {
            params.push((k, "1".into()));
        }
    }
    if let Some(s) = &a.since {
        params.push(("since", timestamp(s)?));
    }
    if let Some(u) = &a.until {
        params.push(("until", timestamp(u)?));
    }
    let resp = api
        .stream(
            Method::GET,
            &format!("/containers/{id}/logs"),
            &query(&params),
            None,
        )
        .await?;
    crate::stdio::copy_output(body_reader(resp), tty).await?;
    Ok(())
}

fn stop_query(signal: &Option<String>, time: Option<i64>) -> String {
    let mut p = Vec::new();
    if let Some(s) = signal {
        p.push(("signal", s.clone()));
    }
    if let Some(t) = time {
        p.push(("t", t.to_string()));
    }
    query(&p)
}

/// `berth stop` (`restart` when `restart`).
pub async fn stop(api: &Api, a: StopArgs, restart: bool) -> anyhow::Result<()> {
    let q = stop_query(&a.signal, a.time);
    let verb = if restart { "restart" } else { "stop" };
    each(&a.containers, |n| {
        let q = q.clone();
        async move {
            api.post(&format!("/containers/{}/{verb}", seg(&n)), &q, None)
                .await?;
            Ok(Some(n))
        }
    })
    .await
}

/// `berth kill`.
pub async fn kill(api: &Api, a: KillArgs) -> anyhow::Result<()> {
    let q = stop_query(&a.signal, None);
    each(&a.containers, |n| {
        let q = q.clone();
        async move {
            api.post(&format!("/containers/{}/kill", seg(&n)), &q, None)
                .await?;
            Ok(Some(n))
        }
    })
    .await
}

/// `berth rm`.
pub async fn rm(api: &Api, a: RmArgs) -> anyhow::Result<()> {
    let mut p = Vec::new();
    if a.force {
        p.push(("force", "1".to_string()));
    }
    if a.volumes {
        p.push(("v", "1".to_string()));
    }
    let q = query(&p);
    each(&a.containers, |n| {
        let q = q.clone();
        async move {
            api.call(
                Method::DELETE,
                &format!("/containers/{}", seg(&n)),
                &q,
                None,
            )
            .await?;
            Ok(Some(n))
        }
    })
    .await
}

/// `berth wait`: each container's exit status.
pub async fn wait(api: &Api, a: NamesArgs) -> anyhow::Result<()> {
    each(&a.containers, |n| async move {
        let code = api.wait(&seg(&n), "not-running").await?.await?;
        Ok(Some(code.to_string()))
    })
    .await
}

/// `berth pause` / `berth unpause`.
pub async fn pause(api: &Api, a: NamesArgs, verb: &str) -> anyhow::Result<()> {
    each(&a.containers, |n| async move {
        api.post(&format!("/containers/{}/{verb}", seg(&n)), "", None)
            .await?;
        Ok(Some(n))
    })
    .await
}

/// `berth top`.
pub async fn top(api: &Api, a: TopArgs) -> anyhow::Result<()> {
    let q = if a.ps_options.is_empty() {
        String::new()
    } else {
        query(&[("ps_args", a.ps_options.join(" "))])
    };
    let v = api
        .get(&format!("/containers/{}/top", seg(&a.container)), &q)
        .await?;
    let mut lines = vec![v["Titles"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str())
        .collect::<Vec<_>>()
        .join("\t")];
    for p in v["Processes"].as_array().into_iter().flatten() {
        lines.push(
            p.as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join("\t"),
        );
    }
    print!("{}", format::align_tabs(&lines));
    Ok(())
}

/// `berth rename`.
pub async fn rename(api: &Api, a: RenameArgs) -> anyhow::Result<()> {
    let new = a.new_name.trim();
    if new.is_empty() {
        anyhow::bail!("Error: neither old nor new names may be empty");
    }
    api.post(
        &format!("/containers/{}/rename", seg(&a.container)),
        &query(&[("name", new.to_string())]),
        None,
    )
    .await?;
    Ok(())
}

/// `berth update`.
pub async fn update(api: &Api, a: UpdateArgs) -> anyhow::Result<()> {
    let mut body = Map::new();
    for (k, v) in [
        ("Memory", &a.memory),
        ("MemoryReservation", &a.memory_reservation),
    ] {
        if let Some(v) = v {
            body.insert(k.into(), json!(parse_bytes(v)?));
        }
    }
    if let Some(s) = &a.memory_swap {
        let v = if s == "-1" { -1 } else { parse_bytes(s)? };
        body.insert("MemorySwap".into(), json!(v));
    }
    if let Some(c) = &a.cpus {
        let n: f64 = c
            .parse()
            .with_context(|| format!("invalid argument {c:?} for \"--cpus\" flag"))?;
        body.insert("NanoCpus".into(), json!((n * 1e9) as i64));
    }
    for (k, v) in [
        ("CpuShares", a.cpu_shares),
        ("CpuPeriod", a.cpu_period),
        ("CpuQuota", a.cpu_quota),
        ("PidsLimit", a.pids_limit),
    ] {
        if let Some(v) = v {
            body.insert(k.into(), json!(v));
        }
    }
    if let Some(c) = &a.cpuset_cpus {
        body.insert("CpusetCpus".into(), json!(c));
    }
    if let Some(w) = a.blkio_weight {
        body.insert("BlkioWeight".into(), json!(w));
    }
    if let Some(r) = &a.restart {
        let o = crate::opts::ContainerOpts {
            restart: Some(r.clone()),
            ..Default::default()
        };
        body.insert(
            "RestartPolicy".into(),
            o.to_create("-", &[])?["HostConfig"]["RestartPolicy"].clone(),
        );
    }
    if body.is_empty() {
        anyhow::bail!("you must provide one or more flags when using this command");
    }
    let body = Value::Object(body);
    each(&a.containers, |n| {
        let body = body.clone();
        async move {
            let r = api
                .post(&format!("/containers/{}/update", seg(&n)), "", Some(&body))
                .await?;
            for w in r["Warnings"].as_array().into_iter().flatten() {
                if let Some(w) = w.as_str() {
                    eprintln!("WARNING: {w}");
                }
            }
            Ok(Some(n))
        }
    })
    .await
}

/// `berth diff`.
pub async fn diff(api: &Api, container: &str) -> anyhow::Result<()> {
    let v = api
        .get(&format!("/containers/{}/changes", seg(container)), "")
        .await?;
    for c in v.as_array().into_iter().flatten() {
        let kind = match c["Kind"].as_i64() {
            Some(0) => "C",
            Some(1) => "A",
            _ => "D",
        };
        println!("{kind} {}", c["Path"].as_str().unwrap_or(""));
    }
    Ok(())
}

/// Writes a streamed answer to `-o FILE` (atomically: a failed copy leaves no file) or to
/// stdout, which must not be a terminal.
pub async fn write_out(
    resp: hyper::Response<hyper::body::Incoming>,
    output: Option<&str>,
) -> anyhow::Result<()> {
    let mut reader = body_reader(resp);
    match output {
        Some(path) => {
            let path = std::path::Path::new(path);
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            let tmp = tempfile::NamedTempFile::with_prefix_in(".berth-", dir)
                .with_context(|| format!("create a temporary file in {}", dir.display()))?;
            // Buffered: each write to a tokio File is a trip to the blocking pool.
            let mut f = tokio::io::BufWriter::with_capacity(
                crate::client::CHUNK,
                tokio::fs::File::from_std(tmp.reopen()?),
            );
            tokio::io::copy(&mut reader, &mut f).await?;
            // Written whole, then renamed (a reader never sees half a file), but not fsynced:
            // as `docker save -o`, the user's file is not berth's state, and syncing 100 MB
            // was a third of a save's time here.
            tokio::io::AsyncWriteExt::flush(&mut f).await?;
            tmp.persist(path)
                .with_context(|| format!("write {}", path.display()))?;
        }
        None => {
            if rustix::termios::isatty(std::io::stdout()) {
                anyhow::bail!(
                    "cowardly refusing to save to a terminal. Use the -o flag or redirect"
                );
            }
            let mut out = tokio::io::stdout();
            tokio::io::copy(&mut reader, &mut out).await?;
            tokio::io::AsyncWriteExt::flush(&mut out).await?;
        }
    }
    Ok(())
}

/// `berth export`.
pub async fn export(api: &Api, a: ExportArgs) -> anyhow::Result<()> {
    if a.output.is_none() && rustix::termios::isatty(std::io::stdout()) {
        anyhow::bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
    }
    let resp = api
        .stream(
            Method::GET,
            &format!("/containers/{}/export", seg(&a.container)),
            "",
            None,
        )
        .await?;
    write_out(resp, a.output.as_deref()).await
}

/// `berth commit`: prints the new image's ID.
pub async fn commit(api: &Api, a: CommitArgs) -> anyhow::Result<()> {
    let mut p = vec![
        ("container", a.container.clone()),
        ("pause", a.pause.to_string()),
    ];
    if let Some(r) = &a.repository {
        let (repo, tag) = match r.rsplit_once(':').filter(|(_, t)| !t.contains('/')) {
            Some((repo, tag)) => (repo.to_string(), tag.to_string()),
            None => (r.clone(), String::new()),
        };
        p.push(("repo", repo));
        if !tag.is_empty() {
            p.push(("tag", tag));
        }
    }
    if let Some(m) = &a.message {
        p.push(("comment", m.clone()));
    }
    if let Some(au) = &a.author {
        p.push(("author", au.clone()));
    }
    for c in &a.change {
        p.push(("changes", c.clone()));
    }
    let v = api.post("/commit", &query(&p), Some(&json!({}))).await?;
    println!("{}", v["Id"].as_str().unwrap_or(""));
    Ok(())
}

/// Asks before a prune, unless `-f`; false when the user says no.
pub fn confirm(warning: &str) -> anyhow::Result<bool> {
    use std::io::Write;
    eprint!("{warning}\nAre you sure you want to continue? [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(answer.trim().eq_ignore_ascii_case("y"))
}

/// `berth container prune`.
pub async fn prune(api: &Api, a: PruneArgs) -> anyhow::Result<()> {
    if !a.force && !confirm("WARNING! This will remove all stopped containers.")? {
        return Ok(());
    }
    prune_and_report(api, "containers", filters(&a.filter)?).await
}

/// `POST /<kind>/prune` with these filters, reported as docker does: `Deleted <Kind>:` and
/// what went, then the space reclaimed where the answer has it (not for networks).
pub async fn prune_and_report(
    api: &Api,
    kind: &str,
    f: std::collections::HashMap<String, Vec<String>>,
) -> anyhow::Result<()> {
    let q = if f.is_empty() {
        String::new()
    } else {
        query(&[("filters", serde_json::to_string(&f)?)])
    };
    let v = api.post(&format!("/{kind}/prune"), &q, None).await?;
    let title = format!("{}{}", kind[..1].to_uppercase(), &kind[1..]);
    let deleted: Vec<&str> = v[format!("{title}Deleted")]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d.as_str())
        .collect();
    let space = v.get("SpaceReclaimed").and_then(|s| s.as_u64());
    if !deleted.is_empty() {
        println!("Deleted {title}:");
        for d in deleted {
            println!("{d}");
        }
        if space.is_some() {
            println!();
        }
    }
    if let Some(space) = space {
        println!("Total reclaimed space: {}", format::human_size(space));
    }
    Ok(())
}
