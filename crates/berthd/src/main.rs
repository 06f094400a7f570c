//! `berthd`: berth's daemon, serving the Docker Engine API on a unix socket.
//!
//! The API is mapped onto berth-engine in [`api`], [`containers`], [`volumes`] and [`system`];
//! this file is the thin binary around them: settings, logging, the socket, signals.

mod api;
mod config;
mod containers;
mod dirlock;
mod networks;
mod system;
mod unsupported;
mod volumes;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Parser;

/// berthd: berth's daemon. Serves the Docker Engine API on a unix socket and runs containers.
///
///   berthd --host unix:///run/berth/berth.sock --root /var/lib/berth
///
///   DOCKER_HOST=unix:///run/berth/berth.sock docker run --rm busybox echo hi
///
/// Settings come from flags, then the config file (dockerd's daemon.json keys: data-root,
/// exec-root, hosts, log-level, cgroup-parent, init, init-path, cgroup-favordynmods, bip, mtu,
/// network-prefix), then
/// defaults. SIGHUP re-reads the file
/// (the log level applies at once); SIGTERM stops serving and leaves containers running.
#[derive(Parser, Debug)]
#[command(name = "berthd", version, verbatim_doc_comment)]
struct Opts {
    /// Where berth keeps its state: images, containers, volumes, networks (default
    /// /var/lib/berth; `data-root` in the config file). One berthd per root: a second one is
    /// refused.
    #[arg(long, visible_alias = "data-root")]
    root: Option<PathBuf>,
    /// Where to listen, repeatable: unix:///path (default unix:///run/berth/berth.sock) or
    /// tcp://host:port (unencrypted and unauthenticated: whoever reaches it is root here).
    #[arg(short = 'H', long)]
    host: Vec<String>,
    /// Per-boot state: monitor sockets and the OCI runtime's state (default /run/berth).
    /// Each berthd needs its own (a second one on the same exec root is refused).
    #[arg(long)]
    exec_root: Option<PathBuf>,
    /// The OCI runtime (default: `berth-runtime` next to berthd, else on PATH).
    #[arg(long)]
    runtime: Option<PathBuf>,
    /// The cgroup containers are made under (default /berth).
    #[arg(long)]
    cgroup_parent: Option<String>,
    /// error, warn, info, debug or trace (default info).
    #[arg(long)]
    log_level: Option<String>,
    /// The static init binary `docker run --init` runs as pid 1 (default: docker-init, else
    /// tini-static, on PATH; Debian's tini package has it).
    #[arg(long)]
    init_path: Option<PathBuf>,
    /// Run an init in every container unless it asks not to (docker run --init=false).
    #[arg(long)]
    init: bool,
    /// Remount the host's cgroup2 hierarchy with favordynmods, so that moving a container's
    /// first process into its cgroups no longer waits for an RCU grace period (5-20 ms per
    /// start on some hosts, v1 and hybrid ones too); forks and exits get slightly dearer
    /// host-wide. Off unless asked for.
    #[arg(long)]
    cgroup_favordynmods: bool,
    /// The default bridge network's address and subnet, e.g. 172.17.0.1/16 (default: the
    /// first free subnet of Docker's default pools).
    #[arg(long)]
    bip: Option<String>,
    /// The MTU of the networks' interfaces (default: the kernel's, 1500).
    #[arg(long)]
    mtu: Option<u32>,
    /// What berth's names on the host start with: the default bridge is `<prefix>0`, user
    /// networks' bridges `<prefix>-<id>`, the nftables table `<prefix>` (default berth). Two
    /// berthds on one host need different prefixes.
    #[arg(long)]
    network_prefix: Option<String>,
    /// The config file.
    #[arg(long, default_value = DEFAULT_CONFIG)]
    config_file: PathBuf,
}

const DEFAULT_CONFIG: &str = "/etc/berth/daemon.json";

fn parse_level(s: &str) -> anyhow::Result<tracing_subscriber::filter::LevelFilter> {
    s.parse()
        .with_context(|| format!("invalid log level {s:?}: use error, warn, info, debug or trace"))
}

