//! `berthd`: berth's daemon, serving the Docker Engine API on a unix socket.
//!
//! What it serves today is the image half of the API (see [`api`]); containers, volumes,
//! events and the rest come with the daemon issue. A thin binary: flags, logging, the socket,
//! signals.

mod api;

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
    let images = berth_image::store::ImageStore::open(&opts.root)
        .with_context(|| format!("open the image store in {}", opts.root.display()))?;
    let daemon = Arc::new(api::Daemon { images });
    // Two workers are plenty for a unix socket; the store's work runs on the blocking pool.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(serve(socket, daemon))
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
    axum::serve(listener, api::app(daemon))
        .with_graceful_shutdown(shutdown)
        .await?;
    let _ = std::fs::remove_file(&socket);
    Ok(())
}
