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
pub mod exec;
pub mod filters;
pub mod health;
pub mod host;
pub mod links;
pub mod logs;
mod names;
pub mod net;
pub mod record;
pub mod seccomp;
pub mod spec;
pub mod stats;
pub mod top;
mod update;
pub mod volumes;

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_image::store::{ImageStore, StoreError};
use berth_monitor::{Exit, Request, Started};
use bollard_stubs::models::{ContainerConfig, ContainerCreateBody};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::{broadcast, oneshot, watch};

pub use record::{Record, State, Status};

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

/// How a start's networking turned out, for the blocking half of the start.
struct NetUp {
    /// The namespace to run in.
    netns: NetNsBuf,
    /// Another container whose /etc files it shares (`--network container:`).
    share: Option<PathBuf>,
    /// The default bridge's address (`--add-host x:host-gateway`).
    gateway: Option<std::net::Ipv4Addr>,
}

enum NetNsBuf {
    Host,
    Join(PathBuf),
}

impl NetNsBuf {
    fn as_spec(&self) -> spec::NetNs<'_> {
        match self {
            NetNsBuf::Host => spec::NetNs::Host,
            NetNsBuf::Join(p) => spec::NetNs::Join(p),
        }
    }
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
            runtime_fd: protected_runtime(&cfg.runtime),
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

    /// `POST /containers/create`: records the container and makes its writable layer. The
    /// request is checked as far as it can be before a start (command, limits, mounts,
    /// capabilities), so a bad one is refused here and leaves nothing behind.
    /// Returns the record and Docker's warnings about the request.
    pub async fn create(
        &self,
        name: Option<&str>,
        body: ContainerCreateBody,
    ) -> Result<(Record, Vec<String>)> {
        let image_name = body
            .image
            .clone()
            .filter(|i| !i.is_empty())
            .ok_or_else(|| EngineError::InvalidParameter("no image specified".into()))?;
        let images = self.images.clone();
        // The config blob is read (and verified) once: the OCI type for the merge, the raw
        // JSON for HEALTHCHECK, a Docker extension the OCI type does not carry.
        let (image, image_cfg, raw) = {
            let image_name = image_name.clone();
            tokio::task::spawn_blocking(move || -> Result<_> {
                let img = images.resolve(&image_name)?;
                let bytes = images.content().read(&img.id).map_err(StoreError::from)?;
                let cfg = berth_image::manifest::parse_config(&img.id.to_string(), &bytes)
                    .map_err(StoreError::from)?;
                let raw: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
                Ok((img, cfg, raw))
            })
            .await
            .map_err(|e| EngineError::Internal(e.to_string()))??
        };
        let mut host = body.host_config.clone().unwrap_or_default();
        check_resources(&host)?;
        let mut config = to_container_config(&body)?;
        spec::merge_image_config(&mut config, image_cfg.config().as_ref());
        let image_health: Option<bollard_stubs::models::HealthConfig> =
            serde_json::from_value(raw["config"]["Healthcheck"].clone()).ok();
        config.healthcheck = merge_health(config.healthcheck.take(), image_health);
        if config.hostname.as_deref().unwrap_or("").is_empty() {
            config.hostname = None;
        }
        // The defaults dockerd fills in, which clients read back from inspect.
        match host.runtime.as_deref() {
            None | Some("") => host.runtime = Some(DEFAULT_RUNTIME.into()),
            Some(DEFAULT_RUNTIME) => {}
            Some(other) => {
                return Err(EngineError::InvalidParameter(format!(
                    "Unknown runtime specified {other}"
                )))
            }
        }
        if host.network_mode.as_deref().unwrap_or("").is_empty() {
            host.network_mode = Some("default".into());
        }
        if host
            .log_config
            .as_ref()
            .and_then(|l| l.typ.as_deref())
            .is_none_or(str::is_empty)
        {
            host.log_config = Some(bollard_stubs::models::HostConfigLogConfig {
                typ: Some("json-file".into()),
                config: Some(
                    host.log_config
                        .as_ref()
                        .and_then(|l| l.config.clone())
                        .unwrap_or_default(),
                ),
            });
        }
        if host.restart_policy.as_ref().and_then(|p| p.name).is_none() {
            host.restart_policy = Some(bollard_stubs::models::RestartPolicy {
                name: Some(bollard_stubs::models::RestartPolicyNameEnum::NO),
                maximum_retry_count: Some(0),
            });
        }
        if host.auto_remove.unwrap_or(false)
            && host
                .restart_policy
                .as_ref()
                .and_then(|p| p.name)
                .is_some_and(|n| {
                    !matches!(
                        n,
                        bollard_stubs::models::RestartPolicyNameEnum::EMPTY
                            | bollard_stubs::models::RestartPolicyNameEnum::NO
                    )
                })
        {
            return Err(EngineError::InvalidParameter(
                "can't create 'AutoRemove' container with restart policy".into(),
            ));
        }
        let plan = net::plan(&self.net, &config, &host, body.networking_config.as_ref()).await?;
        if let net::Mode::Container(target) = net::Mode::of(&host) {
            // It shares the other container's hostname along with its network.
            config.hostname = self.find(&target)?.snapshot().config.hostname;
        }
        // Everything the spec needs but the mounted rootfs: refuse bad requests now.
        let probe_user = spec::User::default();
        spec::build(
            &config,
            &host,
            &spec::Inputs {
                id: "probe",
                rootfs: Path::new("/"),
                etc_dir: Path::new("/"),
                hostname: "probe",
                user: &probe_user,
                cgroup: "/probe",
                cgroup_v2: self.cgroup_v2,
                mounts: &[],
                devices: &[],
                host: self.host,
                init: self.init_for(&host)?,
                netns: spec::NetNs::New,
                link_env: &[],
            },
        )
        .map_err(|e| EngineError::InvalidParameter(e.0))?;
        resolve_devices(&host)?;
        for b in host.binds.clone().unwrap_or_default() {
            spec::parse_bind(&b).map_err(|e| EngineError::InvalidParameter(e.0))?;
        }
        let links = self.check_links(
            host.links.as_deref().unwrap_or_default(),
            host.network_mode.as_deref().unwrap_or(""),
        )?;
        let mounts = self.resolve_mounts(&config, &host)?;

        let id = random_id()?;
        let ctr_dir = self.ctr_dir(&id);
        let mut rec = Record {
            id: id.clone(),
            name: String::new(),
            created: now(),
            image: image.id.to_string(),
            image_name,
            config,
            host_config: host,
            state: State::default(),
            restart_count: 0,
            manually_stopped: false,
            mounts,
            log_path: ctr_dir
                .join(format!("{id}-json.log"))
                .to_string_lossy()
                .into_owned(),
            networks: plan.networks,
            net: Default::default(),
        };
        if rec.config.hostname.is_none() {
            rec.config.hostname =
                Some(if rec.host_config.network_mode.as_deref() == Some("host") {
                    rustix::system::uname()
                        .nodename()
                        .to_string_lossy()
                        .into_owned()
                } else {
                    id[..12].to_string()
                });
        }
        // Reserve the name and register the container in one step under the lock.
        let reserved = (|| -> Result<Arc<Ctr>> {
            let mut map = self.containers.lock().expect("containers lock");
            let name = match name.filter(|n| !n.is_empty()) {
                Some(n) => {
                    let n = n.trim_start_matches('/');
                    if !names::valid(n) {
                        return Err(EngineError::InvalidParameter(format!(
                            "Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
                        )));
                    }
                    let full = format!("/{n}");
                    if let Some(other) = map
                        .values()
                        .find(|c| c.rec.lock().expect("record lock").name == full)
                    {
                        return Err(EngineError::Conflict(format!(
                            "Conflict. The container name \"{full}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.",
                            other.id
                        )));
                    }
                    full
                }
                None => loop {
                    let n = format!("/{}", names::random());
                    if !map
                        .values()
                        .any(|c| c.rec.lock().expect("record lock").name == n)
                    {
                        break n;
                    }
                },
            };
            // Links as dockerd keeps them: `/db:/web/db`.
            if !links.is_empty() {
                rec.host_config.links = Some(
                    links
                        .iter()
                        .map(|(child, alias)| format!("{child}:{name}/{alias}"))
                        .collect(),
                );
            }
            rec.name = name;
            let ctr = Ctr::new(rec.clone());
            map.insert(id.clone(), ctr.clone());
            Ok(ctr)
        })();
        // A refused create leaves no volume made for it behind.
        let ctr = match reserved {
            Ok(c) => c,
            Err(e) => {
                self.remove_anonymous(&rec.mounts);
                return Err(e);
            }
        };
        let made = (|| -> Result<()> {
            for sub in ["diff", "work", "rootfs"] {
                let d = ctr_dir.join(sub);
                std::fs::create_dir_all(&d).map_err(io_err("create", &d))?;
            }
            self.persist(&ctr)
        })();
        if let Err(e) = made {
            self.containers.lock().expect("containers lock").remove(&id);
            let _ = std::fs::remove_dir_all(&ctr_dir);
            self.remove_anonymous(&rec.mounts);
            return Err(e);
        }
        drop(ctr);
        self.emit(&rec, "create", &[]);
        Ok((rec, plan.warnings))
    }

    /// `POST /containers/{id}/start`.
    pub async fn start(self: &Arc<Self>, key: &str) -> Result<()> {
        let ctr = self.find(key)?;
        let _op = ctr.op.lock().await;
        self.start_locked(&ctr).await
    }

    async fn start_locked(self: &Arc<Self>, ctr: &Arc<Ctr>) -> Result<()> {
        let rec = ctr.snapshot();
        match rec.state.status {
            Status::Running => return Err(EngineError::NotModified),
            Status::Paused => {
                return Err(EngineError::Conflict(
                    "cannot start a paused container, try unpause instead".into(),
                ))
            }
            Status::Removing | Status::Dead => {
                return Err(EngineError::Conflict(format!(
                    "container {} is marked for removal and cannot be started",
                    rec.id
                )))
            }
            _ => {}
        }
        match self.launch(ctr, &rec).await {
            Ok(pid) => {
                let rec = {
                    let mut r = ctr.rec.lock().expect("record lock");
                    r.state = State {
                        status: Status::Running,
                        pid,
                        exit_code: 0,
                        started_at: now(),
                        finished_at: r.state.finished_at.clone(),
                        oom_killed: false,
                        error: String::new(),
                        health: None,
                    };
                    r.manually_stopped = false;
                    r.clone()
                };
                self.start_health(ctr);
                self.persist(ctr)?;
                // As dockerd: the container joining each of its networks, then its start.
                self.endpoint_events("connect", &rec.id, &rec.net.endpoints)
                    .await;
                self.emit(&rec, "start", &[]);
                Ok(())
            }
            Err(e) => {
                let rec = {
                    let mut r = ctr.rec.lock().expect("record lock");
                    r.state.error = e.to_string();
                    r.state.exit_code = if e.to_string().contains("ermission denied") {
                        126
                    } else {
                        127
                    };
                    r.clone()
                };
                let _ = self.persist(ctr);
                if rec.host_config.auto_remove.unwrap_or(false) {
                    // As dockerd: an --rm container that cannot start is removed (the CLI
                    // waits for that before it exits).
                    self.auto_remove(&rec.id);
                }
                Err(e)
            }
        }
    }

    /// Makes the container's networking, then starts it; returns the init's pid. A start
    /// that fails leaves no networking behind.
    async fn launch(self: &Arc<Self>, ctr: &Arc<Ctr>, rec: &Record) -> Result<i32> {
        let (up, state) = self.net_up(rec).await?;
        let made = state.sandbox.is_some();
        let mut rec = rec.clone();
        rec.net = state.clone();
        // Recorded before the container can exit, so its exit tears it down.
        ctr.rec.lock().expect("record lock").net = state;
        let r = self.launch_with(ctr, &rec, up).await;
        if r.is_err() && made {
            self.net.teardown(&rec.id).await;
            ctr.rec.lock().expect("record lock").net = Default::default();
        }
        r
    }

    /// The container's network namespace for this start: a sandbox on its networks, the
    /// host's, a new empty one, or another running container's.
    async fn net_up(&self, rec: &Record) -> Result<(NetUp, record::NetState)> {
        let h = &rec.host_config;
        let gateway = if h
            .extra_hosts
            .iter()
            .flatten()
            .any(|e| e.ends_with("host-gateway"))
        {
            self.net
                .get("bridge")
                .await
                .ok()
                .and_then(|n| n.pool.map(|p| p.gateway))
        } else {
            None
        };
        let up = |netns, share| NetUp {
            netns,
            share,
            gateway,
        };
        match net::Mode::of(h) {
            net::Mode::Host => Ok((up(NetNsBuf::Host, None), Default::default())),
            net::Mode::None => {
                // A namespace of its own whose loopback is up, as Docker's none network.
                let (path, _) = self.net.sandbox(&net::member(rec), &[], &[]).await?;
                Ok((
                    up(NetNsBuf::Join(path.clone()), None),
                    record::NetState {
                        sandbox: Some(path),
                        endpoints: Vec::new(),
                    },
                ))
            }
            net::Mode::Container(target) => {
                let t = self.find(&target)?.snapshot();
                if !t.state.status.is_running() || t.state.pid <= 0 {
                    return Err(EngineError::Conflict(format!(
                        "cannot join network of a non running container: {}",
                        t.id
                    )));
                }
                let ns = match &t.net.sandbox {
                    Some(p) => NetNsBuf::Join(p.clone()),
                    None if net::Mode::of(&t.host_config) == net::Mode::Host => NetNsBuf::Host,
                    None => NetNsBuf::Join(PathBuf::from(format!("/proc/{}/ns/net", t.state.pid))),
                };
                Ok((up(ns, Some(self.ctr_dir(&t.id))), Default::default()))
            }
            net::Mode::Networks(_) => {
                let member = net::member(rec);
                let mut joins = Vec::new();
                for j in &rec.networks {
                    // By ID; by name if it was made anew since.
                    let key = if self.net.get(&j.network_id).await.is_ok() {
                        j.network_id.clone()
                    } else {
                        j.network.clone()
                    };
                    joins.push(berth_network::Join {
                        network: key,
                        ip: j.ip,
                        ip6: j.ip6,
                        aliases: j.aliases.clone(),
                        mac: j.mac.as_deref().and_then(berth_network::parse_mac),
                    });
                }
                let ports = net::port_requests(&rec.config, h)?;
                let (path, endpoints) = self.net.sandbox(&member, &joins, &ports).await?;
                Ok((
                    up(NetNsBuf::Join(path.clone()), None),
                    record::NetState {
                        sandbox: Some(path),
                        endpoints,
                    },
                ))
            }
        }
    }

    /// Mounts the rootfs, writes the spec, starts the monitor; returns the init's pid.
    async fn launch_with(self: &Arc<Self>, ctr: &Arc<Ctr>, rec: &Record, up: NetUp) -> Result<i32> {
        let dir = self.ctr_dir(&rec.id);
        let rootfs = dir.join("rootfs");
        let this = self.clone();
        let rec2 = rec.clone();
        let prepared = tokio::task::spawn_blocking(move || this.prepare(&rec2, &up))
            .await
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        if let Err(e) = prepared {
            let _ = berth_image::snapshot::unmount(&rootfs);
            return Err(e);
        }
        // Held by the monitor for its whole life (see restore_one); taken here, before the
        // spawn, so there is no moment at which a live monitor does not hold it.
        let lock_path = dir.join("monitor.lock");
        let lock = std::fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err("open", &lock_path))?;
        if rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
            let _ = berth_image::snapshot::unmount(&rootfs);
            return Err(EngineError::Conflict(format!(
                "container {} already has a monitor",
                rec.id
            )));
        }
        let lock_fd = std::os::fd::AsRawFd::as_raw_fd(&lock);
        let (ours, theirs) =
            std::os::unix::net::UnixStream::pair().map_err(io_err("socketpair", &dir))?;
        let theirs: OwnedFd = theirs.into();
        let mut cmd = tokio::process::Command::new(&self.cfg.monitor);
        cmd.arg(dir.join("monitor.json"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(
                std::fs::File::options()
                    .create(true)
                    .append(true)
                    .open(dir.join("monitor.log"))
                    .map_err(io_err("open", &dir.join("monitor.log")))?,
            );
        let raw = std::os::fd::AsRawFd::as_raw_fd(&theirs);
        let runtime_fd = self
            .runtime_fd
            .as_ref()
            .map(std::os::fd::AsRawFd::as_raw_fd);
        // SAFETY: between fork and exec only async-signal-safe calls are made: setsid and
        // dup2 on fds that are open in the parent (kept alive until spawn returns; the
        // runtime's for the engine's whole life).
        unsafe {
            cmd.pre_exec(move || {
                libc_setsid_dup(raw, berth_monitor::SYNC_FD)?;
                libc_dup_to(lock_fd, berth_monitor::LOCK_FD)?;
                if let Some(fd) = runtime_fd {
                    libc_dup_to(fd, berth_monitor::RUNTIME_FD)?;
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(io_err("start", &self.cfg.monitor));
        drop(theirs);
        drop(lock);
        let mut child = match child {
            Ok(c) => c,
            Err(e) => {
                let _ = berth_image::snapshot::unmount(&rootfs);
                return Err(e);
            }
        };
        let who = rec.id.clone();
        tokio::spawn(async move {
            // 0: the container ended; 1: it did not start (reported to the client already).
            // Anything else (a panic's 101, a signal) is the monitor's own failure.
            match child.wait().await {
                Ok(st) if matches!(st.code(), Some(0 | 1)) => {}
                Ok(st) => tracing::warn!(id = who, "the container's monitor ended: {st}"),
                Err(e) => tracing::warn!(id = who, "waiting for the container's monitor: {e}"),
            }
        });
        ours.set_nonblocking(true)
            .map_err(io_err("socketpair", &dir))?;
        let sync = UnixStream::from_std(ours).map_err(io_err("socketpair", &dir))?;
        let (r, mut w) = sync.into_split();
        let mut line = String::new();
        BufReader::new(r)
            .read_line(&mut line)
            .await
            .map_err(io_err("read from monitor", &dir))?;
        let started = serde_json::from_str::<Started>(&line).map_err(|_| {
            let log = std::fs::read_to_string(dir.join("monitor.log")).unwrap_or_default();
            EngineError::Internal(format!(
                "the monitor exited without starting the container: {}",
                log.lines().last().unwrap_or("no message")
            ))
        });
        let pid = match started {
            Ok(Started::Running { pid }) => pid,
            Ok(Started::Failed { message }) => {
                let _ = berth_image::snapshot::unmount(&rootfs);
                return Err(EngineError::Runtime(docker_wording(message)));
            }
            Err(e) => {
                let _ = berth_image::snapshot::unmount(&rootfs);
                return Err(e);
            }
        };
        // The waiter and the early attachers connect before the monitor reads any output.
        let socket = self.socket(&rec.id);
        let waiter = connect(&socket, &Request::Wait).await;
        let pending: Vec<_> = std::mem::take(&mut *ctr.pending.lock().expect("pending lock"));
        for (opts, tx) in pending {
            if let Ok(s) = connect(&socket, &attach_request(opts)).await {
                let _ = tx.send(s);
            }
        }
        let _ = w.write_all(b"g").await;
        drop(w);
        ctr.phase.send_modify(|p| p.running = true);
        let this = self.clone();
        let c = ctr.clone();
        tokio::spawn(async move { this.watch_exit(c, waiter.ok()).await });
        Ok(pid)
    }

    /// Mounts the container's overlay (image layers + its upper) on its `rootfs`.
    fn mount_rootfs(&self, rec: &Record) -> Result<()> {
        let dir = self.ctr_dir(&rec.id);
        let rootfs = dir.join("rootfs");
        let image = self.images.record(
            &rec.image
                .parse()
                .map_err(|_| EngineError::Internal(format!("bad image ID {}", rec.image)))?,
        )?;
        let mut lowers: Vec<PathBuf> = image
            .chain
            .iter()
            .rev()
            .map(|c| self.images.snapshots().layer_dir(c))
            .collect();
        if lowers.is_empty() {
            let empty = dir.join("empty");
            std::fs::create_dir_all(&empty).map_err(io_err("create", &empty))?;
            lowers.push(empty);
        }
        // A mount left by a crash is replaced.
        let _ = berth_image::snapshot::unmount(&rootfs);
        // A container removed at its exit needs its changes never synced to disk.
        let upper = berth_image::snapshot::Upper {
            upper: dir.join("diff"),
            work: dir.join("work"),
            volatile: rec.host_config.auto_remove.unwrap_or(false),
        };
        berth_image::snapshot::mount_overlay(&rootfs, &lowers, Some(&upper))
            .map_err(|e| EngineError::Image(e.into()))
    }

    /// Blocking half of a start: mount, etc files, user, spec, monitor config.
    fn prepare(&self, rec: &Record, up: &NetUp) -> Result<()> {
        let dir = self.ctr_dir(&rec.id);
        let rootfs = dir.join("rootfs");
        self.mount_rootfs(rec)?;
        // As dockerd: a working directory the image lacks is made (the runtime would fail).
        if let Some(w) = rec.config.working_dir.as_deref().filter(|w| !w.is_empty()) {
            archive::mkdir_in_root(&rootfs, w)?;
        }
        // A bind source that went away since create: named here, not as the runtime's
        // "failed to prepare rootfs".
        for m in &rec.mounts {
            if let (Some("bind"), Some(src)) = (m.typ.as_deref(), m.source.as_deref()) {
                if std::fs::symlink_metadata(src).is_err() {
                    let _ = berth_image::snapshot::unmount(&rootfs);
                    return Err(EngineError::InvalidParameter(format!(
                        "invalid mount config for type \"bind\": bind source path does not exist: {src}"
                    )));
                }
            }
        }
        for m in &rec.mounts {
            if m.typ.as_deref() == Some("volume") && m.mode.as_deref() != Some("nocopy") {
                if let (Some(src), Some(dst)) = (&m.source, &m.destination) {
                    volumes::copy_up(&rootfs, dst, Path::new(src))?;
                }
            }
        }
        let hostname = rec.config.hostname.clone().unwrap_or_default();
        let (link_env, link_hosts) = self.resolve_links(rec)?;
        write_etc(&dir, rec, &hostname, up, &link_hosts)?;
        let read = |p: &str| std::fs::read_to_string(rootfs.join(p)).unwrap_or_default();
        let mut user = spec::resolve_user(
            rec.config.user.as_deref().unwrap_or(""),
            &read("etc/passwd"),
            &read("etc/group"),
        )
        .map_err(|e| EngineError::InvalidParameter(e.0))?;
        spec::add_groups(
            &mut user,
            rec.host_config.group_add.as_deref().unwrap_or_default(),
            &read("etc/group"),
        )
        .map_err(|e| EngineError::InvalidParameter(e.0))?;
        let cgroup = format!("/{}/{}", self.cfg.cgroup_parent.trim_matches('/'), rec.id);
        let spec = spec::build(
            &rec.config,
            &rec.host_config,
            &spec::Inputs {
                id: &rec.id,
                rootfs: &rootfs,
                etc_dir: &dir,
                hostname: &hostname,
                user: &user,
                cgroup: &cgroup,
                cgroup_v2: self.cgroup_v2,
                mounts: &rec.mounts,
                devices: &resolve_devices(&rec.host_config)?,
                host: self.host,
                init: self.init_for(&rec.host_config)?,
                netns: up.netns.as_spec(),
                link_env: &link_env,
            },
        )
        .map_err(|e| EngineError::InvalidParameter(e.0))?;
        // config.json and monitor.json are made anew at every start, so a crash that tears
        // one only affects a container that was not running yet: no fsync on the hot path.
        let path = dir.join("config.json");
        std::fs::write(
            &path,
            &serde_json::to_vec(&spec).map_err(|e| EngineError::Internal(e.to_string()))?,
        )
        .map_err(io_err("write", &path))?;
        let log_cfg = &rec.host_config.log_config;
        let log = match log_cfg.as_ref().and_then(|l| l.typ.as_deref()) {
            None | Some("") | Some("json-file") => {
                let opts = log_cfg
                    .as_ref()
                    .and_then(|l| l.config.clone())
                    .unwrap_or_default();
                Some(berth_monitor::LogConfig {
                    path: PathBuf::from(&rec.log_path),
                    max_size: opts
                        .get("max-size")
                        .map(|s| parse_size(s))
                        .transpose()?
                        .unwrap_or(0),
                    max_file: opts
                        .get("max-file")
                        .map(|s| {
                            s.parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(|| {
                                EngineError::InvalidParameter(format!(
                                    "invalid value for max-file: {s}"
                                ))
                            })
                        })
                        .transpose()?
                        .unwrap_or(1),
                })
            }
            Some("none") => None,
            Some(other) => {
                return Err(EngineError::InvalidParameter(format!(
                    "logging driver {other:?} is not supported: use json-file or none"
                )))
            }
        };
        let _ = std::fs::remove_file(dir.join("exit.json"));
        let mcfg = berth_monitor::Config {
            id: rec.id.clone(),
            runtime: self.cfg.runtime.clone(),
            runtime_protected: self.runtime_fd.is_some(),
            runtime_root: self.cfg.exec_root.join("runtime"),
            bundle: dir.clone(),
            socket: self.socket(&rec.id),
            exit_file: dir.join("exit.json"),
            durable_exit: !rec.host_config.auto_remove.unwrap_or(false),
            pid_file: dir.join("init.pid"),
            tty: rec.config.tty.unwrap_or(false),
            open_stdin: rec.config.open_stdin.unwrap_or(false),
            stdin_once: rec.config.stdin_once.unwrap_or(false),
            log,
            rootfs_mount: Some(rootfs),
            cgroup: PathBuf::from(cgroup),
        };
        let path = dir.join("monitor.json");
        std::fs::write(
            &path,
            &serde_json::to_vec(&mcfg).map_err(|e| EngineError::Internal(e.to_string()))?,
        )
        .map_err(io_err("write", &path))
    }

    /// Waits for the container's monitor to report its exit, then records it.
    fn watch_exit(
        self: Arc<Self>,
        ctr: Arc<Ctr>,
        waiter: Option<UnixStream>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(self.watch_exit_inner(ctr, waiter))
    }

    async fn watch_exit_inner(self: Arc<Self>, ctr: Arc<Ctr>, waiter: Option<UnixStream>) {
        let mut exit = None;
        if let Some(s) = waiter {
            let mut line = String::new();
            if BufReader::new(s).read_line(&mut line).await.is_ok() {
                exit = serde_json::from_str::<Exit>(&line).ok();
            }
        }
        let exit = match exit {
            Some(e) => e,
            None => self.exit_after_lost_monitor(&ctr.id).await,
        };
        self.exited(&ctr, exit).await;
    }

    /// The monitor is gone without a word: its exit file, or clean up after it ourselves.
    async fn exit_after_lost_monitor(&self, id: &str) -> Exit {
        let dir = self.ctr_dir(id);
        if let Ok(b) = std::fs::read(dir.join("exit.json")) {
            if let Ok(e) = serde_json::from_slice::<Exit>(&b) {
                return e;
            }
        }
        tracing::warn!(id, "the container's monitor died: cleaning up");
        let _ = self.runtime_cmd(&["delete", "--force", id]).await;
        let _ = berth_image::snapshot::unmount(&dir.join("rootfs"));
        let _ = std::fs::remove_file(self.socket(id));
        Exit {
            exit_code: 255,
            finished_at: now(),
            oom_killed: false,
        }
    }

    async fn exited(self: &Arc<Self>, ctr: &Arc<Ctr>, exit: Exit) {
        // Its networking goes before anyone hears of the exit: a port it published is free
        // again when `stop` returns.
        let (sandbox, endpoints) = {
            let r = ctr.rec.lock().expect("record lock");
            (r.net.sandbox.is_some(), r.net.endpoints.clone())
        };
        if sandbox {
            self.net.teardown(&ctr.id).await;
            self.endpoint_events("disconnect", &ctr.id, &endpoints)
                .await;
        }
        let rec = {
            let mut r = ctr.rec.lock().expect("record lock");
            r.net = Default::default();
            r.state.status = Status::Exited;
            r.state.pid = 0;
            r.state.exit_code = exit.exit_code;
            r.state.finished_at = exit.finished_at.clone();
            r.state.oom_killed = exit.oom_killed;
            r.clone()
        };
        let auto_remove = rec.host_config.auto_remove.unwrap_or(false);
        // An --rm container is removed next: its exit need not reach the disk first (after a
        // crash in between, the monitor's exit.json says the same, and the restore removes it).
        if !auto_remove {
            if let Err(e) = self.persist(ctr) {
                tracing::error!(id = rec.id, "record the exit: {e}");
            }
        }
        if exit.oom_killed {
            self.emit(&rec, "oom", &[]);
        }
        self.emit(&rec, "die", &[("exitCode", exit.exit_code.to_string())]);
        ctr.phase.send_modify(|p| {
            p.running = false;
            p.exits += 1;
            p.exit_code = exit.exit_code as i64;
        });
        if auto_remove {
            self.auto_remove(&rec.id);
        } else if let Some(delay) = restart_delay(&rec) {
            let this = self.clone();
            let ctr = ctr.clone();
            tokio::spawn(async move { this.restart_after(ctr, delay).await });
        }
    }

    /// Removes an `--rm` container (and its anonymous volumes) in the background.
    fn auto_remove(self: &Arc<Self>, id: &str) {
        let this = self.clone();
        let id = id.to_string();
        tokio::spawn(async move {
            if let Err(e) = this.remove(&id, true, true).await {
                tracing::warn!(id, "auto-remove: {e}");
            }
        });
    }

    /// A restart policy's restart, after Docker's backoff (100 ms doubling).
    ///
    /// Boxed: start -> exit watcher -> restart -> start is a cycle of futures whose `Send`
    /// the compiler cannot infer through opaque types.
    fn restart_after(
        self: Arc<Self>,
        ctr: Arc<Ctr>,
        delay: Duration,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(async move { self.restart_after_inner(ctr, delay).await })
    }

    async fn restart_after_inner(self: Arc<Self>, ctr: Arc<Ctr>, delay: Duration) {
        {
            let mut r = ctr.rec.lock().expect("record lock");
            if r.manually_stopped || r.state.status != Status::Exited {
                // Stopped, killed or being removed since the exit.
                return;
            }
            r.state.status = Status::Restarting;
        }
        let _ = self.persist(&ctr);
        tokio::time::sleep(delay).await;
        let _op = ctr.op.lock().await;
        let rec = ctr.snapshot();
        if rec.state.status != Status::Restarting || rec.manually_stopped {
            return;
        }
        // The status stays `restarting` until the start has happened: a client never sees
        // an `exited` state with the new restart count before the run it counts.
        ctr.rec.lock().expect("record lock").restart_count += 1;
        if let Err(e) = self.start_locked(&ctr).await {
            tracing::warn!(id = ctr.id, "restart: {e}");
            ctr.rec.lock().expect("record lock").state.status = Status::Exited;
            let _ = self.persist(&ctr);
        }
    }

    /// `POST /containers/{id}/stop`: the stop signal, then SIGKILL after `timeout` seconds.
    pub async fn stop(&self, key: &str, timeout: Option<i64>, signal: Option<&str>) -> Result<()> {
        let ctr = self.find(key)?;
        let _op = ctr.op.lock().await;
        let rec = {
            let mut r = ctr.rec.lock().expect("record lock");
            r.manually_stopped = true;
            if r.state.status == Status::Restarting {
                r.state.status = Status::Exited;
            }
            r.clone()
        };
        self.persist(&ctr)?;
        if !rec.state.status.is_running() {
            return Err(EngineError::NotModified);
        }
        if rec.state.status == Status::Paused {
            self.runtime_cmd(&["resume", &rec.id]).await.ok();
        }
        let sig = signal
            .map(String::from)
            .or(rec.config.stop_signal.clone())
            .unwrap_or_else(|| "SIGTERM".into());
        let sig = parse_signal(&sig)?;
        let timeout = timeout.or(rec.config.stop_timeout).unwrap_or(10);
        let mut rx = ctr.phase.subscribe();
        let _ = send_signal(rec.state.pid, sig);
        self.emit(&rec, "kill", &[("signal", sig.to_string())]);
        let stopped = if timeout < 0 {
            rx.wait_for(|p| !p.running).await.is_ok()
        } else {
            tokio::time::timeout(
                Duration::from_secs(timeout as u64),
                rx.wait_for(|p| !p.running),
            )
            .await
            .is_ok()
        };
        if !stopped {
            let _ = send_signal(rec.state.pid, 9);
            self.emit(&rec, "kill", &[("signal", "9".into())]);
            let _ = rx.wait_for(|p| !p.running).await;
        }
        self.emit(&ctr.snapshot(), "stop", &[]);
        Ok(())
    }

    /// `POST /containers/{id}/restart`.
    pub async fn restart(self: &Arc<Self>, key: &str, timeout: Option<i64>) -> Result<()> {
        match self.stop(key, timeout, None).await {
            Ok(()) | Err(EngineError::NotModified) => {}
            Err(e) => return Err(e),
        }
        let ctr = self.find(key)?;
        let _op = ctr.op.lock().await;
        self.start_locked(&ctr).await?;
        self.emit(&ctr.snapshot(), "restart", &[]);
        Ok(())
    }

    /// `POST /containers/{id}/kill`.
    pub async fn kill(&self, key: &str, signal: Option<&str>) -> Result<()> {
        let ctr = self.find(key)?;
        let rec = ctr.snapshot();
        if !rec.state.status.is_running() {
            return Err(EngineError::Conflict(format!(
                "Cannot kill container: {}: Container {} is not running",
                key, rec.id
            )));
        }
        let sig = parse_signal(signal.unwrap_or("SIGKILL"))?;
        // As dockerd: a kill with SIGKILL or the container's stop signal is a manual stop,
        // which no restart policy undoes (until the container is started again, or for
        // `always`, the daemon restarts); any kill is one for `unless-stopped`.
        let stop_signal = match rec.config.stop_signal.as_deref() {
            Some(s) => Some(parse_signal(s)?),
            None => None,
        };
        let unless_stopped = rec.host_config.restart_policy.as_ref().and_then(|p| p.name)
            == Some(bollard_stubs::models::RestartPolicyNameEnum::UNLESS_STOPPED);
        let stops = sig == libc::SIGKILL || stop_signal.is_none_or(|s| s == sig) || unless_stopped;
        if stops {
            ctr.rec.lock().expect("record lock").manually_stopped = true;
            self.persist(&ctr)?;
        }
        let mut rx = ctr.phase.subscribe();
        send_signal(rec.state.pid, sig).map_err(|e| EngineError::Internal(e.to_string()))?;
        self.emit(&rec, "kill", &[("signal", sig.to_string())]);
        if stops && rec.state.status == Status::Paused {
            // A frozen process takes its signal once thawed (dockerd resumes it too).
            self.runtime_cmd(&["resume", &rec.id]).await.ok();
        }
        if sig == libc::SIGKILL {
            // As dockerd: a SIGKILL returns once the container has stopped and its exit is
            // recorded, so an `inspect` or `rm` right after sees it exited.
            let _ = rx.wait_for(|p| !p.running).await;
        }
        Ok(())
    }

    /// `POST /containers/{id}/pause` and `/unpause`.
    pub async fn pause(&self, key: &str, pause: bool) -> Result<()> {
        let ctr = self.find(key)?;
        let _op = ctr.op.lock().await;
        let rec = ctr.snapshot();
        match (pause, rec.state.status) {
            (true, Status::Running) | (false, Status::Paused) => {}
            (true, Status::Paused) => {
                return Err(EngineError::Conflict(format!(
                    "container {} is already paused",
                    rec.id
                )))
            }
            (false, Status::Running) => {
                return Err(EngineError::Conflict(format!(
                    "container {} is not paused",
                    rec.id
                )))
            }
            _ => {
                return Err(EngineError::Conflict(format!(
                    "container {} is not running",
                    rec.id
                )))
            }
        }
        self.runtime_cmd(&[if pause { "pause" } else { "resume" }, &rec.id])
            .await?;
        let rec = {
            let mut r = ctr.rec.lock().expect("record lock");
            r.state.status = if pause {
                Status::Paused
            } else {
                Status::Running
            };
            r.clone()
        };
        self.persist(&ctr)?;
        self.emit(&rec, if pause { "pause" } else { "unpause" }, &[]);
        Ok(())
    }

    /// The OCI runtime as a command, exec'd from the protected copy when there is one
    /// (`/proc/self/fd/N` resolves in the forked child before the exec closes the fd).
    fn runtime(&self) -> tokio::process::Command {
        match &self.runtime_fd {
            Some(fd) => {
                let mut c = tokio::process::Command::new(format!(
                    "/proc/self/fd/{}",
                    std::os::fd::AsRawFd::as_raw_fd(fd)
                ));
                c.arg0(&self.cfg.runtime);
                c
            }
            None => tokio::process::Command::new(&self.cfg.runtime),
        }
    }

    async fn runtime_cmd(&self, args: &[&str]) -> Result<String> {
        let out = self
            .runtime()
            .arg("--root")
            .arg(self.cfg.exec_root.join("runtime"))
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .map_err(io_err("run", &self.cfg.runtime))?;
        if !out.status.success() {
            return Err(EngineError::Runtime(
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The pids of the container's processes (for `top`).
    pub async fn pids(&self, key: &str) -> Result<Vec<i32>> {
        let rec = self.inspect(key)?;
        if !rec.state.status.is_running() {
            return Err(EngineError::Conflict(format!(
                "Container {} is not running",
                rec.id
            )));
        }
        let out = self
            .runtime_cmd(&["ps", "--format", "json", &rec.id])
            .await?;
        serde_json::from_str(&out).map_err(|e| EngineError::Internal(e.to_string()))
    }

    /// `POST /containers/{id}/wait`: the exit code once `cond` holds.
    pub async fn wait(&self, key: &str, cond: WaitCondition) -> Result<i64> {
        Ok(self.waiter(key, cond)?.await)
    }

    /// A wait that counts from now: "the next exit" is the next one after this call, even if
    /// the future is first polled later (berthd answers with its headers in between, and a
    /// client may start the container as soon as it has them).
    pub fn waiter(
        &self,
        key: &str,
        cond: WaitCondition,
    ) -> Result<impl std::future::Future<Output = i64> + Send + 'static> {
        let ctr = self.find(key)?;
        let mut rx = ctr.phase.subscribe();
        let start = rx.borrow().clone();
        Ok(async move {
            let r = match cond {
                WaitCondition::NotRunning => rx.wait_for(|p| !p.running).await.map(|p| p.clone()),
                WaitCondition::NextExit => rx
                    .wait_for(|p| p.exits > start.exits)
                    .await
                    .map(|p| p.clone()),
                WaitCondition::Removed => rx.wait_for(|p| p.removed).await.map(|p| p.clone()),
            };
            // The sender goes with the container: it was removed meanwhile.
            r.map(|p| p.exit_code)
                .unwrap_or_else(|_| rx.borrow().exit_code)
        })
    }

    /// `DELETE /containers/{id}`; `volumes` removes its anonymous volumes too (`rm -v`).
    pub async fn remove(&self, key: &str, force: bool, volumes: bool) -> Result<()> {
        let ctr = self.find(key)?;
        let _op = ctr.op.lock().await;
        let mut rx = ctr.phase.subscribe();
        if !ctr.snapshot().state.status.is_running() {
            // An exit that is being recorded (the record says exited, waiters have not been
            // told yet) is finished first: its record write and restart decision come before
            // the container's directory goes.
            let _ = rx.wait_for(|p| !p.running).await;
        }
        let rec = ctr.snapshot();
        if rec.state.status == Status::Removing {
            return Err(EngineError::Conflict(format!(
                "removal of container {} is already in progress",
                rec.id
            )));
        }
        if rec.state.status.is_running() || rec.state.status == Status::Restarting {
            if !force {
                let procedure = if rec.state.status == Status::Paused {
                    "Unpause and then stop the container before attempting removal or force remove"
                } else {
                    "Stop the container before attempting removal or force remove"
                };
                return Err(EngineError::Conflict(format!(
                    "You cannot remove a {} container {}. {procedure}",
                    rec.state.status.as_str(),
                    rec.id
                )));
            }
            // A restart waiting for its backoff does not happen (it checks under the op
            // lock, which this holds until the container is gone).
            ctr.rec.lock().expect("record lock").manually_stopped = true;
            if rec.state.status == Status::Paused {
                self.runtime_cmd(&["resume", &rec.id]).await.ok();
            }
            let _ = send_signal(rec.state.pid, 9);
            let _ = rx.wait_for(|p| !p.running).await;
        }
        {
            let mut r = ctr.rec.lock().expect("record lock");
            r.state.status = Status::Removing;
            r.manually_stopped = true;
        }
        let dir = self.ctr_dir(&rec.id);
        let _ = berth_image::snapshot::unmount(&dir.join("rootfs"));
        // A rename is atomic: a crash leaves either the container or a `.removing-` dir that
        // the next start deletes.
        let gone = self
            .cfg
            .root
            .join("containers")
            .join(format!(".removing-{}", rec.id));
        {
            // From here on nothing writes the record (a health check or a late exit would
            // write into a directory that is going away).
            let mut removed = ctr.disk.lock().expect("disk lock");
            *removed = true;
            if let Err(e) = std::fs::rename(&dir, &gone) {
                *removed = false;
                return Err(io_err("remove", &dir)(e));
            }
        }
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(gone)).await;
        self.containers
            .lock()
            .expect("containers lock")
            .remove(&rec.id);
        if volumes {
            self.remove_anonymous(&rec.mounts);
        }
        ctr.phase.send_modify(|p| p.removed = true);
        self.execs.forget_container(&rec.id);
        self.emit(&rec, "destroy", &[]);
        Ok(())
    }

    /// Connects to the container's stdio. Before the container starts, the connection is
    /// made at start, before the container's first output is read. The request is registered
    /// when this returns (so a start that follows cannot miss it); the future connects.
    pub fn attach(
        &self,
        key: &str,
        opts: AttachOptions,
    ) -> Result<impl std::future::Future<Output = Result<UnixStream>> + Send + 'static> {
        let ctr = self.find(key)?;
        let rec = ctr.snapshot();
        self.emit(&rec, "attach", &[]);
        let socket = self.socket(&rec.id);
        let pending = if rec.state.status.is_running() {
            None
        } else {
            let (tx, rx) = oneshot::channel();
            ctr.pending.lock().expect("pending lock").push((opts, tx));
            Some(rx)
        };
        Ok(async move {
            match pending {
                None => connect(&socket, &attach_request(opts))
                    .await
                    .map_err(io_err("attach to", &socket)),
                Some(rx) => rx
                    .await
                    .map_err(|_| EngineError::Conflict("the container was removed".into())),
            }
        })
    }

    /// Sets the terminal size of a running container with a tty.
    pub async fn resize(&self, key: &str, height: u16, width: u16) -> Result<()> {
        let rec = self.inspect(key)?;
        if !rec.state.status.is_running() {
            return Err(EngineError::Conflict(format!(
                "Container {} is not running",
                rec.id
            )));
        }
        let _ = connect(&self.socket(&rec.id), &Request::Resize { height, width }).await;
        Ok(())
    }

    /// `POST /containers/{id}/rename`.
    pub fn rename(&self, key: &str, new: &str) -> Result<()> {
        let ctr = self.find(key)?;
        let new = new.trim_start_matches('/');
        if !names::valid(new) {
            return Err(EngineError::InvalidParameter(format!(
                "Invalid container name ({new}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )));
        }
        let full = format!("/{new}");
        let rec = {
            let map = self.containers.lock().expect("containers lock");
            if let Some(o) = map
                .values()
                .find(|c| c.id != ctr.id && c.rec.lock().expect("record lock").name == full)
            {
                return Err(EngineError::Conflict(format!(
                    "Conflict. The container name \"{full}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.",
                    o.id
                )));
            }
            let mut r = ctr.rec.lock().expect("record lock");
            r.name = full;
            r.clone()
        };
        self.persist(&ctr)?;
        self.emit(&rec, "rename", &[]);
        Ok(())
    }

    /// The directory holding the container's files (its log, its writable layer).
    pub fn container_dir(&self, key: &str) -> Result<PathBuf> {
        Ok(self.ctr_dir(&self.find(key)?.id))
    }

    /// Brings one container's record in line with what is really there. The monitor holds
    /// `monitor.lock` (taken by berthd before the monitor is spawned, inherited by it) for as
    /// long as it lives, so "is a monitor alive" has an exact answer even for a start that
    /// was cut short between spawning the monitor and recording it.
    async fn restore_one(self: &Arc<Self>, ctr: &Arc<Ctr>, rec: &Record, path: &Path) {
        let alive = monitor_alive(&path.join("monitor.lock"));
        if alive {
            // The monitor may still be starting: its socket comes first thing, give it time.
            let mut waiter = None;
            for _ in 0..200 {
                if let Ok(w) = connect(&self.socket(&rec.id), &Request::Wait).await {
                    waiter = Some(w);
                    break;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            tracing::info!(id = rec.id, "container still running: restored");
            {
                let mut r = ctr.rec.lock().expect("record lock");
                if !r.state.status.is_running() {
                    r.state.status = Status::Running;
                    r.state.started_at = now();
                }
                if let Ok(p) = std::fs::read_to_string(path.join("init.pid")) {
                    r.state.pid = p.trim().parse().unwrap_or(r.state.pid);
                }
            }
            let _ = self.persist(ctr);
            ctr.phase.send_modify(|p| p.running = true);
            self.start_health(ctr);
            let this = self.clone();
            let c = ctr.clone();
            tokio::spawn(async move { this.watch_exit(c, waiter).await });
            return;
        }
        // No monitor. An exit it recorded that the record does not have yet (exit.json is
        // removed at every start, so one that exists is about the last run).
        let unapplied_exit = rec.state.status != Status::Exited && path.join("exit.json").exists();
        if rec.state.status.is_running() || rec.state.status == Status::Restarting || unapplied_exit
        {
            let exit = self.exit_after_lost_monitor(&rec.id).await;
            self.exited(ctr, exit).await;
            return;
        }
        // Created or exited: nothing may be left mounted or in the runtime (a start cut
        // short by a crash leaves the rootfs mounted).
        let _ = berth_image::snapshot::unmount(&path.join("rootfs"));
        if self.cfg.exec_root.join("runtime").join(&rec.id).exists() {
            let _ = self.runtime_cmd(&["delete", "--force", &rec.id]).await;
        }
        if rec.state.status == Status::Exited && rec.host_config.auto_remove == Some(true) {
            // An --rm container that exited while we were away.
            let _ = self.remove(&rec.id, true, true).await;
        }
    }

    /// Reads back the state after a restart.
    async fn restore(self: &Arc<Self>) -> Result<()> {
        let dir = self.cfg.root.join("containers");
        let entries = std::fs::read_dir(&dir).map_err(io_err("read", &dir))?;
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let path = e.path();
            if name.starts_with(".removing-") {
                let _ = berth_image::snapshot::unmount(&path.join("rootfs"));
                let _ = std::fs::remove_dir_all(&path);
                continue;
            }
            let rec = match std::fs::read(path.join("config.v2.json"))
                .ok()
                .and_then(|b| serde_json::from_slice::<Record>(&b).ok())
            {
                Some(r) => r,
                None => {
                    // A create that crashed before its record was written: nothing refers
                    // to it yet.
                    tracing::warn!(dir = %path.display(), "no container record: removing");
                    let _ = std::fs::remove_dir_all(&path);
                    continue;
                }
            };
            let ctr = Ctr::new(rec.clone());
            self.containers
                .lock()
                .expect("containers lock")
                .insert(rec.id.clone(), ctr.clone());
            self.restore_one(&ctr, &rec, &path).await;
        }
        // Sandboxes of containers that ended while berthd was away, and stray namespaces.
        let alive: std::collections::HashSet<String> = self
            .list()
            .into_iter()
            .filter(|r| r.state.status.is_running())
            .map(|r| r.id)
            .collect();
        self.net.retain(&alive).await;
        // As dockerd: a daemon start brings back the stopped containers whose restart
        // policy says so (`always` even after a manual stop), once networking is restored.
        for r in self.list() {
            if r.state.status == Status::Exited && restarts_with_the_daemon(&r) {
                let this = self.clone();
                tokio::spawn(async move {
                    if let Err(e) = this.start(&r.id).await {
                        tracing::warn!(id = r.id, "restart policy at daemon start: {e}");
                    }
                });
            }
        }
        Ok(())
    }

    /// `POST /networks/{id}/connect`: the container joins the network now if it runs, and
    /// at every start.
    pub async fn network_connect(
        &self,
        network: &str,
        key: &str,
        settings: Option<&bollard_stubs::models::EndpointSettings>,
    ) -> Result<()> {
        let ctr = self.find(key)?;
        let _op = ctr.op.lock().await;
        let rec = ctr.snapshot();
        let n = self.net.get(network).await?;
        let forbidden =
            |m: &str| EngineError::Network(berth_network::NetError::Forbidden(m.into()));
        match net::Mode::of(&rec.host_config) {
            net::Mode::Host => {
                return Err(forbidden(
                    "container cannot be disconnected from host network or connected to host network",
                ))
            }
            net::Mode::None => {
                return Err(forbidden(
                    "container cannot be connected to multiple networks with one of the networks in private (none) mode",
                ))
            }
            net::Mode::Container(_) => {
                return Err(forbidden(
                    "container sharing network namespace with another container or host cannot be connected to any other network",
                ))
            }
            net::Mode::Networks(_) => {}
        }
        match n.name.as_str() {
            "host" => {
                return Err(forbidden(
                    "container cannot be disconnected from host network or connected to host network",
                ))
            }
            "none" => {
                return Err(forbidden(
                    "container cannot be connected to multiple networks with one of the networks in private (none) mode",
                ))
            }
            _ => {}
        }
        if rec.networks.iter().any(|j| j.network_id == n.id) {
            return Err(forbidden(&format!(
                "endpoint with name {} already exists in network {}",
                rec.name.trim_start_matches('/'),
                n.name
            )));
        }
        let join = net::join_of(&n, settings)?;
        let attached = match &rec.net.sandbox {
            Some(sandbox) if rec.state.status.is_running() => {
                let member = net::member(&rec);
                let j = berth_network::Join {
                    network: n.id.clone(),
                    ip: join.ip,
                    ip6: join.ip6,
                    aliases: join.aliases.clone(),
                    mac: join.mac.as_deref().and_then(berth_network::parse_mac),
                };
                Some(self.net.connect(&member, &j, sandbox).await?)
            }
            _ => None,
        };
        let rec = {
            let mut r = ctr.rec.lock().expect("record lock");
            r.networks.push(join);
            r.net.endpoints.extend(attached);
            r.clone()
        };
        self.persist(&ctr)?;
        self.network_event("connect", &n, Some(&rec.id));
        Ok(())
    }

    /// `POST /networks/{id}/disconnect`.
    pub async fn network_disconnect(&self, network: &str, key: &str, force: bool) -> Result<()> {
        let ctr = self.find(key)?;
        let _op = ctr.op.lock().await;
        let rec = ctr.snapshot();
        let n = self.net.get(network).await;
        let (net_id, net_name) = match &n {
            Ok(n) => (n.id.clone(), n.name.clone()),
            Err(_) if force => (String::new(), network.to_string()),
            Err(_) => return Err(n.unwrap_err().into()),
        };
        let forbidden = |m: String| EngineError::Network(berth_network::NetError::Forbidden(m));
        if matches!(net_name.as_str(), "host" | "none")
            || !matches!(net::Mode::of(&rec.host_config), net::Mode::Networks(_))
        {
            return Err(forbidden(
                "container cannot be disconnected from host network or connected to host network"
                    .into(),
            ));
        }
        let Some(pos) = rec
            .networks
            .iter()
            .position(|j| j.network_id == net_id || j.network == net_name)
        else {
            return Err(forbidden(format!(
                "container {} is not connected to network {network}",
                rec.id
            )));
        };
        let on_it = rec.net.endpoints.iter().any(|a| a.network_id == net_id);
        if on_it && rec.state.status.is_running() {
            self.net.disconnect(&rec.id, &net_id).await?;
        }
        let rec = {
            let mut r = ctr.rec.lock().expect("record lock");
            r.networks.remove(pos);
            r.net.endpoints.retain(|a| a.network_id != net_id);
            r.clone()
        };
        self.persist(&ctr)?;
        if let Ok(n) = &n {
            self.network_event("disconnect", n, Some(&rec.id));
        }
        Ok(())
    }

    /// Publishes a network event (create, destroy, connect, disconnect) as dockerd does.
    /// A network `connect` or `disconnect` event per endpoint of a container's start or exit.
    async fn endpoint_events(
        &self,
        action: &str,
        ctr: &str,
        endpoints: &[berth_network::Attached],
    ) {
        for a in endpoints {
            if let Ok(n) = self.net.get(&a.network_id).await {
                self.network_event(action, &n, Some(ctr));
            }
        }
    }

    pub fn network_event(&self, action: &str, n: &berth_network::Network, ctr: Option<&str>) {
        let mut attributes: HashMap<String, String> = [
            ("name".to_string(), n.name.clone()),
            ("type".to_string(), n.driver.clone()),
        ]
        .into();
        if let Some(c) = ctr {
            attributes.insert("container".into(), c.to_string());
        }
        self.publish(Event {
            typ: "network",
            action: action.into(),
            id: n.id.clone(),
            attributes,
            time_nano: chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0),
        });
    }
}

/// The container's health check over the image's, field by field, as dockerd merges them.
fn merge_health(
    mine: Option<bollard_stubs::models::HealthConfig>,
    image: Option<bollard_stubs::models::HealthConfig>,
) -> Option<bollard_stubs::models::HealthConfig> {
    let Some(img) = image else { return mine };
    let Some(mut h) = mine else { return Some(img) };
    if h.test.as_ref().is_none_or(|t| t.is_empty()) {
        h.test = img.test;
    }
    let pick = |a: Option<i64>, b: Option<i64>| a.filter(|x| *x != 0).or(b);
    h.interval = pick(h.interval, img.interval);
    h.timeout = pick(h.timeout, img.timeout);
    h.retries = pick(h.retries, img.retries);
    h.start_period = pick(h.start_period, img.start_period);
    h.start_interval = pick(h.start_interval, img.start_interval);
    Some(h)
}

/// A runtime's start error in dockerd's words, once: the docker CLI reads "executable file
/// not found" as exit 127 and "permission denied" as 126. libcontainer nests its cause in
/// boilerplate ("exec process failed with error error in executing process : ..."), which
/// is dropped; what remains names the executable or the path.
fn docker_wording(message: String) -> String {
    let inner = message
        .rsplit_once("error in executing process : ")
        .map_or(message.as_str(), |(_, cause)| cause)
        .trim();
    let quoted = |s: &str, after: &str| -> Option<String> {
        let rest = s.split("executable '").nth(1)?;
        rest.split_once(after).map(|(exe, _)| exe.to_string())
    };
    if let Some(exe) = quoted(inner, "' not found") {
        return format!("exec: \"{exe}\": executable file not found in $PATH");
    }
    if inner.contains("does not have correct permissions") {
        if let Some(exe) = quoted(inner, "' at path") {
            return format!("exec: \"{exe}\": permission denied");
        }
    }
    inner.to_string()
}

/// dockerd's bounds on memory and CPU limits, checked at create (the kernel would take a
/// memory limit too small to start in, and a CPU quota larger than the host).
fn check_resources(h: &bollard_stubs::models::HostConfig) -> Result<()> {
    const MIN_MEMORY: i64 = 6 << 20;
    let bad = |m: String| Err(EngineError::InvalidParameter(m));
    // Docker's other log drivers, which berth does not have; anything else is no driver.
    const ELSEWHERE: &[&str] = &[
        "local",
        "syslog",
        "journald",
        "gelf",
        "fluentd",
        "awslogs",
        "splunk",
        "etwlogs",
        "gcplogs",
        "logentries",
    ];
    match h.log_config.as_ref().and_then(|l| l.typ.as_deref()) {
        None | Some("" | "json-file" | "none") => {}
        Some(d) if ELSEWHERE.contains(&d) => {
            return bad(format!(
                "logging driver \"{d}\" is not supported by berth: use json-file or none"
            ))
        }
        Some(d) => return bad(format!("logger: no log driver named '{d}' is registered")),
    }
    if h.memory.is_some_and(|m| m > 0 && m < MIN_MEMORY) {
        return bad("Minimum memory limit allowed is 6MB".into());
    }
    if h.memory_reservation
        .is_some_and(|m| m > 0 && m < MIN_MEMORY)
    {
        return bad("Minimum memory reservation allowed is 6MB".into());
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as i64;
    if h.nano_cpus
        .is_some_and(|n| n != 0 && !(10_000_000..=cpus * 1_000_000_000).contains(&n))
    {
        return bad(format!(
            "Range of CPUs is from 0.01 to {cpus}.00, as there are only {cpus} CPUs available"
        ));
    }
    Ok(())
}

/// Whether a restart policy restarts the container now, and after how long.
fn restart_delay(rec: &Record) -> Option<Duration> {
    use bollard_stubs::models::RestartPolicyNameEnum as P;
    if rec.manually_stopped {
        return None;
    }
    let policy = rec.host_config.restart_policy.as_ref()?;
    let restart = match policy.name? {
        P::ALWAYS | P::UNLESS_STOPPED => true,
        P::ON_FAILURE => {
            rec.state.exit_code != 0
                && policy
                    .maximum_retry_count
                    .is_none_or(|m| m == 0 || rec.restart_count < m)
        }
        _ => false,
    };
    // Docker's backoff: 100 ms, doubling per restart, at most a minute.
    restart.then(|| {
        Duration::from_millis(100u64.saturating_mul(1 << rec.restart_count.clamp(0, 10)))
            .min(Duration::from_secs(60))
    })
}

/// Whether a stopped container starts again when the daemon starts (dockerd's
/// `ShouldRestart` with a fresh restart manager): `always` does, `unless-stopped` unless it
/// was stopped by hand, `on-failure` after a failure with retries left; only containers
/// that have run before.
fn restarts_with_the_daemon(rec: &Record) -> bool {
    use bollard_stubs::models::RestartPolicyNameEnum as P;
    let Some(policy) = rec.host_config.restart_policy.as_ref() else {
        return false;
    };
    if rec.state.started_at.is_empty() || rec.host_config.auto_remove == Some(true) {
        return false;
    }
    match policy.name {
        Some(P::ALWAYS) => true,
        Some(P::UNLESS_STOPPED) => !rec.manually_stopped,
        Some(P::ON_FAILURE) => {
            !rec.manually_stopped
                && rec.state.exit_code != 0
                && policy
                    .maximum_retry_count
                    .is_none_or(|m| m == 0 || rec.restart_count < m)
        }
        _ => false,
    }
}

fn attach_request(o: AttachOptions) -> Request {
    Request::Attach {
        stdin: o.stdin,
        stdout: o.stdout,
        stderr: o.stderr,
    }
}

async fn connect(socket: &Path, req: &Request) -> std::io::Result<UnixStream> {
    let mut s = UnixStream::connect(socket).await?;
    let mut line = serde_json::to_vec(req)?;
    line.push(b'\n');
    s.write_all(&line).await?;
    Ok(s)
}

fn to_container_config(body: &ContainerCreateBody) -> Result<ContainerConfig> {
    let mut v = serde_json::to_value(body).map_err(|e| EngineError::Internal(e.to_string()))?;
    if let Some(o) = v.as_object_mut() {
        o.remove("HostConfig");
        o.remove("NetworkingConfig");
    }
    serde_json::from_value(v).map_err(|e| EngineError::InvalidParameter(e.to_string()))
}

/// The container's /etc/hostname, /etc/hosts and /etc/resolv.conf, as Docker writes them;
/// with `--network container:` the other container's.
fn write_etc(dir: &Path, rec: &Record, hostname: &str, up: &NetUp, links: &[String]) -> Result<()> {
    let w = |name: &str, data: &str| {
        let p = dir.join(name);
        std::fs::write(&p, data).map_err(io_err("write", &p))
    };
    w("hostname", &format!("{hostname}\n"))?;
    if let Some(other) = &up.share {
        for f in ["hosts", "resolv.conf"] {
            let data = std::fs::read_to_string(other.join(f)).unwrap_or_default();
            w(f, &data)?;
        }
        return Ok(());
    }
    let h = &rec.host_config;
    let host_net = matches!(up.netns, NetNsBuf::Host);
    let host_hosts = host_net.then(|| std::fs::read_to_string("/etc/hosts").unwrap_or_default());
    let mut extra = h.extra_hosts.clone().unwrap_or_default();
    extra.extend_from_slice(links);
    let hosts = net::hosts_file(
        host_hosts.as_deref(),
        hostname,
        rec.config.domainname.as_deref().unwrap_or(""),
        &rec.net.endpoints,
        &extra,
        up.gateway,
    )?;
    w("hosts", &hosts)?;
    // The embedded DNS answers on the gateway of the first user-defined network.
    let embedded = rec
        .net
        .endpoints
        .iter()
        .find(|a| !matches!(a.network.as_str(), "bridge" | "host" | "none"))
        .map(|a| a.endpoint.gateway);
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    w(
        "resolv.conf",
        &net::resolv_conf(&host_resolv, h, embedded, host_net),
    )
}

/// Docker's sizes for log options: `10m`, `1g`, `512k`, plain bytes.
fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim().to_ascii_lowercase();
    let (num, mult) = match t.trim_end_matches('b').chars().last() {
        Some('k') => (&t[..t.find('k').unwrap_or(0)], 1u64 << 10),
        Some('m') => (&t[..t.find('m').unwrap_or(0)], 1 << 20),
        Some('g') => (&t[..t.find('g').unwrap_or(0)], 1 << 30),
        _ => (t.trim_end_matches('b'), 1),
    };
    num.parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .map(|n| n * mult)
        .ok_or_else(|| EngineError::InvalidParameter(format!("invalid size: {s:?}")))
}

/// Signal names and numbers as Docker accepts them (`SIGTERM`, `TERM`, `15`).
pub fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    let n = match name {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "ILL" => 4,
        "TRAP" => 5,
        "ABRT" | "IOT" => 6,
        "BUS" => 7,
        "FPE" => 8,
        "KILL" => 9,
        "USR1" => 10,
        "SEGV" => 11,
        "USR2" => 12,
        "PIPE" => 13,
        "ALRM" => 14,
        "TERM" => 15,
        "STKFLT" => 16,
        "CHLD" => 17,
        "CONT" => 18,
        "STOP" => 19,
        "TSTP" => 20,
        "TTIN" => 21,
        "TTOU" => 22,
        "URG" => 23,
        "XCPU" => 24,
        "XFSZ" => 25,
        "VTALRM" => 26,
        "PROF" => 27,
        "WINCH" => 28,
        "IO" | "POLL" => 29,
        "PWR" => 30,
        "SYS" => 31,
        _ => {
            return Err(EngineError::InvalidParameter(format!(
                "invalid signal: {s}"
            )))
        }
    };
    Ok(n)
}

fn send_signal(pid: i32, sig: i32) -> std::io::Result<()> {
    let pid = rustix::process::Pid::from_raw(pid).ok_or_else(|| std::io::Error::other("no pid"))?;
    let sig = rustix::process::Signal::from_named_raw(sig)
        .ok_or_else(|| std::io::Error::other(format!("signal {sig} unknown")))?;
    rustix::process::kill_process(pid, sig).map_err(Into::into)
}

/// `setsid()`, then `fd` becomes descriptor `to` (without close-on-exec), for the monitor's
/// pre-exec hook.
fn libc_setsid_dup(fd: i32, to: i32) -> std::io::Result<()> {
    // SAFETY: setsid is async-signal-safe and touches no memory of ours.
    if unsafe { libc::setsid() } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    libc_dup_to(fd, to)
}

/// `fd` becomes descriptor `to`, inherited across exec (for the monitor's pre-exec hook).
/// The runtime opened through a read-only overlay (see [`Engine`]'s `runtime_fd`), kept
/// above the fds a monitor is given (3-5) so that handing it over can never overwrite one of
/// the others; None (the runtime then protects itself) when that cannot be done.
fn protected_runtime(runtime: &Path) -> Option<OwnedFd> {
    let fd = berth_seal::open_protected(runtime)
        .map_err(|e| e.to_string())
        .and_then(|fd| rustix::io::fcntl_dupfd_cloexec(&fd, 100).map_err(|e| e.to_string()));
    match fd {
        Ok(fd) => Some(fd),
        Err(e) => {
            tracing::warn!(runtime = %runtime.display(), "the runtime will protect itself: {e}");
            None
        }
    }
}

fn libc_dup_to(fd: i32, to: i32) -> std::io::Result<()> {
    // SAFETY: plain syscalls on descriptors open in this process, between fork and exec,
    // where they are async-signal-safe.
    let r = unsafe {
        if fd == to {
            libc::fcntl(fd, libc::F_SETFD, 0)
        } else {
            libc::dup2(fd, to)
        }
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// `--device`s as the spec needs them: each host path must be a device node.
fn resolve_devices(h: &bollard_stubs::models::HostConfig) -> Result<Vec<spec::Device>> {
    let mut out = Vec::new();
    for d in h.devices.clone().unwrap_or_default() {
        let host = d.path_on_host.clone().unwrap_or_default();
        let ctr = d
            .path_in_container
            .clone()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| host.clone());
        let access = d
            .cgroup_permissions
            .clone()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "rwm".into());
        let (host, ctr, access) = spec::parse_device(&format!("{host}:{ctr}:{access}"))
            .map_err(|e| EngineError::InvalidParameter(e.0))?;
        let st = rustix::fs::stat(host.as_str()).map_err(|e| {
            EngineError::InvalidParameter(format!(
                "error gathering device information while adding custom device {host:?}: {e}"
            ))
        })?;
        let kind = match rustix::fs::FileType::from_raw_mode(st.st_mode) {
            rustix::fs::FileType::CharacterDevice => 'c',
            rustix::fs::FileType::BlockDevice => 'b',
            _ => {
                return Err(EngineError::InvalidParameter(format!(
                    "{host} is not a device node"
                )))
            }
        };
        out.push(spec::Device {
            path: ctr,
            kind,
            major: rustix::fs::major(st.st_rdev) as u64,
            minor: rustix::fs::minor(st.st_rdev) as u64,
            mode: st.st_mode & 0o777,
            access,
        });
    }
    Ok(out)
}

/// Whether a monitor holds the container's lock file.
fn monitor_alive(lock: &Path) -> bool {
    let Ok(f) = std::fs::File::options().write(true).open(lock) else {
        return false;
    };
    match rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {
            let _ = rustix::fs::flock(&f, rustix::fs::FlockOperation::Unlock);
            false
        }
        Err(_) => true,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_errors_read_as_dockerds_once() {
        let chain = "berth-runtime: create container: failed to create container: exec process failed with error error in executing process : ";
        assert_eq!(
            docker_wording(format!("{chain}executable 'nosuch' not found in $PATH")),
            "exec: \"nosuch\": executable file not found in $PATH"
        );
        assert_eq!(
            docker_wording(format!(
                "{chain}executable '/etc/passwd' at path '\"/etc/passwd\"' does not have correct permissions"
            )),
            "exec: \"/etc/passwd\": permission denied"
        );
        assert_eq!(
            docker_wording(format!("{chain}no such device")),
            "no such device"
        );
        assert_eq!(docker_wording("cgroup: busy".into()), "cgroup: busy");
    }

    #[test]
    fn resources_are_bounded_as_by_dockerd() {
        let h = |memory, nano_cpus| bollard_stubs::models::HostConfig {
            memory: Some(memory),
            nano_cpus: Some(nano_cpus),
            ..Default::default()
        };
        assert!(check_resources(&h(6 << 20, 0)).is_ok());
        assert!(check_resources(&h(0, 1_000_000_000)).is_ok());
        let err = check_resources(&h(4 << 20, 0)).unwrap_err().to_string();
        assert_eq!(err, "Minimum memory limit allowed is 6MB");
        let err = check_resources(&h(0, 1 << 50)).unwrap_err().to_string();
        assert!(err.starts_with("Range of CPUs is from 0.01 to "), "{err}");
        assert!(check_resources(&h(0, 1_000)).is_err());
    }

    #[test]
    fn signals_parse_as_docker_accepts_them() {
        assert_eq!(parse_signal("SIGTERM").unwrap(), 15);
        assert_eq!(parse_signal("kill").unwrap(), 9);
        assert_eq!(parse_signal("10").unwrap(), 10);
        assert!(parse_signal("SIGNOPE").is_err());
        assert!(parse_signal("0").is_err());
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("10m").unwrap(), 10 << 20);
        assert_eq!(parse_size("1k").unwrap(), 1024);
        assert_eq!(parse_size("2g").unwrap(), 2 << 30);
        assert_eq!(parse_size("100").unwrap(), 100);
        assert!(parse_size("x").is_err());
        assert!(parse_size("0").is_err());
    }
}
