//! `berth-monitor CONFIG`: runs one container and stays with it until it exits (the role
//! containerd's shim plays). See the library's docs for the protocol.
//!
//! It is deliberately small and single-threaded: one `poll` loop over the container's output,
//! the clients' sockets and a pidfd of the container's init. It links no runtime code: the
//! container is started by exec'ing the OCI runtime (`berth-runtime run --detach`), which keeps
//! libcontainer's cloning out of this long-lived process and keeps its resident memory low.
//! The monitor is a child subreaper, so the container's init becomes its child when the
//! runtime exits, and its exit status is ours to collect.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_monitor::{frame_header, Config, Exit, LogConfig, Request, Started, Stream};
use rustix::event::{poll, PollFd, PollFlags};
use rustix::io::Errno;
use rustix::process::{Pid, WaitOptions, WaitStatus};

/// How long output is drained after the init exits (processes outside the container's pid
/// namespace may hold the pipes open).
const DRAIN: Duration = Duration::from_secs(2);
/// An attached client this far behind is dropped rather than let it stall the container.
const MAX_PENDING: usize = 8 << 20;
/// Docker's json-file driver splits lines longer than this into several entries.
const MAX_LINE: usize = 16 * 1024;

fn main() {
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: berth-monitor CONFIG (started by berthd)");
        std::process::exit(2);
    };
    if rustix::io::fcntl_getfd(
        // SAFETY: only queried, not owned: fcntl on a closed fd fails with EBADF.
        unsafe { rustix::fd::BorrowedFd::borrow_raw(berth_monitor::SYNC_FD) },
    )
    .is_err()
    {
        eprintln!("berth-monitor: no sync socket on fd 3 (started by berthd only)");
        std::process::exit(2);
    }
    // Whatever else the daemon's own starter left open (a test harness's pipes, a job
    // server) must not live as long as the container does.
    // SAFETY: close_range only closes descriptors; nothing in this process owns those above
    // the runtime's (stdio, the sync socket, the lock and the runtime are all below 6).
    unsafe {
        libc::close_range(berth_monitor::RUNTIME_FD as u32 + 1, u32::MAX, 0);
    }
    // SAFETY: fd 3 is open (checked above) and was handed to us to own by the engine.
    let sync = unsafe { UnixStream::from_raw_fd(berth_monitor::SYNC_FD) };
    // The sync socket and the lock (fd 4, held open for our whole life and never touched
    // again) must not leak into the runtime or the container.
    let _ = rustix::io::fcntl_setfd(&sync, rustix::io::FdFlags::CLOEXEC);
    // SAFETY: only borrowed for the fcntl; fcntl on a closed fd fails harmlessly.
    let lock = unsafe { rustix::fd::BorrowedFd::borrow_raw(berth_monitor::LOCK_FD) };
    let _ = rustix::io::fcntl_setfd(lock, rustix::io::FdFlags::CLOEXEC);
    // The protected runtime is exec'd by path (/proc/self/fd/5), which resolves before the
    // exec closes it: it never reaches the runtime or the container as an open fd.
    // SAFETY: only borrowed for the fcntl; fcntl on a closed fd fails harmlessly.
    let runtime = unsafe { rustix::fd::BorrowedFd::borrow_raw(berth_monitor::RUNTIME_FD) };
    let _ = rustix::io::fcntl_setfd(runtime, rustix::io::FdFlags::CLOEXEC);
    let cfg: Config = match std::fs::read(&path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("berth-monitor: {}: {e}", Path::new(&path).display());
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&cfg, sync) {
        eprintln!("berth-monitor {}: {e}", cfg.id);
        std::process::exit(1);
    }
}

/// The container's stdio as the monitor holds it.
struct Stdio3 {
    /// stdout pipe, or the pty master.
    out: Option<OwnedFd>,
    /// stderr pipe (none with a tty).
    err: Option<OwnedFd>,
    /// Where stdin goes: a pipe, or the pty master again.
    stdin: Option<OwnedFd>,
}

