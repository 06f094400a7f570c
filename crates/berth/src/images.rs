//! The image commands: `images`, `load`, `save`, `tag`, `rmi`, `history`, `import`,
//! `image inspect`, `image prune`, all through berthd.

use anyhow::Context;
use clap::Args;
use hyper::Method;
use serde_json::{json, Map, Value};
use tokio::io::AsyncBufReadExt;

use crate::client::{body_reader, each, query, seg, streamed, Api};
use crate::containers::{confirm, go_time, short_id, PruneArgs};
use crate::format;
use crate::opts::filters;

/// `berth images`.
#[derive(Args, Debug)]
pub struct ImagesArgs {
    /// Show all images (intermediate images are not kept, so the same as without)
    #[arg(short, long)]
    pub all: bool,
    /// Show digests
    #[arg(long)]
    pub digests: bool,
    /// Filter output based on conditions provided (dangling=true|false, reference=PATTERN, label=KEY[=VALUE])
    #[arg(short, long)]
    pub filter: Vec<String>,
    /// Format output using a Go template ("table {{.Repository}}\t{{.Tag}}", "{{json .}}")
    #[arg(long)]
    pub format: Option<String>,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Only show image IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Only images of this repository (and tag)
    pub repository: Option<String>,
}

/// `berth load`.
#[derive(Args, Debug)]
pub struct LoadArgs {
    /// Read from tar archive file, instead of STDIN
    #[arg(short, long)]
    pub input: Option<String>,
    /// Suppress the load output
    #[arg(short, long)]
    pub quiet: bool,
}

/// `berth save`.
#[derive(Args, Debug)]
pub struct SaveArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short, long)]
    pub output: Option<String>,
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

/// `berth tag`.
#[derive(Args, Debug)]
pub struct TagArgs {
    /// SOURCE_IMAGE[:TAG]
    pub source: String,
    /// TARGET_IMAGE[:TAG]
    pub target: String,
}

/// `berth rmi`.
#[derive(Args, Debug)]
pub struct RmiArgs {
    /// Force removal of the image
    #[arg(short, long)]
    pub force: bool,
    /// Do not delete untagged parents
    #[arg(long)]
    pub no_prune: bool,
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

/// `berth history`.
#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// Print sizes and dates in human readable format
    #[arg(short = 'H', long, default_value_t = true, action = clap::ArgAction::Set)]
    pub human: bool,
    /// Format output using a Go template
    #[arg(long)]
    pub format: Option<String>,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Only show image IDs
    #[arg(short, long)]
    pub quiet: bool,
    pub image: String,
}

/// `berth import`.
#[derive(Args, Debug)]
pub struct ImportArgs {
    /// Apply Dockerfile instruction to the created image
    #[arg(short, long)]
    pub change: Vec<String>,
    /// Set commit message for imported image
    #[arg(short, long)]
    pub message: Option<String>,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    pub platform: Option<String>,
    /// A tarball file, or - for STDIN
    pub file: String,
    /// REPOSITORY[:TAG]
    pub reference: Option<String>,
}

/// `berth image prune`.
#[derive(Args, Debug)]
pub struct ImagePruneArgs {
    /// Remove all unused images, not just dangling ones
    #[arg(short, long)]
    pub all: bool,
    #[command(flatten)]
    pub prune: PruneArgs,
}

/// Splits `repo:tag` (a registry's port is not a tag).
fn split_tag(r: &str) -> (String, String) {
    match r.rsplit_once(':').filter(|(_, t)| !t.contains('/')) {
        Some((repo, tag)) => (repo.to_string(), tag.to_string()),
        None => (r.to_string(), String::new()),
    }
}

