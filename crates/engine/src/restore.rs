//! Finding containers again after berthd restarts (live restore).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use berth_monitor::Request;

use crate::exit::restarts_with_the_daemon;
use crate::monitor::connect;
use crate::{io_err, now, Ctr, Engine, Record, Result, Status};

impl Engine {
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
    pub(crate) async fn restore(self: &Arc<Self>) -> Result<()> {
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
