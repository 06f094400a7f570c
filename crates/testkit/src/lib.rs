//! What berth's end-to-end tests share: a berthd on a private socket, data root, exec root
//! and cgroup parent, driven with the real `docker` CLI or with `berth`; a private dockerd as
//! the peer of interoperability tests; and the busybox image the container tests run.
//!
//! Dropping a [`Daemon`] removes every container it made (`docker rm -f`), stops berthd, and
//! then sweeps what a failed test could have left behind under its directory: monitors still
//! running, overlay mounts. Dropping a [`Dockerd`] stops it and unmounts what it left.
//!
//! The binaries come from the target directory the test runs from (`target/<profile>`):
//! `scripts/test.sh` builds them all before the tests.

#![allow(dead_code)]

pub mod outside;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A binary of the workspace, next to the running test's `deps/` directory.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap();
    let dir = if dir.ends_with("deps") {
        dir.parent().unwrap()
    } else {
        dir
    };
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{name} is not built in {}: run `cargo build --workspace --bins` first (scripts/test.sh does)",
        dir.display()
    );
    p
}

/// A berthd on a private socket and root.
pub struct Daemon {
    pub dir: tempfile::TempDir,
    pub child: Option<std::process::Child>,
    /// Extra flags berthd is started with.
    pub flags: Vec<String>,
}

impl Daemon {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// A daemon with the busybox image loaded through the docker CLI. Without the docker
    /// CLI the test fails (it must never pass without having run).
    pub fn with_busybox() -> Self {
        assert!(
            have_docker_cli(),
            "this test drives berthd with the docker CLI: install docker.io (scripts/install-deps.sh)"
        );
        let d = Self::start();
        d.load_busybox();
        d
    }

    /// A berthd started with extra `flags`.
    pub fn start_with(flags: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut d = Daemon {
            dir,
            child: None,
            flags: flags.iter().map(|f| f.to_string()).collect(),
        };
        d.spawn();
        d
    }

    /// (Re)starts berthd on this daemon's directories.
    pub fn spawn(&mut self) {
        let child = self.command().spawn().unwrap();
        self.child = Some(child);
        assert!(
            wait_ready(&self.socket(), Duration::from_secs(20)),
            "berthd did not answer: {}",
            self.log_tail()
        );
    }

