//! Interoperability with Docker itself (apt docker.io): images move both ways through
//! `save`/`load`, and an image berth saved runs in Docker. The test starts a private dockerd
//! (own data root, socket, no bridge, no iptables) and a private berthd, and stops both.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use berth_testkit::{Daemon, Dockerd};

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
    let docker = Dockerd::start();
    let berth = Daemon::start();
    let work = tempfile::tempdir().unwrap();
    let tar = busybox_tar(work.path());

    // Docker -> berth: docker import, docker save, berth load; same image ID, same files.
    let docker_id = docker
        .ok(&["import", tar.to_str().unwrap(), "from-docker:1"])
        .trim()
        .to_string();
    let saved = work.path().join("docker-saved.tar");
    docker.ok(&["save", "-o", saved.to_str().unwrap(), "from-docker:1"]);
    assert_eq!(
        berth.berth_ok(&["load", "-i", saved.to_str().unwrap()]),
        "Loaded image: from-docker:1\n"
    );
    assert_eq!(
        berth
            .berth_ok(&["images", "-q", "--no-trunc", "from-docker"])
            .trim(),
        docker_id
    );
    let snaps = berth.root().join("snapshots");
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
    // And it runs in berth.
    assert_eq!(
        berth.berth_ok(&[
            "run",
            "--rm",
            "from-docker:1",
            "/bin/busybox",
            "echo",
            "hi from docker"
        ]),
        "hi from docker\n"
    );

    // berth -> Docker: berth import, berth save, docker load, docker run.
    berth.berth_ok(&[
        "import",
        "--change",
        "CMD [\"/bin/busybox\", \"echo\", \"hi from berth\"]",
        tar.to_str().unwrap(),
        "from-berth:1",
    ]);
    let ours = work.path().join("berth-saved.tar");
    berth.berth_ok(&["save", "-o", ours.to_str().unwrap(), "from-berth:1"]);
    assert!(docker
        .ok(&["load", "-i", ours.to_str().unwrap()])
        .contains("Loaded image: from-berth:1"));
    assert_eq!(
        docker.ok(&["run", "--rm", "--network", "none", "from-berth:1"]),
        "hi from berth\n"
    );
    // And Docker sees the same image ID berth computed.
    let ours_id = berth
        .berth_ok(&["images", "-q", "--no-trunc", "from-berth"])
        .trim()
        .to_string();
    assert_eq!(
        docker
            .ok(&["image", "inspect", "--format", "{{.Id}}", "from-berth:1"])
            .trim(),
        ours_id
    );
}
