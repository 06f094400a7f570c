//! `berth volume create|ls|inspect|rm|prune`.

use clap::{Args, Subcommand};
use hyper::Method;
use serde_json::{json, Map, Value};

use crate::client::{each, query, seg, Api};
use crate::containers::{confirm, inspect_each, prune_and_report, PruneArgs};
use crate::format;
use crate::opts::filters;

/// `berth volume ...`.
#[derive(Subcommand, Debug)]
pub enum VolumeCmd {
    /// Create a volume
    Create(CreateArgs),
    /// Display detailed information on one or more volumes
    Inspect(InspectArgs),
    /// List volumes
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Remove all unused local volumes
    Prune(VolumePruneArgs),
    /// Remove one or more volumes
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
}

/// `berth volume create`.
#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Specify volume driver name
    #[arg(short, long, default_value = "local")]
    pub driver: String,
    /// Set metadata for a volume
    #[arg(long)]
    pub label: Vec<String>,
    /// Set driver specific options
    #[arg(short, long)]
    pub opt: Vec<String>,
    /// The volume's name (random when left out)
    pub name: Option<String>,
}

/// `berth volume inspect`.
#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Format output using a Go template
    #[arg(short, long)]
    pub format: Option<String>,
    #[arg(required = true, value_name = "VOLUME")]
    pub volumes: Vec<String>,
}

/// `berth volume ls`.
#[derive(Args, Debug)]
pub struct LsArgs {
    /// Provide filter values (e.g. "dangling=true", "name=data", "label=a=b")
    #[arg(short, long)]
    pub filter: Vec<String>,
    /// Format output using a Go template
    #[arg(long)]
    pub format: Option<String>,
    /// Only display volume names
    #[arg(short, long)]
    pub quiet: bool,
}

/// `berth volume rm`.
#[derive(Args, Debug)]
pub struct RmArgs {
    /// Force the removal of one or more volumes
    #[arg(short, long)]
    pub force: bool,
    #[arg(required = true, value_name = "VOLUME")]
    pub volumes: Vec<String>,
}

/// `berth volume prune`.
#[derive(Args, Debug)]
pub struct VolumePruneArgs {
    /// Remove all unused volumes, not just anonymous ones
    #[arg(short, long)]
    pub all: bool,
    #[command(flatten)]
    pub prune: PruneArgs,
}

fn labels(list: &[String]) -> Map<String, Value> {
    list.iter()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or((l, ""));
            (k.to_string(), json!(v))
        })
        .collect()
}

/// `berth volume ...`.
pub async fn run(api: &Api, cmd: VolumeCmd) -> anyhow::Result<()> {
    match cmd {
        VolumeCmd::Create(a) => {
            let mut body = json!({
                "Driver": a.driver,
                "Labels": labels(&a.label),
                "DriverOpts": labels(&a.opt),
            });
            if let Some(n) = &a.name {
                body["Name"] = json!(n);
            }
            let v = api.post("/volumes/create", "", Some(&body)).await?;
            println!("{}", v["Name"].as_str().unwrap_or(""));
            Ok(())
        }
        VolumeCmd::Inspect(a) => {
            inspect_each(api, "volumes", &a.volumes, a.format.as_deref()).await
        }
        VolumeCmd::Ls(a) => {
            let q = if a.filter.is_empty() {
                String::new()
            } else {
                query(&[("filters", serde_json::to_string(&filters(&a.filter)?)?)])
            };
            let v = api.get("/volumes", &q).await?;
            let mut vols: Vec<&Value> = v["Volumes"].as_array().into_iter().flatten().collect();
            vols.sort_by_key(|v| v["Name"].as_str().unwrap_or("").to_string());
            if a.quiet {
                for v in vols {
                    println!("{}", v["Name"].as_str().unwrap_or(""));
                }
                return Ok(());
            }
            let rows: Vec<Map<String, Value>> = vols
                .iter()
                .map(|v| {
                    let mut labels: Vec<String> = v["Labels"]
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(k, x)| format!("{k}={}", x.as_str().unwrap_or("")))
                        .collect();
                    labels.sort();
                    let mut r = Map::new();
                    for (k, x) in [
                        ("Driver", v["Driver"].as_str().unwrap_or("").to_string()),
                        ("Name", v["Name"].as_str().unwrap_or("").to_string()),
                        (
                            "Mountpoint",
                            v["Mountpoint"].as_str().unwrap_or("").to_string(),
                        ),
                        ("Scope", v["Scope"].as_str().unwrap_or("local").to_string()),
                        ("Labels", labels.join(",")),
                        (
                            "Size",
                            v["UsageData"]["Size"]
                                .as_i64()
                                .filter(|s| *s >= 0)
                                .map(|s| format::human_size(s as u64))
                                .unwrap_or_else(|| "N/A".into()),
                        ),
                    ] {
                        r.insert(k.into(), json!(x));
                    }
                    r
                })
                .collect();
            let cols = [("Driver", "DRIVER"), ("Name", "VOLUME NAME")];
            let all = [
                ("Driver", "DRIVER"),
                ("Name", "VOLUME NAME"),
                ("Mountpoint", "MOUNTPOINT"),
                ("Scope", "SCOPE"),
                ("Labels", "LABELS"),
                ("Size", "SIZE"),
            ];
            let cols: &[(&str, &str)] = if a.format.is_some() { &all } else { &cols };
            print!("{}", format::render(&rows, cols, a.format.as_deref())?);
            Ok(())
        }
        VolumeCmd::Rm(a) => {
            let q = if a.force { "force=1" } else { "" };
            each(&a.volumes, |n| async move {
                api.call(Method::DELETE, &format!("/volumes/{}", seg(&n)), q, None)
                    .await?;
                Ok(Some(n))
            })
            .await
        }
        VolumeCmd::Prune(a) => {
            let warning = if a.all {
                "WARNING! This will remove all local volumes not used by at least one container."
            } else {
                "WARNING! This will remove anonymous local volumes not used by at least one container."
            };
            if !a.prune.force && !confirm(warning)? {
                return Ok(());
            }
            let mut f = filters(&a.prune.filter)?;
            if a.all {
                f.insert("all".into(), vec!["true".into()]);
            }
            prune_and_report(api, "volumes", f).await
        }
    }
}
