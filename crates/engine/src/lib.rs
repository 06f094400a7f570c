//! berth's container engine: creates containers from stored images, runs each under its own
//! monitor (`berth-monitor`), keeps their state on disk, and finds running containers again
//! after a restart. It knows nothing of HTTP: berthd's API layer maps the Docker Engine API
//! onto it.
//!
//! Layout under the data root (next to the image store):
//!
//! ```text
//! containers/<id>/config.v2.json   the record (written atomically: temp, fsync, rename)
//! containers/<id>/config.json      the OCI spec, made at each start
//! containers/<id>/{diff,work}      the container's writable layer
//! containers/<id>/rootfs           where the overlay is mounted while it runs
//! containers/<id>/<id>-json.log    the json-file log, written by the monitor
//! containers/<id>/exit.json        how the last run ended, written by the monitor
//! ```
//!
//! and under the exec root (tmpfs-like, per boot): `<id>.sock` (the monitor's socket) and
//! `runtime/` (the OCI runtime's state).

pub mod archive;
mod bundle;
mod connect;
mod control;
mod create;
pub mod exec;
mod exit;
pub mod filters;
pub mod health;
pub mod host;
pub mod links;
pub mod logs;
mod monitor;
mod names;
pub mod net;
pub mod record;
mod restore;
pub mod seccomp;
mod signal;
pub mod spec;
mod start;
pub mod stats;
pub mod top;
mod update;
pub mod volumes;

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use berth_image::store::{ImageStore, StoreError};
use tokio::net::UnixStream;
use tokio::sync::{broadcast, oneshot, watch};

pub use record::{Record, State, Status};
pub use signal::parse_signal;

/// Engine errors. Each maps onto one of Docker's status codes (see [`EngineError::status`]).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// No container by that name or ID.
    #[error("No such container: {0}")]
    NoSuchContainer(String),
    /// No exec by that ID.
    #[error("No such exec instance: {0}")]
    NoSuchExec(String),
    /// A path that does not exist in the container.
    #[error("Could not find the file {0} in container")]
    NotFoundInContainer(String),
    /// No volume by that name.
    #[error("get {0}: no such volume")]
    NoSuchVolume(String),
    /// Something else the request names does not exist (a volume driver, say).
    #[error("{0}")]
    NotFound(String),
    /// The image store said no.
    #[error(transparent)]
    Image(#[from] StoreError),
    /// Networking said no.
    #[error(transparent)]
    Network(#[from] berth_network::NetError),
    /// The request cannot be carried out as asked.
    #[error("{0}")]
    InvalidParameter(String),
    /// The container is in the wrong state, or the name is taken.
    #[error("{0}")]
    Conflict(String),
    /// Nothing to do (start of a running container, stop of a stopped one).
    #[error("container already in that state")]
    NotModified,
    /// The OCI runtime refused to start the container.
    #[error("failed to create task for container: {0}")]
    Runtime(String),
    /// A file-system operation failed.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// On which path.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// Anything else that went wrong inside.
    #[error("{0}")]
    Internal(String),
}

impl EngineError {
    /// The HTTP status Docker answers this error with.
    pub fn status(&self) -> u16 {
        match self {
            EngineError::NoSuchContainer(_)
            | EngineError::NoSuchExec(_)
            | EngineError::NoSuchVolume(_)
            | EngineError::NotFound(_)
            | EngineError::NotFoundInContainer(_) => 404,
            EngineError::Image(StoreError::NoSuchImage(_)) => 404,
            EngineError::Image(StoreError::Conflict { .. }) => 409,
            EngineError::Image(StoreError::Reference(_)) => 400,
            EngineError::Image(_) => 500,
            EngineError::Network(e) => e.status(),
            EngineError::InvalidParameter(_) => 400,
            EngineError::Conflict(_) => 409,
            EngineError::NotModified => 304,
            EngineError::Runtime(m) if is_user_error(m) => 400,
            EngineError::Runtime(_) | EngineError::Io { .. } | EngineError::Internal(_) => 500,
        }
    }
}

/// A runtime error that is the request's fault (a missing or non-executable command).
fn is_user_error(m: &str) -> bool {
    m.contains("not found") || m.contains("No such file") || m.contains("ermission denied")
}

fn io_err<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> EngineError + 'a {
    move |source| EngineError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// The name of the one OCI runtime berthd runs containers with (`HostConfig.Runtime`,
/// `/info`'s `DefaultRuntime`).
pub const DEFAULT_RUNTIME: &str = "berth-runtime";

/// Engine results.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// Where the engine keeps things and which binaries it runs.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The data root (`/var/lib/berth`), shared with the image store.
    pub root: PathBuf,
    /// Per-boot state: monitor sockets and the runtime's state (`/run/berth`).
    pub exec_root: PathBuf,
    /// The OCI runtime (`berth-runtime`).
    pub runtime: PathBuf,
    /// The monitor (`berth-monitor`).
    pub monitor: PathBuf,
    /// The cgroup containers are created under (dockerd's `--cgroup-parent`), e.g. `/berth`.
    pub cgroup_parent: String,
    /// The static init binary `--init` runs as pid 1 (dockerd's `init-path`; Docker ships
    /// tini as `docker-init`). `None`: none was found, and `--init` is refused.
    pub init_path: Option<PathBuf>,
    /// Run every container with the init unless it says otherwise (dockerd's `--init`).
    pub init: bool,
}

