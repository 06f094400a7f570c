//! Requests on an existing container: stop, restart, kill, pause, wait, remove, attach,
//! resize, rename; and the OCI runtime run as a command.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use berth_monitor::Request;
use tokio::net::UnixStream;
use tokio::sync::oneshot;

use crate::monitor::{attach_request, connect};
use crate::signal::send_signal;
use crate::{
    io_err, names, parse_signal, AttachOptions, Engine, EngineError, Result, Status, WaitCondition,
};

impl Engine {
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
    pub(crate) fn runtime(&self) -> tokio::process::Command {
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

    pub(crate) async fn runtime_cmd(&self, args: &[&str]) -> Result<String> {
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
}
