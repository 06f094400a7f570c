//! Container lifecycle over libcontainer: create, start, state, kill, delete, pause, resume.
//!
//! A [`Runtime`] is a state root (runc's `--root`) holding one directory per container.

use std::path::{Path, PathBuf};

use libcgroups::common::CgroupManager;
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::{Container, ContainerStatus};
use libcontainer::signal::Signal;
use libcontainer::syscall::syscall::SyscallType;
use oci_spec::runtime::Spec;
use serde::Serialize;

use crate::bundle::{self, Bundle};
use crate::console::ConsoleListener;
use crate::error::{Result, RuntimeError};
pub use crate::update::UpdateResources;

/// Default state root, like runc's `/run/runc`.
pub const DEFAULT_ROOT: &str = "/run/berth-runtime";

/// Options of `create` (and of the create half of `run`).
#[derive(Debug, Default, Clone)]
pub struct CreateOptions {
    /// Bundle directory.
    pub bundle: PathBuf,
    /// Write the init's host pid here.
    pub pid_file: Option<PathBuf>,
    /// Send the pty master here when `process.terminal` is true.
    pub console_socket: Option<PathBuf>,
    /// Extra fds (3, 4, ...) passed to the container process.
    pub preserve_fds: i32,
    /// Use chroot-like `MS_MOVE` instead of pivot_root.
    pub no_pivot: bool,
    /// Whether the caller will not wait for the process (affects the terminal checks).
    pub detach: bool,
}

/// What `create` made: the container and, when the runtime relays the terminal itself (a
/// foreground caller, `process.terminal`, no console socket), the socket the pty master
/// arrived on.
pub struct Created {
    /// The new container, in state "created".
    pub container: Container,
    /// Set when the runtime must relay the container's terminal (see [`crate::console`]).
    pub console: Option<ConsoleListener>,
}

/// The state JSON `berth-runtime state` prints: the OCI state plus runc's extra fields.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StateJson {
    /// OCI runtime spec version of this state.
    pub oci_version: String,
    /// Container id.
    pub id: String,
    /// Host pid of the init process (0 once stopped, as runc prints it).
    pub pid: i32,
    /// creating, created, running, stopped or paused.
    pub status: String,
    /// Absolute bundle path.
    pub bundle: PathBuf,
    /// Creation time, RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// User name (or uid) of the creator.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Annotations from the spec.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<std::collections::HashMap<String, String>>,
}

/// Lower-case status name as runc prints it.
pub fn status_name(s: ContainerStatus) -> &'static str {
    match s {
        ContainerStatus::Creating => "creating",
        ContainerStatus::Created => "created",
        ContainerStatus::Running => "running",
        ContainerStatus::Stopped => "stopped",
        ContainerStatus::Paused => "paused",
    }
}

/// A state root and the operations on the containers in it.
#[derive(Debug, Clone)]
pub struct Runtime {
    root: PathBuf,
}

