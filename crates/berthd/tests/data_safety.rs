//! What must never lose a user's containers (issue 18, "data safety"): one berthd per data
//! root and exec root, SIGTERM honoured while restoring, `kill` as Docker's manual stop that
//! returns once the exit is recorded, and one writer per container record.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_testkit::{bin, Daemon};

/// Runs a berthd that is expected to refuse to start: its exit status and stderr. Killed
/// (and the test failed) if it is still running after 20 s.
fn refused_berthd(args: &[&std::ffi::OsStr]) -> String {
    let mut child = Command::new(bin("berthd"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("a second berthd on the same directories kept running");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "the second berthd exited 0");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn state(d: &Daemon, name: &str) -> String {
    d.ok(&[
        "inspect",
        "-f",
        "{{.State.Status}} {{.State.Pid}} {{.State.ExitCode}} {{.RestartCount}}",
        name,
    ])
    .trim()
    .to_string()
}

#[test]
fn a_second_berthd_on_the_same_root_or_exec_root_is_refused_and_touches_nothing() {
    let mut d = Daemon::with_busybox();
    d.ok(&[
        "run",
        "-d",
        "--name",
        "keep",
        "--restart",
        "always",
        "busybox",
        "sleep",
        "300",
    ]);
    let before = state(&d, "keep");
    assert!(before.starts_with("running "), "{before}");
    let holder = d.child.as_ref().unwrap().id();
    let other = tempfile::tempdir().unwrap();
    let root = d.root();
    let exec = d.dir.path().join("exec");
    let other_root = other.path().join("root");
    let other_exec = other.path().join("exec");
    let other_host = format!("unix://{}", other.path().join("b.sock").display());
    // Same --root, its own exec root, socket and network prefix.
    let err = refused_berthd(&[
        "--root".as_ref(),
        root.as_os_str(),
        "--exec-root".as_ref(),
        other_exec.as_os_str(),
        "--host".as_ref(),
        other_host.as_ref(),
        "--network-prefix".as_ref(),
        "btsecond".as_ref(),
    ]);
    assert!(
        err.contains(&format!("another berthd (pid {holder}) is using --root")),
        "{err}"
    );
    // Same --exec-root, its own data root.
    let err = refused_berthd(&[
        "--root".as_ref(),
        other_root.as_os_str(),
        "--exec-root".as_ref(),
        exec.as_os_str(),
        "--host".as_ref(),
        other_host.as_ref(),
        "--network-prefix".as_ref(),
        "btsecond".as_ref(),
    ]);
    assert!(
        err.contains(&format!(
            "another berthd (pid {holder}) is using --exec-root"
        )),
        "{err}"
    );
    // Nothing of the first daemon's was touched: the container runs on, unrestarted.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(state(&d, "keep"), before);
    assert!(
        !other_root.join("containers").exists(),
        "the refused daemon made state"
    );
    // A lock left by a daemon that died is no lock: the next one starts and finds the
    // container.
    d.kill9();
    d.spawn();
    assert_eq!(state(&d, "keep"), before);
}

#[test]
fn sigterm_stops_berthd_while_it_restores() {
    let mut d = Daemon::with_busybox();
    let id = d
        .ok(&["run", "-d", "--name", "slow", "busybox", "sleep", "300"])
        .trim()
        .to_string();
    d.kill9();
    // With its monitor alive but its socket out of sight, the restore waits seconds for the
    // socket to appear (as it does for a monitor that is still starting).
    let socket = d.dir.path().join("exec").join(format!("{id}.sock"));
    let hidden = socket.with_extension("hidden");
    std::fs::rename(&socket, &hidden).unwrap();
    let mut child = d.command().spawn().unwrap();
    std::thread::sleep(Duration::from_millis(700));
    assert!(
        child.try_wait().unwrap().is_none(),
        "berthd ended on its own: {}",
        d.log_tail()
    );
    let sent = Instant::now();
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let mut ended = None;
    while sent.elapsed() < Duration::from_secs(10) {
        if let Some(s) = child.try_wait().unwrap() {
            ended = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let took = sent.elapsed();
    if ended.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    std::fs::rename(&hidden, &socket).unwrap();
    let status = ended.expect("berthd ignored SIGTERM during the restore for 10 s");
    assert!(status.success(), "{status}: {}", d.log_tail());
    assert!(
        took < Duration::from_secs(2),
        "SIGTERM took {took:?} to stop a restoring berthd"
    );
    // The next start restores the container as it was.
    d.spawn();
    assert!(state(&d, "slow").starts_with("running "));
}

#[test]
fn kill_is_a_manual_stop_and_returns_once_the_exit_is_recorded() {
    let mut d = Daemon::with_busybox();
    for policy in ["always", "unless-stopped"] {
        d.ok(&[
            "run",
            "-d",
            "--name",
            policy,
            "--restart",
            policy,
            "busybox",
            "sleep",
            "300",
        ]);
        d.ok(&["kill", policy]);
        // Recorded when kill returns.
        assert_eq!(state(&d, policy), "exited 0 137 0", "{policy}");
    }
    // No restart policy brings them back (the first backoff is 100 ms).
    std::thread::sleep(Duration::from_millis(1500));
    for policy in ["always", "unless-stopped"] {
        assert_eq!(state(&d, policy), "exited 0 137 0", "{policy}");
    }
    // A daemon start does, for `always` only (as dockerd).
    d.kill9();
    d.spawn();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !state(&d, "always").starts_with("running ") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(state(&d, "always").starts_with("running "));
    assert_eq!(state(&d, "unless-stopped"), "exited 0 137 0");
    // An exit that is not a kill still restarts: the policy is intact.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "flaky",
        "--restart",
        "always",
        "busybox",
        "sh",
        "-c",
        "sleep 0.2; exit 3",
    ]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let restarts = |s: String| -> u32 { s.rsplit(' ').next().unwrap().parse().unwrap() };
    while restarts(state(&d, "flaky")) == 0 {
        assert!(Instant::now() < deadline, "flaky was not restarted");
        std::thread::sleep(Duration::from_millis(50));
    }
    // A kill right before rm: no 409, no "running" in between, ten times over.
    for i in 0..10 {
        let name = format!("k{i}");
        d.ok(&["run", "-d", "--name", &name, "busybox", "sleep", "300"]);
        d.ok(&["kill", &name]);
        assert_eq!(state(&d, &name), "exited 0 137 0");
        d.ok(&["rm", &name]);
    }
}

#[test]
fn records_have_one_writer_while_containers_exit_are_renamed_and_removed() {
    let d = Daemon::with_busybox();
    for i in 0..15 {
        let name = format!("brief{i}");
        d.ok(&[
            "run", "-d", "--name", &name, "busybox", "sh", "-c", "exit 3",
        ]);
        // Renamed and removed while the exit is being recorded.
        let renamed = format!("{name}-r");
        let out = d.docker(&["rename", &name, &renamed]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "rename: {err}");
        d.ok(&["rm", "-f", &renamed]);
    }
    for i in 0..15 {
        // Removed (not forced) right after the exit: it waits for the exit to be recorded.
        let name = format!("waited{i}");
        d.ok(&["run", "-d", "--name", &name, "busybox", "true"]);
        d.ok(&["wait", &name]);
        d.ok(&["rm", &name]);
    }
    let log = std::fs::read_to_string(d.dir.path().join("log")).unwrap();
    assert!(
        !log.contains("record the exit"),
        "an exit was recorded into a removed container:\n{}",
        d.log_tail()
    );
    assert_eq!(d.ok(&["ps", "-aq"]), "");
    // No temporary record was left behind.
    let leftovers: Vec<_> = walk(&d.root().join("containers"))
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}