    /// The command that starts this daemon's berthd (its log appended to the daemon's log),
    /// for tests that start it themselves.
    pub fn command(&self) -> Command {
        for b in ["berth-runtime", "berth-monitor"] {
            bin(b);
        }
        let mut c = Command::new(bin("berthd"));
        c.arg("--root")
            .arg(self.dir.path().join("root"))
            .arg("--exec-root")
            .arg(self.dir.path().join("exec"))
            .arg("--host")
            .arg(format!("unix://{}", self.socket().display()))
            .arg("--cgroup-parent")
            .arg(self.cgroup_parent())
            .arg("--log-level")
            .arg("debug")
            .arg("--network-prefix")
            .arg(self.net_prefix())
            .args(&self.flags)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::options()
                    .create(true)
                    .append(true)
                    .open(self.dir.path().join("log"))
                    .unwrap(),
            );
        c
    }

    /// SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// A cgroup parent of this daemon's own, removed when it is dropped.
    pub fn cgroup_parent(&self) -> String {
        format!(
            "berth-test-{}",
            self.dir
                .path()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .trim_start_matches('.')
        )
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("berth.sock")
    }

    /// This daemon's names on the host (`--network-prefix`): its bridges are `<prefix>0` and
    /// `<prefix>-<id>`, its nftables table and iptables comments `<prefix>`.
    pub fn net_prefix(&self) -> String {
        let h = sha256_hex(self.dir.path().as_os_str().as_encoded_bytes());
        format!("bt{}", &h[..6])
    }

    /// The default bridge's name.
    pub fn bridge(&self) -> String {
        format!("{}0", self.net_prefix())
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// A client command aimed at this daemon: the docker CLI through `DOCKER_HOST`, berth
    /// through `BERTH_HOST`.
    pub fn cmd_with(&self, bin: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Command {
        let host = format!("unix://{}", self.socket().display());
        let mut c = Command::new(bin);
        c.env("DOCKER_HOST", &host)
            .env("BERTH_HOST", &host)
            .env("DOCKER_CONFIG", self.dir.path().join("docker-config"))
            .args(args);
        c
    }

    /// Runs a client to completion; one that hangs for a minute is killed and the test fails
    /// naming it (rather than the whole test timing out without a clue).
    pub fn docker_with(&self, bin: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Output {
        let what = format!("{} {args:?}", bin.as_ref().to_string_lossy());
        let child = self
            .cmd_with(bin, args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        self.finish(child, &what)
    }

    /// Waits for a client started with `cmd_with` (stdout and stderr piped), at most a minute.
    pub fn finish(&self, child: std::process::Child, what: &str) -> Output {
        let pid = child.id();
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let out = child.wait_with_output();
            let _ = tx.send(());
            out
        });
        if rx.recv_timeout(Duration::from_secs(60)).is_err() {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            let out = waiter.join().unwrap().unwrap();
            panic!(
                "{what} hung for 60 s; its output so far: {}{}\nberthd log tail:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                self.log_tail()
            );
        }
        waiter.join().unwrap().unwrap()
    }

    /// Runs `command` (a shell command line, against this daemon) under script(1), so that
    /// it has a terminal of its own, and types each of `keys` into it in turn: the first
    /// once it has had time to start, the others 700 ms apart. Waits for it (at most a
    /// minute). The input stays open until the test process ends: script stops at its EOF.
    pub fn typed_under_script(&self, command: &str, keys: &'static [&'static [u8]]) -> Output {
        use std::io::Write;
        let mut child = self
            .cmd_with("script", &["-qec", command, "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut typing = child.stdin.take().unwrap();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1500));
            for k in keys {
                let _ = typing.write_all(k);
                std::thread::sleep(Duration::from_millis(700));
            }
            std::thread::sleep(Duration::from_secs(120));
            drop(typing);
        });
        self.finish(child, command)
    }

    pub fn docker(&self, args: &[&str]) -> Output {
        self.docker_with("docker", args)
    }

    /// Runs docker; panics with its stderr unless it succeeds; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        self.succeeded("docker", args, self.docker(args))
    }

    /// Runs docker expecting failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(!out.status.success(), "docker {args:?} should fail");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Runs berth's own CLI against this daemon.
    pub fn berth(&self, args: &[&str]) -> Output {
        self.docker_with(bin("berth"), args)
    }

    /// Runs berth; panics with its stderr unless it succeeds; returns stdout.
    pub fn berth_ok(&self, args: &[&str]) -> String {
        self.succeeded("berth", args, self.berth(args))
    }

    /// Runs berth expecting failure; returns stderr.
    pub fn berth_fails(&self, args: &[&str]) -> String {
        let out = self.berth(args);
        assert!(!out.status.success(), "berth {args:?} should fail");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    fn succeeded(&self, client: &str, args: &[&str], out: Output) -> String {
        assert!(
            out.status.success(),
            "{client} {args:?}: {}\nstdout: {}\nberthd log tail:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            self.log_tail() + "\nstderr: " + &String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// One raw HTTP/1.1 request on the socket (for what the CLI checks before asking):
    /// status and body.
    pub fn request(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        use std::io::{Read, Write};
        let mut s = std::os::unix::net::UnixStream::connect(self.socket()).unwrap();
        // One write: a server that answers before reading the body (and closes, as asked)
        // must not make the test's own write fail halfway.
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: berth\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(request.as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let status = out
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        // Everything after the headers (a body may hold blank lines of its own).
        let body = out
            .split_once("\r\n\r\n")
            .map(|(_, b)| b)
            .unwrap_or("")
            .to_string();
        (status, body)
    }

    /// Loads the busybox image as `busybox:latest` (with the docker CLI).
    pub fn load_busybox(&self) {
        let tar = busybox_archive(self.dir.path());
        let out = self.ok(&["load", "-i", tar.to_str().unwrap()]);
        assert!(out.contains("Loaded image: busybox:latest"), "{out}");
    }

    /// Loads the busybox image as `busybox:latest` with berth's own CLI.
    pub fn berth_load_busybox(&self) {
        let tar = busybox_archive(self.dir.path());
        let out = self.berth_ok(&["load", "-i", tar.to_str().unwrap()]);
        assert_eq!(out, "Loaded image: busybox:latest\n");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.is_some() {
            let ids = self.docker(&["ps", "-aq"]);
            for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
                let _ = self.docker(&["rm", "-f", id]);
            }
        }
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg(c.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        sweep(self.dir.path());
        remove_networking(&self.net_prefix());
        // The daemon's cgroup parent in every hierarchy, with whatever a failing test left
        // in it: processes are killed, then the (empty) directories removed.
        let parents: Vec<PathBuf> = std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
            .map(|h| h.path().join(self.cgroup_parent()))
            .chain([Path::new("/sys/fs/cgroup").join(self.cgroup_parent())])
            .filter(|p| p.is_dir())
            .collect();
        for parent in &parents {
            let children: Vec<PathBuf> = std::fs::read_dir(parent)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect();
            for c in children {
                let procs = std::fs::read_to_string(c.join("cgroup.procs")).unwrap_or_default();
                for pid in procs.split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
                let deadline = Instant::now() + Duration::from_secs(5);
                while std::fs::remove_dir(&c).is_err() && c.exists() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            let _ = std::fs::remove_dir(parent);
        }
    }
}

/// Waits until a daemon answers `_ping` on `socket` (it listens before it has restored its
/// state; requests wait until it has). False after `timeout`.
pub fn wait_ready(socket: &Path, timeout: Duration) -> bool {
    use std::io::{Read, Write};
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(mut s) = std::os::unix::net::UnixStream::connect(socket) {
            let _ = s.set_read_timeout(Some(deadline.saturating_duration_since(Instant::now())));
            let mut out = String::new();
            if s.write_all(b"GET /_ping HTTP/1.1\r\nHost: berth\r\nConnection: close\r\n\r\n")
                .is_ok()
                && s.read_to_string(&mut out).is_ok()
                && out.starts_with("HTTP/1.1 200")
            {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// Removes what a daemon with this `--network-prefix` made on the host: its bridges (and any
/// veth a failing test left on them), its nftables tables (`ip` and `ip6`), its iptables and
/// ip6tables FORWARD rules, and the file it locked to claim the prefix.
pub fn remove_networking(prefix: &str) {
    let links = Command::new("ip").args(["-o", "link", "show"]).output();
    let links = links.map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    for l in links.unwrap_or_default().lines() {
        let Some(name) = l.split(": ").nth(1) else {
            continue;
        };
        let name = name.split('@').next().unwrap_or(name);
        if name.starts_with(prefix) || l.contains(&format!("master {prefix}")) {
            let _ = Command::new("ip").args(["link", "del", name]).status();
        }
    }
    for family in ["ip", "ip6"] {
        let _ = Command::new("nft")
            .args(["delete", "table", family, prefix])
            .stderr(Stdio::null())
            .status();
    }
    berth_network::iptables::forget_all(prefix);
    let _ = std::fs::remove_file(berth_network::prefix_lock_path(prefix));
}

/// Kills monitors (and so their containers) started for `dir`, and unmounts what is mounted
/// under it: only what a failing test can leave.
pub fn sweep(dir: &Path) {
    let needle = dir.to_string_lossy().into_owned();
    if let Ok(procs) = std::fs::read_dir("/proc") {
        for p in procs.flatten() {
            let Ok(pid) = p.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let cmd = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd);
            if cmd.contains("berth-monitor") && cmd.contains(&needle) {
                let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            }
        }
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for line in mounts.lines() {
        if let Some(mp) = line.split(' ').nth(4) {
            if mp.starts_with(&needle) {
                let _ = Command::new("umount").arg("-l").arg(mp).status();
            }
        }
    }
}

/// Whether the docker CLI is installed (tests that need it assert this: a test must never
/// pass without having run).
pub fn have_docker_cli() -> bool {
    Command::new("docker").arg("--version").output().is_ok()
}

pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A `docker save` archive of one layer (a tar) with `config` as the image's runtime config
/// section, tagged `tag`; written into `dir`.
pub fn save_archive(
    dir: &Path,
    layer: &[u8],
    tag: &str,
    config: serde_json::Value,
    created_by: &str,
) -> PathBuf {
    let diff = format!("sha256:{}", sha256_hex(layer));
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "created": "2026-01-01T00:00:00Z",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [diff]},
        "history": [{"created": "2026-01-01T00:00:00Z", "created_by": created_by}]
    }))
    .unwrap();
    let cfg_name = format!("{}.json", sha256_hex(&config));
    let manifest = serde_json::to_vec(
        &serde_json::json!([{"Config": cfg_name, "RepoTags": [tag], "Layers": ["l/layer.tar"]}]),
    )
    .unwrap();
    let mut t = tar::Builder::new(Vec::new());
    for (name, data) in [
        (cfg_name.as_str(), &config[..]),
        ("l/layer.tar", layer),
        ("manifest.json", &manifest[..]),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        t.append_data(&mut h, name, data).unwrap();
    }
    let path = dir.join(format!("{}.tar", tag.replace([':', '/'], "_")));
    std::fs::write(&path, t.into_inner().unwrap()).unwrap();
    path
}

/// A `docker save` archive of one layer holding `rootfs`, tagged `tag`, with `Cmd`.
pub fn archive_of(dir: &Path, rootfs: &Path, tag: &str, cmd: &[&str]) -> PathBuf {
    let mut layer = tar::Builder::new(Vec::new());
    layer.follow_symlinks(false);
    layer.append_dir_all(".", rootfs).unwrap();
    let layer = layer.into_inner().unwrap();
    let config = serde_json::json!({
        "Cmd": cmd,
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
    });
    save_archive(dir, &layer, tag, config, "scripts/mk-busybox-rootfs.sh")
}

/// The busybox image: the repository's fixture script, saved as `busybox:latest`.
pub fn busybox_archive(dir: &Path) -> PathBuf {
    let rootfs = dir.join("busybox-rootfs");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/mk-busybox-rootfs.sh");
    let out = Command::new("bash")
        .arg(script)
        .arg(&rootfs)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mk-busybox-rootfs.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    archive_of(dir, &rootfs, "busybox:latest", &["sh"])
}

/// A dockerd of the test's own (data root, exec root, socket; no bridge, no iptables), the
/// peer of the interoperability tests; stopped (and its containerd with it) on drop.
pub struct Dockerd {
    pub dir: tempfile::TempDir,
    child: std::process::Child,
    /// With networking: the bridge it was given and the FORWARD policy before it started.
    networked: Option<(String, String)>,
}

impl Dockerd {
    /// Starts one, or `None` (the test then skips) where docker.io is not installed; CI
    /// must have it.
    pub fn start() -> Self {
        Self::launch(None)
    }

    /// A dockerd with Docker's networking as hosts run it: iptables on (its chains, and the
    /// FORWARD policy DROP), on a bridge of the test's own (`bridge`, made
    /// here with `cidr`, e.g. 10.233.0.1/24). On drop its bridge, chains and rules go and the
    /// FORWARD policy is put back. The test fails without docker.io, or where Docker's
    /// chains exist already (a real Docker on the host is not to be disturbed): it must not
    /// pass without having run.
    pub fn start_networked(bridge: &str, cidr: &str) -> Self {
        let chains = Command::new("iptables").args(["-w", "-S"]).output();
        assert!(
            !chains.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("DOCKER")),
            "Docker's iptables chains exist already (a Docker runs on this host): this test makes its own and would disturb it"
        );
        for c in [
            format!("ip link add {bridge} type bridge"),
            format!("ip addr add {cidr} dev {bridge}"),
            format!("ip link set {bridge} up"),
        ] {
            let st = Command::new("sh").arg("-c").arg(&c).status().unwrap();
            assert!(st.success(), "{c}");
        }
        let d = Self::launch(Some(bridge));
        // dockerd sets the DROP policy when it is the one to turn ip forwarding on, as on a
        // fresh host; here berth (or an earlier test) may have turned it on first, so the
        // policy is set as dockerd would have set it.
        let _ = Command::new("iptables")
            .args(["-w", "-P", "FORWARD", "DROP"])
            .status();
        d
    }

    fn launch(bridge: Option<&str>) -> Self {
        assert!(
            Command::new("dockerd").arg("--version").output().is_ok(),
            "this test runs a private dockerd beside berth: install docker.io (scripts/install-deps.sh)"
        );
        let dir = tempfile::Builder::new()
            .prefix("dockerd-")
            .tempdir()
            .unwrap();
        let p = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
        let log = std::fs::File::create(dir.path().join("log")).unwrap();
        let policy = forward_policy();
        let mut cmd = Command::new("dockerd");
        cmd.args([
            "--data-root",
            &p("data"),
            "--exec-root",
            &p("exec"),
            "--pidfile",
            &p("pid"),
        ])
        .arg(format!("--host=unix://{}", p("docker.sock")));
        match bridge {
            None => cmd.args(["--iptables=false", "--ip6tables=false", "--bridge=none"]),
            Some(b) => cmd.args(["--iptables=true", "--ip6tables=false", "--bridge", b]),
        };
        let child = cmd
            .args([
                "--containerd-namespace",
                "berth-interop",
                "--containerd-plugins-namespace",
                "berth-interop-p",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let d = Dockerd {
            dir,
            child,
            networked: bridge.map(|b| (b.to_string(), policy)),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !d.docker(&["version"]).status.success() {
            assert!(
                Instant::now() < deadline,
                "dockerd did not come up: {}",
                std::fs::read_to_string(d.dir.path().join("log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        d
    }

    /// The docker CLI against this dockerd.
    pub fn docker(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .env(
                "DOCKER_HOST",
                format!("unix://{}", self.dir.path().join("docker.sock").display()),
            )
            .env("DOCKER_CONFIG", self.dir.path().join("docker-config"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Runs docker; panics with its stderr unless it succeeds; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Anything dockerd left mounted under its roots (it should leave nothing).
        let roots = self.dir.path().to_str().unwrap().to_string();
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        for m in mounts
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter(|m| m.starts_with(&roots))
        {
            let _ = Command::new("umount").args(["-l", m]).status();
        }
        if let Some((bridge, policy)) = self.networked.take() {
            remove_docker_firewall(&bridge, &policy);
            let _ = Command::new("ip").args(["link", "del", &bridge]).status();
        }
    }
}

/// The iptables FORWARD chain's policy (`ACCEPT` or `DROP`).
pub fn forward_policy() -> String {
    let out = Command::new("iptables")
        .args(["-w", "-S", "FORWARD"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    out.lines()
        .find_map(|l| l.strip_prefix("-P FORWARD "))
        .unwrap_or("ACCEPT")
        .trim()
        .to_string()
}

/// Removes what a dockerd with iptables left (it keeps its rules when it stops): the rules
/// in the built-in chains that jump to Docker's chains or name its bridge, then Docker's
/// chains; and puts the FORWARD policy back to `policy`.
fn remove_docker_firewall(bridge: &str, policy: &str) {
    for table in ["filter", "nat"] {
        let out = Command::new("iptables")
            .args(["-w", "-t", table, "-S"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        for line in out.lines() {
            let Some(spec) = line.strip_prefix("-A ") else {
                continue;
            };
            let chain = spec.split_whitespace().next().unwrap_or("");
            if chain.starts_with("DOCKER") || !(spec.contains("DOCKER") || spec.contains(bridge)) {
                continue;
            }
            let mut args = vec!["-w", "-t", table, "-D"];
            args.extend(spec.split_whitespace());
            let _ = Command::new("iptables").args(&args).status();
        }
        let chains: Vec<String> = out
            .lines()
            .filter_map(|l| l.strip_prefix("-N "))
            .filter(|c| c.starts_with("DOCKER"))
            .map(str::to_string)
            .collect();
        for c in &chains {
            let _ = Command::new("iptables")
                .args(["-w", "-t", table, "-F", c])
                .status();
        }
        for c in &chains {
            let _ = Command::new("iptables")
                .args(["-w", "-t", table, "-X", c])
                .status();
        }
    }
    let _ = Command::new("iptables")
        .args(["-w", "-P", "FORWARD", policy])
        .status();
}
