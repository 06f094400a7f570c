//! `berth`: Docker's commands and output.
//!
//! The image commands still work daemonless on the image store under `--data-root` (the
//! store berthd serves; both lock it, and images berthd's containers use are kept). Moving
//! them, and the container commands, behind the Engine API is the next step of the daemon
//! issue; until then containers are run through berthd with the `docker` CLI.

mod format;

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;

use anyhow::{bail, Context};
use berth_image::store::{ImageRecord, ImageStore};
use berth_image::{Digest, Reference};
use clap::{Args, Parser, Subcommand};
use serde_json::{json, Map, Value};

/// berth: Docker's commands, a faster engine.
///
/// Image commands work today, on the local image store (no daemon needed):
///
///   berth load -i image.tar          berth images            berth save -o out.tar busybox
///
///   berth import rootfs.tar myimg:1  berth tag myimg:1 myimg:latest   berth rmi myimg:1
///
/// Containers: start berthd and use the docker CLI against it
/// (DOCKER_HOST=unix:///run/berth/berth.sock docker run --rm busybox echo hi); berth's own
/// container commands are not written yet.
#[derive(Parser, Debug)]
#[command(name = "berth", version, verbatim_doc_comment)]
struct Opts {
    /// Where images are stored.
    #[arg(
        long,
        global = true,
        env = "BERTH_DATA_ROOT",
        default_value = "/var/lib/berth"
    )]
    data_root: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// List images
    Images(ListArgs),
    /// Load an image from a tar archive (docker save output or an OCI layout) or STDIN
    Load(LoadArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(SaveArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(TagArgs),
    /// Remove one or more images
    Rmi(RmiArgs),
    /// Show the history of an image
    History(HistoryArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(ImportArgs),
    /// Manage images
    #[command(subcommand)]
    Image(ImageCmd),
}

#[derive(Subcommand, Debug)]
enum ImageCmd {
    /// List images
    #[command(alias = "list")]
    Ls(ListArgs),
    /// Display detailed information on one or more images
    Inspect(InspectArgs),
    /// Remove unused images
    Prune(PruneArgs),
    /// Remove one or more images
    Rm(RmiArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(TagArgs),
    /// Load an image from a tar archive or STDIN
    Load(LoadArgs),
    /// Save one or more images to a tar archive
    Save(SaveArgs),
    /// Show the history of an image
    History(HistoryArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(ImportArgs),
}

#[derive(Args, Debug)]
struct ListArgs {
    /// Only show image IDs
    #[arg(short, long)]
    quiet: bool,
    /// Show digests
    #[arg(long)]
    digests: bool,
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Show all images (intermediate images are not kept, so the same as without)
    #[arg(short, long)]
    all: bool,
    /// Filter output based on conditions provided (dangling=true|false, reference=PATTERN)
    #[arg(short, long)]
    filter: Vec<String>,
    /// Pretty-print images using a Go template ("table {{.Repository}}\t{{.Tag}}", "{{json .}}")
    #[arg(long)]
    format: Option<String>,
    /// Only images of this repository (and tag)
    repository: Option<String>,
}

#[derive(Args, Debug)]
struct LoadArgs {
    /// Read from tar archive file, instead of STDIN
    #[arg(short, long)]
    input: Option<PathBuf>,
    /// Suppress the load output
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Args, Debug)]
struct SaveArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Images to save
    #[arg(required = true)]
    images: Vec<String>,
}

#[derive(Args, Debug)]
struct TagArgs {
    source: String,
    target: String,
}

#[derive(Args, Debug)]
struct RmiArgs {
    /// Force removal of the image
    #[arg(short, long)]
    force: bool,
    /// Images to remove
    #[arg(required = true)]
    images: Vec<String>,
}

#[derive(Args, Debug)]
struct HistoryArgs {
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Only show image IDs
    #[arg(short, long)]
    quiet: bool,
    image: String,
}

#[derive(Args, Debug)]
struct ImportArgs {
    /// Apply Dockerfile instruction to the created image
    #[arg(short, long)]
    change: Vec<String>,
    /// Set commit message for imported image
    #[arg(short, long)]
    message: Option<String>,
    /// A tarball file, or - for STDIN
    file: String,
    /// Repository and tag for the image
    reference: Option<String>,
}

#[derive(Args, Debug)]
struct InspectArgs {
    /// Format the output using a Go template
    #[arg(short, long)]
    format: Option<String>,
    #[arg(required = true)]
    images: Vec<String>,
}

#[derive(Args, Debug)]
struct PruneArgs {
    /// Remove all unused images, not just dangling ones
    #[arg(short, long)]
    all: bool,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
}

fn main() {
    let opts = Opts::parse();
    if let Err(e) = run(opts) {
        eprintln!("Error response from berth: {e:#}");
        std::process::exit(1);
    }
}

/// The image IDs berthd's containers were made from (their records under the data root),
/// so that the daemonless image commands never remove an image a container needs.
fn images_in_use(data_root: &std::path::Path) -> std::collections::BTreeSet<String> {
    std::fs::read_dir(data_root.join("containers"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("config.v2.json")).ok())
        .filter_map(|b| serde_json::from_slice::<Value>(&b).ok())
        .filter_map(|v| v["image"].as_str().map(String::from))
        .collect()
}

fn run(opts: Opts) -> anyhow::Result<()> {
    let store = || {
        ImageStore::open(&opts.data_root)
            .with_context(|| format!("open the image store in {}", opts.data_root.display()))
    };
    match opts.cmd {
        Cmd::Images(a) | Cmd::Image(ImageCmd::Ls(a)) => list(&store()?, a),
        Cmd::Load(a) | Cmd::Image(ImageCmd::Load(a)) => load(&store()?, a),
        Cmd::Save(a) | Cmd::Image(ImageCmd::Save(a)) => save(&store()?, a),
        Cmd::Tag(a) | Cmd::Image(ImageCmd::Tag(a)) => {
            let s = store()?;
            let img = s.resolve(&a.source)?;
            s.tag(&img.id, &Reference::parse(&a.target)?)?;
            Ok(())
        }
        Cmd::Rmi(a) | Cmd::Image(ImageCmd::Rm(a)) => {
            let used = images_in_use(&opts.data_root);
            rmi(&store()?, a, &|d: &Digest| used.contains(&d.to_string()))
        }
        Cmd::History(a) | Cmd::Image(ImageCmd::History(a)) => history(&store()?, a),
        Cmd::Import(a) | Cmd::Image(ImageCmd::Import(a)) => import(&store()?, a),
        Cmd::Image(ImageCmd::Inspect(a)) => inspect(&store()?, a),
        Cmd::Image(ImageCmd::Prune(a)) => {
            let used = images_in_use(&opts.data_root);
            prune(&store()?, a, &|d: &Digest| used.contains(&d.to_string()))
        }
    }
}

fn short(d: &Digest, no_trunc: bool) -> String {
    if no_trunc {
        d.to_string()
    } else {
        d.hex()[..12].to_string()
    }
}

fn created_of(store: &ImageStore, img: &ImageRecord) -> String {
    store
        .config_of(img)
        .ok()
        .and_then(|c| c.created().clone())
        .unwrap_or_default()
}

fn list(store: &ImageStore, a: ListArgs) -> anyhow::Result<()> {
    let mut dangling: Option<bool> = None;
    let mut patterns: Vec<String> = Vec::new();
    for f in &a.filter {
        match f.split_once('=') {
            Some(("dangling", v)) => dangling = Some(v.eq_ignore_ascii_case("true") || v == "1"),
            Some(("reference", v)) => patterns.push(v.to_string()),
            _ => bail!(
                "invalid filter {f:?}: supported are dangling=true|false and reference=PATTERN"
            ),
        }
    }
    if let Some(r) = &a.repository {
        patterns.push(r.clone());
    }
    let now = chrono::Utc::now();
    let mut rows = Vec::new();
    let mut seen_ids = std::collections::BTreeSet::new();
    let mut images = store.images()?;
    images.sort_by_key(|i| std::cmp::Reverse(created_of(store, i)));
    for img in images {
        let tags = store.tags_of(&img.id)?;
        let is_dangling = tags.is_empty();
        if dangling.is_some_and(|d| d != is_dangling) {
            continue;
        }
        let created = created_of(store, &img);
        let names: Vec<(String, String)> = if tags.is_empty() {
            vec![("<none>".into(), "<none>".into())]
        } else {
            tags.iter()
                .map(|t| (t.familiar_name(), t.tag().unwrap_or("<none>").to_string()))
                .collect()
        };
        for (repo, tag) in names {
            if !patterns.is_empty() && !patterns.iter().any(|p| matches_reference(p, &repo, &tag)) {
                continue;
            }
            if a.quiet {
                if seen_ids.insert(img.id.clone()) {
                    println!("{}", short(&img.id, a.no_trunc));
                }
                continue;
            }
            let mut row = Map::new();
            row.insert("Repository".into(), json!(repo));
            row.insert("Tag".into(), json!(tag));
            row.insert("Digest".into(), json!(img.manifest.to_string()));
            row.insert("ID".into(), json!(short(&img.id, a.no_trunc)));
            row.insert(
                "CreatedSince".into(),
                json!(format::human_age(&created, now)),
            );
            row.insert("CreatedAt".into(), json!(created));
            row.insert(
                "Size".into(),
                json!(format::human_size(store.size_of(&img))),
            );
            rows.push(row);
        }
    }
    if a.quiet {
        return Ok(());
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
    print!("{}", format::render(&rows, &cols, a.format.as_deref()));
    Ok(())
}

/// `reference=` filters: a glob on `repo` or `repo:tag` (`*` within a path component).
fn matches_reference(pattern: &str, repo: &str, tag: &str) -> bool {
    let target = if pattern.contains(':') && !pattern.ends_with(':') {
        format!("{repo}:{tag}")
    } else {
        repo.to_string()
    };
    glob(pattern.as_bytes(), target.as_bytes())
}

fn glob(p: &[u8], s: &[u8]) -> bool {
    match (p.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => glob(&p[1..], s) || (!s.is_empty() && s[0] != b'/' && glob(p, &s[1..])),
        (Some(&a), Some(&b)) if a == b || a == b'?' => glob(&p[1..], &s[1..]),
        _ => false,
    }
}

fn load(store: &ImageStore, a: LoadArgs) -> anyhow::Result<()> {
    let reader: Box<dyn Read> = match &a.input {
        Some(p) => {
            Box::new(std::fs::File::open(p).with_context(|| format!("open {}", p.display()))?)
        }
        None => {
            if std::io::stdin().is_terminal() {
                bail!("requested load from stdin, but stdin is empty");
            }
            Box::new(std::io::stdin().lock())
        }
    };
    let loaded = store.load(std::io::BufReader::new(reader))?;
    if !a.quiet {
        for (img, tags) in loaded {
            if tags.is_empty() {
                println!("Loaded image ID: {}", img.id);
            }
            for t in tags {
                println!("Loaded image: {}", t.familiar());
            }
        }
    }
    Ok(())
}

fn save(store: &ImageStore, a: SaveArgs) -> anyhow::Result<()> {
    let names: Vec<&str> = a.images.iter().map(String::as_str).collect();
    match &a.output {
        Some(path) => {
            // Written beside the target and renamed: a failed save leaves no half archive.
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            // Dropped (and so removed) if anything fails before the rename.
            let mut tmp = tempfile::NamedTempFile::with_prefix_in(".berth-save-", dir)
                .with_context(|| format!("create a temporary file in {}", dir.display()))?;
            let mut out = std::io::BufWriter::new(tmp.as_file_mut());
            store.save(&names, &mut out)?;
            // A failed final write must fail the save, not vanish in BufWriter's drop.
            out.flush()?;
            drop(out);
            tmp.as_file().sync_all()?;
            tmp.persist(path)
                .with_context(|| format!("write {}", path.display()))?;
        }
        None => {
            if std::io::stdout().is_terminal() {
                bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
            }
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            store.save(&names, &mut out)?;
            out.flush()?;
        }
    }
    Ok(())
}

fn rmi(store: &ImageStore, a: RmiArgs, in_use: &dyn Fn(&Digest) -> bool) -> anyhow::Result<()> {
    let mut failed = false;
    for name in &a.images {
        match store.remove(name, a.force, in_use) {
            Ok(r) => {
                for t in r.untagged {
                    println!("Untagged: {}", t.familiar());
                }
                for d in r.deleted {
                    println!("Deleted: {d}");
                }
            }
            Err(e) => {
                eprintln!("Error response from berth: {e}");
                failed = true;
            }
        }
    }
    store.gc()?;
    if failed {
        std::process::exit(1);
    }
    Ok(())
}

fn history(store: &ImageStore, a: HistoryArgs) -> anyhow::Result<()> {
    let img = store.resolve(&a.image)?;
    let config = serde_json::to_value(store.config_of(&img)?)?;
    let now = chrono::Utc::now();
    let history = config["history"].as_array().cloned().unwrap_or_default();
    let mut layers = img.chain.iter().rev();
    let mut rows = Vec::new();
    for (i, h) in history.iter().rev().enumerate() {
        let empty = h["empty_layer"].as_bool().unwrap_or(false);
        let size = if empty {
            0
        } else {
            layers
                .next()
                .map(|c| store.snapshots().size(c))
                .unwrap_or(0)
        };
        let id = if i == 0 {
            short(&img.id, a.no_trunc)
        } else {
            "<missing>".into()
        };
        if a.quiet {
            println!("{id}");
            continue;
        }
        let mut by = h["created_by"].as_str().unwrap_or("").to_string();
        if !a.no_trunc && by.chars().count() > 45 {
            by = by.chars().take(44).collect::<String>() + "…";
        }
        let mut row = Map::new();
        row.insert("ID".into(), json!(id));
        row.insert(
            "CreatedSince".into(),
            json!(format::human_age(h["created"].as_str().unwrap_or(""), now)),
        );
        row.insert("CreatedBy".into(), json!(by));
        row.insert("Size".into(), json!(format::human_size(size)));
        row.insert("Comment".into(), json!(h["comment"].as_str().unwrap_or("")));
        rows.push(row);
    }
    if !a.quiet {
        let cols = [
            ("ID", "IMAGE"),
            ("CreatedSince", "CREATED"),
            ("CreatedBy", "CREATED BY"),
            ("Size", "SIZE"),
            ("Comment", "COMMENT"),
        ];
        print!("{}", format::render(&rows, &cols, None));
    }
    Ok(())
}

fn import(store: &ImageStore, a: ImportArgs) -> anyhow::Result<()> {
    let reference = a.reference.as_deref().map(Reference::parse).transpose()?;
    let reader: Box<dyn Read> = if a.file == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::fs::File::open(&a.file).with_context(|| format!("open {}", a.file))?)
    };
    let created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let _ = a.message;
    let img = store.import(
        std::io::BufReader::new(reader),
        reference.as_ref(),
        &a.change,
        &created,
    )?;
    println!("{}", img.id);
    Ok(())
}

fn inspect(store: &ImageStore, a: InspectArgs) -> anyhow::Result<()> {
    let mut out = Vec::new();
    for name in &a.images {
        let img = store.resolve(name)?;
        let config = serde_json::to_value(store.config_of(&img)?)?;
        let tags: Vec<String> = store
            .tags_of(&img.id)?
            .iter()
            .map(|t| t.familiar())
            .collect();
        out.push(json!({
            "Id": img.id.to_string(),
            "RepoTags": tags,
            "RepoDigests": [],
            "Parent": "",
            "Comment": config["history"].as_array().and_then(|h| h.last()).and_then(|h| h["comment"].as_str()).unwrap_or(""),
            "Created": config["created"],
            "Config": config["config"],
            "Architecture": config["architecture"],
            "Os": config["os"],
            "Size": store.size_of(&img),
            "RootFS": {"Type": "layers", "Layers": config["rootfs"]["diff_ids"]},
            "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
        }));
    }
    match &a.format {
        Some(t) => {
            let cols: [(&str, &str); 0] = [];
            let rows: Vec<Map<String, Value>> =
                out.iter().filter_map(|v| v.as_object().cloned()).collect();
            print!("{}", format::render(&rows, &cols, Some(t)));
        }
        None => println!("{}", serde_json::to_string_pretty(&out)?),
    }
    Ok(())
}

fn prune(store: &ImageStore, a: PruneArgs, in_use: &dyn Fn(&Digest) -> bool) -> anyhow::Result<()> {
    if !a.force && std::io::stdin().is_terminal() {
        eprint!("WARNING! This will remove all dangling images.\nAre you sure you want to continue? [y/N] ");
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !answer.trim().eq_ignore_ascii_case("y") {
            return Ok(());
        }
    }
    let before: u64 = store.images()?.iter().map(|i| store.size_of(i)).sum();
    let mut deleted = Vec::new();
    if a.all {
        for img in store.images()? {
            if !in_use(&img.id) {
                let r = store.remove(&img.id.to_string(), true, in_use)?;
                deleted.extend(r.deleted);
            }
        }
    }
    let (removed, _) = store.prune_dangling(in_use)?;
    deleted.extend(removed);
    let after: u64 = store.images()?.iter().map(|i| store.size_of(i)).sum();
    if !deleted.is_empty() {
        println!("Deleted Images:");
        for d in &deleted {
            println!("deleted: {d}");
        }
        println!();
    }
    println!(
        "Total reclaimed space: {}",
        format::human_size(before.saturating_sub(after))
    );
    Ok(())
}
