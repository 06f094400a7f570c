//! Interoperability with Docker itself (apt docker.io): images move both ways through
//! `save`/`load`, and an image berth saved runs in Docker. The test starts a private dockerd
//! (own data root, socket, no bridge, no iptables) and stops it afterwards.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BERTH: &str = env!("CARGO_BIN_EXE_berth");

/// A dockerd of the test's own; stopped (and its containerd with it) on drop.
struct Dockerd {
    dir: tempfile::TempDir,
    child: std::process::Child,
}

impl Dockerd {
    fn start() -> Option<Self> {
        if Command::new("dockerd").arg("--version").output().is_err() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must have docker.io (scripts/install-deps.sh)"
            );
            eprintln!("dockerd not installed: skipping");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("dockerd-")
            .tempdir()
            .unwrap();
        let p = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
        let log = std::fs::File::create(dir.path().join("log")).unwrap();
        let child = Command::new("dockerd")
            .args([
                "--data-root",
                &p("data"),
                "--exec-root",
                &p("exec"),
                "--pidfile",
                &p("pid"),
            ])
            .arg(format!("--host=unix://{}", p("docker.sock")))
            .args(["--iptables=false", "--ip6tables=false", "--bridge=none"])
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
        let d = Dockerd { dir, child };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !d.docker(&["version"]).status.success() {
            assert!(
                Instant::now() < deadline,
                "dockerd did not come up: {}",
                std::fs::read_to_string(d.dir.path().join("log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(d)
    }

    fn docker(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .env(
                "DOCKER_HOST",
                format!("unix://{}", self.dir.path().join("docker.sock").display()),
            )
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
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
        let _ = nix_kill(self.child.id(), 15);
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
    }
}

fn nix_kill(pid: u32, sig: i32) -> std::io::Result<()> {
    let st = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()?;
    if st.success() {
        Ok(())
    } else {
        Err(std::io::Error::other("kill failed"))
    }
}

fn berth(root: &Path, args: &[&str]) -> String {
    let out = Command::new(BERTH)
        .arg("--data-root")
        .arg(root)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "berth {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The busybox rootfs as a tarball, built by the repository's script.
fn busybox_tar(dir: &Path) -> PathBuf {
    let rootfs = dir.join("rootfs");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/mk-busybox-rootfs.sh");
    assert!(Command::new("bash")
        .arg(script)
        .arg(&rootfs)
        .stdout(Stdio::null())
        .status()
        .unwrap()
        .success());
    let tar = dir.join("rootfs.tar");
    assert!(Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap()
        .success());
    tar
}

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn images_move_between_docker_and_berth() {
    let Some(docker) = Dockerd::start() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let tar = busybox_tar(work.path());
    let data = work.path().join("berth");

    // Docker -> berth: docker import, docker save, berth load; same image ID, same files.
    let docker_id = docker
        .ok(&["import", tar.to_str().unwrap(), "from-docker:1"])
        .trim()
        .to_string();
    let saved = work.path().join("docker-saved.tar");
    docker.ok(&["save", "-o", saved.to_str().unwrap(), "from-docker:1"]);
    assert_eq!(
        berth(&data, &["load", "-i", saved.to_str().unwrap()]),
        "Loaded image: from-docker:1\n"
    );
    assert_eq!(
        berth(&data, &["images", "-q", "--no-trunc", "from-docker"]).trim(),
        docker_id
    );
    let snaps = data.join("snapshots");
    let layer = std::fs::read_dir(&snaps)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
        .join("fs");
    assert_eq!(
        sha256(&layer.join("bin/busybox")),
        sha256(&work.path().join("rootfs/bin/busybox"))
    );
    assert_eq!(
        std::fs::read_link(layer.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );

    // berth -> Docker: berth import, berth save, docker load, docker run.
    berth(
        &data,
        &[
            "import",
            "--change",
            "CMD [\"/bin/busybox\", \"echo\", \"hi from berth\"]",
            tar.to_str().unwrap(),
            "from-berth:1",
        ],
    );
    let ours = work.path().join("berth-saved.tar");
    berth(
        &data,
        &["save", "-o", ours.to_str().unwrap(), "from-berth:1"],
    );
    assert!(docker
        .ok(&["load", "-i", ours.to_str().unwrap()])
        .contains("Loaded image: from-berth:1"));
    assert_eq!(
        docker.ok(&["run", "--rm", "--network", "none", "from-berth:1"]),
        "hi from berth\n"
    );
    // And Docker sees the same image ID berth computed.
    let ours_id = berth(&data, &["images", "-q", "--no-trunc", "from-berth"])
        .trim()
        .to_string();
    assert_eq!(
        docker
            .ok(&["image", "inspect", "--format", "{{.Id}}", "from-berth:1"])
            .trim(),
        ours_id
    );
}
