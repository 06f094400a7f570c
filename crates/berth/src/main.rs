//! `berth`: Docker's commands and output, as a client of berthd's Engine API.

/// `print!`/`println!` that end the command quietly when stdout is a closed pipe
/// (`berth ps | head -1`), as the docker CLI does, instead of std's panic. SIGPIPE stays
/// ignored (Rust's default) so that a daemon closing a socket mid-write is an error, not a
/// silent death.
macro_rules! print {
    ($($t:tt)*) => { $crate::write_stdout(format_args!($($t)*)) };
}
macro_rules! println {
    () => { $crate::write_stdout(format_args!("\n")) };
    ($($t:tt)*) => { $crate::write_stdout(format_args!("{}\n", format_args!($($t)*))) };
}

/// Writes to stdout; a closed pipe ends the process quietly, as a broken pipe ends the
/// docker CLI.
fn write_stdout(args: std::fmt::Arguments) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|_| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("write to stdout: {e}");
        std::process::exit(1);
    }
}

mod client;
mod containers;
mod cp;
mod exec;
mod format;
mod images;
mod networks;
mod opts;
mod run;
mod stats;
mod stdio;
mod system;
mod volumes;

use clap::{Args, CommandFactory, Parser, Subcommand};

use client::{Api, Exit};
use containers::{
    CommitArgs, ExportArgs, InspectArgs, KillArgs, LogsArgs, NamesArgs, PruneArgs, PsArgs,
    RenameArgs, RmArgs, StopArgs, TopArgs, UpdateArgs,
};
use images::{
    HistoryArgs, ImagePruneArgs, ImagesArgs, ImportArgs, LoadArgs, RmiArgs, SaveArgs, TagArgs,
};
use run::{AttachArgs, CreateArgs, RunArgs, StartArgs};
use system::{EventsArgs, FormatArgs, SystemCmd};

