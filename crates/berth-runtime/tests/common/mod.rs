//! Shared harness for the runtime's end-to-end tests: real containers, as root.
//!
//! Every [`Ctr`] owns a private state root, a bundle with its own copy of the busybox rootfs
//! and a unique id; dropping it force-deletes the container and removes the directories, so a
//! failing assertion leaves no process, cgroup or mount behind.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The runtime binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_berth-runtime");

/// The binary [`Ctr`] drives: [`BIN`], or `BERTH_RUNTIME_TEST_BIN` when that is set, to run
/// the tests against another build (a new test must fail on the code before its fix).
pub fn runtime_bin() -> std::ffi::OsString {
    std::env::var_os("BERTH_RUNTIME_TEST_BIN").unwrap_or_else(|| BIN.into())
}

/// The busybox rootfs, built once per `target/` by the repository's script.
pub fn fixture_rootfs() -> PathBuf {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the runtime tests run real containers and must run as root"
    );
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let rootfs = dir.join("busybox-rootfs");
    let lock = std::fs::File::create(dir.join("busybox-rootfs.lock")).unwrap();
    lock.lock().unwrap();
    if !rootfs.join("bin/busybox").exists() {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/mk-busybox-rootfs.sh");
        let st = Command::new("bash")
            .arg(script)
            .arg(&rootfs)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "building the busybox rootfs failed");
    }
    rootfs
}

