//! `berthd`: berth's daemon, serving the Docker Engine API on a unix socket.
//!
//! What it serves today is the image half of the API (see [`api`]); containers, volumes,
//! events and the rest come with the daemon issue. A thin binary: flags, logging, the socket,
//! signals.

mod api;
mod containers;
mod system;
mod volumes;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Parser;

/// berthd: berth's daemon. Serves the Docker Engine API (images so far) on a unix socket.
///
///   berthd --host unix:///run/berth/berth.sock --root /var/lib/berth
///
///   DOCKER_HOST=unix:///run/berth/berth.sock docker images
#[derive(Parser, Debug)]
#[command(name = "berthd", version, verbatim_doc_comment)]
struct Opts {
    /// Where berth keeps its state (the same store `berth --data-root` uses).
    #[arg(long, default_value = "/var/lib/berth")]
    root: PathBuf,
    /// The socket to listen on.
    #[arg(short = 'H', long, default_value = "unix:///run/berth/berth.sock")]
    host: String,
    /// Per-boot state: monitor sockets and the OCI runtime's state.
    #[arg(long, default_value = "/run/berth")]
    exec_root: PathBuf,
    /// The OCI runtime (default: `berth-runtime` next to berthd, else on PATH).
    #[arg(long)]
    runtime: Option<PathBuf>,
    /// The cgroup containers are made under.
    #[arg(long, default_value = "/berth")]
    cgroup_parent: String,
    /// error, warn, info, debug or trace.
    #[arg(long, default_value = "info")]
    log_level: String,
}

fn main() -> anyhow::Result<()> {
    let opts = Opts::parse();
    let level: tracing_subscriber::filter::LevelFilter = opts
        .log_level
        .parse()
        .with_context(|| format!("invalid --log-level {:?}", opts.log_level))?;
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_target(false)
        .init();
    let Some(socket) = opts.host.strip_prefix("unix://").map(PathBuf::from) else {
        bail!(
            "--host {:?}: only unix:///path sockets are supported",
            opts.host
        );
    };
    let images = Arc::new(
        berth_image::store::ImageStore::open(&opts.root)
            .with_context(|| format!("open the image store in {}", opts.root.display()))?,
    );
    let config = berth_engine::EngineConfig {
        root: opts.root.clone(),
        exec_root: opts.exec_root.clone(),
        runtime: opts
            .runtime
            .clone()
            .unwrap_or_else(|| sibling("berth-runtime")),
        monitor: sibling("berth-monitor"),
        cgroup_parent: opts.cgroup_parent.clone(),
    };
    // Two workers are plenty for a unix socket; the store's work runs on the blocking pool.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let engine = berth_engine::Engine::open(config, images.clone())
            .await
            .context("restore containers")?;
        serve(socket, Arc::new(api::Daemon { images, engine })).await
    })
}

/// A berth binary installed next to berthd, or else found on PATH.
fn sibling(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join(name)))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from(name))
}

async fn serve(socket: PathBuf, daemon: Arc<api::Daemon>) -> anyhow::Result<()> {
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    // A socket left by a daemon that was killed: nobody listens on it any more.
    if socket.exists() {
        if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
            bail!("{} is in use: is another berthd running?", socket.display());
        }
        std::fs::remove_file(&socket)
            .with_context(|| format!("remove stale {}", socket.display()))?;
    }
    let listener = tokio::net::UnixListener::bind(&socket)
        .with_context(|| format!("listen on {}", socket.display()))?;
    // root and the socket's group only, as dockerd does with its docker group.
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o660))?;
    tracing::info!(socket = %socket.display(), api = api::API_VERSION, "berthd serving");
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {},
            _ = tokio::signal::ctrl_c() => {},
        }
        tracing::info!("shutting down");
    };
    // Connections are served by hyper directly (not axum::serve) so that attach and exec can
    // take the connection over after a 101 (`with_upgrades`).
    let app = api::app(daemon);
    tokio::pin!(shutdown);
    loop {
        let conn = tokio::select! {
            c = listener.accept() => c,
            _ = &mut shutdown => break,
        };
        let (stream, _) = match conn {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("accept: {e}");
                continue;
            }
        };
        let svc = hyper_util::service::TowerToHyperService::new(app.clone());
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
    // Containers keep running under their monitors; the next berthd finds them again.
    let _ = std::fs::remove_file(&socket);
    Ok(())
}