fn run(cfg: &Config, mut sync: UnixStream) -> io::Result<()> {
    rustix::process::set_child_subreaper(Some(rustix::process::getpid()))?;
    let _ = std::fs::remove_file(&cfg.socket);
    let listener = UnixListener::bind(&cfg.socket)?;
    std::fs::set_permissions(&cfg.socket, std::fs::Permissions::from_mode(0o600))?;
    listener.set_nonblocking(true)?;

    let (started, stdio) = start(cfg);
    let started = match started {
        Ok(s) => s,
        Err(message) => {
            let _ = std::fs::remove_file(&cfg.socket);
            send_line(&mut sync, &Started::Failed { message })?;
            return Ok(());
        }
    };
    let pid = started;
    let init = Pid::from_raw(pid).ok_or_else(|| io::Error::other("runtime wrote pid 0"))?;
    let pidfd = rustix::process::pidfd_open(init, rustix::process::PidfdFlags::empty())?;
    send_line(&mut sync, &Started::Running { pid })?;
    // The engine connects the attach streams that were waiting, then lets us go.
    sync.set_read_timeout(Some(Duration::from_secs(30)))?;
    let _ = sync.read(&mut [0u8; 1]);
    drop(sync);

    let mut m = Monitor {
        cfg,
        stdio,
        clients: Vec::new(),
        stdin_pending: Vec::new(),
        close_stdin: false,
        log: cfg.log.as_ref().and_then(|l| match Log::open(l.clone()) {
            Ok(l) => Some(l),
            Err(e) => {
                eprintln!("log file {}: {e}", l.path.display());
                None
            }
        }),
    };
    let status = m.serve(&listener, &pidfd, init)?;
    m.finish(status)
}

/// Starts the container; the init's pid, or the runtime's error message.
fn start(cfg: &Config) -> (Result<i32, String>, Stdio3) {
    let mut stdio = Stdio3 {
        out: None,
        err: None,
        stdin: None,
    };
    let r = (|| -> Result<i32, String> {
        let e = |what: &str, err: io::Error| format!("{what}: {err}");
        let pipe = || rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC);
        let mut cmd = if cfg.runtime_protected {
            let mut c = Command::new(format!("/proc/self/fd/{}", berth_monitor::RUNTIME_FD));
            std::os::unix::process::CommandExt::arg0(&mut c, &cfg.runtime);
            c
        } else {
            Command::new(&cfg.runtime)
        };
        cmd.arg("--root")
            .arg(&cfg.runtime_root)
            .arg("run")
            .arg("--detach")
            .arg("--bundle")
            .arg(&cfg.bundle)
            .arg("--pid-file")
            .arg(&cfg.pid_file);
        let console_path = cfg.socket.with_extension("console");
        let mut console = None;
        let (err_r, err_w) = pipe().map_err(|x| e("pipe", x.into()))?;
        if cfg.tty {
            let _ = std::fs::remove_file(&console_path);
            let l = UnixListener::bind(&console_path).map_err(|x| e("console socket", x))?;
            l.set_nonblocking(true)
                .map_err(|x| e("console socket", x))?;
            console = Some(l);
            cmd.arg("--console-socket")
                .arg(&console_path)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::from(err_w));
        } else {
            let (out_r, out_w) = pipe().map_err(|x| e("pipe", x.into()))?;
            if cfg.open_stdin {
                let (in_r, in_w) = pipe().map_err(|x| e("pipe", x.into()))?;
                cmd.stdin(Stdio::from(in_r));
                stdio.stdin = Some(in_w);
            } else {
                cmd.stdin(Stdio::null());
            }
            cmd.stdout(Stdio::from(out_w)).stderr(Stdio::from(err_w));
            stdio.out = Some(out_r);
        }
        cmd.arg(&cfg.id);
        let status = cmd.status().map_err(|x| e("run the OCI runtime", x));
        // Our copies of the child's ends are gone with `cmd`: EOF comes when the container
        // closes its own.
        drop(cmd);
        let clean_console = || {
            let _ = std::fs::remove_file(&console_path);
        };
        let status = status.inspect_err(|_| clean_console())?;
        if !status.success() {
            clean_console();
            let mut msg = Vec::new();
            let _ = rustix::io::ioctl_fionbio(&err_r, true);
            let _ = File::from(err_r).read_to_end(&mut msg);
            let msg = String::from_utf8_lossy(&msg).trim().to_string();
            return Err(if msg.is_empty() {
                format!("the OCI runtime failed ({status})")
            } else {
                msg
            });
        }
        if cfg.tty {
            let master = console
                .as_ref()
                .map(receive_master)
                .transpose()
                .map_err(|x| e("receive the terminal", x));
            clean_console();
            let master = master?.ok_or("no terminal")?;
            let dup = rustix::io::fcntl_dupfd_cloexec(&master, 0)
                .map_err(|x| e("dup the terminal", x.into()))?;
            stdio.stdin = Some(dup);
            stdio.out = Some(master);
        } else {
            stdio.err = Some(err_r);
        }
        let pid = std::fs::read_to_string(&cfg.pid_file).map_err(|x| e("read pid file", x))?;
        pid.trim()
            .parse::<i32>()
            .map_err(|_| format!("pid file holds {pid:?}"))
    })();
    (r, stdio)
}