/// A daemon must not inherit its starter's signal settings: `nohup` and some test harnesses
/// and service managers ignore or block SIGHUP, and tokio's handlers do not take over an
/// ignored signal. Reset the signals berthd handles and clear the mask, before any thread
/// exists.
fn unblock_signals() {
    // SAFETY: sigemptyset initialises the set it is given; sigprocmask with SIG_SETMASK and
    // signal(SIG_DFL) only change this (still single-threaded) process's signal state.
    unsafe {
        for sig in [libc::SIGHUP, libc::SIGTERM, libc::SIGINT] {
            libc::signal(sig, libc::SIG_DFL);
        }
        let mut set = std::mem::zeroed::<libc::sigset_t>();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

fn main() -> anyhow::Result<()> {
    unblock_signals();
    // Descriptors inherited from whoever started berthd would be inherited in turn by every
    // monitor, and live as long as the containers do.
    // SAFETY: nothing in this process owns a descriptor above stderr yet.
    unsafe {
        libc::close_range(3, u32::MAX, 0);
    }
    let opts = Opts::parse();
    let explicit = opts.config_file != Path::new(DEFAULT_CONFIG);
    let file = config::read(&opts.config_file, explicit)?;
    let log_level = config::pick("log-level", opts.log_level.clone(), file.log_level.clone())?
        .unwrap_or_else(|| "info".into());
    let (filter, reload) = tracing_subscriber::reload::Layer::new(parse_level(&log_level)?);
    {
        use tracing_subscriber::prelude::*;
        tracing_subscriber::registry()
            .with(filter)
            .with(
                tracing_subscriber::fmt::layer()
                    .with_target(false)
                    .with_writer(std::io::stderr)
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
            )
            .init();
    }
    let root = config::pick("data-root", opts.root.clone(), file.data_root.clone())?
        .unwrap_or_else(|| PathBuf::from("/var/lib/berth"));
    let hosts = config::pick(
        "hosts",
        Some(opts.host.clone()).filter(|h| !h.is_empty()),
        file.hosts.clone().filter(|h| !h.is_empty()),
    )?
    .unwrap_or_else(|| vec!["unix:///run/berth/berth.sock".into()]);
    let hosts = hosts
        .iter()
        .map(|h| parse_host(h))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let exec_root = config::pick("exec-root", opts.exec_root.clone(), file.exec_root.clone())?
        .unwrap_or_else(|| PathBuf::from("/run/berth"));
    // Before anything is read or changed: one daemon per data root and per exec root.
    let _root_lock = dirlock::lock(&root, "--root")?;
    let _exec_root_lock = if exec_root == root {
        None
    } else {
        Some(dirlock::lock(&exec_root, "--exec-root")?)
    };
    let cgroup_parent = config::pick(
        "cgroup-parent",
        opts.cgroup_parent.clone(),
        file.cgroup_parent.clone(),
    )?
    .unwrap_or_else(|| "/berth".into());
    let runtime = config::pick("runtime", opts.runtime.clone(), file.runtime.clone())?
        .unwrap_or_else(|| sibling("berth-runtime"));
    let init_path = config::pick("init-path", opts.init_path.clone(), file.init_path.clone())?
        .or_else(|| ["docker-init", "tini-static"].into_iter().find_map(on_path));
    let init = config::pick("init", opts.init.then_some(true), file.init)?.unwrap_or(false);
    let favordynmods = config::pick(
        "cgroup-favordynmods",
        opts.cgroup_favordynmods.then_some(true),
        file.cgroup_favordynmods,
    )?
    .unwrap_or(false);
    if favordynmods {
        match berth_engine::host::favor_dynamic_cgroup_changes() {
            Ok(what) => tracing::info!("cgroup-favordynmods: {what}"),
            Err(e) => tracing::warn!("cgroup-favordynmods: remount cgroup2: {e}"),
        }
    }
    let bip = config::pick("bip", opts.bip.clone(), file.bip.clone())?
        .map(|b| {
            b.parse::<berth_network::Cidr>().with_context(|| {
                format!("--bip {b:?}: want an address and prefix, e.g. 172.17.0.1/16")
            })
        })
        .transpose()?;
    let mtu = config::pick("mtu", opts.mtu, file.mtu)?;
    let prefix = config::pick(
        "network-prefix",
        opts.network_prefix.clone(),
        file.network_prefix.clone(),
    )?
    .unwrap_or_else(|| "berth".into());
    if prefix.is_empty()
        || prefix.len() > 8
        || !prefix.starts_with(|c: char| c.is_ascii_lowercase())
        || !prefix
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    {
        bail!("--network-prefix {prefix:?}: want 1 to 8 lowercase letters and digits, starting with a letter");
    }
    let net_config = berth_network::NetConfig {
        state_dir: root.join("network"),
        netns_dir: exec_root.join("netns"),
        prefix,
        bip,
        mtu,
    };
    // The sockets are claimed first: a second berthd on one stops before touching anything.
    let listeners = hosts
        .iter()
        .map(claim)
        .collect::<anyhow::Result<Vec<_>>>()?;
    let images = Arc::new(
        berth_image::store::ImageStore::open(&root)
            .and_then(|s| s.delete_in_background())
            .with_context(|| format!("open the image store in {}", root.display()))?,
    );
    let config = berth_engine::EngineConfig {
        root,
        exec_root,
        runtime,
        monitor: sibling("berth-monitor"),
        cgroup_parent,
        init_path,
        init,
    };
    // Two workers are plenty for a unix socket; the store's work runs on the blocking pool.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let config_file = opts.config_file.clone();
    rt.block_on(async move {
        // From here on SIGTERM and SIGINT stop berthd cleanly, also while it restores.
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("SIGTERM handler")?;
        let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
            .context("SIGINT handler")?;
        // A restore can take a while (many containers, monitors that are slow to answer):
        // SIGTERM and SIGINT end it at once. Every step of it is one a crash could cut
        // short too, so the next start finds a consistent state either way.
        let restore = async {
            let net = berth_network::Manager::open(net_config)
                .await
                .context("set up networking")?;
            berth_engine::Engine::open(config, images.clone(), net)
                .await
                .context("restore containers")
        };
        let engine = tokio::select! {
            engine = restore => engine?,
            _ = term.recv() => stop_during_restore("SIGTERM", &listeners),
            _ = int.recv() => stop_during_restore("SIGINT", &listeners),
        };
        // Registered before serving, so a SIGHUP never meets the default action (exit).
        let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("SIGHUP handler")?;
        tokio::spawn(reload_on_hup(hup, config_file, explicit, file, reload));
        serve(
            listeners,
            (term, int),
            Arc::new(api::Daemon { images, engine }),
        )
        .await
    })
}

/// Ends the process while the state is being restored. Not a return from `main`: the
/// runtime's drop would wait for the restore's blocking tasks to finish.
fn stop_during_restore(signal: &str, listeners: &[Listener]) -> ! {
    tracing::info!("{signal} while restoring: stopping; the next start resumes the restore");
    for l in listeners {
        if let Listener::Unix(path, _) = l {
            let _ = std::fs::remove_file(path);
        }
    }
    std::process::exit(0)
}

/// SIGHUP: re-read the config file; apply the log level, name what needs a restart.
async fn reload_on_hup(
    mut hup: tokio::signal::unix::Signal,
    path: PathBuf,
    explicit: bool,
    mut current: config::File,
    reload: tracing_subscriber::reload::Handle<
        tracing_subscriber::filter::LevelFilter,
        tracing_subscriber::Registry,
    >,
) {
    while hup.recv().await.is_some() {
        let new = match config::read(&path, explicit) {
            Ok(f) => f,
            Err(e) => {
                tracing::error!("reload: {e:#}; keeping the running configuration");
                continue;
            }
        };
        if new.log_level != current.log_level {
            if let Some(l) = &new.log_level {
                match parse_level(l) {
                    Ok(level) => {
                        let _ = reload.modify(|f| *f = level);
                    }
                    Err(e) => {
                        tracing::error!("reload: {e:#}; keeping the running configuration");
                        continue;
                    }
                }
            }
        }
        let needs_restart: Vec<&str> = [
            ("data-root", new.data_root != current.data_root),
            ("exec-root", new.exec_root != current.exec_root),
            ("hosts", new.hosts != current.hosts),
            ("cgroup-parent", new.cgroup_parent != current.cgroup_parent),
            ("runtime", new.runtime != current.runtime),
            ("init-path", new.init_path != current.init_path),
            ("init", new.init != current.init),
            ("bip", new.bip != current.bip),
            ("mtu", new.mtu != current.mtu),
            (
                "network-prefix",
                new.network_prefix != current.network_prefix,
            ),
            (
                "cgroup-favordynmods",
                new.cgroup_favordynmods != current.cgroup_favordynmods,
            ),
        ]
        .into_iter()
        .filter(|(_, changed)| *changed)
        .map(|(k, _)| k)
        .collect();
        if !needs_restart.is_empty() {
            tracing::warn!(
                "reload: {} take effect at the next start",
                needs_restart.join(", ")
            );
        }
        tracing::info!(
            log_level = new.log_level.as_deref().unwrap_or("info"),
            "configuration reloaded from {}",
            path.display()
        );
        current = new;
    }
}

/// A berth binary installed next to berthd, or else found on PATH.
/// `name` in one of `$PATH`'s directories.
fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn sibling(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join(name)))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from(name))
}