/// Something that happened to a container or volume, for `/events`.
#[derive(Debug, Clone)]
pub struct Event {
    /// `container`, `image`, `network` or `volume`.
    pub typ: &'static str,
    /// create, start, die, destroy, stop, kill, pause, unpause, rename, attach, ...
    pub action: String,
    /// The container's ID.
    pub id: String,
    /// name, image, exitCode, signal, plus the container's labels.
    pub attributes: HashMap<String, String>,
    /// When, in nanoseconds since the epoch.
    pub time_nano: i64,
}

/// What `wait` waits for (Docker's `condition` parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitCondition {
    /// Until the container is not running (at once if it is not).
    NotRunning,
    /// Until it next exits.
    NextExit,
    /// Until it has been removed.
    Removed,
}

/// Which streams an attach wants.
#[derive(Debug, Clone, Copy, Default)]
pub struct AttachOptions {
    /// Forward the client's input.
    pub stdin: bool,
    /// Send stdout.
    pub stdout: bool,
    /// Send stderr.
    pub stderr: bool,
}

/// The run-state seen by waiters.
#[derive(Debug, Clone, Default)]
struct Phase {
    running: bool,
    exits: u64,
    exit_code: i64,
    removed: bool,
}

struct Ctr {
    id: String,
    rec: Mutex<Record>,
    /// Serializes start, stop, restart and remove.
    op: tokio::sync::Mutex<()>,
    phase: watch::Sender<Phase>,
    /// Attach requests made before the container started (`docker run` attaches first).
    pending: Mutex<Vec<(AttachOptions, oneshot::Sender<UnixStream>)>>,
    /// The one writer of `config.v2.json`: held while the record is written, true once the
    /// container is being removed (nothing may write into its directory after that).
    disk: Mutex<bool>,
}

impl Ctr {
    fn new(rec: Record) -> Arc<Self> {
        let running = rec.state.status.is_running();
        let exit_code = rec.state.exit_code as i64;
        Arc::new(Ctr {
            id: rec.id.clone(),
            rec: Mutex::new(rec),
            op: tokio::sync::Mutex::new(()),
            phase: watch::channel(Phase {
                running,
                exits: 0,
                exit_code,
                removed: false,
            })
            .0,
            pending: Mutex::new(Vec::new()),
            disk: Mutex::new(false),
        })
    }

    fn snapshot(&self) -> Record {
        self.rec.lock().expect("record lock").clone()
    }
}