/// Takes the pty master the container's init sent over the console socket.
fn receive_master(l: &UnixListener) -> io::Result<OwnedFd> {
    let (conn, _) = l.accept()?;
    berth_monitor::receive_fd(&conn)
}

fn send_line<T: serde::Serialize>(s: &mut UnixStream, v: &T) -> io::Result<()> {
    let mut line = serde_json::to_vec(v)?;
    line.push(b'\n');
    s.write_all(&line)
}

/// A connected client.
struct Client {
    s: UnixStream,
    wait: bool,
    stdin: bool,
    stdout: bool,
    stderr: bool,
    /// The client shut its side down (no more reading from it).
    eof: bool,
    /// The client is gone: it is dropped once the events of this round are handled (not
    /// at once, since they name clients by index).
    gone: bool,
    pending: Vec<u8>,
}

struct Monitor<'a> {
    cfg: &'a Config,
    stdio: Stdio3,
    clients: Vec<Client>,
    stdin_pending: Vec<u8>,
    /// Close the container's stdin once `stdin_pending` is written (`StdinOnce`).
    close_stdin: bool,
    log: Option<Log>,
}

#[derive(Clone, Copy)]
enum Tag {
    Listener,
    Out,
    Err,
    Init,
    Stdin,
    Client(usize),
}

