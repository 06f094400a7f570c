//! `berth info`, `berth version`, `berth events`, `berth system df`, `berth system prune`.

use clap::{Args, Subcommand};
use hyper::Method;
use serde_json::{json, Map, Value};
use tokio::io::AsyncBufReadExt;

use crate::client::{body_reader, query, Api};
use crate::format;
use crate::opts::filters;

/// `berth system ...`.
#[derive(Subcommand, Debug)]
pub enum SystemCmd {
    /// Show docker disk usage
    Df(DfArgs),
    /// Get real time events from the server
    Events(EventsArgs),
    /// Display system-wide information
    Info(FormatArgs),
    /// Remove unused data
    Prune(SystemPruneArgs),
}

/// `berth system prune`.
#[derive(Args, Debug)]
pub struct SystemPruneArgs {
    /// Remove all unused images not just dangling ones
    #[arg(short, long)]
    pub all: bool,
    /// Prune anonymous volumes
    #[arg(long)]
    pub volumes: bool,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
    /// Provide filter values (e.g. "label=<key>=<value>")
    #[arg(long)]
    pub filter: Vec<String>,
}

/// `berth system prune`: stopped containers, unused networks, (anonymous volumes), dangling
/// (or all unused) images and the build cache, in the docker CLI's order and words.
pub async fn prune(api: &Api, a: SystemPruneArgs) -> anyhow::Result<()> {
    let mut warning = String::from(
        "WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one container\n",
    );
    if a.volumes {
        warning.push_str("  - all anonymous volumes not used by at least one container\n");
    }
    warning.push_str(if a.all {
        "  - all images without at least one container associated to them\n  - all build cache\n"
    } else {
        "  - all dangling images\n  - unused build cache\n"
    });
    if !a.force && !crate::containers::confirm(&warning)? {
        return Ok(());
    }
    let f = filters(&a.filter)?;
    let with = |extra: &[(&str, &str)]| -> anyhow::Result<String> {
        let mut f = f.clone();
        for (k, v) in extra {
            f.insert(k.to_string(), vec![v.to_string()]);
        }
        Ok(if f.is_empty() {
            String::new()
        } else {
            query(&[("filters", serde_json::to_string(&f)?)])
        })
    };
    let mut reclaimed = 0u64;
    let mut sections = vec![
        ("containers", "Deleted Containers:", "ContainersDeleted"),
        ("networks", "Deleted Networks:", "NetworksDeleted"),
    ];
    if a.volumes {
        sections.push(("volumes", "Deleted Volumes:", "VolumesDeleted"));
    }
    for (kind, title, key) in sections {
        let v = api
            .post(&format!("/{kind}/prune"), &with(&[])?, None)
            .await?;
        reclaimed += v["SpaceReclaimed"].as_u64().unwrap_or(0);
        let gone: Vec<&str> = v[key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x.as_str())
            .collect();
        if !gone.is_empty() {
            println!("{title}\n{}\n", gone.join("\n"));
        }
    }
    let dangling: &[(&str, &str)] = if a.all { &[("dangling", "false")] } else { &[] };
    let v = api.post("/images/prune", &with(dangling)?, None).await?;
    reclaimed += v["SpaceReclaimed"].as_u64().unwrap_or(0);
    let mut lines = Vec::new();
    for i in v["ImagesDeleted"].as_array().into_iter().flatten() {
        if let Some(u) = i["Untagged"].as_str() {
            lines.push(format!("untagged: {u}"));
        }
        if let Some(d) = i["Deleted"].as_str() {
            lines.push(format!("deleted: {d}"));
        }
    }
    if !lines.is_empty() {
        println!("Deleted Images:\n{}\n", lines.join("\n"));
    }
    let v = api.post("/build/prune", &with(&[])?, None).await?;
    reclaimed += v["SpaceReclaimed"].as_u64().unwrap_or(0);
    println!("Total reclaimed space: {}", format::human_size(reclaimed));
    Ok(())
}