/// A `--host`.
#[derive(Debug, PartialEq, Eq)]
enum Host {
    Unix(PathBuf),
    Tcp(String),
}

/// Parses a `--host` as dockerd does: `unix:///path`, `tcp://host:port` (host defaults to
/// 127.0.0.1, port to 2375).
fn parse_host(h: &str) -> anyhow::Result<Host> {
    if let Some(path) = h.strip_prefix("unix://") {
        if !path.starts_with('/') {
            bail!(
                "--host {h:?}: a unix socket needs an absolute path (unix:///run/berth/berth.sock)"
            );
        }
        return Ok(Host::Unix(PathBuf::from(path)));
    }
    if let Some(addr) = h.strip_prefix("tcp://") {
        let addr = addr.trim_end_matches('/');
        let (host, port) = match addr.rsplit_once(':') {
            Some((host, port)) if !port.contains(']') => (host, port),
            _ => (addr, "2375"),
        };
        let port: u16 = port
            .parse()
            .map_err(|_| anyhow::anyhow!("--host {h:?}: invalid port {port:?}"))?;
        let host = if host.is_empty() { "127.0.0.1" } else { host };
        return Ok(Host::Tcp(format!("{host}:{port}")));
    }
    bail!("--host {h:?}: use unix:///path or tcp://host:port")
}

