//! Starting a container: its networking, then its bundle, then its monitor.

use std::path::PathBuf;
use std::sync::Arc;

use berth_monitor::Request;
use tokio::io::AsyncWriteExt;
use tokio::net::unix::OwnedWriteHalf;

use crate::monitor::{self, attach_request, connect};
use crate::{net, now, record, spec, Ctr, Engine, EngineError, Record, Result, State, Status};

/// How a start's networking turned out, for the blocking half of the start.
pub(crate) struct NetUp {
    /// The namespace to run in.
    pub(crate) netns: NetNsBuf,
    /// Another container whose /etc files it shares (`--network container:`).
    pub(crate) share: Option<PathBuf>,
    /// The default bridge's address (`--add-host x:host-gateway`).
    pub(crate) gateway: Option<std::net::Ipv4Addr>,
}

pub(crate) enum NetNsBuf {
    Host,
    Join(PathBuf),
}

impl NetNsBuf {
    pub(crate) fn as_spec(&self) -> spec::NetNs<'_> {
        match self {
            NetNsBuf::Host => spec::NetNs::Host,
            NetNsBuf::Join(p) => spec::NetNs::Join(p),
        }
    }
}

impl Engine {
    /// `POST /containers/{id}/start`.
    pub async fn start(self: &Arc<Self>, key: &str) -> Result<()> {
        let ctr = self.find(key)?;
        let _op = ctr.op.lock().await;
        self.start_locked(&ctr).await
    }

    pub(crate) async fn start_locked(self: &Arc<Self>, ctr: &Arc<Ctr>) -> Result<()> {
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
        let (r, w) = self.spawn_monitor(&rec.id, &dir, &rootfs)?.into_split();
        let pid = monitor::await_started(r, &dir, &rootfs).await?;
        self.release(ctr, &rec.id, w).await;
        Ok(pid)
    }

    /// Connects the exit waiter and the attachers that came before the start, then lets the
    /// monitor run the container and watches for its exit.
    async fn release(self: &Arc<Self>, ctr: &Arc<Ctr>, id: &str, mut w: OwnedWriteHalf) {
        // The waiter and the early attachers connect before the monitor reads any output.
        let socket = self.socket(id);
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
    }
}