/// Commands whose only flag is `--format`.
#[derive(Args, Debug)]
pub struct FormatArgs {
    /// Format output using a Go template
    #[arg(short, long)]
    pub format: Option<String>,
}

/// `berth system df`.
#[derive(Args, Debug)]
pub struct DfArgs {
    /// Format output using a Go template
    #[arg(long)]
    pub format: Option<String>,
    /// Show detailed information on space usage
    #[arg(short, long)]
    pub verbose: bool,
}

/// `berth events`.
#[derive(Args, Debug)]
pub struct EventsArgs {
    /// Filter output based on conditions provided (type=, event=, container=, image=, label=)
    #[arg(short, long)]
    pub filter: Vec<String>,
    /// Format output using a Go template
    #[arg(long)]
    pub format: Option<String>,
    /// Show all events created since timestamp
    #[arg(long)]
    pub since: Option<String>,
    /// Stream events until this timestamp
    #[arg(long)]
    pub until: Option<String>,
}

/// `berth info`.
pub async fn info(api: &Api, a: FormatArgs) -> anyhow::Result<()> {
    let i = api.get("/info", "").await?;
    if let Some(t) = &a.format {
        println!("{}", format::execute(t, &i)?);
        return Ok(());
    }
    let s = |k: &str| match &i[k] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        v => v.to_string(),
    };
    println!("Client:");
    println!(" Version:    {}", env!("CARGO_PKG_VERSION"));
    println!(" Context:    default");
    println!(" Debug Mode: false");
    println!();
    println!("Server:");
    println!(" Containers: {}", s("Containers"));
    println!("  Running: {}", s("ContainersRunning"));
    println!("  Paused: {}", s("ContainersPaused"));
    println!("  Stopped: {}", s("ContainersStopped"));
    println!(" Images: {}", s("Images"));
    println!(" Server Version: {}", s("ServerVersion"));
    println!(" Storage Driver: {}", s("Driver"));
    for (label, key) in [
        ("Logging Driver", "LoggingDriver"),
        ("Cgroup Driver", "CgroupDriver"),
        ("Cgroup Version", "CgroupVersion"),
        ("Default Runtime", "DefaultRuntime"),
        ("Init Binary", "InitBinary"),
    ] {
        if !s(key).is_empty() {
            println!(" {label}: {}", s(key));
        }
    }
    if let Some(opts) = i["SecurityOptions"].as_array().filter(|o| !o.is_empty()) {
        println!(" Security Options:");
        for o in opts.iter().filter_map(|o| o.as_str()) {
            let mut name = "";
            let mut rest = Vec::new();
            for kv in o.split(',') {
                match kv.split_once('=') {
                    Some(("name", n)) => name = n,
                    Some((k, v)) => rest.push((k, v)),
                    None => {}
                }
            }
            println!("  {name}");
            for (k, v) in rest {
                let mut k = k.to_string();
                if let Some(f) = k.get_mut(0..1) {
                    f.make_ascii_uppercase();
                }
                println!("   {k}: {v}");
            }
        }
    }
    for (label, key) in [
        ("Kernel Version", "KernelVersion"),
        ("Operating System", "OperatingSystem"),
        ("OSType", "OSType"),
        ("Architecture", "Architecture"),
        ("CPUs", "NCPU"),
    ] {
        if !s(key).is_empty() {
            println!(" {label}: {}", s(key));
        }
    }
    if let Some(m) = i["MemTotal"].as_u64() {
        println!(" Total Memory: {}", format::bytes_size(m));
    }
    println!(" Name: {}", s("Name"));
    println!(" ID: {}", s("ID"));
    if !s("DockerRootDir").is_empty() {
        println!(" Docker Root Dir: {}", s("DockerRootDir"));
    }
    println!(" Debug Mode: false");
    let warnings: Vec<&str> = i["Warnings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|w| w.as_str())
        .collect();
    if !warnings.is_empty() {
        println!();
        for w in warnings {
            eprintln!("{w}");
        }
    }
    Ok(())
}

