//! Spawning a container's monitor and talking to it over its socket.

use std::os::fd::OwnedFd;
use std::path::Path;

use berth_monitor::{Request, Started};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::OwnedReadHalf;
use tokio::net::UnixStream;

use crate::{io_err, AttachOptions, Engine, EngineError, Result};

impl Engine {
    /// Spawns the container's monitor (`monitor.json` in `dir` says what to run) holding
    /// `monitor.lock`; returns our end of the socket it reports the start on and then waits
    /// for the go-ahead. Reaps the monitor in the background.
    pub(crate) fn spawn_monitor(&self, id: &str, dir: &Path, rootfs: &Path) -> Result<UnixStream> {
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
            let _ = berth_image::snapshot::unmount(rootfs);
            return Err(EngineError::Conflict(format!(
                "container {} already has a monitor",
                id
            )));
        }
        let lock_fd = std::os::fd::AsRawFd::as_raw_fd(&lock);
        let (ours, theirs) =
            std::os::unix::net::UnixStream::pair().map_err(io_err("socketpair", dir))?;
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
                let _ = berth_image::snapshot::unmount(rootfs);
                return Err(e);
            }
        };
        let who = id.to_string();
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
            .map_err(io_err("socketpair", dir))?;
        let sync = UnixStream::from_std(ours).map_err(io_err("socketpair", dir))?;
        Ok(sync)
    }
}

/// The monitor's first word: the init's pid, or why the container did not start (the
/// runtime's error, in dockerd's words). The rootfs is unmounted when it did not start.
pub(crate) async fn await_started(r: OwnedReadHalf, dir: &Path, rootfs: &Path) -> Result<i32> {
    let mut line = String::new();
    BufReader::new(r)
        .read_line(&mut line)
        .await
        .map_err(io_err("read from monitor", dir))?;
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
            let _ = berth_image::snapshot::unmount(rootfs);
            return Err(EngineError::Runtime(docker_wording(message)));
        }
        Err(e) => {
            let _ = berth_image::snapshot::unmount(rootfs);
            return Err(e);
        }
    };
    Ok(pid)
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

pub(crate) fn attach_request(o: AttachOptions) -> Request {
    Request::Attach {
        stdin: o.stdin,
        stdout: o.stdout,
        stderr: o.stderr,
    }
}

pub(crate) async fn connect(socket: &Path, req: &Request) -> std::io::Result<UnixStream> {
    let mut s = UnixStream::connect(socket).await?;
    let mut line = serde_json::to_vec(req)?;
    line.push(b'\n');
    s.write_all(&line).await?;
    Ok(s)
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

/// The runtime opened through a read-only overlay (see [`Engine`]'s `runtime_fd`), kept
/// above the fds a monitor is given (3-5) so that handing it over can never overwrite one of
/// the others; None (the runtime then protects itself) when that cannot be done.
pub(crate) fn protected_runtime(runtime: &Path) -> Option<OwnedFd> {
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

/// `fd` becomes descriptor `to`, inherited across exec (for the monitor's pre-exec hook).
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
}