/// berth: Docker's commands, a faster engine.
///
/// berth talks to berthd (start it with `berthd`) over its socket, the way the docker CLI
/// talks to dockerd; the docker CLI and Docker's SDKs work against berthd too
/// (DOCKER_HOST=unix:///run/berth/berth.sock).
///
///   berth load -i busybox.tar                 berth images
///   berth run --rm busybox echo hi            berth run -d --name web busybox sleep 1d
///   berth network create app                  berth run -d --network app -p 8080:80 web
///   berth exec -it web sh                     berth logs -f web
///   berth ps -a                               berth rm -f web
#[derive(Parser, Debug)]
#[command(name = "berth", version, verbatim_doc_comment)]
struct Opts {
    /// The daemon to connect to: unix:///path or tcp://host:port
    #[arg(short = 'H', long, env = "BERTH_HOST", default_value = client::DEFAULT_HOST)]
    host: String,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Create and run a new container from an image
    Run(RunArgs),
    /// Execute a command in a running container
    Exec(exec::ExecArgs),
    /// List containers
    Ps(PsArgs),
    /// List images
    Images(ImagesArgs),
    /// Create a new container
    Create(CreateArgs),
    /// Start one or more stopped containers
    Start(StartArgs),
    /// Stop one or more running containers
    Stop(StopArgs),
    /// Restart one or more containers
    Restart(StopArgs),
    /// Kill one or more running containers
    Kill(KillArgs),
    /// Remove one or more containers
    Rm(RmArgs),
    /// Fetch the logs of a container
    Logs(LogsArgs),
    /// Attach local standard input, output, and error streams to a running container
    Attach(AttachArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(NamesArgs),
    /// Return low-level information on containers, images or volumes
    Inspect(InspectArgs),
    /// Display the running processes of a container
    Top(TopArgs),
    /// Display a live stream of container(s) resource usage statistics
    Stats(stats::StatsArgs),
    /// Copy files/folders between a container and the local filesystem
    Cp(cp::CpArgs),
    /// Create a new image from a container's changes
    Commit(CommitArgs),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(ContainerArg),
    /// Export a container's filesystem as a tar archive
    Export(ExportArgs),
    /// Rename a container
    Rename(RenameArgs),
    /// List port mappings or a specific mapping for the container
    Port(networks::PortArgs),
    /// Update configuration of one or more containers
    Update(UpdateArgs),
    /// Pause all processes within one or more containers
    Pause(NamesArgs),
    /// Unpause all processes within one or more containers
    Unpause(NamesArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(ImportArgs),
    /// Load an image from a tar archive or STDIN
    Load(LoadArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(SaveArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(TagArgs),
    /// Remove one or more images
    Rmi(RmiArgs),
    /// Show the history of an image
    History(HistoryArgs),
    /// Get real time events from the server
    Events(EventsArgs),
    /// Display system-wide information
    Info(FormatArgs),
    /// Show the berth version information
    Version(FormatArgs),
    /// Manage containers
    #[command(subcommand)]
    Container(ContainerCmd),
    /// Manage images
    #[command(subcommand)]
    Image(ImageCmd),
    /// Manage volumes
    #[command(subcommand)]
    Volume(volumes::VolumeCmd),
    /// Manage networks
    #[command(subcommand)]
    Network(networks::NetworkCmd),
    /// Manage berth
    #[command(subcommand)]
    System(SystemCmd),
}

#[derive(Args, Debug)]
struct ContainerArg {
    container: String,
}

#[derive(Subcommand, Debug)]
enum ContainerCmd {
    /// Attach local standard input, output, and error streams to a running container
    Attach(AttachArgs),
    /// Create a new image from a container's changes
    Commit(CommitArgs),
    /// Copy files/folders between a container and the local filesystem
    Cp(cp::CpArgs),
    /// Create a new container
    Create(CreateArgs),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(ContainerArg),
    /// Execute a command in a running container
    Exec(exec::ExecArgs),
    /// Export a container's filesystem as a tar archive
    Export(ExportArgs),
    /// Display detailed information on one or more containers
    Inspect(InspectArgs),
    /// Kill one or more running containers
    Kill(KillArgs),
    /// Fetch the logs of a container
    Logs(LogsArgs),
    /// List containers
    #[command(visible_aliases = ["ps", "list"])]
    Ls(PsArgs),
    /// Pause all processes within one or more containers
    Pause(NamesArgs),
    /// List port mappings or a specific mapping for the container
    Port(networks::PortArgs),
    /// Remove all stopped containers
    Prune(PruneArgs),
    /// Rename a container
    Rename(RenameArgs),
    /// Restart one or more containers
    Restart(StopArgs),
    /// Remove one or more containers
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    /// Create and run a new container from an image
    Run(RunArgs),
    /// Start one or more stopped containers
    Start(StartArgs),
    /// Display a live stream of container(s) resource usage statistics
    Stats(stats::StatsArgs),
    /// Stop one or more running containers
    Stop(StopArgs),
    /// Display the running processes of a container
    Top(TopArgs),
    /// Unpause all processes within one or more containers
    Unpause(NamesArgs),
    /// Update configuration of one or more containers
    Update(UpdateArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(NamesArgs),
}

#[derive(Subcommand, Debug)]
enum ImageCmd {
    /// Show the history of an image
    History(HistoryArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(ImportArgs),
    /// Display detailed information on one or more images
    Inspect(InspectArgs),
    /// Load an image from a tar archive or STDIN
    Load(LoadArgs),
    /// List images
    #[command(visible_alias = "list")]
    Ls(ImagesArgs),
    /// Remove unused images
    Prune(ImagePruneArgs),
    /// Remove one or more images
    #[command(visible_alias = "remove")]
    Rm(RmiArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(SaveArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(TagArgs),
}

/// The management commands' forms, mapped onto the top-level ones.
fn flatten(cmd: Cmd) -> Cmd {
    match cmd {
        Cmd::Container(c) => match c {
            ContainerCmd::Attach(a) => Cmd::Attach(a),
            ContainerCmd::Commit(a) => Cmd::Commit(a),
            ContainerCmd::Cp(a) => Cmd::Cp(a),
            ContainerCmd::Create(a) => Cmd::Create(a),
            ContainerCmd::Diff(a) => Cmd::Diff(a),
            ContainerCmd::Exec(a) => Cmd::Exec(a),
            ContainerCmd::Export(a) => Cmd::Export(a),
            ContainerCmd::Inspect(mut a) => {
                a.typ = Some("container".into());
                Cmd::Inspect(a)
            }
            ContainerCmd::Kill(a) => Cmd::Kill(a),
            ContainerCmd::Logs(a) => Cmd::Logs(a),
            ContainerCmd::Ls(a) => Cmd::Ps(a),
            ContainerCmd::Pause(a) => Cmd::Pause(a),
            ContainerCmd::Port(a) => Cmd::Port(a),
            ContainerCmd::Prune(a) => Cmd::Container(ContainerCmd::Prune(a)),
            ContainerCmd::Rename(a) => Cmd::Rename(a),
            ContainerCmd::Restart(a) => Cmd::Restart(a),
            ContainerCmd::Rm(a) => Cmd::Rm(a),
            ContainerCmd::Run(a) => Cmd::Run(a),
            ContainerCmd::Start(a) => Cmd::Start(a),
            ContainerCmd::Stats(a) => Cmd::Stats(a),
            ContainerCmd::Stop(a) => Cmd::Stop(a),
            ContainerCmd::Top(a) => Cmd::Top(a),
            ContainerCmd::Unpause(a) => Cmd::Unpause(a),
            ContainerCmd::Update(a) => Cmd::Update(a),
            ContainerCmd::Wait(a) => Cmd::Wait(a),
        },
        Cmd::Image(i) => match i {
            ImageCmd::History(a) => Cmd::History(a),
            ImageCmd::Import(a) => Cmd::Import(a),
            ImageCmd::Inspect(mut a) => {
                a.typ = Some("image".into());
                Cmd::Inspect(a)
            }
            ImageCmd::Load(a) => Cmd::Load(a),
            ImageCmd::Ls(a) => Cmd::Images(a),
            ImageCmd::Prune(a) => Cmd::Image(ImageCmd::Prune(a)),
            ImageCmd::Rm(a) => Cmd::Rmi(a),
            ImageCmd::Save(a) => Cmd::Save(a),
            ImageCmd::Tag(a) => Cmd::Tag(a),
        },
        Cmd::System(SystemCmd::Events(a)) => Cmd::Events(a),
        Cmd::System(SystemCmd::Info(a)) => Cmd::Info(a),
        other => other,
    }
}

async fn dispatch(host: &str, cmd: Cmd) -> anyhow::Result<()> {
    let cmd = flatten(cmd);
    if let Cmd::Version(a) = cmd {
        return system::version(host, a).await;
    }
    let api = Api::connect(host).await?;
    let api = &api;
    match cmd {
        Cmd::Run(a) => run::run(api, a).await,
        Cmd::Create(a) => run::create_cmd(api, a).await,
        Cmd::Start(a) => run::start(api, a).await,
        Cmd::Attach(a) => run::attach(api, a).await,
        Cmd::Exec(a) => exec::exec(api, a).await,
        Cmd::Ps(a) => containers::ps(api, a).await,
        Cmd::Stop(a) => containers::stop(api, a, false).await,
        Cmd::Restart(a) => containers::stop(api, a, true).await,
        Cmd::Kill(a) => containers::kill(api, a).await,
        Cmd::Rm(a) => containers::rm(api, a).await,
        Cmd::Logs(a) => containers::logs(api, a).await,
        Cmd::Wait(a) => containers::wait(api, a).await,
        Cmd::Inspect(a) => {
            let only = a.typ.clone();
            containers::inspect(api, a, only.as_deref()).await
        }
        Cmd::Top(a) => containers::top(api, a).await,
        Cmd::Stats(a) => stats::stats(api, a).await,
        Cmd::Cp(a) => cp::cp(api, a).await,
        Cmd::Commit(a) => containers::commit(api, a).await,
        Cmd::Diff(a) => containers::diff(api, &a.container).await,
        Cmd::Export(a) => containers::export(api, a).await,
        Cmd::Rename(a) => containers::rename(api, a).await,
        Cmd::Port(a) => networks::port(api, a).await,
        Cmd::Update(a) => containers::update(api, a).await,
        Cmd::Pause(a) => containers::pause(api, a, "pause").await,
        Cmd::Unpause(a) => containers::pause(api, a, "unpause").await,
        Cmd::Container(ContainerCmd::Prune(a)) => containers::prune(api, a).await,
        Cmd::Images(a) => images::images(api, a).await,
        Cmd::Import(a) => images::import(api, a).await,
        Cmd::Load(a) => images::load(api, a).await,
        Cmd::Save(a) => images::save(api, a).await,
        Cmd::Tag(a) => images::tag(api, a).await,
        Cmd::Rmi(a) => images::rmi(api, a).await,
        Cmd::History(a) => images::history(api, a).await,
        Cmd::Image(ImageCmd::Prune(a)) => images::prune(api, a).await,
        Cmd::Volume(v) => volumes::run(api, v).await,
        Cmd::Network(n) => networks::run(api, n).await,
        Cmd::Events(a) => system::events(api, a).await,
        Cmd::Info(a) => system::info(api, a).await,
        Cmd::System(SystemCmd::Df(a)) => system::df(api, a).await,
        Cmd::System(SystemCmd::Prune(a)) => system::prune(api, a).await,
        Cmd::Version(_) | Cmd::Container(_) | Cmd::Image(_) | Cmd::System(_) => {
            unreachable!("flattened above")
        }
    }
}

/// A failure that was only our stdout going away (`berth logs -f | head`).
fn broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn main() {
    let opts = Opts::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let Some(cmd) = opts.cmd else {
        // As `docker` alone: the whole help, on stdout, and success.
        let _ = Opts::command().print_long_help();
        std::process::exit(0);
    };
    let result = rt.block_on(dispatch(&opts.host, cmd));
    let code = match result {
        Ok(()) => 0,
        Err(e) if broken_pipe(&e) => 0,
        Err(e) => match e.downcast_ref::<Exit>() {
            Some(x) => {
                if !x.message.is_empty() {
                    eprintln!("{}", x.message);
                }
                x.code
            }
            None => {
                eprintln!("{e:#}");
                1
            }
        },
    };
    // Not through the runtime's drop: a stdin reader may still be blocked in read(2).
    std::process::exit(code);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_parses_as_dockers() {
        Opts::command().debug_assert();
        let o = Opts::parse_from([
            "berth",
            "run",
            "--rm",
            "-h",
            "box",
            "-it",
            "busybox",
            "sh",
            "-c",
            "echo -n hi",
        ]);
        let Some(Cmd::Run(r)) = o.cmd else { panic!() };
        assert!(r.rm && r.opts.interactive && r.opts.tty);
        assert_eq!(r.opts.hostname.as_deref(), Some("box"));
        assert_eq!(r.args, ["busybox", "sh", "-c", "echo -n hi"]);
        let o = Opts::parse_from(["berth", "exec", "-it", "web", "ls", "-l"]);
        let Some(Cmd::Exec(e)) = o.cmd else { panic!() };
        assert_eq!(e.args, ["web", "ls", "-l"]);
        let o = Opts::parse_from(["berth", "container", "ls", "-aq"]);
        assert!(matches!(flatten(o.cmd.unwrap()), Cmd::Ps(p) if p.all && p.quiet));
        let o = Opts::parse_from(["berth", "image", "rm", "x"]);
        assert!(matches!(flatten(o.cmd.unwrap()), Cmd::Rmi(_)));
    }

    use clap::CommandFactory;
}
