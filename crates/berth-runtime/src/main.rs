//! `berth-runtime`: an OCI runtime with runc's command line.
//!
//! A thin binary: argument parsing and output formats live here, the work in the library.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use berth_runtime::console::Relay;
use berth_runtime::exec::ExecOptions;
use berth_runtime::foreground::Foreground;
use berth_runtime::logging::{self, LogFormat};
use berth_runtime::runtime::{self, DEFAULT_ROOT};
use berth_runtime::{sealed, CreateOptions, Runtime};
use clap::{Args, Parser, Subcommand};
use liboci_cli::{CommonCmd, StandardCmd};

/// berth's OCI runtime. It runs containers from OCI bundles and takes runc's commands and
/// flags, so tools written for runc (containerd, Docker, podman) can drive it unchanged.
///
/// A bundle is a directory with a config.json (make one with `berth-runtime spec`) and the
/// root filesystem it names. Typical use:
///
///   berth-runtime run --bundle ./bundle mycontainer      run in the foreground
///
///   berth-runtime create --bundle ./bundle c1 && berth-runtime start c1
///
///   berth-runtime state c1 ; berth-runtime kill c1 TERM ; berth-runtime delete c1
#[derive(Parser, Debug)]
#[command(name = "berth-runtime", version, verbatim_doc_comment)]
struct Opts {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    cmd: Cmd,
}

/// runc's global flags.
#[derive(Args, Debug)]
struct Global {
    /// Directory for container state (on tmpfs, like runc's /run/runc).
    #[arg(long, global = true, default_value = DEFAULT_ROOT)]
    root: PathBuf,
    /// Write the runtime's own log here (default: only errors, to stderr).
    #[arg(long, global = true)]
    log: Option<PathBuf>,
    /// Log format: text or json.
    #[arg(long, global = true, default_value = "text")]
    log_format: LogFormat,
    /// Log debug detail.
    #[arg(long, global = true)]
    debug: bool,
    /// Accepted for runc compatibility; berth-runtime manages cgroupfs directly.
    #[arg(long, global = true, hide = true)]
    systemd_cgroup: bool,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    #[command(flatten)]
    Standard(Box<StandardCmd>),
    #[command(flatten)]
    Common(Box<CommonCmd>),
}

fn main() -> ExitCode {
    sealed::name_after_argv0();
    protect_early();
    let opts = Opts::parse();
    if let Err(msg) = logging::init(
        opts.global.log.as_deref(),
        opts.global.log_format,
        opts.global.debug,
    ) {
        eprintln!("berth-runtime: {msg}");
        return ExitCode::from(1);
    }
    match dispatch(opts) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("berth-runtime: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// The exit status of an `exec` whose process could not be executed: the shell's (and
/// dockerd's) 127 for a missing executable and 126 for one that cannot be run, so that
/// `docker exec` reports them as Docker does; anything else is 1 (as every other failure).
fn failure_code(message: &str) -> u8 {
    if message.contains("not found in $PATH") {
        127
    } else if message.contains("does not have correct permissions") {
        126
    } else {
        1
    }
}

/// The commands that fork a process into a container, and therefore must run from a binary
/// no container can write (see [`sealed::ensure_protected`]).
const PROTECTED_COMMANDS: [&str; 3] = ["create", "run", "exec"];

/// Moves onto the protected copy (in place, or by a re-exec) before anything else when the
/// command line looks like one of [`PROTECTED_COMMANDS`], so that a re-exec does not discard
/// parsed arguments and a set-up logger. Only an optimisation: a word that merely looks like
/// the command (an option's value) costs one needless protection step; a miss or an error is
/// left to the check each of those commands makes after parsing, which reports failures.
fn protect_early() {
    let looks_protected = std::env::args_os()
        .skip(1)
        .any(|a| PROTECTED_COMMANDS.iter().any(|c| a == *c));
    if looks_protected {
        let _ = sealed::ensure_protected();
    }
}

fn dispatch(opts: Opts) -> anyhow::Result<u8> {
    let rt = Runtime::new(&opts.global.root);
    match opts.cmd {
        Cmd::Standard(cmd) => match *cmd {
            StandardCmd::Create(a) => {
                sealed::ensure_protected()?;
                let create = CreateOptions {
                    bundle: a.bundle,
                    pid_file: a.pid_file,
                    console_socket: a.console_socket,
                    preserve_fds: a.preserve_fds,
                    no_pivot: a.no_pivot,
                    detach: true,
                };
                rt.create(&a.container_id, &create)?;
            }
            StandardCmd::Start(a) => {
                rt.start(&a.container_id)?;
            }
            StandardCmd::State(a) => {
                let state = rt.state(&a.container_id)?;
                println!("{}", serde_json::to_string_pretty(&state)?);
            }
            StandardCmd::Kill(a) => rt.kill(&a.container_id, &a.signal, a.all)?,
            StandardCmd::Delete(a) => rt.delete(&a.container_id, a.force)?,
        },
        Cmd::Common(cmd) => match *cmd {
            CommonCmd::Run(a) => return run(&rt, a),
            CommonCmd::Exec(a) => return exec(&rt, a),
            CommonCmd::Ps(a) => ps(&rt, a)?,
            CommonCmd::List(a) => list(&rt, a)?,
            CommonCmd::Pause(a) => rt.pause(&a.container_id)?,
            CommonCmd::Resume(a) => rt.resume(&a.container_id)?,
            CommonCmd::Events(a) => events(&rt, a)?,
            CommonCmd::Spec(a) => spec(a)?,
            CommonCmd::Features(_) => {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&berth_runtime::features::features())?
                );
            }
            CommonCmd::Update(a) => update(&rt, a)?,
            CommonCmd::Checkpointt(_) => bail!("checkpoint is not supported (no CRIU)"),
        },
    }
    Ok(0)
}