impl Monitor<'_> {
    /// The loop: until the init has exited and its output is drained. Returns its status.
    fn serve(
        &mut self,
        listener: &UnixListener,
        pidfd: &OwnedFd,
        init: Pid,
    ) -> io::Result<WaitStatus> {
        let mut status: Option<WaitStatus> = None;
        let mut deadline: Option<Instant> = None;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if let Some(d) = deadline {
                if (self.stdio.out.is_none() && self.stdio.err.is_none()) || Instant::now() >= d {
                    break;
                }
            }
            let mut tags = Vec::new();
            let mut fds = Vec::new();
            fds.push(PollFd::new(listener, PollFlags::IN));
            tags.push(Tag::Listener);
            if let Some(f) = &self.stdio.out {
                fds.push(PollFd::new(f, PollFlags::IN));
                tags.push(Tag::Out);
            }
            if let Some(f) = &self.stdio.err {
                fds.push(PollFd::new(f, PollFlags::IN));
                tags.push(Tag::Err);
            }
            if status.is_none() {
                fds.push(PollFd::new(pidfd, PollFlags::IN));
                tags.push(Tag::Init);
            }
            if let (Some(f), false) = (&self.stdio.stdin, self.stdin_pending.is_empty()) {
                fds.push(PollFd::new(f, PollFlags::OUT));
                tags.push(Tag::Stdin);
            }
            for (i, c) in self.clients.iter().enumerate() {
                let mut fl = PollFlags::empty();
                if !c.eof && self.stdin_pending.len() < MAX_PENDING {
                    fl |= PollFlags::IN;
                }
                if !c.pending.is_empty() {
                    fl |= PollFlags::OUT;
                }
                fds.push(PollFd::new(&c.s, fl));
                tags.push(Tag::Client(i));
            }
            let timeout = deadline.map(|d| {
                let left = d.saturating_duration_since(Instant::now());
                rustix::event::Timespec {
                    tv_sec: left.as_secs() as i64,
                    tv_nsec: left.subsec_nanos() as i64,
                }
            });
            match poll(&mut fds, timeout.as_ref()) {
                Ok(_) => {}
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
            let ready: Vec<(Tag, PollFlags)> = tags
                .into_iter()
                .zip(fds.iter().map(|f| f.revents()))
                .filter(|(_, r)| !r.is_empty())
                .collect();
            drop(fds);
            for (tag, rev) in ready {
                match tag {
                    // All of them: the attachers queued before the start must be in place
                    // before the first output is read below.
                    Tag::Listener => while self.accept(listener) {},
                    Tag::Out | Tag::Err => {
                        let (slot, stream) = match tag {
                            Tag::Out => (&mut self.stdio.out, Stream::Stdout),
                            _ => (&mut self.stdio.err, Stream::Stderr),
                        };
                        let Some(fd) = slot.as_ref() else { continue };
                        match rustix::io::read(fd, &mut buf) {
                            Ok(0) | Err(Errno::IO) => *slot = None,
                            Ok(n) => {
                                let data = buf[..n].to_vec();
                                self.output(stream, &data);
                            }
                            Err(Errno::INTR) | Err(Errno::AGAIN) => {}
                            Err(_) => *slot = None,
                        }
                    }
                    Tag::Init => {
                        status = reap(init);
                        if status.is_some() {
                            deadline = Some(Instant::now() + DRAIN);
                        }
                    }
                    Tag::Stdin => self.flush_stdin(),
                    Tag::Client(i) => {
                        if self.clients[i].gone {
                            continue;
                        }
                        if rev.intersects(PollFlags::OUT) && !self.flush_client(i) {
                            self.clients[i].gone = true;
                            continue;
                        }
                        let hup = rev.intersects(PollFlags::HUP | PollFlags::ERR);
                        if self.clients[i].eof {
                            // Nothing more to read; a hang-up now means it is gone.
                            if hup {
                                self.clients[i].gone = true;
                            }
                        } else if (hup || rev.intersects(PollFlags::IN))
                            && !self.read_client(i, &mut buf)
                        {
                            self.clients[i].gone = true;
                        }
                    }
                }
            }
            self.clients.retain(|c| !c.gone);
        }
        // Unreachable without a status: the loop only breaks once the deadline is set.
        status.ok_or_else(|| io::Error::other("init status lost"))
    }

    /// Takes one connection; false when none was waiting.
    fn accept(&mut self, listener: &UnixListener) -> bool {
        let Ok((s, _)) = listener.accept() else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let mut r = BufReader::new(s);
        let mut line = String::new();
        if r.read_line(&mut line).is_err() {
            return true;
        }
        let leftover = r.buffer().to_vec();
        let s = r.into_inner();
        let Ok(req) = serde_json::from_str::<Request>(&line) else {
            let _ = (&s).write_all(b"{\"error\":\"bad request\"}\n");
            return true;
        };
        let _ = s.set_read_timeout(None);
        let _ = s.set_nonblocking(true);
        let mut c = Client {
            s,
            wait: false,
            stdin: false,
            stdout: false,
            stderr: false,
            eof: false,
            gone: false,
            pending: Vec::new(),
        };
        match req {
            Request::Wait => c.wait = true,
            Request::Attach {
                stdin,
                stdout,
                stderr,
            } => {
                c.stdin = stdin && self.stdio.stdin.is_some();
                c.stdout = stdout;
                c.stderr = stderr;
                if c.stdin && !leftover.is_empty() {
                    self.stdin_pending.extend_from_slice(&leftover);
                    self.flush_stdin();
                }
            }
            Request::Resize { height, width } => {
                if self.cfg.tty {
                    if let Some(m) = &self.stdio.out {
                        let _ = rustix::termios::tcsetwinsize(
                            m,
                            rustix::termios::Winsize {
                                ws_row: height,
                                ws_col: width,
                                ws_xpixel: 0,
                                ws_ypixel: 0,
                            },
                        );
                    }
                }
                return true;
            }
        }
        self.clients.push(c);
        true
    }

    /// The container wrote something: log it and hand it to the attached clients.
    fn output(&mut self, stream: Stream, data: &[u8]) {
        if let Some(l) = &mut self.log {
            l.write(stream, data);
        }
        let header = frame_header(stream, data.len());
        for c in self.clients.iter_mut().filter(|c| !c.gone) {
            let wanted = match stream {
                Stream::Stderr => c.stderr,
                _ => c.stdout,
            };
            if !wanted {
                continue;
            }
            if !self.cfg.tty {
                c.pending.extend_from_slice(&header);
            }
            c.pending.extend_from_slice(data);
            // A client this far behind is dropped rather than let the container's output
            // pile up here.
            c.gone = c.pending.len() > MAX_PENDING;
        }
        for i in 0..self.clients.len() {
            if !self.clients[i].gone && !self.clients[i].pending.is_empty() && !self.flush_client(i)
            {
                self.clients[i].gone = true;
            }
        }
    }

    /// Writes what a client is owed; false when the client is gone.
    fn flush_client(&mut self, i: usize) -> bool {
        let c = &mut self.clients[i];
        while !c.pending.is_empty() {
            match (&c.s).write(&c.pending) {
                Ok(0) => return false,
                Ok(n) => {
                    c.pending.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        true
    }

    /// Reads from a client: stdin data, or its goodbye. False when the client is gone.
    fn read_client(&mut self, i: usize, buf: &mut [u8]) -> bool {
        let c = &mut self.clients[i];
        match (&c.s).read(buf) {
            Ok(0) => {
                c.eof = true;
                if c.stdin {
                    c.stdin = false;
                    if self.cfg.stdin_once && !self.cfg.tty {
                        // The container sees EOF once what is queued has been written.
                        self.close_stdin = true;
                        if self.stdin_pending.is_empty() {
                            self.stdio.stdin = None;
                        }
                    }
                }
                // A waiter or output-only client that hung up is gone; an attached one may
                // only have closed its input.
                !(c.wait || !(c.stdout || c.stderr))
            }
            Ok(n) => {
                if c.stdin {
                    self.stdin_pending.extend_from_slice(&buf[..n]);
                    self.flush_stdin();
                }
                true
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => true,
            Err(_) => false,
        }
    }

    fn flush_stdin(&mut self) {
        let Some(fd) = &self.stdio.stdin else {
            self.stdin_pending.clear();
            return;
        };
        let _ = rustix::io::ioctl_fionbio(fd, true);
        while !self.stdin_pending.is_empty() {
            match rustix::io::write(fd, &self.stdin_pending) {
                Ok(n) => {
                    self.stdin_pending.drain(..n);
                }
                Err(Errno::AGAIN) => return,
                Err(Errno::INTR) => {}
                Err(_) => {
                    self.stdin_pending.clear();
                    self.stdio.stdin = None;
                    return;
                }
            }
        }
        if self.close_stdin {
            self.stdio.stdin = None;
        }
    }

    /// The container is gone: clean up after it, record how it ended, tell the waiters.
    fn finish(mut self, status: WaitStatus) -> io::Result<()> {
        let finished_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        if let Some(l) = &mut self.log {
            l.flush_partial();
        }
        let exit_code = match (status.exit_status(), status.terminating_signal()) {
            (Some(c), _) => c,
            (None, Some(sig)) => 128 + sig,
            _ => 255,
        };
        let exit = Exit {
            exit_code,
            finished_at,
            oom_killed: oom_killed(&self.cfg.cgroup),
        };
        // What the runtime made for the container goes first; when that takes the runtime
        // itself, its delete runs beside the rootfs unmount (which syncs the overlay's upper
        // filesystem), since the two touch different things.
        let deleting = match remove_from_runtime(self.cfg) {
            Ok(()) => None,
            Err(why) => {
                if why.kind() != io::ErrorKind::Unsupported {
                    eprintln!("clean up after the container ({why}): asking the runtime");
                }
                Some(
                    Command::new(&self.cfg.runtime)
                        .arg("--root")
                        .arg(&self.cfg.runtime_root)
                        .args(["delete", "--force"])
                        .arg(&self.cfg.id)
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::piped())
                        .spawn(),
                )
            }
        };
        if let Some(m) = &self.cfg.rootfs_mount {
            if let Err(e) = rustix::mount::unmount(m, rustix::mount::UnmountFlags::DETACH) {
                if e != Errno::INVAL {
                    eprintln!("unmount {}: {e}", m.display());
                }
            }
        }
        match deleting {
            Some(Ok(child)) => wait_reaping(child),
            Some(Err(e)) => eprintln!("runtime delete: {e}"),
            None => {}
        }
        berth_atomic::write(
            &self.cfg.exit_file,
            &serde_json::to_vec(&exit)?,
            if self.cfg.durable_exit {
                berth_atomic::Durability::Durable
            } else {
                berth_atomic::Durability::Atomic
            },
        )?;
        let _ = std::fs::remove_file(&self.cfg.socket);
        let mut line = serde_json::to_vec(&exit)?;
        line.push(b'\n');
        for c in &mut self.clients {
            let _ = c.s.set_nonblocking(false);
            let _ = c.s.set_write_timeout(Some(Duration::from_secs(1)));
            if c.wait {
                c.pending.extend_from_slice(&line);
            }
            let _ = (&c.s).write_all(&c.pending);
            let _ = c.s.shutdown(std::net::Shutdown::Both);
        }
        // Orphans that ended up with us (the runtime's intermediate processes).
        while let Ok(Some(_)) = rustix::process::wait(WaitOptions::NOHANG) {}
        Ok(())
    }
}

/// Removes what the OCI runtime made for a container whose init the monitor has reaped, as
/// `berth-runtime delete` would, without starting the runtime again (a process start costs
/// several milliseconds at every container exit): its cgroups, empty now that the init is
/// gone (with a pid namespace the kernel has killed every other process), and its state
/// directory, under the runtime's own lock on it. `Unsupported` when the container has
/// poststop hooks (berthd never sets any), and any failure (a cgroup still busy), leave it to
/// the runtime's delete.
fn remove_from_runtime(cfg: &Config) -> io::Result<()> {
    let dir = cfg.runtime_root.join(&cfg.id);
    let lock = File::open(&dir)?;
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)?;
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("youki_config.json"))?)?;
    if config["hooks"]["poststop"]
        .as_array()
        .is_some_and(|h| !h.is_empty())
    {
        return Err(io::ErrorKind::Unsupported.into());
    }
    let cgroup = config["cgroup_path"]
        .as_str()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| cfg.cgroup.clone());
    remove_cgroup(&cgroup)?;
    // state.json first: a runtime command waiting for the lock then finds no container.
    std::fs::remove_file(dir.join("state.json"))?;
    std::fs::remove_dir_all(&dir)
}

