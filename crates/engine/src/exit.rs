//! A container's exit: recorded, its networking torn down, and then removed (`--rm`) or
//! restarted as its restart policy says.

use std::sync::Arc;
use std::time::Duration;

use berth_monitor::Exit;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::UnixStream;

use crate::{now, Ctr, Engine, Record, Status};

impl Engine {
    /// Waits for the container's monitor to report its exit, then records it.
    pub(crate) fn watch_exit(
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
    pub(crate) async fn exit_after_lost_monitor(&self, id: &str) -> Exit {
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

    pub(crate) async fn exited(self: &Arc<Self>, ctr: &Arc<Ctr>, exit: Exit) {
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
    pub(crate) fn auto_remove(self: &Arc<Self>, id: &str) {
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
pub(crate) fn restarts_with_the_daemon(rec: &Record) -> bool {
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
