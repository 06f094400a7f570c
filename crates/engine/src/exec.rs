//! `docker exec`: another process in a running container, run through the OCI runtime's
//! `exec` in the foreground, so the runtime waits for the process and exits with its code.
//! berthd holds the process's stdio: the runtime's pipes, relayed to the client with Docker's
//! framing, or with a tty the pty master itself (received over the runtime's
//! `--console-socket`, as containerd does), relayed raw and resized on request. Execs live in
//! memory only, as in dockerd.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_monitor::{frame_header, Stream};
use bollard_stubs::models::ExecConfig;
use serde_json::{json, Value};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, DuplexStream, Interest};

use crate::{io_err, Engine, EngineError, Result};

/// An exec as `GET /exec/{id}/json` shows it.
#[derive(Debug, Clone)]
pub struct ExecState {
    /// The exec's ID.
    pub id: String,
    /// The container's ID.
    pub container: String,
    /// What was asked for.
    pub config: ExecConfig,
    /// Started and not yet ended.
    pub running: bool,
    /// The exit code, once ended.
    pub exit_code: Option<i64>,
    /// The runtime's pid while running (the exec'd process is its child).
    pub pid: i64,
    /// The pty master while a process with a tty runs.
    pty: Option<Arc<AsyncFd<OwnedFd>>>,
    /// The terminal size last asked for (rows, columns), applied when the pty arrives.
    size: Option<(u16, u16)>,
}

/// The execs of all containers.
#[derive(Default)]
pub(crate) struct Execs(Mutex<HashMap<String, ExecState>>);

impl Execs {
    /// Drops the execs of a removed container.
    pub(crate) fn forget_container(&self, id: &str) {
        self.0
            .lock()
            .expect("execs lock")
            .retain(|_, e| e.container != id);
    }
}

impl Engine {
    /// `POST /containers/{id}/exec`.
    pub fn exec_create(&self, key: &str, config: ExecConfig) -> Result<String> {
        let rec = self.inspect(key)?;
        if !rec.state.status.is_running() {
            return Err(EngineError::Conflict(format!(
                "Container {} is not running",
                rec.id
            )));
        }
        if rec.state.status == crate::Status::Paused {
            return Err(EngineError::Conflict(format!(
                "Container {} is paused, unpause the container before exec",
                rec.id
            )));
        }
        if config.cmd.as_ref().is_none_or(|c| c.is_empty()) {
            return Err(EngineError::InvalidParameter(
                "No exec command specified".into(),
            ));
        }
        let id = crate::random_id()?;
        let config_size = config.console_size.clone();
        // dockerd's event names carry the command: `exec_create: sh -c ls`.
        let command = config.cmd.clone().unwrap_or_default().join(" ");
        self.emit(
            &rec,
            &format!("exec_create: {command}"),
            &[("execID", id.clone())],
        );
        self.execs.0.lock().expect("execs lock").insert(
            id.clone(),
            ExecState {
                id: id.clone(),
                container: rec.id,
                config,
                running: false,
                exit_code: None,
                pid: 0,
                pty: None,
                size: console_size(config_size),
            },
        );
        Ok(id)
    }

    /// `GET /exec/{id}/json`.
    pub fn exec_inspect(&self, id: &str) -> Result<ExecState> {
        self.execs
            .0
            .lock()
            .expect("execs lock")
            .get(id)
            .cloned()
            .ok_or_else(|| EngineError::NoSuchExec(id.into()))
    }

    /// `POST /exec/{id}/resize`: sets the size of the exec's terminal, now if its process
    /// runs, else when it starts. An exec without a tty, or one that has ended, ignores it.
    pub fn exec_resize(&self, id: &str, rows: u16, cols: u16) -> Result<()> {
        let mut map = self.execs.0.lock().expect("execs lock");
        let e = map
            .get_mut(id)
            .ok_or_else(|| EngineError::NoSuchExec(id.into()))?;
        e.size = Some((rows, cols));
        if let Some(pty) = &e.pty {
            set_window_size(pty.get_ref(), rows, cols);
        }
        Ok(())
    }