/// A claimed `--host`.
enum Listener {
    Unix(PathBuf, std::os::unix::net::UnixListener),
    Tcp(std::net::TcpListener),
}

/// Listens on a host. A unix socket is for root and the socket's group only (as dockerd's
/// with its docker group); one a killed daemon left is replaced, one another berthd serves
/// is refused.
fn claim(host: &Host) -> anyhow::Result<Listener> {
    let socket = match host {
        Host::Tcp(addr) => {
            let l = std::net::TcpListener::bind(addr)
                .with_context(|| format!("listen on tcp://{addr}"))?;
            l.set_nonblocking(true)?;
            tracing::warn!(
                "listening on tcp://{addr} without TLS: anyone who can reach it controls this machine as root"
            );
            return Ok(Listener::Tcp(l));
        }
        Host::Unix(p) => p,
    };
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    if socket.exists() {
        if std::os::unix::net::UnixStream::connect(socket).is_ok() {
            bail!("{} is in use: is another berthd running?", socket.display());
        }
        std::fs::remove_file(socket)
            .with_context(|| format!("remove stale {}", socket.display()))?;
    }
    let listener = std::os::unix::net::UnixListener::bind(socket)
        .with_context(|| format!("listen on {}", socket.display()))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o660))?;
    listener.set_nonblocking(true)?;
    Ok(Listener::Unix(socket.clone(), listener))
}