/// The engine.
pub struct Engine {
    cfg: EngineConfig,
    images: Arc<ImageStore>,
    containers: Mutex<HashMap<String, Arc<Ctr>>>,
    events: broadcast::Sender<Event>,
    /// The most recent events, for `/events?since=`.
    history: Mutex<std::collections::VecDeque<Event>>,
    execs: exec::Execs,
    /// Serializes volume creation and removal.
    volume_lock: Mutex<()>,
    cgroup_v2: bool,
    /// Architecture and kernel, for seccomp profiles' conditions.
    host: seccomp::Host,
    /// The runtime binary opened once through a read-only overlay (CVE-2019-5736): exec'd
    /// from here, the runtime is protected from its first instruction and skips its own
    /// re-exec. None when that failed (the runtime then protects itself).
    runtime_fd: Option<OwnedFd>,
    /// Networks and sandboxes.
    net: Arc<berth_network::Manager>,
}

impl Engine {
    /// Opens the engine's state and restores what was running (live restore): containers
    /// whose monitor still answers keep running; those that ended while berthd was away get
    /// their exit status from the monitor's record; a container whose monitor died is cleaned
    /// up and marked exited.
    pub async fn open(
        cfg: EngineConfig,
        images: Arc<ImageStore>,
        net: Arc<berth_network::Manager>,
    ) -> Result<Arc<Self>> {
        let dir = cfg.root.join("containers");
        std::fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        std::fs::create_dir_all(cfg.exec_root.join("runtime"))
            .map_err(io_err("create", &cfg.exec_root))?;
        let engine = Arc::new(Engine {
            cgroup_v2: !Path::new("/sys/fs/cgroup/memory").exists()
                && Path::new("/sys/fs/cgroup/cgroup.controllers").exists(),
            host: seccomp::Host::current(),
            runtime_fd: monitor::protected_runtime(&cfg.runtime),
            cfg,
            images,
            containers: Mutex::new(HashMap::new()),
            events: broadcast::channel(1024).0,
            history: Mutex::new(std::collections::VecDeque::new()),
            execs: Default::default(),
            volume_lock: Mutex::new(()),
            net,
        });
        engine.restore().await?;
        Ok(engine)
    }

    /// The init binary a container runs under, if it asks for one (or the daemon's default
    /// does).
    fn init_for(&self, h: &bollard_stubs::models::HostConfig) -> Result<Option<&Path>> {
        if !h.init.unwrap_or(self.cfg.init) {
            return Ok(None);
        }
        match &self.cfg.init_path {
            Some(p) => Ok(Some(p)),
            None => Err(EngineError::InvalidParameter(
                "--init: no init binary found: install tini (apt install tini, which brings docker-init's tini-static) or set berthd's --init-path".into(),
            )),
        }
    }

    fn ctr_dir(&self, id: &str) -> PathBuf {
        self.cfg.root.join("containers").join(id)
    }

    fn socket(&self, id: &str) -> PathBuf {
        self.cfg.exec_root.join(format!("{id}.sock"))
    }

    /// The networks containers join.
    pub fn networks(&self) -> &Arc<berth_network::Manager> {
        &self.net
    }

    /// The image store the engine creates containers from.
    pub fn images(&self) -> &Arc<ImageStore> {
        &self.images
    }

    /// The engine's settings.
    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// Whether the host's cgroups are v2 only.
    pub fn cgroup_v2(&self) -> bool {
        self.cgroup_v2
    }

    /// The remembered events at or after `since_nano` (the last 1000 are kept), and a
    /// receiver of every event after those.
    pub fn subscribe(&self, since_nano: Option<i64>) -> (Vec<Event>, broadcast::Receiver<Event>) {
        let h = self.history.lock().expect("history lock");
        let rx = self.events.subscribe();
        let past = match since_nano {
            Some(t) => h.iter().filter(|e| e.time_nano >= t).cloned().collect(),
            None => Vec::new(),
        };
        (past, rx)
    }

    fn publish(&self, e: Event) {
        let mut h = self.history.lock().expect("history lock");
        if h.len() >= 1000 {
            h.pop_front();
        }
        h.push_back(e.clone());
        let _ = self.events.send(e);
    }