    /// `POST /exec/{id}/start`: starts the process; the returned stream is its stdio, in
    /// Docker's framing when `framed` (the start request's `Tty` is false: dockerd frames by
    /// the start request, even the output of an exec made with a terminal) and raw
    /// otherwise. It ends after the exit code is recorded, so a client that inspects the
    /// exec when its stream ends sees the code.
    /// `size` is the start request's `ConsoleSize` (rows, columns), if it gave one.
    pub async fn exec_start(
        self: &Arc<Self>,
        id: &str,
        size: Option<Vec<usize>>,
        framed: bool,
    ) -> Result<DuplexStream> {
        let (ctr_id, config) = {
            let mut map = self.execs.0.lock().expect("execs lock");
            let e = map
                .get_mut(id)
                .ok_or_else(|| EngineError::NoSuchExec(id.into()))?;
            if e.running || e.exit_code.is_some() {
                return Err(EngineError::Conflict(format!(
                    "Error: Exec command {id} has already run"
                )));
            }
            e.running = true;
            e.size = console_size(size).or(e.size);
            (e.container.clone(), e.config.clone())
        };
        match self.spawn_exec(id, &ctr_id, &config, framed).await {
            Ok(s) => Ok(s),
            Err(e) => {
                if let Some(x) = self.execs.0.lock().expect("execs lock").get_mut(id) {
                    x.running = false;
                    x.exit_code = Some(126);
                }
                Err(e)
            }
        }
    }