impl Runtime {
    /// A runtime over state root `root` (created on first use).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Runtime { root: root.into() }
    }

    /// The state root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn container_dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    fn ensure_root(&self) -> Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.root)
            .map_err(RuntimeError::io(&self.root))
    }

    /// Takes the container's lock: an exclusive flock on its state directory, held for the
    /// length of one state-changing command so that, say, `kill` saving "stopped" and a
    /// foreground `run` deleting the container cannot interleave (the delete would find the
    /// directory refilled under it). Readers (`state`, `list`, `ps`) need no lock: state.json
    /// is always replaced whole.
    pub fn lock(&self, id: &str) -> Result<std::fs::File> {
        check_id(id)?;
        let dir = self.container_dir(id);
        let f = std::fs::File::open(&dir).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => RuntimeError::NotFound(id.to_string()),
            _ => RuntimeError::io(&dir)(e),
        })?;
        rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| RuntimeError::io(&dir)(e.into()))?;
        // The holder before us may have deleted the container.
        if !dir.join("state.json").exists() {
            return Err(RuntimeError::NotFound(id.to_string()));
        }
        Ok(f)
    }

    /// Loads a container and refreshes its status from the kernel.
    pub fn load(&self, id: &str) -> Result<Container> {
        check_id(id)?;
        let dir = self.container_dir(id);
        if !dir.join("state.json").exists() {
            return Err(RuntimeError::NotFound(id.to_string()));
        }
        Container::load(dir).map_err(RuntimeError::container("load container state"))
    }

    /// Ids of all containers under the root, sorted.
    pub fn ids(&self) -> Result<Vec<String>> {
        let mut ids = Vec::new();
        let entries = match std::fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ids),
            Err(e) => return Err(RuntimeError::io(&self.root)(e)),
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with('.') && entry.path().join("state.json").exists() {
                ids.push(name);
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Creates a container from a bundle: namespaces, cgroups, mounts and the init process,
    /// which then waits for [`Runtime::start`].
    ///
    /// berth adjusts the spec before libcontainer reads it (see [`bundle::prepare_spec`]) and
    /// hands libcontainer the result in memory; the state records the user's bundle. On any
    /// failure everything made so far (state directory, cgroups, processes) is removed again.
    pub fn create(&self, id: &str, opts: &CreateOptions) -> Result<Created> {
        check_id(id)?;
        let mut bundle = Bundle::load(&opts.bundle)?;
        bundle.require_process()?;
        self.ensure_root()?;
        if self.container_dir(id).exists() {
            return Err(RuntimeError::Exists(id.to_string()));
        }
        bundle::prepare_spec(&mut bundle.spec, id);
        if let Some(s) = bundle
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.seccomp().as_ref())
        {
            crate::seccomp::prepare(&self.root, s);
        }
        let wants_terminal = bundle
            .spec
            .process()
            .as_ref()
            .and_then(|p| p.terminal())
            .unwrap_or(false);
        let mut opts = opts.clone();
        let console = if wants_terminal && !opts.detach && opts.console_socket.is_none() {
            let listener = ConsoleListener::bind(&self.root)?;
            opts.console_socket = Some(listener.path().to_path_buf());
            // libcontainer accepts a console socket only from "detached" callers; the flag
            // changes nothing else in it.
            opts.detach = true;
            Some(listener)
        } else {
            // A caller's own console socket works in the foreground too (as in runc).
            opts.detach |= wants_terminal && opts.console_socket.is_some();
            None
        };
        let poststop = bundle
            .spec
            .hooks()
            .as_ref()
            .and_then(|h| h.poststop().clone());
        let annotations = bundle.spec.annotations().clone();
        match self.build(id, &bundle.path, bundle.spec, &opts) {
            Ok(container) => Ok(Created { container, console }),
            Err(e) => {
                self.remove_leftovers(id);
                // The runtime spec's lifecycle: a create that fails (a prestart, createRuntime
                // or createContainer hook above all) continues at "destroy the container",
                // and then the poststop hooks run, as runc runs them.
                if poststop.is_some() {
                    let mut state = libcontainer::container::State::new(
                        id,
                        ContainerStatus::Stopped,
                        None,
                        bundle.path.clone(),
                    );
                    state.annotations = annotations;
                    libcontainer::hooks::run_hooks_warn(
                        "poststop",
                        poststop.as_ref(),
                        &state,
                        None,
                    );
                }
                Err(e)
            }
        }
    }

    fn build(
        &self,
        id: &str,
        bundle: &Path,
        spec: Spec,
        opts: &CreateOptions,
    ) -> Result<Container> {
        ContainerBuilder::new(id.to_string(), SyscallType::default())
            .with_root_path(&self.root)
            .and_then(|b| b.with_pid_file(opts.pid_file.as_ref()))
            .map(|b| {
                b.with_console_socket(opts.console_socket.as_ref())
                    .with_preserved_fds(opts.preserve_fds)
            })
            .and_then(|b| b.validate_id())
            .and_then(|b| {
                b.as_init(bundle)
                    .with_spec(spec)
                    .with_systemd(false)
                    .with_detach(opts.detach)
                    .with_no_pivot(opts.no_pivot)
                    .build()
            })
            .map_err(RuntimeError::container("create container"))
    }

    /// Removes whatever a failed create left: processes, cgroups and the state directory.
    fn remove_leftovers(&self, id: &str) {
        let dir = self.container_dir(id);
        if !dir.exists() {
            return;
        }
        match Container::load(dir.clone()) {
            Ok(mut c) => {
                if let Err(e) = c.delete(true) {
                    tracing::warn!(%e, "cleanup after failed create");
                }
            }
            Err(e) => tracing::warn!(%e, "cleanup after failed create: state unreadable"),
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Starts the user process of a created container.
    pub fn start(&self, id: &str) -> Result<Container> {
        let _lock = self.lock(id)?;
        let mut c = self.load(id)?;
        start_loaded(&mut c)?;
        Ok(c)
    }

    /// The state of a container.
    pub fn state(&self, id: &str) -> Result<StateJson> {
        let c = self.load(id)?;
        Ok(state_json(&c))
    }

    /// Sends `signal` to the init (or with `all`, to every process of the container).
    pub fn kill(&self, id: &str, signal: &str, all: bool) -> Result<()> {
        let sig = parse_signal(signal)?;
        let _lock = self.lock(id)?;
        let mut c = self.load(id)?;
        if !c.can_kill() {
            return Err(wrong_state(&c, "kill"));
        }
        c.kill(sig, all)
            .map_err(RuntimeError::container("kill container"))
    }

    /// Deletes a stopped (or created) container; with `force`, kills a running one first.
    /// Deleting a container that does not exist succeeds with `force`, as with runc.
    pub fn delete(&self, id: &str, force: bool) -> Result<()> {
        let _lock = match self.lock(id) {
            Ok(l) => l,
            Err(RuntimeError::NotFound(_)) if force => {
                // Nothing to delete, or a directory without state.json that a create
                // interrupted by a crash left behind.
                let _ = std::fs::remove_dir_all(self.container_dir(id));
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let mut c = self.load(id)?;
        if !force
            && !matches!(
                c.status(),
                ContainerStatus::Stopped | ContainerStatus::Created
            )
        {
            return Err(wrong_state(&c, "delete (stop it first or use --force)"));
        }
        if c.status() != ContainerStatus::Stopped {
            // libcontainer sends SIGKILL and goes straight on to rmdir the cgroups, sleeping
            // and retrying while they are busy. Waiting for the init to exit first (with a pid
            // namespace the kernel has then killed every other process too) makes the first
            // rmdir succeed and delete return with nothing left running.
            if let Some(pid) = c.pid() {
                let pidfd = rustix::process::Pid::from_raw(pid.as_raw()).and_then(|p| {
                    rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok()
                });
                c.kill(Signal::from(nix::sys::signal::Signal::SIGKILL), true)
                    .map_err(RuntimeError::container("kill container"))?;
                if let Some(fd) = pidfd {
                    wait_exit(&fd, std::time::Duration::from_secs(10));
                }
            }
        }
        match c.delete(true) {
            Ok(()) => Ok(()),
            // libcontainer kills what is left in the cgroups and gives up on their rmdir after
            // ~100 ms of busy retries: processes outside a pid namespace of the container's
            // own can take longer to leave (a killed one counts until its parent reaps it).
            // Forced, they are killed until the cgroups are empty and the delete runs again.
            Err(e) if force => {
                tracing::debug!(%e, "delete: the cgroups are busy, emptying them");
                empty_cgroups(&c, std::time::Duration::from_secs(5))?;
                c.delete(true)
                    .map_err(RuntimeError::container("delete container"))
            }
            Err(e) => Err(RuntimeError::container("delete container")(e)),
        }
    }

    /// Freezes every process of the container.
    pub fn pause(&self, id: &str) -> Result<()> {
        let _lock = self.lock(id)?;
        let mut c = self.load(id)?;
        if !c.can_pause() {
            return Err(wrong_state(&c, "pause"));
        }
        c.pause()
            .map_err(RuntimeError::container("pause container"))
    }

    /// Thaws a paused container.
    pub fn resume(&self, id: &str) -> Result<()> {
        let _lock = self.lock(id)?;
        let mut c = self.load(id)?;
        if !c.can_resume() {
            return Err(wrong_state(&c, "resume"));
        }
        c.resume()
            .map_err(RuntimeError::container("resume container"))
    }

    /// Host pids of every process in the container's cgroup.
    pub fn pids(&self, id: &str) -> Result<Vec<i32>> {
        let c = self.load(id)?;
        let manager = cgroup_manager(&c)?;
        let pids = manager.get_all_pids().map_err(|e| RuntimeError::Cgroup {
            op: "list container processes",
            message: e.to_string(),
        })?;
        Ok(pids.into_iter().map(|p| p.as_raw()).collect())
    }

    /// Resource statistics of the container's cgroup, as libcgroups reports them.
    pub fn stats(&self, id: &str) -> Result<libcgroups::stats::Stats> {
        let c = self.load(id)?;
        if c.status() != ContainerStatus::Running && c.status() != ContainerStatus::Paused {
            return Err(wrong_state(&c, "read stats"));
        }
        cgroup_manager(&c)?
            .stats()
            .map_err(|e| RuntimeError::Cgroup {
                op: "read cgroup stats",
                message: e.to_string(),
            })
    }
}

/// Starts a container the caller already holds (`run` has it from `create`: no reload).
pub fn start_loaded(c: &mut Container) -> Result<()> {
    if !c.can_start() {
        return Err(wrong_state(c, "start"));
    }
    c.start()
        .map_err(RuntimeError::container("start container"))
}

/// The cgroup manager for a container's cgroup (v1 or v2, whatever the host has).
pub fn cgroup_manager(c: &Container) -> Result<libcgroups::common::AnyCgroupManager> {
    let config = c
        .spec()
        .map_err(RuntimeError::container("load container config"))?;
    libcgroups::common::create_cgroup_manager(libcgroups::common::CgroupConfig {
        cgroup_path: config.cgroup_path,
        systemd_cgroup: c.systemd(),
        container_name: c.id().to_string(),
    })
    .map_err(|e| RuntimeError::Cgroup {
        op: "open container cgroup",
        message: e.to_string(),
    })
}

/// Kills every process in the container's cgroups until none is left, at most `limit`,
/// reaping those that are our own children meanwhile (whoever else is their parent, such as
/// berth-monitor as subreaper, reaps the rest).
fn empty_cgroups(c: &Container, limit: std::time::Duration) -> Result<()> {
    let manager = cgroup_manager(c)?;
    let deadline = std::time::Instant::now() + limit;
    loop {
        let pids = manager.get_all_pids().unwrap_or_default();
        if pids.is_empty() || std::time::Instant::now() >= deadline {
            return Ok(());
        }
        for pid in pids {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
        while let Ok(Some(_)) = rustix::process::wait(rustix::process::WaitOptions::NOHANG) {}
    }
}

/// Waits until the process behind `pidfd` has exited (its pidfd turns readable), at most
/// `limit`.
fn wait_exit(pidfd: &std::os::fd::OwnedFd, limit: std::time::Duration) {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let mut fds = [PollFd::new(pidfd, PollFlags::IN)];
    let timeout = Timespec {
        tv_sec: limit.as_secs() as i64,
        tv_nsec: 0,
    };
    if let Err(e) = poll(&mut fds, Some(&timeout)) {
        tracing::warn!(%e, "waiting for the container process to exit");
    }
}

/// Renders a container's state the way `runc state` does.
pub fn state_json(c: &Container) -> StateJson {
    let stopped = c.status() == ContainerStatus::Stopped;
    StateJson {
        oci_version: oci_spec::runtime::VERSION.to_string(),
        id: c.id().to_string(),
        pid: if stopped {
            0
        } else {
            c.pid().map_or(0, |p| p.as_raw())
        },
        status: status_name(c.status()).to_string(),
        bundle: c.bundle().clone(),
        created: c
            .created()
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)),
        owner: c.creator().map(|o| o.to_string_lossy().into_owned()),
        annotations: c.state.annotations.clone(),
    }
}

pub(crate) fn wrong_state(c: &Container, op: &'static str) -> RuntimeError {
    RuntimeError::WrongState {
        id: c.id().to_string(),
        status: status_name(c.status()).to_string(),
        op,
    }
}

/// Checks an id the way runc does, before it is used as a path component.
pub fn check_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(RuntimeError::InvalidId(id.to_string()))
    }
}

/// Parses `KILL`, `SIGKILL`, `sigkill` or `9`.
pub fn parse_signal(s: &str) -> Result<Signal> {
    let bad = || RuntimeError::BadSignal(s.to_string());
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| bad());
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::try_from(name.as_str()).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse_like_runc() {
        for s in ["KILL", "SIGKILL", "kill", "9"] {
            assert_eq!(
                format!("{:?}", parse_signal(s).unwrap()),
                "Signal(SIGKILL)",
                "{s}"
            );
        }
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("999").is_err());
    }

    #[test]
    fn ids_are_checked() {
        for ok in ["a", "abc-1.2_3+x"] {
            check_id(ok).unwrap();
        }
        for bad in ["", ".", "..", "a/b", "../x", "a b"] {
            assert!(check_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn missing_container_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let rt = Runtime::new(dir.path());
        assert!(matches!(rt.load("x"), Err(RuntimeError::NotFound(_))));
        rt.delete("x", true).unwrap();
        assert!(rt.delete("x", false).is_err());
        assert!(rt.ids().unwrap().is_empty());
    }
}