/// Removes a container's cgroup directories: in every v1 hierarchy
/// (/sys/fs/cgroup/<controller>/<path>) and the v2 one. Fails on the first that is busy.
fn remove_cgroup(cgroup: &Path) -> io::Result<()> {
    let rel = cgroup.strip_prefix("/").unwrap_or(cgroup);
    if rel.as_os_str().is_empty() {
        return Err(io::Error::other("no cgroup path"));
    }
    let root = Path::new("/sys/fs/cgroup");
    let mut dirs = vec![root.join(rel)];
    for h in std::fs::read_dir(root)?.flatten() {
        dirs.push(h.path().join(rel));
    }
    for d in dirs {
        match std::fs::remove_dir(&d) {
            Ok(()) => {}
            Err(e)
                if e.kind() == io::ErrorKind::NotFound
                    || e.raw_os_error() == Some(libc::ENOTDIR) => {}
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("rmdir {}: {e}", d.display()),
                ))
            }
        }
    }
    Ok(())
}

/// Waits for the runtime's delete, reaping every other child meanwhile: processes the init
/// left behind (without a pid namespace of its own) are ours as the subreaper, and a zombie
/// keeps its cgroup busy until it is reaped, which the delete waits for.
fn wait_reaping(mut child: std::process::Child) {
    let Some(delete) = Pid::from_raw(child.id() as i32) else {
        return;
    };
    let status = loop {
        match rustix::process::wait(WaitOptions::empty()) {
            Ok(Some((pid, st))) if pid == delete => break Some(st),
            Ok(Some(_)) | Err(Errno::INTR) => continue,
            Ok(None) | Err(_) => break None,
        }
    };
    if status.is_some_and(|st| st.exit_status() != Some(0)) {
        let mut msg = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut msg);
        }
        eprintln!("runtime delete: {}", msg.trim());
    }
}

