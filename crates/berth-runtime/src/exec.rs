//! `exec`: starting another process inside a running container.

use std::collections::HashMap;
use std::path::PathBuf;

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use nix::unistd::Pid;
use oci_spec::runtime::Process;

use crate::bundle::{self, Bundle};
use crate::console::ConsoleListener;
use crate::error::{Result, RuntimeError};
use crate::runtime::Runtime;

/// What to run and how, in runc's two forms: a `process.json` or flags plus a command.
#[derive(Debug, Default, Clone)]
pub struct ExecOptions {
    /// A process.json (OCI `process` object); when set, the flag fields below are ignored.
    pub process: Option<PathBuf>,
    /// The command and its arguments.
    pub args: Vec<String>,
    /// Extra environment, overriding the container's.
    pub env: Vec<(String, String)>,
    /// Working directory (absolute).
    pub cwd: Option<PathBuf>,
    /// uid and optional gid.
    pub user: Option<(u32, Option<u32>)>,
    /// Supplementary gids.
    pub additional_gids: Vec<u32>,
    /// Allocate a pseudo-terminal (needs `console_socket` when detached).
    pub tty: bool,
    /// Capabilities to add.
    pub caps: Vec<String>,
    /// Set no_new_privileges.
    pub no_new_privs: bool,
    /// Extra fds passed through.
    pub preserve_fds: i32,
    /// Write the process's host pid here.
    pub pid_file: Option<PathBuf>,
    /// Send the pty master here.
    pub console_socket: Option<PathBuf>,
    /// The caller does not wait for the process.
    pub detach: bool,
    /// Allow exec into a paused container.
    pub ignore_paused: bool,
    /// Run in this sub-cgroup of the container's cgroup.
    pub cgroup: Option<String>,
}

impl Runtime {
    /// Starts a process in container `id` and returns its host pid, and the console socket
    /// its pty master arrived on when the runtime relays the terminal itself (foreground,
    /// terminal asked for, no console socket given).
    pub fn exec(&self, id: &str, opts: &ExecOptions) -> Result<(Pid, Option<ConsoleListener>)> {
        // Held until the process is started (not while a foreground exec waits for it).
        let _lock = self.lock(id)?;
        let c = self.load(id)?;
        if !(c.can_exec() || opts.ignore_paused && c.can_resume()) {
            return Err(RuntimeError::WrongState {
                id: id.to_string(),
                status: crate::runtime::status_name(c.status()).to_string(),
                op: "exec",
            });
        }
        if opts.process.is_none() && opts.args.is_empty() {
            return Err(RuntimeError::Usage(
                "exec needs a command or --process FILE".into(),
            ));
        }
        let bundle = Bundle::load(c.bundle())?;
        // The exec'd process gets the container's filter (vendor patch 2): have it compiled.
        if let Some(s) = bundle
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.seccomp().as_ref())
        {
            crate::seccomp::prepare(self.root(), s);
        }
        // libcontainer's flag form has no way to ask for a terminal; express it as a
        // process.json built from the container's own process with the flags applied.
        let mut generated = None;
        let process = match (&opts.process, opts.tty) {
            (Some(p), _) => Some(p.clone()),
            (None, true) => {
                let path = self
                    .root()
                    .join(format!(".exec-{}-{}.json", id, std::process::id()));
                let proc = tty_process(&bundle, opts)?;
                let json =
                    serde_json::to_vec(&proc).map_err(|e| RuntimeError::io(&path)(e.into()))?;
                bundle::write_atomic(&path, &json).map_err(RuntimeError::io(&path))?;
                generated = Some(path.clone());
                Some(path)
            }
            (None, false) => None,
        };
        let wants_terminal = match &opts.process {
            Some(p) => std::fs::read(p)
                .ok()
                .and_then(|b| serde_json::from_slice::<Process>(&b).ok())
                .and_then(|p| p.terminal())
                .unwrap_or(false),
            None => opts.tty,
        };
        let mut console_socket = opts.console_socket.clone();
        // libcontainer takes a console socket only from a "detached" exec; the foreground
        // wait is ours (main's), so a caller's socket works without --detach too, as in runc.
        let mut detach = opts.detach || (wants_terminal && console_socket.is_some());
        let console = if wants_terminal && !opts.detach && console_socket.is_none() {
            let listener = ConsoleListener::bind(self.root())?;
            console_socket = Some(listener.path().to_path_buf());
            // As for create: libcontainer takes a console socket only when "detached".
            detach = true;
            Some(listener)
        } else {
            None
        };
        let env: HashMap<String, String> = opts.env.iter().cloned().collect();
        let result = ContainerBuilder::new(id.to_string(), SyscallType::default())
            .with_root_path(self.root())
            .and_then(|b| b.with_pid_file(opts.pid_file.as_ref()))
            .map(|b| {
                b.with_console_socket(console_socket.as_ref())
                    .with_preserved_fds(opts.preserve_fds)
            })
            .and_then(|b| b.validate_id())
            .and_then(|b| {
                let mut t = b
                    .as_tenant()
                    .with_detach(detach)
                    .with_process(process.as_ref())
                    .with_ignore_paused(opts.ignore_paused)
                    .with_sub_cgroup(opts.cgroup.clone());
                if process.is_none() {
                    t = t
                        .with_container_args(opts.args.clone())
                        .with_env(env)
                        .with_cwd(opts.cwd.as_ref())
                        .with_user(opts.user.map(|u| u.0))
                        .with_group(opts.user.and_then(|u| u.1))
                        .with_additional_gids(opts.additional_gids.clone())
                        .with_no_new_privs(opts.no_new_privs)
                        .with_capabilities(opts.caps.clone());
                }
                t.build()
            })
            .map_err(RuntimeError::container("exec in container"));
        if let Some(p) = generated {
            let _ = std::fs::remove_file(p);
        }
        result.map(|pid| (pid, console))
    }
}

/// The container's process with the exec flags applied and a terminal requested.
fn tty_process(bundle: &Bundle, opts: &ExecOptions) -> Result<Process> {
    let mut p = bundle.spec.process().clone().unwrap_or_default();
    p.set_terminal(Some(true));
    p.set_args(Some(opts.args.clone()));
    let mut env: Vec<String> = p
        .env()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|kv| {
            let k = kv.split('=').next().unwrap_or("");
            !opts.env.iter().any(|(ek, _)| ek == k)
        })
        .collect();
    env.extend(opts.env.iter().map(|(k, v)| format!("{k}={v}")));
    p.set_env(Some(env));
    if let Some(cwd) = &opts.cwd {
        p.set_cwd(cwd.clone());
    }
    if let Some((uid, gid)) = opts.user {
        let mut u = p.user().clone();
        u.set_uid(uid);
        if let Some(g) = gid {
            u.set_gid(g);
        }
        if !opts.additional_gids.is_empty() {
            u.set_additional_gids(Some(opts.additional_gids.clone()));
        }
        p.set_user(u);
    }
    if opts.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    Ok(p)
}