/// The default spec (`berth-runtime spec`) as JSON, to be edited by tests.
pub fn default_spec(args: &[&str]) -> Value {
    let mut spec: Value =
        serde_json::to_value(oci_spec::runtime::Spec::default()).expect("spec to json");
    spec["process"]["args"] = json!(args);
    spec["hostname"] = json!("berth-test");
    // oci-spec's (and runc's) default root is read-only; tests write, and the read-only test
    // turns it back on.
    spec["root"]["readonly"] = json!(false);
    spec
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// One test container with everything it needs, removed on drop.
pub struct Ctr {
    pub id: String,
    pub root: tempfile::TempDir,
    pub bundle: tempfile::TempDir,
    pub spec: Value,
}

impl Ctr {
    /// A container named after the test, running `args` with the default spec.
    pub fn new(name: &str, args: &[&str]) -> Self {
        let rootfs = fixture_rootfs();
        let bundle = tempfile::Builder::new()
            .prefix("rt-bundle-")
            .tempdir()
            .unwrap();
        let st = Command::new("cp")
            .arg("-a")
            .arg(&rootfs)
            .arg(bundle.path().join("rootfs"))
            .status()
            .unwrap();
        assert!(st.success());
        let root = tempfile::Builder::new()
            .prefix("rt-root-")
            .tempdir()
            .unwrap();
        let id = format!(
            "{name}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let mut spec = default_spec(args);
        // A cgroup of our own per test, so the leak checks look at exactly this container.
        spec["linux"]["cgroupsPath"] = json!(format!("/rt-test/{id}"));
        Ctr {
            id,
            root,
            bundle,
            spec,
        }
    }

    pub fn rootfs(&self) -> PathBuf {
        self.bundle.path().join("rootfs")
    }

    pub fn cgroups_path(&self) -> String {
        self.spec["linux"]["cgroupsPath"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Writes config.json from `self.spec`.
    pub fn write_spec(&self) {
        std::fs::write(
            self.bundle.path().join("config.json"),
            serde_json::to_vec_pretty(&self.spec).unwrap(),
        )
        .unwrap();
    }

    /// `berth-runtime --root R <args>` as a Command.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(runtime_bin());
        c.arg("--root").arg(self.root.path()).args(args);
        c
    }

    /// Runs a runtime command to completion (30 s at most) and returns its output.
    pub fn rt(&self, args: &[&str]) -> Output {
        output_with_timeout(self.cmd(args), Duration::from_secs(30))
    }

    /// Runs a runtime command and asserts it succeeded.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.rt(args);
        assert!(
            out.status.success(),
            "berth-runtime {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `run` in the foreground with the current spec.
    pub fn run(&self) -> Output {
        self.write_spec();
        let bundle = self.bundle.path().to_str().unwrap().to_string();
        self.rt(&["run", "--bundle", &bundle, &self.id])
    }

    /// `create` with the current spec. The container keeps the stdio it is given, so the
    /// runtime's stdout and stderr go to files (a pipe would stay open as long as the
    /// container runs); they come back in the returned `Output`.
    pub fn create(&self) -> Output {
        self.write_spec();
        let bundle = self.bundle.path().to_str().unwrap().to_string();
        self.detached(&["create", "--bundle", &bundle, &self.id])
    }

    /// Runs a command whose container outlives it, with stdio in files.
    pub fn detached(&self, args: &[&str]) -> Output {
        let out_path = self.bundle.path().join(".stdout");
        let err_path = self.bundle.path().join(".stderr");
        let mut c = self.cmd(args);
        c.stdin(Stdio::null())
            .stdout(std::fs::File::create(&out_path).unwrap())
            .stderr(std::fs::File::create(&err_path).unwrap());
        let mut child = c.spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break st;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("berth-runtime {args:?} timed out");
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        Output {
            status,
            stdout: std::fs::read(&out_path).unwrap(),
            stderr: std::fs::read(&err_path).unwrap(),
        }
    }

    /// The container's `state` as JSON.
    pub fn state(&self) -> Value {
        serde_json::from_str(&self.ok(&["state", &self.id])).unwrap()
    }

    pub fn status(&self) -> String {
        self.state()["status"].as_str().unwrap().to_string()
    }

    pub fn pid(&self) -> i32 {
        self.state()["pid"].as_i64().unwrap() as i32
    }

    /// Waits (up to 10 s) until the container reports `status`.
    pub fn wait_status(&self, status: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.status() != status {
            assert!(Instant::now() < deadline, "container never became {status}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Adds capabilities to the bounding, effective and permitted sets.
    pub fn add_caps(&mut self, caps: &[&str]) {
        for set in ["bounding", "effective", "permitted"] {
            let list = self.spec["process"]["capabilities"][set]
                .as_array_mut()
                .unwrap();
            list.extend(caps.iter().map(|c| json!(c)));
        }
    }

    /// Starts `run` in the foreground with stdout piped, for tests that talk to it while it
    /// runs. The returned handle kills the runtime if the test fails before it exits.
    pub fn spawn_run(&self) -> Foreground {
        self.write_spec();
        let bundle = self.bundle.path().to_str().unwrap().to_string();
        let mut cmd = self.cmd(&["run", "--bundle", &bundle, &self.id]);
        cmd.stdin(Stdio::null()).stdout(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines() {
                if tx.send(line.unwrap_or_default()).is_err() {
                    break;
                }
            }
        });
        Foreground { child, lines }
    }

    /// Host paths of this container's cgroup in every mounted hierarchy that has it.
    pub fn cgroup_dirs(&self) -> Vec<PathBuf> {
        cgroup_dirs(&self.cgroups_path())
    }
}

/// A foreground `run` in progress (see [`Ctr::spawn_run`]).
pub struct Foreground {
    pub child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Foreground {
    /// The next line the container printed (30 s at most).
    pub fn line(&self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(30))
            .expect("no output from the container within 30 s")
    }

    /// Waits (30 s at most) for the runtime to exit; returns its status and the rest of the
    /// output.
    pub fn wait(mut self) -> (std::process::ExitStatus, String) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st;
            }
            assert!(
                Instant::now() < deadline,
                "the runtime did not exit within 30 s"
            );
            std::thread::sleep(Duration::from_millis(5));
        };
        // The reader thread ends at EOF, once the last writer (the container) is gone.
        let mut rest = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            rest.push(line);
        }
        (status, rest.iter().map(|l| format!("{l}\n")).collect())
    }
}

impl Drop for Foreground {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Ctr {
    fn drop(&mut self) {
        let _ = output_with_timeout(
            self.cmd(&["delete", "--force", &self.id]),
            Duration::from_secs(30),
        );
        // The per-test parent cgroup `/rt-test` is shared; remove it when it is empty.
        for dir in cgroup_dirs("/rt-test") {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Every existing directory for cgroup path `path` under the host's hierarchies.
pub fn cgroup_dirs(path: &str) -> Vec<PathBuf> {
    let rel = path.trim_start_matches('/');
    let mut out = Vec::new();
    for h in std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        let p = h.path().join(rel);
        if p.is_dir() {
            out.push(p);
        }
    }
    let unified = Path::new("/sys/fs/cgroup").join(rel);
    if unified.join("cgroup.procs").exists() {
        out.push(unified);
    }
    out
}

/// Runs a command with stdin closed and a deadline; a hung runtime fails the test instead of
/// hanging the suite.
pub fn output_with_timeout(mut cmd: Command, limit: Duration) -> Output {
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null());
    let child = cmd.spawn().expect("spawn");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.expect("wait"),
        Err(_) => {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            panic!("command timed out after {limit:?}: {cmd:?}");
        }
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Whether any mount in the host's mount table mentions `path`.
pub fn mounted_under(path: &Path) -> bool {
    let p = path.to_string_lossy();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.contains(p.as_ref()))
}

/// Whether `pid` is a live process (a zombie waiting for its reaper does not count).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .next();
            state != Some("Z") && state != Some("X")
        }
        Err(_) => false,
    }
}