/// `berth version`: this client, and the server it talks to (if it answers).
pub async fn version(host: &str, a: FormatArgs) -> anyhow::Result<()> {
    let (os, arch) = (std::env::consts::OS, go_arch());
    let client = json!({
        "Version": env!("CARGO_PKG_VERSION"),
        "ApiVersion": "1.44",
        "Os": os, "Arch": arch,
    });
    let server = match Api::connect(host).await {
        Ok(api) => Some(api.get("/version", "").await?),
        Err(e) => {
            if a.format.is_none() {
                print_client(&client);
            }
            return Err(e);
        }
    };
    let all = json!({"Client": client, "Server": server});
    if let Some(t) = &a.format {
        println!("{}", format::execute(t, &all)?);
        return Ok(());
    }
    print_client(&client);
    if let Some(s) = server {
        let g = |k: &str| s[k].as_str().unwrap_or("").to_string();
        println!();
        println!(
            "Server: {}",
            s["Platform"]["Name"].as_str().unwrap_or("berth")
        );
        println!(" Engine:");
        println!("  Version:          {}", g("Version"));
        println!(
            "  API version:      {} (minimum version {})",
            g("ApiVersion"),
            g("MinAPIVersion")
        );
        println!("  OS/Arch:          {}/{}", g("Os"), g("Arch"));
        println!("  Kernel Version:   {}", g("KernelVersion"));
        println!("  Experimental:     false");
    }
    Ok(())
}

fn print_client(c: &Value) {
    println!("Client:");
    println!(
        " Version:           {}",
        c["Version"].as_str().unwrap_or("")
    );
    println!(
        " API version:       {}",
        c["ApiVersion"].as_str().unwrap_or("")
    );
    println!(
        " OS/Arch:           {}/{}",
        c["Os"].as_str().unwrap_or(""),
        c["Arch"].as_str().unwrap_or("")
    );
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// An event as `docker events` prints it: time, type, action, actor, attributes.
fn event_line(e: &Value) -> String {
    let nanos = e["timeNano"].as_i64().unwrap_or(0);
    let t = chrono::DateTime::from_timestamp(nanos / 1_000_000_000, (nanos % 1_000_000_000) as u32)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
        })
        .unwrap_or_default();
    let mut attrs: Vec<String> = e["Actor"]["Attributes"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    attrs.sort();
    let attrs = if attrs.is_empty() {
        String::new()
    } else {
        format!(" ({})", attrs.join(", "))
    };
    format!(
        "{t} {} {} {}{attrs}",
        e["Type"].as_str().unwrap_or(""),
        e["Action"].as_str().unwrap_or(""),
        e["Actor"]["ID"].as_str().unwrap_or("")
    )
}

/// `berth events`.
pub async fn events(api: &Api, a: EventsArgs) -> anyhow::Result<()> {
    let mut p = Vec::new();
    for (k, v) in [("since", &a.since), ("until", &a.until)] {
        if let Some(v) = v {
            p.push((k, crate::containers::timestamp(v)?));
        }
    }
    if !a.filter.is_empty() {
        p.push(("filters", serde_json::to_string(&filters(&a.filter)?)?));
    }
    let tmpl = a
        .format
        .as_deref()
        .map(|t| {
            if t.trim() == "json" {
                format::Template::new("{{json .}}")
            } else {
                format::Template::new(t)
            }
        })
        .transpose()?;
    let resp = api.stream(Method::GET, "/events", &query(&p), None).await?;
    let mut lines = tokio::io::BufReader::new(body_reader(resp)).lines();
    while let Some(line) = lines.next_line().await? {
        let Ok(e) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        match &tmpl {
            Some(t) => println!("{}", t.execute(&e)?),
            None => println!("{}", event_line(&e)),
        }
    }
    Ok(())
}

