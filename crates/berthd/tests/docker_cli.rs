//! The real `docker` CLI against berthd: version negotiation and the image commands.

use std::path::{Path, PathBuf};
use std::process::Command;

use berth_testkit::{self as common, have_docker_cli, Daemon};

const BERTHD: &str = env!("CARGO_BIN_EXE_berthd");

/// A one-layer `docker save` archive, built here.
fn archive(dir: &Path) -> PathBuf {
    let mut layer = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(5);
    h.set_mode(0o644);
    layer
        .append_data(&mut h, "hello.txt", &b"hello"[..])
        .unwrap();
    let config = serde_json::json!({"Cmd": ["/hello"], "Labels": {"made.by": "berth-test"}});
    common::save_archive(dir, &layer.into_inner().unwrap(), "hello:1", config, "test")
}

#[test]
fn docker_cli_drives_berthd_images() {
    assert!(
        have_docker_cli(),
        "this test drives berthd with the docker CLI"
    );
    let d = Daemon::start();
    let v = d.ok(&[
        "version",
        "--format",
        "{{.Server.APIVersion}} {{.Server.Os}}",
    ]);
    assert_eq!(v.trim(), "1.44 linux");
    // An older client (docker.io 20.10's CLI, API 1.41) negotiates down.
    if Path::new("/usr/bin/docker").exists() {
        let out = d.docker_with(
            "/usr/bin/docker",
            &["version", "--format", "{{.Client.APIVersion}}"],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let tar = archive(d.dir.path());
    assert!(d
        .ok(&["load", "-i", tar.to_str().unwrap()])
        .contains("Loaded image: hello:1"));
    let images = d.ok(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.Size}}"]);
    assert_eq!(images.trim(), "hello:1 5B");
    d.ok(&["tag", "hello:1", "registry.local:5000/team/hello:latest"]);
    assert_eq!(
        d.ok(&["images", "-q"]).lines().count(),
        2,
        "one line per tag, same ID"
    );
    let inspect = d.ok(&[
        "image",
        "inspect",
        "--format",
        "{{json .Config.Cmd}} {{index .Config.Labels \"made.by\"}}",
        "hello:1",
    ]);
    assert_eq!(inspect.trim(), "[\"/hello\"] berth-test");

    let saved = d.dir.path().join("saved.tar");
    d.ok(&["save", "-o", saved.to_str().unwrap(), "hello:1"]);
    assert!(std::fs::metadata(&saved).unwrap().len() > 1024);

    assert_eq!(d.ok(&["rmi", "hello:1"]).trim(), "Untagged: hello:1");
    let out = d.docker(&["rmi", "hello:1"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("No such image: hello:1"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = d.docker(&["load", "-i", "/dev/null"]);
    assert!(!out.status.success(), "an empty archive is refused");
    assert!(d
        .ok(&["rmi", "registry.local:5000/team/hello"])
        .contains("Deleted: sha256:"));
    assert_eq!(d.ok(&["images", "-q"]), "");
}

#[test]
fn sigterm_stops_berthd_and_removes_its_socket() {
    let mut d = Daemon::start();
    let mut child = d.child.take().unwrap();
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(!d.socket().exists());
    // And a second berthd on the same socket refuses while the first runs.
    let a = Daemon::start();
    let out = Command::new(BERTHD)
        .arg("--root")
        .arg(a.dir.path().join("root2"))
        .arg("--host")
        .arg(format!("unix://{}", a.socket().display()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("in use"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn config_file_settings_and_sighup_reload() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("cfg.sock");
    let cfg = dir.path().join("daemon.json");
    let prefix = format!("btcfg{:x}", std::process::id() & 0xfff);
    let write = |level: &str| {
        std::fs::write(
            &cfg,
            serde_json::json!({
                "data-root": dir.path().join("root"),
                "exec-root": dir.path().join("exec"),
                "hosts": [format!("unix://{}", sock.display())],
                "log-level": level,
                "cgroup-parent": "berth-cfg-test",
                "network-prefix": prefix,
            })
            .to_string(),
        )
        .unwrap();
    };
    write("error");
    let log = dir.path().join("log");
    let child = Command::new(BERTHD)
        .arg("--config-file")
        .arg(&cfg)
        .stderr(std::fs::File::create(&log).unwrap())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed however the test ends.
    struct Kill(std::process::Child, String);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
            berth_testkit::remove_networking(&self.1);
        }
    }
    let mut child = Kill(child, prefix.clone());
    assert!(
        common::wait_ready(&sock, std::time::Duration::from_secs(20)),
        "berthd did not answer on the configured socket"
    );
    assert!(dir.path().join("root").is_dir(), "data-root from the file");
    let bridges = Command::new("ip")
        .args(["-o", "link", "show", "type", "bridge"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&bridges.stdout).contains(&format!("{prefix}0")),
        "network-prefix from the file names the default bridge"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.contains("berthd serving"),
        "log-level error hides info: {text}"
    );
    // SIGHUP with a new log level: applied at once.
    write("info");
    let _ = Command::new("kill")
        .args(["-HUP", &child.0.id().to_string()])
        .status();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !std::fs::read_to_string(&log)
        .unwrap()
        .contains("configuration reloaded")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no reload seen: {}",
            std::fs::read_to_string(&log).unwrap()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = Command::new("kill").arg(child.0.id().to_string()).status();
    assert!(child.0.wait().unwrap().success());

    // A setting both as a flag and in the file, and an unknown key, are refused.
    let out = Command::new(BERTHD)
        .arg("--config-file")
        .arg(&cfg)
        .arg("--log-level")
        .arg("debug")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("both as a flag and in the configuration file"));
    std::fs::write(&cfg, r#"{"no-such-key": true}"#).unwrap();
    let out = Command::new(BERTHD)
        .arg("--config-file")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown field"));
}

/// The host's cgroup2 super options, and where it is mounted.
fn cgroup2() -> Option<(String, String)> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        let mut r = right.split_whitespace();
        (r.next()? == "cgroup2").then(|| {
            (
                left.split_whitespace().nth(4).unwrap().to_string(),
                r.nth(1).unwrap_or("").to_string(),
            )
        })
    })
}

#[test]
fn cgroup_favordynmods_is_applied_only_when_asked_keeping_other_options() {
    // This machine's kind (hybrid cgroups) has a cgroup2 hierarchy: without one the test
    // cannot check anything, and fails.
    let (path, before) = cgroup2().expect("no cgroup2 hierarchy is mounted");
    // The host's options come back however the test ends.
    struct Restore(String, String);
    impl Drop for Restore {
        fn drop(&mut self) {
            // The syscall itself: mount(8) would merge the options now in effect back in.
            let opts: Vec<&str> = self.1.split(',').filter(|o| *o != "rw").collect();
            let _ = rustix::mount::mount_remount(
                self.0.as_str(),
                rustix::mount::MountFlags::empty(),
                opts.join(",").as_str(),
            );
        }
    }
    let _restore = Restore(path.clone(), before.clone());
    if !before.contains("favordynmods") {
        let _plain = Daemon::start();
        assert_eq!(cgroup2().unwrap().1, before, "not without the flag");
    }
    let d = Daemon::start_with(&["--cgroup-favordynmods"]);
    let after = cgroup2().unwrap().1;
    assert!(after.contains("favordynmods"), "{after}");
    for o in before.split(',') {
        assert!(after.split(',').any(|a| a == o), "{o} lost: {after}");
    }
    assert!(
        d.log_tail().contains("cgroup-favordynmods:"),
        "{}",
        d.log_tail()
    );
}