    /// Publishes an image event as dockerd does: the image's ID as the actor, `name` (the tag
    /// concerned, else the ID itself) and the image's labels as attributes.
    pub fn image_event(&self, action: &str, id: &str, name: &str, labels: HashMap<String, String>) {
        let mut attributes = labels;
        attributes.insert("name".into(), name.into());
        self.publish(Event {
            typ: "image",
            action: action.into(),
            id: id.into(),
            attributes,
            time_nano: chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0),
        });
    }

    /// The event that ends an image prune, with the bytes it freed (no actor, as in dockerd).
    pub fn image_prune_event(&self, reclaimed: u64) {
        self.publish(Event {
            typ: "image",
            action: "prune".into(),
            id: String::new(),
            attributes: [("reclaimed".to_string(), reclaimed.to_string())].into(),
            time_nano: chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0),
        });
    }

    fn emit(&self, rec: &Record, action: &str, extra: &[(&str, String)]) {
        let mut attributes: HashMap<String, String> = rec
            .config
            .labels
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        attributes.insert("name".into(), rec.name.trim_start_matches('/').into());
        attributes.insert("image".into(), rec.image_name.clone());
        for (k, v) in extra {
            attributes.insert((*k).into(), v.clone());
        }
        self.publish(Event {
            typ: "container",
            action: action.into(),
            id: rec.id.clone(),
            attributes,
            time_nano: chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0),
        });
    }

    /// Writes the container's record as it is now. Writers take turns on the container's
    /// `disk` lock and each writes the newest record, so a slower writer never puts an older
    /// state back; once the container is being removed, writing is a no-op.
    fn persist(&self, ctr: &Ctr) -> Result<()> {
        let removed = ctr.disk.lock().expect("disk lock");
        if *removed {
            return Ok(());
        }
        let rec = ctr.snapshot();
        let path = self.ctr_dir(&rec.id).join("config.v2.json");
        let data = serde_json::to_vec(&rec).map_err(|e| EngineError::Internal(e.to_string()))?;
        berth_atomic::write(&path, &data, berth_atomic::Durability::Durable)
            .map_err(io_err("write", &path))
    }

    /// Finds a container by full ID, name (with or without the leading `/`) or unique ID
    /// prefix, as Docker does.
    fn find(&self, key: &str) -> Result<Arc<Ctr>> {
        let map = self.containers.lock().expect("containers lock");
        if let Some(c) = map.get(key) {
            return Ok(c.clone());
        }
        let name = format!("/{}", key.trim_start_matches('/'));
        if let Some(c) = map
            .values()
            .find(|c| c.rec.lock().expect("record lock").name == name)
        {
            return Ok(c.clone());
        }
        let matches: Vec<_> = if key.is_empty() {
            Vec::new()
        } else {
            map.values().filter(|c| c.id.starts_with(key)).collect()
        };
        match matches.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(EngineError::NoSuchContainer(key.into())),
            _ => Err(EngineError::InvalidParameter(format!(
                "multiple IDs found with provided prefix: {key}"
            ))),
        }
    }

    /// The container's record as it is now.
    pub fn inspect(&self, key: &str) -> Result<Record> {
        Ok(self.find(key)?.snapshot())
    }

    /// Every container's record, newest first.
    pub fn list(&self) -> Vec<Record> {
        let map = self.containers.lock().expect("containers lock");
        let mut v: Vec<Record> = map.values().map(|c| c.snapshot()).collect();
        v.sort_by(|a, b| b.created.cmp(&a.created));
        v
    }

    /// Whether any container was made from this image (`rmi` refuses then).
    pub fn image_in_use(&self, image: &berth_image::Digest) -> bool {
        let id = image.to_string();
        self.containers
            .lock()
            .expect("containers lock")
            .values()
            .any(|c| c.rec.lock().expect("record lock").image == id)
    }
}

fn random_id() -> Result<String> {
    let mut b = [0u8; 32];
    let p = Path::new("/dev/urandom");
    std::io::Read::read_exact(
        &mut std::fs::File::open(p).map_err(io_err("open", p))?,
        &mut b,
    )
    .map_err(io_err("read", p))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}