/// `berth system df`.
pub async fn df(api: &Api, a: DfArgs) -> anyhow::Result<()> {
    let v = api.get("/system/df", "").await?;
    let list = |k: &str| v[k].as_array().cloned().unwrap_or_default();
    let images = list("Images");
    let containers = list("Containers");
    let volumes = list("Volumes");
    let pct = |r: u64, t: u64| match (r * 100).checked_div(t) {
        Some(p) => format!("{} ({p}%)", format::human_size(r)),
        None => "0B (0%)".to_string(),
    };
    let img_total: u64 = images.iter().filter_map(|i| i["Size"].as_u64()).sum();
    let img_active: Vec<&Value> = images
        .iter()
        .filter(|i| i["Containers"].as_i64().unwrap_or(0) > 0)
        .collect();
    let img_reclaim = img_total
        - img_active
            .iter()
            .filter_map(|i| i["Size"].as_u64())
            .sum::<u64>();
    let ctr_total: u64 = containers.iter().filter_map(|c| c["SizeRw"].as_u64()).sum();
    let running = |c: &&Value| c["State"] == "running" || c["State"] == "paused";
    let ctr_reclaim: u64 = containers
        .iter()
        .filter(|c| !running(c))
        .filter_map(|c| c["SizeRw"].as_u64())
        .sum();
    let vol_size = |x: &Value| x["UsageData"]["Size"].as_i64().unwrap_or(0).max(0) as u64;
    let vol_total: u64 = volumes.iter().map(vol_size).sum();
    let vol_active: Vec<&Value> = volumes
        .iter()
        .filter(|x| x["UsageData"]["RefCount"].as_i64().unwrap_or(0) > 0)
        .collect();
    let vol_reclaim = vol_total - vol_active.iter().map(|x| vol_size(x)).sum::<u64>();
    let row = |t: &str, total: usize, active: usize, size: u64, reclaim: String| {
        let mut r = Map::new();
        for (k, val) in [
            ("Type", t.to_string()),
            ("TotalCount", total.to_string()),
            ("Active", active.to_string()),
            ("Size", format::human_size(size)),
            ("Reclaimable", reclaim),
        ] {
            r.insert(k.into(), json!(val));
        }
        r
    };
    let ctr_reclaimable = if ctr_total == 0 {
        "0B".into()
    } else {
        pct(ctr_reclaim, ctr_total)
    };
    let vol_reclaimable = if vol_total == 0 {
        "0B".into()
    } else {
        pct(vol_reclaim, vol_total)
    };
    let rows = vec![
        row(
            "Images",
            images.len(),
            img_active.len(),
            img_total,
            pct(img_reclaim, img_total),
        ),
        row(
            "Containers",
            containers.len(),
            containers.iter().filter(running).count(),
            ctr_total,
            ctr_reclaimable,
        ),
        row(
            "Local Volumes",
            volumes.len(),
            vol_active.len(),
            vol_total,
            vol_reclaimable,
        ),
        row("Build Cache", 0, 0, 0, "0B".into()),
    ];
    let cols = [
        ("Type", "TYPE"),
        ("TotalCount", "TOTAL"),
        ("Active", "ACTIVE"),
        ("Size", "SIZE"),
        ("Reclaimable", "RECLAIMABLE"),
    ];
    print!("{}", format::render(&rows, &cols, a.format.as_deref())?);
    if a.verbose {
        println!();
        println!("Local Volumes space usage:");
        println!();
        let vrows: Vec<Map<String, Value>> = volumes
            .iter()
            .map(|x| {
                let mut r = Map::new();
                r.insert("Name".into(), x["Name"].clone());
                r.insert(
                    "Links".into(),
                    json!(x["UsageData"]["RefCount"].as_i64().unwrap_or(0).to_string()),
                );
                r.insert("Size".into(), json!(format::human_size(vol_size(x))));
                r
            })
            .collect();
        print!(
            "{}",
            format::render(
                &vrows,
                &[
                    ("Name", "VOLUME NAME"),
                    ("Links", "LINKS"),
                    ("Size", "SIZE")
                ],
                None
            )?
        );
    }
    Ok(())
}
