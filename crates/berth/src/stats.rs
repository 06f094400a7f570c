//! `berth stats`: CPU, memory, network, block I/O and pids per container, computed from the
//! Engine API's stats as the docker CLI computes them; one table with `--no-stream`, a table
//! redrawn as samples arrive otherwise.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use clap::Args;
use hyper::Method;
use serde_json::{json, Map, Value};
use tokio::io::AsyncBufReadExt;

use crate::client::{body_reader, query, seg, Api};
use crate::containers::short_id;
use crate::format;

/// `berth stats`.
#[derive(Args, Debug)]
pub struct StatsArgs {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    pub all: bool,
    /// Format output using a Go template
    #[arg(long)]
    pub format: Option<String>,
    /// Disable streaming stats and only pull the first result
    #[arg(long)]
    pub no_stream: bool,
    /// Do not truncate output
    #[arg(long)]
    pub no_trunc: bool,
    #[arg(value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

const COLUMNS: &[(&str, &str)] = &[
    ("ID", "CONTAINER ID"),
    ("Name", "NAME"),
    ("CPUPerc", "CPU %"),
    ("MemUsage", "MEM USAGE / LIMIT"),
    ("MemPerc", "MEM %"),
    ("NetIO", "NET I/O"),
    ("BlockIO", "BLOCK I/O"),
    ("PIDs", "PIDS"),
];

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// One sample as a row, by the docker CLI's arithmetic.
pub fn row(asked: &str, s: &Value, trunc: bool) -> Map<String, Value> {
    let cpu = &s["cpu_stats"];
    let pre = &s["precpu_stats"];
    let cpu_delta =
        u(&cpu["cpu_usage"]["total_usage"]) as f64 - u(&pre["cpu_usage"]["total_usage"]) as f64;
    let sys_delta = u(&cpu["system_cpu_usage"]) as f64 - u(&pre["system_cpu_usage"]) as f64;
    let online = match u(&cpu["online_cpus"]) {
        0 => cpu["cpu_usage"]["percpu_usage"]
            .as_array()
            .map_or(1, |a| a.len().max(1)) as f64,
        n => n as f64,
    };
    let cpu_pct = if cpu_delta > 0.0 && sys_delta > 0.0 {
        cpu_delta / sys_delta * online * 100.0
    } else {
        0.0
    };
    let mem = &s["memory_stats"];
    let usage = u(&mem["usage"]);
    // The page cache that can be dropped is not the container's (v1 and v2 names).
    let cache = [
        &mem["stats"]["total_inactive_file"],
        &mem["stats"]["inactive_file"],
    ]
    .into_iter()
    .map(u)
    .find(|c| *c > 0 && *c < usage)
    .unwrap_or(0);
    let used = usage - cache;
    let limit = u(&mem["limit"]);
    let mem_pct = if limit > 0 {
        used as f64 / limit as f64 * 100.0
    } else {
        0.0
    };
    let (mut rx, mut tx) = (0, 0);
    for n in s["networks"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
    {
        rx += u(&n["rx_bytes"]);
        tx += u(&n["tx_bytes"]);
    }
    let (mut read, mut write) = (0, 0);
    for e in s["blkio_stats"]["io_service_bytes_recursive"]
        .as_array()
        .into_iter()
        .flatten()
    {
        match e["op"].as_str().map(str::to_ascii_lowercase).as_deref() {
            Some("read") => read += u(&e["value"]),
            Some("write") => write += u(&e["value"]),
            _ => {}
        }
    }
    let id = s["id"].as_str().unwrap_or("");
    let mut r = Map::new();
    for (k, v) in [
        ("Container", asked.to_string()),
        (
            "Name",
            s["name"]
                .as_str()
                .unwrap_or("")
                .trim_start_matches('/')
                .to_string(),
        ),
        ("ID", if trunc { short_id(id) } else { id.to_string() }),
        ("CPUPerc", format!("{cpu_pct:.2}%")),
        (
            "MemUsage",
            format!(
                "{} / {}",
                format::bytes_size(used),
                format::bytes_size(limit)
            ),
        ),
        ("MemPerc", format!("{mem_pct:.2}%")),
        (
            "NetIO",
            format!("{} / {}", format::human_size(rx), format::human_size(tx)),
        ),
        (
            "BlockIO",
            format!(
                "{} / {}",
                format::human_size(read),
                format::human_size(write)
            ),
        ),
        ("PIDs", u(&s["pids_stats"]["current"]).to_string()),
    ] {
        r.insert(k.into(), json!(v));
    }
    r
}

/// `berth stats`.
pub async fn stats(api: &Api, a: StatsArgs) -> anyhow::Result<()> {
    let names: Vec<String> = if a.containers.is_empty() {
        let q = if a.all { "all=1" } else { "" };
        api.get("/containers/json", q)
            .await?
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["Id"].as_str().map(String::from))
            .collect()
    } else {
        a.containers.clone()
    };
    let trunc = !a.no_trunc;
    if a.no_stream {
        let mut rows = Vec::new();
        for n in &names {
            let s = api
                .get(
                    &format!("/containers/{}/stats", seg(n)),
                    &query(&[("stream", "0".into())]),
                )
                .await?;
            rows.push(row(n, &s, trunc));
        }
        print!("{}", format::render(&rows, COLUMNS, a.format.as_deref())?);
        return Ok(());
    }
    let latest: Arc<Mutex<BTreeMap<String, Map<String, Value>>>> = Default::default();
    for n in names.clone() {
        let api = api.clone();
        let latest = latest.clone();
        tokio::spawn(async move {
            let Ok(resp) = api
                .stream(
                    Method::GET,
                    &format!("/containers/{}/stats", seg(&n)),
                    "stream=1",
                    None,
                )
                .await
            else {
                return;
            };
            let mut lines = tokio::io::BufReader::new(body_reader(resp)).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(s) = serde_json::from_str::<Value>(&line) {
                    latest
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(n.clone(), row(&n, &s, trunc));
                }
            }
            latest.lock().unwrap_or_else(|e| e.into_inner()).remove(&n);
        });
    }
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(500));
    loop {
        tick.tick().await;
        let rows: Vec<Map<String, Value>> = {
            let l = latest.lock().unwrap_or_else(|e| e.into_inner());
            names.iter().filter_map(|n| l.get(n).cloned()).collect()
        };
        // Clear the screen and draw the table again, as docker stats does.
        print!(
            "\x1b[2J\x1b[H{}",
            format::render(&rows, COLUMNS, a.format.as_deref())?
        );
        use std::io::Write;
        std::io::stdout().flush()?;
    }
}