/// Serves one connection, with upgrades (attach and exec take it over after a 101).
fn serve_connection<S>(stream: S, app: axum::Router)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper_util::service::TowerToHyperService::new(app);
    tokio::spawn(async move {
        let io = hyper_util::rt::TokioIo::new(stream);
        if let Err(e) = hyper::server::conn::http1::Builder::new()
            .serve_connection(io, svc)
            .with_upgrades()
            .await
        {
            tracing::debug!("connection: {e}");
        }
    });
}

/// Serves every connection `accept` yields, for ever (until the task is aborted).
async fn accept_loop<S, F, Fut>(app: axum::Router, mut accept: F)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::io::Result<S>>,
{
    loop {
        match accept().await {
            Ok(s) => serve_connection(s, app.clone()),
            Err(e) => tracing::warn!("accept: {e}"),
        }
    }
}

async fn serve(
    listeners: Vec<Listener>,
    (mut term, mut int): (tokio::signal::unix::Signal, tokio::signal::unix::Signal),
    daemon: Arc<api::Daemon>,
) -> anyhow::Result<()> {
    // Connections are served by hyper directly (not axum::serve) so that attach and exec can
    // take the connection over after a 101 (`with_upgrades`). Clients that connected while
    // the state was restored have waited in the backlog.
    let app = api::app(daemon);
    let mut sockets = Vec::new();
    let mut accepting = tokio::task::JoinSet::new();
    for l in listeners {
        let app = app.clone();
        match l {
            Listener::Unix(path, l) => {
                let l = Arc::new(tokio::net::UnixListener::from_std(l)?);
                tracing::info!(socket = %path.display(), api = api::API_VERSION, "berthd serving");
                sockets.push(path);
                accepting.spawn(accept_loop(app, move || {
                    let l = l.clone();
                    async move { l.accept().await.map(|(s, _)| s) }
                }));
            }
            Listener::Tcp(l) => {
                let l = Arc::new(tokio::net::TcpListener::from_std(l)?);
                tracing::info!(address = %l.local_addr()?, api = api::API_VERSION, "berthd serving");
                accepting.spawn(accept_loop(app, move || {
                    let l = l.clone();
                    async move {
                        let (s, _) = l.accept().await?;
                        let _ = s.set_nodelay(true);
                        Ok(s)
                    }
                }));
            }
        }
    }
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    tracing::info!("shutting down");
    accepting.abort_all();
    // Containers keep running under their monitors; the next berthd finds them again.
    for socket in sockets {
        let _ = std::fs::remove_file(&socket);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_parse_as_dockerds() {
        assert_eq!(
            parse_host("unix:///run/x.sock").unwrap(),
            Host::Unix("/run/x.sock".into())
        );
        assert_eq!(
            parse_host("tcp://0.0.0.0:2376").unwrap(),
            Host::Tcp("0.0.0.0:2376".into())
        );
        assert_eq!(
            parse_host("tcp://").unwrap(),
            Host::Tcp("127.0.0.1:2375".into())
        );
        assert_eq!(
            parse_host("tcp://:9").unwrap(),
            Host::Tcp("127.0.0.1:9".into())
        );
        assert_eq!(
            parse_host("tcp://[::1]:7").unwrap(),
            Host::Tcp("[::1]:7".into())
        );
        assert_eq!(
            parse_host("tcp://[::1]").unwrap(),
            Host::Tcp("[::1]:2375".into())
        );
        for bad in [
            "unix://rel.sock",
            "tcp://h:port",
            "fd://",
            "/run/x.sock",
            "tcp://h:99999",
        ] {
            assert!(parse_host(bad).is_err(), "{bad}");
        }
    }
}
