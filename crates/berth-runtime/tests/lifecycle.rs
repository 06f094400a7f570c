//! runc's command surface, end to end: create/start/state/kill/delete, run, exec, ps, list,
//! pause/resume, events, spec, features, console socket, and bad bundles.

mod common;

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

#[test]
fn create_start_state_kill_delete_leaves_nothing_behind() {
    let c = Ctr::new("life", &["sleep", "1000"]);
    let pidfile = c.bundle.path().join("pid");
    c.write_spec();
    let bundle = c.bundle.path().to_str().unwrap().to_string();
    let out = c.detached(&[
        "create",
        "--bundle",
        &bundle,
        "--pid-file",
        pidfile.to_str().unwrap(),
        &c.id,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));

    let st = c.state();
    assert_eq!(st["status"], "created");
    assert_eq!(st["id"], c.id.as_str());
    assert_eq!(
        st["bundle"],
        c.bundle.path().canonicalize().unwrap().to_str().unwrap()
    );
    assert!(st["ociVersion"].as_str().unwrap().starts_with("1."));
    let pid = st["pid"].as_i64().unwrap() as i32;
    assert_eq!(
        std::fs::read_to_string(&pidfile).unwrap().trim(),
        pid.to_string()
    );
    assert!(!c.cgroup_dirs().is_empty(), "create makes the cgroup");

    c.ok(&["start", &c.id]);
    assert_eq!(c.status(), "running");
    // Starting twice is refused with a clear message.
    let out = c.rt(&["start", &c.id]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("is running: cannot start"),
        "{}",
        stderr(&out)
    );

    // Deleting a running container needs --force.
    let out = c.rt(&["delete", &c.id]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));

    c.ok(&["kill", &c.id, "KILL"]);
    c.wait_status("stopped");
    assert_eq!(c.state()["pid"], 0);
    c.ok(&["delete", &c.id]);

    assert!(
        !c.root.path().join(&c.id).exists(),
        "state directory left behind"
    );
    assert!(
        c.cgroup_dirs().is_empty(),
        "cgroup left behind: {:?}",
        c.cgroup_dirs()
    );
    assert!(!alive(pid), "process left behind");
    assert!(!mounted_under(&c.rootfs()), "mount left behind");
    let out = c.rt(&["state", &c.id]);
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
    // runc's contract: delete --force of a missing container succeeds.
    c.ok(&["delete", "--force", &c.id]);
}

#[test]
fn delete_force_kills_a_running_container() {
    let c = Ctr::new("forcedel", &["sleep", "1000"]);
    assert!(c.create().status.success());
    c.ok(&["start", &c.id]);
    let pid = c.pid();
    c.ok(&["delete", "--force", &c.id]);
    assert!(!alive(pid), "process left behind");
    assert!(c.cgroup_dirs().is_empty());
}