/// Collects the init's status once it has exited (and any other child that has).
fn reap(init: Pid) -> Option<WaitStatus> {
    let mut status = None;
    while let Ok(Some((pid, st))) = rustix::process::wait(WaitOptions::NOHANG) {
        if pid == init {
            status = Some(st);
        }
    }
    status
}

/// Whether the OOM killer ran in the container's memory cgroup (v1 or v2).
fn oom_killed(cgroup: &Path) -> bool {
    let rel = cgroup.strip_prefix("/").unwrap_or(cgroup);
    let candidates = [
        Path::new("/sys/fs/cgroup/memory")
            .join(rel)
            .join("memory.oom_control"),
        Path::new("/sys/fs/cgroup").join(rel).join("memory.events"),
    ];
    candidates.iter().any(|p| {
        std::fs::read_to_string(p).is_ok_and(|s| {
            s.lines().any(|l| {
                l.strip_prefix("oom_kill ")
                    .and_then(|n| n.trim().parse::<u64>().ok())
                    .is_some_and(|n| n > 0)
            })
        })
    })
}

/// Docker's json-file log: one JSON object per line of output, rotated by size.
struct Log {
    cfg: LogConfig,
    file: File,
    size: u64,
    partial: [Vec<u8>; 2],
}

impl Log {
    fn open(cfg: LogConfig) -> io::Result<Self> {
        let file = File::options().create(true).append(true).open(&cfg.path)?;
        let size = file.metadata()?.len();
        Ok(Log {
            cfg,
            file,
            size,
            partial: [Vec::new(), Vec::new()],
        })
    }