    /// The OCI process for an exec: the container's own process (capabilities, rlimits,
    /// no_new_privileges...) with the exec's command, environment, user and directory.
    pub(crate) fn exec_process(&self, ctr_id: &str, config: &ExecConfig) -> Result<Value> {
        let dir = self.ctr_dir(ctr_id);
        let spec_path = dir.join("config.json");
        let spec: Value =
            serde_json::from_slice(&std::fs::read(&spec_path).map_err(io_err("read", &spec_path))?)
                .map_err(|e| EngineError::Internal(format!("{}: {e}", spec_path.display())))?;
        let tty = config.tty.unwrap_or(false);
        let mut process = spec["process"].clone();
        process["args"] = json!(config.cmd.clone().unwrap_or_default());
        process["terminal"] = json!(tty);
        let mut env: Vec<String> = process["env"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        for e in config.env.clone().unwrap_or_default() {
            let key = e.split('=').next().unwrap_or("").to_string();
            env.retain(|x| x.split('=').next() != Some(key.as_str()));
            env.push(e);
        }
        if tty && !env.iter().any(|e| e.starts_with("TERM=")) {
            env.push("TERM=xterm".into());
        }
        process["env"] = json!(env);
        if let Some(w) = config.working_dir.clone().filter(|w| !w.is_empty()) {
            process["cwd"] = json!(w);
        }
        if let Some(u) = config.user.clone().filter(|u| !u.is_empty()) {
            let rootfs = dir.join("rootfs");
            let read = |p: &str| std::fs::read_to_string(rootfs.join(p)).unwrap_or_default();
            let mut user = crate::spec::resolve_user(&u, &read("etc/passwd"), &read("etc/group"))
                .map_err(|e| EngineError::InvalidParameter(e.0))?;
            // The container's --group-add holds for its execs too.
            let groups = self
                .inspect(ctr_id)?
                .host_config
                .group_add
                .unwrap_or_default();
            crate::spec::add_groups(&mut user, &groups, &read("etc/group"))
                .map_err(|e| EngineError::InvalidParameter(e.0))?;
            process["user"] =
                json!({"uid": user.uid, "gid": user.gid, "additionalGids": user.additional_gids});
        }
        if config.privileged.unwrap_or(false) {
            let all = crate::spec::ALL_CAPS;
            process["capabilities"] = json!({"bounding": all, "effective": all, "permitted": all});
        }
        Ok(process)
    }

    /// `berth-runtime exec --process FILE ID`, in the foreground (the runtime waits for the
    /// process and exits with its code).
    /// With `console`, the runtime sends the process's pty master to that socket.
    pub(crate) fn runtime_exec(
        &self,
        id: &str,
        process_file: &Path,
        console: Option<&Path>,
    ) -> tokio::process::Command {
        let mut cmd = self.runtime();
        cmd.arg("--root")
            .arg(self.cfg.exec_root.join("runtime"))
            .arg("exec")
            .arg("--process")
            .arg(process_file);
        if let Some(c) = console {
            cmd.arg("--console-socket").arg(c);
        }
        cmd.arg(id);
        cmd
    }

    async fn spawn_exec(
        self: &Arc<Self>,
        id: &str,
        ctr_id: &str,
        config: &ExecConfig,
        framed: bool,
    ) -> Result<DuplexStream> {
        let rec = self.inspect(ctr_id)?;
        if !rec.state.status.is_running() {
            return Err(EngineError::Conflict(format!(
                "Container {} is not running",
                rec.id
            )));
        }
        let dir = self.ctr_dir(&rec.id);
        let tty = config.tty.unwrap_or(false);
        let process = self.exec_process(&rec.id, config)?;
        let command = config.cmd.clone().unwrap_or_default().join(" ");
        self.emit(
            &rec,
            &format!("exec_start: {command}"),
            &[("execID", id.to_string())],
        );
        let pfile = dir.join(format!("exec-{id}.json"));
        std::fs::write(
            &pfile,
            serde_json::to_vec(&process).map_err(|e| EngineError::Internal(e.to_string()))?,
        )
        .map_err(io_err("write", &pfile))?;
        let attach_in = config.attach_stdin.unwrap_or(false);
        // With a tty the process's stdio is a pty whose master the runtime hands over.
        let console = if tty {
            let path = self.console_socket(id);
            let _ = std::fs::remove_file(&path);
            let l = tokio::net::UnixListener::bind(&path).map_err(io_err("listen on", &path))?;
            Some((l, path))
        } else {
            None
        };
        let mut cmd = self.runtime_exec(&rec.id, &pfile, console.as_ref().map(|c| c.1.as_path()));
        // The runtime's own stderr carries its errors (a missing executable, say): relayed
        // to the client like the process's.
        cmd.stdin(if attach_in && !tty {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(if tty { Stdio::null() } else { Stdio::piped() })
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| {
            let _ = std::fs::remove_file(&pfile);
            if let Some((_, c)) = &console {
                let _ = std::fs::remove_file(c);
            }
            io_err("run", &self.cfg.runtime)(e)
        })?;
        if let Some(x) = self.execs.0.lock().expect("execs lock").get_mut(id) {
            x.pid = child.id().unwrap_or(0) as i64;
        }
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        let (from_client, to_client) = tokio::io::split(ours);
        let mut from_client = Some(from_client);
        let to_client = Arc::new(tokio::sync::Mutex::new(to_client));
        if let Some(mut stdin) = child.stdin.take() {
            let mut from_client = from_client.take().expect("not yet taken");
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut from_client, &mut stdin).await;
                let _ = stdin.shutdown().await;
            });
        }
        let pump = |r: Box<dyn AsyncRead + Unpin + Send>, stream: Stream| {
            let out = to_client.clone();
            tokio::spawn(async move {
                let mut r = r;
                let mut buf = vec![0u8; 32 * 1024];
                // Once the client is gone (it detached), the output is still read, and
                // dropped, so the process never blocks on a full pipe.
                let mut gone = false;
                loop {
                    let n = match r.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    if gone {
                        continue;
                    }
                    let mut w = out.lock().await;
                    gone = (framed && w.write_all(&frame_header(stream, n)).await.is_err())
                        || w.write_all(&buf[..n]).await.is_err();
                }
            })
        };
        let mut pty_out = None;
        if let Some((listener, path)) = console {
            let master = tokio::select! {
                biased;
                m = receive_pty(&listener) => m,
                // The runtime exited: it may have sent the terminal first (a process that
                // ends at once), still waiting to be taken; or it failed before, and its
                // stderr says why.
                _ = child.wait() => {
                    tokio::time::timeout(Duration::from_millis(200), receive_pty(&listener))
                        .await
                        .unwrap_or_else(|_| Err(io::Error::other("the runtime exited without one")))
                }
            }
            .map_err(|e| tracing::debug!("exec {id}: no terminal from the runtime: {e}"))
            .ok();
            drop(listener);
            let _ = std::fs::remove_file(&path);
            if let Some(master) = master {
                let size = {
                    let mut map = self.execs.0.lock().expect("execs lock");
                    map.get_mut(id).and_then(|x| {
                        x.pty = Some(master.clone());
                        x.size
                    })
                };
                if let Some((rows, cols)) = size {
                    set_window_size(master.get_ref(), rows, cols);
                }
                if let (true, Some(mut from_client)) = (attach_in, from_client.take()) {
                    let m = master.clone();
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 8192];
                        while let Ok(n) = from_client.read(&mut buf).await {
                            if n == 0 || pty_write_all(&m, &buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    });
                }
                let out = to_client.clone();
                pty_out = Some(tokio::spawn(async move {
                    let mut buf = vec![0u8; 32 * 1024];
                    // Ends with EIO once the last holder of the pty's other side is gone;
                    // output after the client left (detached) is read and dropped.
                    let mut gone = false;
                    while let Ok(n) = pty_read(&master, &mut buf).await {
                        if n == 0 {
                            break;
                        }
                        if !gone {
                            let mut w = out.lock().await;
                            gone = (framed
                                && w.write_all(&frame_header(Stream::Stdout, n)).await.is_err())
                                || w.write_all(&buf[..n]).await.is_err();
                        }
                    }
                }));
            }
        }
        let out = child
            .stdout
            .take()
            .map(|s| pump(Box::new(s), Stream::Stdout));
        let err = child
            .stderr
            .take()
            .map(|s| pump(Box::new(s), Stream::Stderr));
        let this = self.clone();
        let id = id.to_string();
        tokio::spawn(async move {
            let status = child.wait().await;
            let _ = std::fs::remove_file(&pfile);
            for t in [out, err, pty_out].into_iter().flatten() {
                let _ = t.await;
            }
            let code = status.ok().and_then(|s| s.code()).unwrap_or(126) as i64;
            if let Some(x) = this.execs.0.lock().expect("execs lock").get_mut(&id) {
                x.running = false;
                x.exit_code = Some(code);
                x.pid = 0;
                x.pty = None;
            }
            this.emit(
                &rec,
                "exec_die",
                &[("execID", id.clone()), ("exitCode", code.to_string())],
            );
            let _ = to_client.lock().await.shutdown().await;
        });
        Ok(theirs)
    }
}