/// `berth images`.
pub async fn images(api: &Api, a: ImagesArgs) -> anyhow::Result<()> {
    let mut f = filters(&a.filter)?;
    if let Some(r) = &a.repository {
        f.entry("reference".into()).or_default().push(r.clone());
    }
    let q = if f.is_empty() {
        String::new()
    } else {
        query(&[("filters", serde_json::to_string(&f)?)])
    };
    let list = api.get("/images/json", &q).await?;
    let id = |i: &Value| {
        let id = i["Id"].as_str().unwrap_or("");
        if a.no_trunc {
            id.to_string()
        } else {
            short_id(id)
        }
    };
    if a.quiet {
        let mut seen = std::collections::BTreeSet::new();
        for i in list.as_array().into_iter().flatten() {
            if seen.insert(id(i)) {
                println!("{}", id(i));
            }
        }
        return Ok(());
    }
    let mut rows = Vec::new();
    for i in list.as_array().into_iter().flatten() {
        let mut tags: Vec<(String, String)> = i["RepoTags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str())
            .map(split_tag)
            .collect();
        if tags.is_empty() {
            tags.push(("<none>".into(), "<none>".into()));
        }
        let digest = i["RepoDigests"]
            .as_array()
            .and_then(|d| d.first())
            .and_then(|d| d.as_str())
            .and_then(|d| d.split_once('@'))
            .map(|(_, d)| d.to_string())
            .unwrap_or_else(|| "<none>".into());
        let created = i["Created"].as_i64().unwrap_or(0);
        let size = format::human_size(i["Size"].as_u64().unwrap_or(0));
        for (repo, tag) in tags {
            let mut row = Map::new();
            for (k, v) in [
                ("Repository", repo),
                ("Tag", tag),
                ("Digest", digest.clone()),
                ("ID", id(i)),
                ("CreatedSince", format::ago(created)),
                ("CreatedAt", go_time(created)),
                ("Size", size.clone()),
                ("VirtualSize", size.clone()),
                ("SharedSize", "N/A".into()),
                ("UniqueSize", "N/A".into()),
                ("Containers", {
                    let n = i["Containers"].as_i64().unwrap_or(-1);
                    if n < 0 {
                        "N/A".into()
                    } else {
                        n.to_string()
                    }
                }),
            ] {
                row.insert(k.into(), json!(v));
            }
            rows.push(row);
        }
    }
    let mut cols = vec![("Repository", "REPOSITORY"), ("Tag", "TAG")];
    if a.digests {
        cols.push(("Digest", "DIGEST"));
    }
    cols.extend([
        ("ID", "IMAGE ID"),
        ("CreatedSince", "CREATED"),
        ("Size", "SIZE"),
    ]);
    let all_cols = [
        ("Repository", "REPOSITORY"),
        ("Tag", "TAG"),
        ("Digest", "DIGEST"),
        ("ID", "IMAGE ID"),
        ("CreatedSince", "CREATED"),
        ("CreatedAt", "CREATED AT"),
        ("Size", "SIZE"),
        ("Containers", "CONTAINERS"),
    ];
    let cols: &[(&str, &str)] = if a.format.is_some() { &all_cols } else { &cols };
    print!("{}", format::render(&rows, cols, a.format.as_deref())?);
    Ok(())
}

/// Shows a JSON-message stream (load, import, pull): `stream` text as it is, `status`
/// lines, and the first error as the command's error.
pub async fn show_progress(
    resp: hyper::Response<hyper::body::Incoming>,
    quiet: bool,
) -> anyhow::Result<()> {
    let mut lines = tokio::io::BufReader::new(body_reader(resp)).lines();
    while let Some(line) = lines.next_line().await? {
        if line.trim().is_empty() {
            continue;
        }
        let Ok(m) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if let Some(e) = m["errorDetail"]["message"].as_str().or(m["error"].as_str()) {
            anyhow::bail!("{e}");
        }
        if quiet {
            continue;
        }
        if let Some(s) = m["stream"].as_str() {
            print!("{s}");
        } else if let Some(s) = m["status"].as_str() {
            match m["id"].as_str() {
                Some(id) => println!("{id}: {s}"),
                None => println!("{s}"),
            }
        }
    }
    Ok(())
}

/// An archive from `-i FILE` or stdin (which must not be a terminal).
async fn input(path: Option<&str>, what: &str) -> anyhow::Result<crate::client::Body> {
    match path {
        Some("-") | None => {
            if rustix::termios::isatty(std::io::stdin()) {
                anyhow::bail!("requested {what} from stdin, but stdin is empty");
            }
            Ok(streamed(tokio::io::stdin()))
        }
        Some(p) => {
            let f = tokio::fs::File::open(p)
                .await
                .with_context(|| format!("open {p}"))?;
            Ok(streamed(f))
        }
    }
}

/// `berth load`.
pub async fn load(api: &Api, a: LoadArgs) -> anyhow::Result<()> {
    let body = input(a.input.as_deref(), "load").await?;
    let q = if a.quiet { "quiet=1" } else { "quiet=0" };
    let resp = api
        .stream(
            Method::POST,
            "/images/load",
            q,
            Some((body, "application/x-tar")),
        )
        .await?;
    show_progress(resp, a.quiet).await
}

/// `berth save`.
pub async fn save(api: &Api, a: SaveArgs) -> anyhow::Result<()> {
    if a.output.is_none() && rustix::termios::isatty(std::io::stdout()) {
        anyhow::bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
    }
    let names: Vec<(&str, String)> = a.images.iter().map(|n| ("names", n.clone())).collect();
    let resp = api
        .stream(Method::GET, "/images/get", &query(&names), None)
        .await?;
    crate::containers::write_out(resp, a.output.as_deref()).await
}

/// `berth tag`.
pub async fn tag(api: &Api, a: TagArgs) -> anyhow::Result<()> {
    let (repo, tag) = split_tag(&a.target);
    let mut p = vec![("repo", repo)];
    if !tag.is_empty() {
        p.push(("tag", tag));
    }
    api.post(&format!("/images/{}/tag", seg(&a.source)), &query(&p), None)
        .await?;
    Ok(())
}

/// Prints `Untagged:` / `Deleted:` lines of a removal or prune.
fn print_removed(items: &Value) {
    for i in items.as_array().into_iter().flatten() {
        if let Some(u) = i["Untagged"].as_str() {
            println!("Untagged: {u}");
        }
        if let Some(d) = i["Deleted"].as_str() {
            println!("Deleted: {d}");
        }
    }
}

/// `berth rmi`.
pub async fn rmi(api: &Api, a: RmiArgs) -> anyhow::Result<()> {
    let mut p = Vec::new();
    if a.force {
        p.push(("force", "1".to_string()));
    }
    if a.no_prune {
        p.push(("noprune", "1".to_string()));
    }
    let q = query(&p);
    each(&a.images, |n| {
        let q = q.clone();
        async move {
            let v = api
                .call(Method::DELETE, &format!("/images/{}", seg(&n)), &q, None)
                .await?;
            print_removed(&v);
            Ok(None)
        }
    })
    .await
}

/// `berth history`.
pub async fn history(api: &Api, a: HistoryArgs) -> anyhow::Result<()> {
    let v = api
        .get(&format!("/images/{}/history", seg(&a.image)), "")
        .await?;
    let mut rows = Vec::new();
    for h in v.as_array().into_iter().flatten() {
        let id = h["Id"].as_str().unwrap_or("<missing>");
        let id = if a.no_trunc || id == "<missing>" {
            id.to_string()
        } else {
            short_id(id)
        };
        if a.quiet {
            println!("{id}");
            continue;
        }
        let created = h["Created"].as_i64().unwrap_or(0);
        let mut by = h["CreatedBy"].as_str().unwrap_or("").replace('\t', " ");
        if !a.no_trunc {
            by = crate::containers::ellipsis(&by, 45);
        }
        let size = h["Size"].as_u64().unwrap_or(0);
        let mut row = Map::new();
        for (k, val) in [
            ("ID", id),
            (
                "CreatedSince",
                if a.human {
                    format::ago(created)
                } else {
                    go_time(created)
                },
            ),
            ("CreatedAt", go_time(created)),
            ("CreatedBy", by),
            (
                "Size",
                if a.human {
                    format::human_size(size)
                } else {
                    size.to_string()
                },
            ),
            ("Comment", h["Comment"].as_str().unwrap_or("").to_string()),
        ] {
            row.insert(k.into(), json!(val));
        }
        rows.push(row);
    }
    if a.quiet {
        return Ok(());
    }
    let cols = [
        ("ID", "IMAGE"),
        ("CreatedSince", "CREATED"),
        ("CreatedBy", "CREATED BY"),
        ("Size", "SIZE"),
        ("Comment", "COMMENT"),
    ];
    print!("{}", format::render(&rows, &cols, a.format.as_deref())?);
    Ok(())
}

/// `berth import`: prints the new image's ID.
pub async fn import(api: &Api, a: ImportArgs) -> anyhow::Result<()> {
    let body = input(Some(&a.file), "import").await?;
    let mut p = vec![("fromSrc", "-".to_string())];
    if let Some(r) = &a.reference {
        let (repo, tag) = split_tag(r);
        p.push(("repo", repo));
        if !tag.is_empty() {
            p.push(("tag", tag));
        }
    }
    if let Some(m) = &a.message {
        p.push(("message", m.clone()));
    }
    if let Some(pl) = &a.platform {
        p.push(("platform", pl.clone()));
    }
    for c in &a.change {
        p.push(("changes", c.clone()));
    }
    let resp = api
        .stream(
            Method::POST,
            "/images/create",
            &query(&p),
            Some((body, "application/x-tar")),
        )
        .await?;
    show_progress(resp, false).await
}

/// `berth image prune`.
pub async fn prune(api: &Api, a: ImagePruneArgs) -> anyhow::Result<()> {
    let warning = if a.all {
        "WARNING! This will remove all images without at least one container associated to them."
    } else {
        "WARNING! This will remove all dangling images."
    };
    if !a.prune.force && !confirm(warning)? {
        return Ok(());
    }
    let mut f = filters(&a.prune.filter)?;
    if a.all {
        f.insert("dangling".into(), vec!["false".into()]);
    }
    let q = if f.is_empty() {
        String::new()
    } else {
        query(&[("filters", serde_json::to_string(&f)?)])
    };
    let v = api.post("/images/prune", &q, None).await?;
    if v["ImagesDeleted"].as_array().is_some_and(|d| !d.is_empty()) {
        println!("Deleted Images:");
        for i in v["ImagesDeleted"].as_array().into_iter().flatten() {
            if let Some(u) = i["Untagged"].as_str() {
                println!("untagged: {u}");
            }
            if let Some(d) = i["Deleted"].as_str() {
                println!("deleted: {d}");
            }
        }
        println!();
    }
    println!(
        "Total reclaimed space: {}",
        format::human_size(v["SpaceReclaimed"].as_u64().unwrap_or(0))
    );
    Ok(())
}