#[test]
fn run_detach_then_exec_both_forms() {
    let c = Ctr::new("exec", &["sleep", "1000"]);
    c.write_spec();
    let bundle = c.bundle.path().to_str().unwrap().to_string();
    let out = c.detached(&["run", "--detach", "--bundle", &bundle, &c.id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(c.status(), "running");

    // Flag form, with env, cwd and user.
    let out = c.rt(&[
        "exec",
        "--env",
        "X=1",
        "--cwd",
        "/tmp",
        "--user",
        "65534:65534",
        &c.id,
        "sh",
        "-c",
        "echo $X $(pwd) $(id -u) $$",
    ]);
    let t = stdout(&out);
    let f: Vec<&str> = t.split_whitespace().collect();
    assert_eq!(&f[..3], ["1", "/tmp", "65534"], "{t} {}", stderr(&out));
    assert_ne!(f[3], "1", "exec is not pid 1");

    // Exit codes come back.
    let out = c.rt(&["exec", &c.id, "sh", "-c", "exit 5"]);
    assert_eq!(out.status.code(), Some(5));

    // process.json form.
    let process = c.bundle.path().join("process.json");
    std::fs::write(
        &process,
        serde_json::to_vec(&json!({
            "args": ["sh", "-c", "echo from-json $Y"],
            "env": ["Y=2", "PATH=/bin:/usr/bin"],
            "cwd": "/",
            "user": {"uid": 0, "gid": 0}
        }))
        .unwrap(),
    )
    .unwrap();
    let out = c.rt(&["exec", "--process", process.to_str().unwrap(), &c.id]);
    assert_eq!(stdout(&out), "from-json 2\n", "{}", stderr(&out));
}

#[test]
fn ps_list_and_events() {
    let c = Ctr::new("ps", &["sh", "-c", "sleep 1000 & sleep 1000"]);
    assert!(c.create().status.success());
    c.ok(&["start", &c.id]);
    let pid = c.pid();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let pids: Vec<i32> = loop {
        let p: Vec<i32> = serde_json::from_str(&c.ok(&["ps", "--format", "json", &c.id])).unwrap();
        if p.len() >= 2 || std::time::Instant::now() > deadline {
            break p;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(pids.contains(&pid) && pids.len() == 2, "{pids:?}");
    let table = c.ok(&["ps", &c.id]);
    assert!(table.lines().next().unwrap().contains("PID"));
    // busybox sh execs its last command: both processes are `sleep 1000` now.
    assert_eq!(
        table.lines().filter(|l| l.contains("sleep 1000")).count(),
        2,
        "{table}"
    );

    let list = c.ok(&["list"]);
    assert!(list.starts_with("ID"), "{list}");
    assert!(list.contains(&c.id) && list.contains("running"), "{list}");
    assert_eq!(c.ok(&["list", "-q"]).trim(), c.id);
    let json: Value = serde_json::from_str(&c.ok(&["list", "--format", "json"])).unwrap();
    assert_eq!(json[0]["id"], c.id.as_str());

    let ev: Value = serde_json::from_str(c.ok(&["events", "--stats", &c.id]).trim()).unwrap();
    assert_eq!(ev["type"], "stats");
    assert_eq!(ev["id"], c.id.as_str());
    assert!(
        ev["data"]["memory"]["usage"]["usage"].as_u64().unwrap() > 0,
        "{ev}"
    );
    assert_eq!(ev["data"]["pids"]["current"], 2, "{ev}");
}

#[test]
fn pause_freezes_and_resume_thaws() {
    // A counter the host can read through the rootfs.
    let c = Ctr::new(
        "pause",
        &[
            "sh",
            "-c",
            "i=0; while true; do i=$((i+1)); echo $i > /tmp/count; usleep 5000; done",
        ],
    );
    assert!(c.create().status.success());
    c.ok(&["start", &c.id]);
    let count = || -> u64 {
        std::fs::read_to_string(c.rootfs().join("tmp/count"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while count() < 3 {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    }
    c.ok(&["pause", &c.id]);
    assert_eq!(c.status(), "paused");
    let frozen = count();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(count(), frozen, "the counter moved while paused");
    let proc_state = std::fs::read_to_string(format!("/proc/{}/status", c.pid())).unwrap();
    assert!(proc_state
        .lines()
        .any(|l| l.starts_with("State:") && (l.contains("S (") || l.contains("D ("))));

    c.ok(&["resume", &c.id]);
    assert_eq!(c.status(), "running");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while count() <= frozen {
        assert!(
            std::time::Instant::now() < deadline,
            "the counter did not move after resume"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // Pausing a paused or resuming a running container is refused.
    let out = c.rt(&["resume", &c.id]);
    assert!(!out.status.success());
}

#[test]
fn run_forwards_signals_and_reports_the_exit() {
    let c = Ctr::new(
        "sigfwd",
        &[
            "sh",
            "-c",
            "trap 'echo got-term; exit 42' TERM; echo ready; while true; do usleep 10000; done",
        ],
    );
    let run = c.spawn_run();
    assert_eq!(run.line(), "ready");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(run.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let (status, rest) = run.wait();
    assert_eq!(rest, "got-term\n");
    assert_eq!(status.code(), Some(42));
    // run deletes the container afterwards.
    assert!(!c.root.path().join(&c.id).exists());
    assert!(c.cgroup_dirs().is_empty());
}

#[test]
fn console_socket_receives_a_working_pty() {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut c = Ctr::new("tty", &["sh", "-c", "tty; echo hello-tty"]);
    c.spec["process"]["terminal"] = json!(true);
    c.write_spec();
    let sock_path = c.bundle.path().join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock_path).unwrap();
    let bundle = c.bundle.path().to_str().unwrap().to_string();
    let out = c.detached(&[
        "create",
        "--bundle",
        &bundle,
        "--console-socket",
        sock_path.to_str().unwrap(),
        &c.id,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (conn, _) = listener.accept().unwrap();
    let mut buf = [0u8; 64];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::empty(),
    )
    .unwrap();
    let mut master: Option<OwnedFd> = None;
    for m in msg.cmsgs().unwrap() {
        if let ControlMessageOwned::ScmRights(fds) = m {
            // SAFETY: the fd was just received via SCM_RIGHTS and is owned by nobody else.
            master = Some(unsafe { std::os::fd::FromRawFd::from_raw_fd(fds[0]) });
        }
    }
    let master = std::fs::File::from(master.expect("no pty master received"));
    c.ok(&["start", &c.id]);
    let mut text = String::new();
    let mut reader = std::io::BufReader::new(master);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !text.contains("hello-tty") && std::time::Instant::now() < deadline {
        let mut line = String::new();
        if std::io::BufRead::read_line(&mut reader, &mut line).unwrap_or(0) == 0 {
            break;
        }
        text.push_str(&line);
    }
    assert!(text.contains("/dev/pts/0"), "{text:?}");
    assert!(text.contains("hello-tty"), "{text:?}");
}

#[test]
fn spec_and_features() {
    let dir = tempfile::tempdir().unwrap();
    let out = output_with_timeout(
        {
            let mut c = std::process::Command::new(BIN);
            c.args(["spec", "--bundle", dir.path().to_str().unwrap()]);
            c
        },
        Duration::from_secs(10),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let spec: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(spec["root"]["path"], "rootfs");
    // A second spec refuses to overwrite.
    let mut c = std::process::Command::new(BIN);
    c.args(["spec", "--bundle", dir.path().to_str().unwrap()]);
    let out = output_with_timeout(c, Duration::from_secs(10));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("exists"));

    let mut c = std::process::Command::new(BIN);
    c.arg("features");
    let out = output_with_timeout(c, Duration::from_secs(10));
    let f: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(f["linux"]["seccomp"]["enabled"], true);
    assert!(f["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .contains(&json!("user")));
}

/// The "done when" of the foundation issue: a bad bundle gets one line naming the problem, a
/// non-zero exit, and leaves no state behind.
#[test]
fn bad_bundles_get_one_line_errors_and_leave_nothing() {
    let c = Ctr::new("badbundle", &["true"]);
    let bundle = c.bundle.path().to_path_buf();
    let b = bundle.to_str().unwrap().to_string();
    let check = |want: &str| {
        let out = c.rt(&["run", "--bundle", &b, &c.id]);
        assert_eq!(out.status.code(), Some(1));
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "one line, got: {err}");
        assert!(err.contains(want), "{want:?} not in {err:?}");
        let left: Vec<_> = std::fs::read_dir(c.root.path())
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "state left behind: {left:?}");
        assert!(c.cgroup_dirs().is_empty());
    };

    check("config.json not found");

    std::fs::write(
        bundle.join("config.json"),
        "{\"ociVersion\": \"1.2.0\", \"root\": ",
    )
    .unwrap();
    check("invalid runtime spec at line 1");

    let mut spec = c.spec.clone();
    spec["root"]["path"] = json!("no-such-rootfs");
    std::fs::write(bundle.join("config.json"), spec.to_string()).unwrap();
    check("no-such-rootfs: no such directory");

    let mut spec = c.spec.clone();
    spec["linux"]["namespaces"] = json!([{"type": "pid"}, {"type": "bogus"}]);
    std::fs::write(bundle.join("config.json"), spec.to_string()).unwrap();
    check("unknown variant `bogus`");

    // A program that does not exist fails at create, cleanly.
    let mut spec = c.spec.clone();
    spec["process"]["args"] = json!(["/no/such/program"]);
    std::fs::write(bundle.join("config.json"), spec.to_string()).unwrap();
    check("/no/such/program");

    let out = c.rt(&["run", "--bundle", "/no/such/bundle", &c.id]);
    assert!(
        stderr(&out).contains("bundle /no/such/bundle: no such directory"),
        "{}",
        stderr(&out)
    );
    let out = c.rt(&["run", "--bundle", &b, "bad/id"]);
    assert!(
        stderr(&out).contains("invalid container id"),
        "{}",
        stderr(&out)
    );
}

/// An exec'd process joins the container's cgroup, also when the bundle leaves cgroupsPath to
/// the runtime's default.
#[test]
fn exec_joins_the_containers_cgroup() {
    let mut c = Ctr::new("execcg", &["sleep", "1000"]);
    c.spec["linux"]
        .as_object_mut()
        .unwrap()
        .remove("cgroupsPath");
    assert!(c.create().status.success());
    c.ok(&["start", &c.id]);
    let pidfile = c.bundle.path().join("exec.pid");
    let out = c.detached(&[
        "exec",
        "--detach",
        "--pid-file",
        pidfile.to_str().unwrap(),
        &c.id,
        "sleep",
        "1000",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let exec_pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let pids: Vec<i32> = serde_json::from_str(&c.ok(&["ps", "--format", "json", &c.id])).unwrap();
    assert!(
        pids.contains(&exec_pid),
        "exec'd {exec_pid} not in {pids:?}"
    );
    assert!(
        !cgroup_dirs(&format!("/{}", c.id)).is_empty(),
        "default cgroupsPath is /<id>"
    );
    c.ok(&["delete", "--force", &c.id]);
    assert!(!alive(exec_pid));
    assert!(cgroup_dirs(&format!("/{}", c.id)).is_empty());
    assert!(cgroup_dirs(&format!("/:youki:{}", c.id)).is_empty());
}

/// Foreground `run` and `exec -t` with a terminal and no console socket: the runtime relays
/// the pty itself, as runc does.
#[test]
fn foreground_terminal_is_relayed() {
    let mut c = Ctr::new("fgtty", &["sh", "-c", "tty; echo out-$((6*7)); exit 3"]);
    c.spec["process"]["terminal"] = json!(true);
    let out = c.run();
    let t = stdout(&out);
    assert!(t.contains("/dev/pts/0"), "{t:?} {}", stderr(&out));
    assert!(t.contains("out-42"), "{t:?}");
    assert_eq!(out.status.code(), Some(3));
    assert!(!c.root.path().join(&c.id).exists());
    // The console socket the runtime listened on is gone too.
    let left: Vec<_> = std::fs::read_dir(c.root.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");

    let c = Ctr::new("exectty", &["sleep", "1000"]);
    assert!(c.create().status.success());
    c.ok(&["start", &c.id]);
    let out = c.rt(&["exec", "-t", &c.id, "sh", "-c", "tty; exit 5"]);
    assert!(
        stdout(&out).contains("/dev/pts/"),
        "{} {}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(out.status.code(), Some(5));
}

/// `--log FILE --log-format json` writes runc's JSON lines, which containerd reads back.
#[test]
fn json_log_has_runcs_shape() {
    let c = Ctr::new("jsonlog", &["true"]);
    let log = c.bundle.path().join("runtime.log");
    let out = c.rt(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "run",
        "--bundle",
        "/no/such/bundle",
        &c.id,
    ]);
    assert!(!out.status.success());
    let text = std::fs::read_to_string(&log).unwrap();
    let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["level"], "error");
    assert!(
        last["msg"].as_str().unwrap().contains("/no/such/bundle"),
        "{last}"
    );
    assert!(last["time"].as_str().unwrap().contains('T'));
}