impl Engine {
    /// Where the runtime sends an exec's pty master (short: unix socket paths end at 108
    /// bytes).
    fn console_socket(&self, exec_id: &str) -> PathBuf {
        let short = &exec_id[..exec_id.len().min(16)];
        self.cfg.exec_root.join(format!("exec-{short}.console"))
    }
}

/// `ConsoleSize` as Docker sends it: `[rows, columns]`.
fn console_size(v: Option<Vec<usize>>) -> Option<(u16, u16)> {
    match v.as_deref() {
        Some([h, w]) if *h > 0 && *w > 0 => Some((
            u16::try_from(*h).unwrap_or(u16::MAX),
            u16::try_from(*w).unwrap_or(u16::MAX),
        )),
        _ => None,
    }
}

/// Takes the pty master the runtime sends once it has made the exec's terminal.
async fn receive_pty(l: &tokio::net::UnixListener) -> io::Result<Arc<AsyncFd<OwnedFd>>> {
    let (conn, _) = l.accept().await?;
    let fd = conn
        .async_io(Interest::READABLE, || berth_monitor::receive_fd(&conn))
        .await?;
    rustix::fs::fcntl_setfl(&fd, rustix::fs::OFlags::NONBLOCK)?;
    // SAFETY: the AsyncFd owns `fd` (an OwnedFd, which always reports the same descriptor and
    // closes it only when dropped), so it stays open for the registration's whole life.
    Ok(Arc::new(unsafe { AsyncFd::register(fd) }?))
}

async fn pty_read(pty: &AsyncFd<OwnedFd>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        let mut ready = pty.readable().await?;
        if let Ok(r) = ready.try_io(|fd| Ok(rustix::io::read(fd.get_ref(), &mut *buf)?)) {
            return r;
        }
    }
}

async fn pty_write_all(pty: &AsyncFd<OwnedFd>, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        let mut ready = pty.writable().await?;
        if let Ok(r) = ready.try_io(|fd| Ok(rustix::io::write(fd.get_ref(), data)?)) {
            data = &data[r?..];
        }
    }
    Ok(())
}

/// TIOCSWINSZ on a pty master: the kernel signals the terminal's foreground process group
/// (SIGWINCH).
fn set_window_size(master: &OwnedFd, rows: u16, cols: u16) {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one `winsize` from the struct we pass; a failure (the fd is
    // not a terminal) changes nothing.
    unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
}