/// `update`: runc's flags, or `-r file.json` with a LinuxResources object.
fn update(rt: &Runtime, a: liboci_cli::Update) -> anyhow::Result<()> {
    let change = match &a.resources {
        Some(path) => {
            let text = if path.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?
            };
            let r: oci_spec::runtime::LinuxResources = serde_json::from_str(&text)
                .with_context(|| format!("{}: not a LinuxResources object", path.display()))?;
            let m = (*r.memory()).unwrap_or_default();
            let c = r.cpu().clone().unwrap_or_default();
            runtime::UpdateResources {
                memory: m.limit(),
                memory_swap: m.swap(),
                memory_reservation: m.reservation(),
                cpu_shares: c.shares(),
                cpu_quota: c.quota(),
                cpu_period: c.period(),
                cpuset_cpus: c.cpus().clone(),
                pids_limit: r.pids().as_ref().map(|p| p.limit()),
            }
        }
        None => runtime::UpdateResources {
            memory: a.memory.map(|v| v as i64),
            memory_swap: a.memory_swap,
            memory_reservation: a.memory_reservation.map(|v| v as i64),
            cpu_shares: a.cpu_share,
            cpu_quota: a.cpu_quota.map(|v| v as i64),
            cpu_period: a.cpu_period,
            cpuset_cpus: a.cpuset_cpus.clone(),
            pids_limit: a.pids_limit,
        },
    };
    rt.update(&a.container_id, &change)?;
    Ok(())
}

/// `run`: create + start, then (unless detached) wait, forwarding signals, and exit with the
/// container's exit code; the container is deleted afterwards unless `--keep`.
fn run(rt: &Runtime, a: liboci_cli::Run) -> anyhow::Result<u8> {
    sealed::ensure_protected()?;
    let fg = if a.detach {
        None
    } else {
        Some(Foreground::prepare()?)
    };
    let create = CreateOptions {
        bundle: a.bundle,
        pid_file: a.pid_file,
        console_socket: a.console_socket,
        preserve_fds: a.preserve_fds,
        no_pivot: a.no_pivot,
        detach: a.detach,
    };
    let id = a.container_id;
    let created = rt.create(&id, &create)?;
    let mut container = created.container;
    let pid = container.pid().context("container has no init process")?;
    let relay = match created
        .console
        .map(|c| c.receive_master().and_then(Relay::start))
    {
        Some(Err(e)) => {
            let _ = rt.delete(&id, true);
            return Err(e.into());
        }
        Some(Ok(r)) => Some(r),
        None => None,
    };
    if let Err(e) = runtime::start_loaded(&mut container) {
        let _ = rt.delete(&id, true);
        return Err(e.into());
    }
    let Some(fg) = fg else { return Ok(0) };
    let code = fg.wait(pid, relay.as_ref());
    if let Some(r) = relay {
        r.finish();
    }
    if !a.keep {
        rt.delete(&id, true)?;
    }
    Ok(code? as u8)
}

fn exec(rt: &Runtime, a: liboci_cli::Exec) -> anyhow::Result<u8> {
    sealed::ensure_protected()?;
    let fg = if a.detach {
        None
    } else {
        Some(Foreground::prepare()?)
    };
    let opts = ExecOptions {
        process: a.process,
        args: a.command,
        env: a.env,
        cwd: a.cwd,
        user: a.user,
        additional_gids: a.additional_gids,
        tty: a.tty,
        caps: a.cap,
        no_new_privs: a.no_new_privs,
        preserve_fds: a.preserve_fds,
        pid_file: a.pid_file,
        console_socket: a.console_socket,
        detach: a.detach,
        ignore_paused: a.ignore_paused,
        cgroup: a.cgroup,
    };
    let (pid, console) = match rt.exec(&a.container_id, &opts) {
        Ok(started) => started,
        Err(e) => {
            let e = anyhow::Error::from(e);
            // The whole chain: the cause is in the innermost error.
            let message = format!("{e:#}");
            let code = failure_code(&message);
            if code == 1 {
                return Err(e);
            }
            tracing::error!("{message}");
            eprintln!("berth-runtime: {message}");
            return Ok(code);
        }
    };
    let relay = console
        .map(|c| c.receive_master().and_then(Relay::start))
        .transpose()?;
    match fg {
        Some(fg) => {
            let code = fg.wait(pid, relay.as_ref());
            if let Some(r) = relay {
                r.finish();
            }
            Ok(code? as u8)
        }
        None => Ok(0),
    }
}