    fn write(&mut self, stream: Stream, data: &[u8]) {
        let k = if stream == Stream::Stderr { 1 } else { 0 };
        let mut rest = data;
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            let (line, tail) = rest.split_at(nl + 1);
            if self.partial[k].is_empty() {
                self.entry(stream, line);
            } else {
                let mut whole = std::mem::take(&mut self.partial[k]);
                whole.extend_from_slice(line);
                self.entry(stream, &whole);
            }
            rest = tail;
        }
        self.partial[k].extend_from_slice(rest);
        if self.partial[k].len() >= MAX_LINE {
            let whole = std::mem::take(&mut self.partial[k]);
            self.entry(stream, &whole);
        }
    }

    fn flush_partial(&mut self) {
        for (k, stream) in [(0, Stream::Stdout), (1, Stream::Stderr)] {
            if !self.partial[k].is_empty() {
                let whole = std::mem::take(&mut self.partial[k]);
                self.entry(stream, &whole);
            }
        }
    }

    fn entry(&mut self, stream: Stream, line: &[u8]) {
        #[derive(serde::Serialize)]
        struct Entry<'a> {
            log: &'a str,
            stream: &'a str,
            time: String,
        }
        let text = String::from_utf8_lossy(line);
        let e = Entry {
            log: &text,
            stream: if stream == Stream::Stderr {
                "stderr"
            } else {
                "stdout"
            },
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        };
        let Ok(mut bytes) = serde_json::to_vec(&e) else {
            return;
        };
        bytes.push(b'\n');
        if self.cfg.max_size > 0 && self.size + bytes.len() as u64 > self.cfg.max_size {
            if let Err(err) = self.rotate() {
                eprintln!("rotate {}: {err}", self.cfg.path.display());
            }
        }
        match self.file.write_all(&bytes) {
            Ok(()) => self.size += bytes.len() as u64,
            Err(err) => eprintln!("write {}: {err}", self.cfg.path.display()),
        }
    }

    /// `log` -> `log.1` -> ... -> `log.<max_file-1>`; with one file, the log is truncated.
    fn rotate(&mut self) -> io::Result<()> {
        let p = &self.cfg.path;
        let name = |i: u32| {
            let mut s = p.as_os_str().to_owned();
            s.push(format!(".{i}"));
            std::path::PathBuf::from(s)
        };
        if self.cfg.max_file > 1 {
            for i in (1..self.cfg.max_file - 1).rev() {
                let _ = std::fs::rename(name(i), name(i + 1));
            }
            std::fs::rename(p, name(1))?;
            self.file = File::options().create(true).append(true).open(p)?;
        } else {
            self.file.set_len(0)?;
        }
        self.size = 0;
        Ok(())
    }
}
