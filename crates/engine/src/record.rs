//! What the engine records about a container (`containers/<id>/config.v2.json`).

use bollard_stubs::models::{ContainerConfig, HostConfig};
use serde::{Deserialize, Serialize};

/// A container as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// The 64-hex-digit ID.
    pub id: String,
    /// The name, with Docker's leading `/`.
    pub name: String,
    /// Creation time, RFC 3339.
    pub created: String,
    /// The image's ID (`sha256:...`).
    pub image: String,
    /// The image as the user named it.
    pub image_name: String,
    /// The container's config, merged with the image's.
    pub config: ContainerConfig,
    /// The host config as requested.
    pub host_config: HostConfig,
    /// The run state.
    pub state: State,
    /// Restarts done by the restart policy.
    pub restart_count: i64,
    /// Stopped by the user: the restart policy does not apply.
    pub manually_stopped: bool,
    /// Binds, volumes and tmpfs mounts, resolved at create.
    #[serde(default)]
    pub mounts: Vec<bollard_stubs::models::MountPoint>,
    /// The json-file log.
    pub log_path: String,
    /// The networks it joins at every start, by name (`--network`, `--ip`,
    /// `--network-alias`, `network connect`); the primary one (its network mode's) first.
    #[serde(default)]
    pub networks: Vec<NetworkJoin>,
    /// Where it is on its networks while it runs.
    #[serde(default)]
    pub net: NetState,
}

/// How a container joins one network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkJoin {
    /// The network's name.
    pub network: String,
    /// The network's ID (a network of the same name made anew is another network).
    pub network_id: String,
    /// `--ip`.
    pub ip: Option<std::net::Ipv4Addr>,
    /// `--ip6`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip6: Option<std::net::Ipv6Addr>,
    /// The endpoint's `DriverOpts`, kept and shown as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_opts: Option<std::collections::HashMap<String, String>>,
    /// `--network-alias`.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// `--mac-address`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

/// A running container's networking.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetState {
    /// The file its network namespace is bound on (none: the host's, or not running).
    pub sandbox: Option<std::path::PathBuf>,
    /// Its place on each network, the primary one first.
    #[serde(default)]
    pub endpoints: Vec<berth_network::Attached>,
}

/// The run state.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct State {
    /// Docker's status word.
    pub status: Status,
    /// The init's pid while running.
    pub pid: i32,
    /// The last exit code.
    pub exit_code: i32,
    /// Last start, RFC 3339 (empty: never).
    pub started_at: String,
    /// Last exit, RFC 3339 (empty: never).
    pub finished_at: String,
    /// The last run ended with the OOM killer.
    pub oom_killed: bool,
    /// Why the last start failed.
    pub error: String,
    /// The health check's state, for containers that have one.
    #[serde(default)]
    pub health: Option<bollard_stubs::models::Health>,
}

/// Docker's container states.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Made, never started.
    #[default]
    Created,
    /// Running.
    Running,
    /// Frozen.
    Paused,
    /// Waiting for the restart policy's next start.
    Restarting,
    /// Being removed.
    Removing,
    /// Ended.
    Exited,
    /// Could not be cleaned up.
    Dead,
}

impl Status {
    /// Docker's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Removing => "removing",
            Status::Exited => "exited",
            Status::Dead => "dead",
        }
    }

    /// A process exists (running or frozen).
    pub fn is_running(self) -> bool {
        matches!(self, Status::Running | Status::Paused)
    }
}