/// `ps`: like runc, the host's `ps` output filtered to the container's processes, or the
/// bare pid list with `--format json`.
fn ps(rt: &Runtime, a: liboci_cli::Ps) -> anyhow::Result<()> {
    let pids = rt.pids(&a.container_id)?;
    match a.format.as_str() {
        "json" => println!("{}", serde_json::to_string(&pids)?),
        "table" => {
            let ps_args = if a.ps_options.is_empty() {
                vec!["-ef".to_string()]
            } else {
                a.ps_options
            };
            let out = std::process::Command::new("ps")
                .args(&ps_args)
                .output()
                .context("run ps")?;
            if !out.status.success() {
                bail!(
                    "ps {}: {}",
                    ps_args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            let text = String::from_utf8_lossy(&out.stdout);
            let mut lines = text.lines();
            let header = lines.next().unwrap_or_default();
            let col = header
                .split_whitespace()
                .position(|h| h == "PID")
                .context("ps output has no PID column")?;
            println!("{header}");
            for line in lines {
                let pid: Option<i32> = line
                    .split_whitespace()
                    .nth(col)
                    .and_then(|p| p.parse().ok());
                if pid.is_some_and(|p| pids.contains(&p)) {
                    println!("{line}");
                }
            }
        }
        other => bail!("unknown format {other:?}: use table or json"),
    }
    Ok(())
}

fn list(rt: &Runtime, a: liboci_cli::List) -> anyhow::Result<()> {
    let mut states = Vec::new();
    for id in rt.ids()? {
        // A container deleted between listing and loading is simply skipped.
        if let Ok(s) = rt.state(&id) {
            states.push(s);
        }
    }
    let mut out = std::io::stdout().lock();
    if a.quiet {
        for s in &states {
            writeln!(out, "{}", s.id)?;
        }
        return Ok(());
    }
    match a.format.as_str() {
        "json" => writeln!(out, "{}", serde_json::to_string(&states)?)?,
        "table" => {
            let rows: Vec<[String; 6]> = states
                .iter()
                .map(|s| {
                    [
                        s.id.clone(),
                        s.pid.to_string(),
                        s.status.clone(),
                        s.bundle.display().to_string(),
                        s.created.clone().unwrap_or_default(),
                        s.owner.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            let header = ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from);
            let mut widths = [0usize; 6];
            for row in std::iter::once(&header).chain(rows.iter()) {
                for (w, cell) in widths.iter_mut().zip(row) {
                    *w = (*w).max(cell.len());
                }
            }
            for row in std::iter::once(&header).chain(rows.iter()) {
                let line: Vec<String> = row
                    .iter()
                    .zip(widths)
                    .map(|(c, w)| format!("{c:<w$}"))
                    .collect();
                writeln!(out, "{}", line.join("   ").trim_end())?;
            }
        }
        other => bail!("unknown format {other:?}: use table or json"),
    }
    Ok(())
}

/// `events`: resource statistics as runc prints them, once (`--stats`) or every `--interval`
/// seconds.
fn events(rt: &Runtime, a: liboci_cli::Events) -> anyhow::Result<()> {
    loop {
        let stats = rt.stats(&a.container_id)?;
        println!(
            "{}",
            berth_runtime::events::stats_event(&a.container_id, &stats)
        );
        if a.stats {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_secs(a.interval.max(1).into()));
    }
}

/// `spec`: writes a starting config.json (runc's defaults) into the bundle directory.
fn spec(a: liboci_cli::Spec) -> anyhow::Result<()> {
    let dir = a.bundle.unwrap_or_else(|| PathBuf::from("."));
    let path = dir.join("config.json");
    if path.exists() {
        bail!("{}: file exists; remove it first", path.display());
    }
    let mut spec = if a.rootless {
        oci_spec::runtime::Spec::rootless(
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw(),
        )
    } else {
        oci_spec::runtime::Spec::default()
    };
    spec.set_hostname(Some("berth".into()));
    let json = serde_json::to_string_pretty(&spec)?;
    std::fs::write(&path, json + "\n").with_context(|| format!("write {}", path.display()))?;
    Ok(())
}
