//! Containers through berthd, driven by the real `docker` CLI: the acceptance scenarios of
//! the daemon issue that exist so far. Each test runs real containers as root and checks
//! what is observable: output, exit codes, states, limits, and that nothing is left behind.

use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use berth_testkit::Daemon;

/// Nothing of container `id` remains: no record, no mount, no cgroup, no monitor socket.
fn assert_gone(d: &Daemon, id: &str) {
    assert!(!d.root().join("containers").join(id).exists());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(id), "a mount of {id} is left");
    for c in ["memory", "pids", "cpu", "unified", ""] {
        let p = Path::new("/sys/fs/cgroup")
            .join(c)
            .join(d.cgroup_parent())
            .join(id);
        assert!(!p.exists(), "{} is left", p.display());
    }
    assert!(!d
        .dir
        .path()
        .join("exec")
        .join(format!("{id}.sock"))
        .exists());
    // Nor the runtime's state for it.
    assert!(!d.dir.path().join("exec/runtime").join(id).exists());
}

#[test]
fn run_rm_prints_output_and_exits_with_the_containers_code() {
    let d = Daemon::with_busybox();
    assert_eq!(d.ok(&["run", "--rm", "busybox", "echo", "hi"]), "hi\n");
    let out = d.docker(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("err"));
    // A --rm container's rootfs is never synced to disk (overlayfs `volatile`: its changes
    // go with it); a kept container's is an ordinary overlay.
    let root_opts = |rm: bool| {
        let mut args = vec!["run"];
        if rm {
            args.push("--rm");
        }
        args.extend(["busybox", "sh", "-c", "grep ' / / ' /proc/self/mountinfo"]);
        d.ok(&args)
    };
    let rm = root_opts(true);
    assert!(rm.contains("volatile"), "{rm}");
    let kept = root_opts(false);
    assert!(
        kept.contains("overlay") && !kept.contains("volatile"),
        "{kept}"
    );
    d.ok(&["container", "prune", "-f"]);
    // --rm removed them all, and with them their mounts, cgroups and sockets.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !d.ok(&["ps", "-aq"]).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(d.ok(&["ps", "-aq"]), "");
    assert_eq!(
        std::fs::read_dir(d.root().join("containers"))
            .unwrap()
            .count(),
        0
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(d.dir.path().to_str().unwrap()));

    // stdin through attach (-i), and EOF when the client's input ends.
    let mut child = d
        .cmd_with(
            "docker",
            &["run", "--rm", "-i", "busybox", "sh", "-c", "cat; echo done"],
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"hello\n").unwrap();
    let out = d.finish(child, "docker run -i");
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\ndone\n");
}

#[test]
fn the_create_request_shapes_the_container() {
    let d = Daemon::with_busybox();
    let run = |args: &[&str]| {
        let mut a = vec!["run", "--rm"];
        a.extend_from_slice(args);
        d.ok(&a)
    };
    assert_eq!(run(&["--hostname", "h1", "busybox", "hostname"]), "h1\n");
    assert_eq!(
        run(&["busybox", "cat", "/etc/hostname"]).len(),
        13,
        "the short ID"
    );
    assert_eq!(run(&["--user", "nobody", "busybox", "id", "-u"]), "65534\n");
    assert_eq!(run(&["-w", "/tmp", "busybox", "pwd"]), "/tmp\n");
    assert_eq!(run(&["-e", "A=1", "busybox", "sh", "-c", "echo $A"]), "1\n");
    assert_eq!(run(&["busybox", "sh", "-c", "echo $$"]), "1\n", "pid 1");
    // Docker's default capabilities: no CAP_SYS_ADMIN, so no mount.
    let out = d.docker(&[
        "run", "--rm", "busybox", "mount", "-t", "tmpfs", "t", "/mnt",
    ]);
    assert!(!out.status.success());
    assert!(d
        .docker(&[
            "run",
            "--rm",
            "--cap-add",
            "SYS_ADMIN",
            "busybox",
            "mount",
            "-t",
            "tmpfs",
            "t",
            "/mnt"
        ])
        .status
        .success());
    // --read-only.
    assert!(!d
        .docker(&["run", "--rm", "--read-only", "busybox", "touch", "/x"])
        .status
        .success());
    assert!(d
        .docker(&[
            "run",
            "--rm",
            "--read-only",
            "--tmpfs",
            "/scratch",
            "busybox",
            "touch",
            "/scratch/x"
        ])
        .status
        .success());
    // --memory and --pids-limit reach the cgroup (v1 here; v2 files on v2 hosts).
    let mem = run(&[
        "--memory",
        "32m",
        "busybox",
        "sh",
        "-c",
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max",
    ]);
    assert_eq!(mem.trim(), "33554432");
    let out = d.docker(&[
        "run",
        "--rm",
        "--pids-limit",
        "5",
        "busybox",
        "sh",
        "-c",
        "for i in 1 2 3 4 5 6 7 8; do sleep 5 & done; wait",
    ]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("can't fork")
            || String::from_utf8_lossy(&out.stderr).contains("Resource temporarily unavailable"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A bind mount, read-only.
    let host = d.dir.path().join("shared");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("f"), "from host").unwrap();
    let bind = format!("{}:/data:ro", host.display());
    assert_eq!(
        run(&["-v", &bind, "busybox", "cat", "/data/f"]),
        "from host"
    );
    assert!(!d
        .docker(&["run", "--rm", "-v", &bind, "busybox", "touch", "/data/g"])
        .status
        .success());
    // Masked paths (/proc/timer_list exists on every kernel we run on; kcore may not).
    assert_eq!(
        run(&["busybox", "sh", "-c", "wc -c < /proc/timer_list"]).trim(),
        "0"
    );
}

#[test]
fn bad_requests_get_dockers_errors_and_change_nothing() {
    let d = Daemon::with_busybox();
    let e = d.fails(&["run", "--rm", "nosuch:image", "true"]);
    assert!(
        e.contains("No such image") || e.contains("Unable to find image"),
        "{e}"
    );
    let e = d.fails(&["run", "--rm", "busybox", "/no/such/cmd"]);
    assert!(e.contains("no such file") || e.contains("not found"), "{e}");
    d.ok(&["create", "--name", "one", "busybox", "true"]);
    // A duplicate name is refused, and the anonymous volume it asked for is not left behind.
    let e = d.fails(&["create", "--name", "one", "-v", "/anon", "busybox", "true"]);
    assert!(e.contains("is already in use"), "{e}");
    let e = d.fails(&["create", "--name", "-bad", "busybox", "true"]);
    assert!(e.contains("Invalid container name"), "{e}");
    let e = d.fails(&["run", "--rm", "-v", "/tmp:relative", "busybox", "true"]);
    assert!(e.contains("must be absolute"), "{e}");
    let e = d.fails(&[
        "run",
        "--rm",
        "--mount",
        "type=bind,src=/no/such/dir,dst=/x",
        "busybox",
        "true",
    ]);
    assert!(e.contains("bind source path does not exist"), "{e}");
    assert_eq!(
        d.ok(&["volume", "ls", "-q"]),
        "",
        "a refused create makes no volume"
    );
    let (status, body) = d.request("POST", "/v1.44/containers/create", "{not json");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid JSON"), "{body}");
    let (status, body) = d.request("POST", "/v1.44/containers/one/wait?condition=bogus", "");
    assert_eq!(status, 400, "{body}");
    let e = d.fails(&["stop", "nosuch"]);
    assert!(e.contains("No such container: nosuch"), "{e}");
    let e = d.fails(&["kill", "one"]);
    assert!(e.contains("is not running"), "{e}");
    // The one good container is untouched by all of that.
    assert_eq!(
        d.ok(&["ps", "-a", "--format", "{{.Names}} {{.State}}"]),
        "one created\n"
    );
    d.ok(&["rm", "one"]);
}

#[test]
fn detached_containers_log_stop_restart_and_go() {
    let d = Daemon::with_busybox();
    let id = d
        .ok(&[
            "run",
            "-d",
            "--name",
            "web",
            "busybox",
            "sh",
            "-c",
            "trap 'echo bye; exit 0' TERM; echo started; while true; do sleep 0.1; done",
        ])
        .trim()
        .to_string();
    assert_eq!(id.len(), 64);
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Status}} {{.Name}}", "web"]),
        "running /web\n"
    );
    let ps = d.ok(&["ps"]);
    assert!(ps.contains("web") && ps.contains("Up "), "{ps}");
    // logs -f follows until the container stops.
    let follower = d
        .cmd_with("docker", &["logs", "-f", "web"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    d.ok(&["stop", "web"]);
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "SIGTERM was not delivered"
    );
    let out = d.finish(follower, "docker logs -f");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "started\nbye\n");
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.ExitCode}}",
            "web"
        ]),
        "exited 0\n"
    );
    assert_eq!(d.ok(&["wait", "web"]), "0\n");
    // Restart: running again, the log goes on.
    d.ok(&["restart", "web"]);
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Running}}", "web"]),
        "true\n"
    );
    let e = d.fails(&["rm", "web"]);
    assert!(e.contains("cannot remove a running container"), "{e}");
    // kill, then wait sees the signal's exit code.
    d.ok(&["kill", "web"]);
    assert_eq!(d.ok(&["wait", "web"]), "137\n");
    let logs = d.ok(&["logs", "--tail", "1", "web"]);
    assert_eq!(logs, "started\n");
    d.ok(&["rm", "web"]);
    assert_gone(&d, &id);
}

#[test]
fn containers_survive_a_killed_berthd() {
    let mut d = Daemon::with_busybox();
    let id = d
        .ok(&[
            "run",
            "-d",
            "--name",
            "survivor",
            "busybox",
            "sh",
            "-c",
            "trap 'exit 7' TERM; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done",
        ])
        .trim()
        .to_string();
    d.ok(&[
        "run",
        "-d",
        "--name",
        "brief",
        "busybox",
        "sh",
        "-c",
        "sleep 0.5; exit 4",
    ]);
    std::thread::sleep(Duration::from_millis(200));
    d.kill9();
    // While berthd is away, one container exits and the other keeps going.
    std::thread::sleep(Duration::from_millis(800));
    d.spawn();
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Status}}", "survivor"]),
        "running\n"
    );
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.ExitCode}}",
            "brief"
        ]),
        "exited 4\n"
    );
    let logs = d.ok(&["logs", "survivor"]);
    assert!(logs.lines().count() >= 5, "{logs}");
    // Still controllable: stop delivers SIGTERM through the restored state.
    d.ok(&["stop", "survivor"]);
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.ExitCode}}", "survivor"]),
        "7\n"
    );
    d.ok(&["rm", "survivor", "brief"]);
    assert_gone(&d, &id);
}

#[test]
fn exec_runs_processes_in_a_running_container() {
    let d = Daemon::with_busybox();
    d.ok(&["run", "-d", "--name", "box", "busybox", "sleep", "600"]);
    let out = d.docker(&["exec", "box", "sh", "-c", "echo out; echo err >&2; exit 5"]);
    assert_eq!(out.status.code(), Some(5));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
    // It shares the container's namespaces: pid 1 is the container's sleep.
    assert_eq!(
        d.ok(&["exec", "box", "cat", "/proc/1/cmdline"]),
        "sleep\u{0}600\u{0}"
    );
    assert_eq!(
        d.ok(&[
            "exec",
            "-u",
            "nobody",
            "-w",
            "/tmp",
            "-e",
            "X=1",
            "box",
            "sh",
            "-c",
            "id -u; pwd; echo $X"
        ]),
        "65534\n/tmp\n1\n"
    );
    // stdin (-i), to EOF.
    let mut child = d
        .cmd_with(
            "docker",
            &["exec", "-i", "box", "sh", "-c", "cat > /tmp/in"],
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"typed\n").unwrap();
    assert!(d.finish(child, "docker exec -i").status.success());
    assert_eq!(d.ok(&["exec", "box", "cat", "/tmp/in"]), "typed\n");
    // A terminal (-t): the process sees a tty.
    let out = d.ok(&["exec", "-t", "box", "sh", "-c", "[ -t 1 ] && echo tty"]);
    assert_eq!(out.trim(), "tty");
    // Errors: unknown container, stopped container.
    assert!(d
        .fails(&["exec", "nosuch", "true"])
        .contains("No such container"));
    d.ok(&["create", "--name", "idle", "busybox", "true"]);
    assert!(d
        .fails(&["exec", "idle", "true"])
        .contains("is not running"));
    let top = d.ok(&["top", "box"]);
    assert!(top.contains("sleep 600"), "{top}");
}

/// The exec's id from `POST /containers/{id}/exec`.
fn exec_id(d: &Daemon, ctr: &str, body: &str) -> String {
    let (code, out) = d.request("POST", &format!("/containers/{ctr}/exec"), body);
    assert_eq!(code, 201, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["Id"].as_str().unwrap().to_string()
}

#[test]
fn exec_with_a_tty_takes_the_terminal_size_and_follows_resizes() {
    let d = Daemon::with_busybox();
    d.ok(&["run", "-d", "--name", "box", "busybox", "sleep", "600"]);
    // `docker exec -it` in a terminal of 33x101 (script(1) makes the pty): the process's
    // terminal has that size, and input typed reaches it.
    // A process that ends at once still has its output delivered through its tty.
    for _ in 0..10 {
        assert_eq!(d.ok(&["exec", "-t", "box", "echo", "quick"]), "quick\r\n");
    }
    let out = d.typed_under_script(
        "stty rows 33 cols 101; docker exec -it box sh -c 'stty size; read x; echo got $x'",
        &[b"hello\r"],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("33 101"), "{text}");
    assert!(text.contains("got hello"), "{text}");

    // Through the API: the start request's ConsoleSize, then a resize while it runs.
    let id = exec_id(
        &d,
        "box",
        r#"{"Cmd":["sh","-c","stty size; sleep 1; stty size"],"Tty":true,"AttachStdout":true}"#,
    );
    let out = std::thread::scope(|scope| {
        let start = scope.spawn(|| {
            d.request(
                "POST",
                &format!("/exec/{id}/start"),
                r#"{"Detach":false,"Tty":true,"ConsoleSize":[10,20]}"#,
            )
            .1
        });
        std::thread::sleep(Duration::from_millis(500));
        let (code, body) = d.request("POST", &format!("/exec/{id}/resize?h=40&w=120"), "");
        assert_eq!(code, 200, "{body}");
        start.join().unwrap()
    });
    let sizes: Vec<&str> = out
        .lines()
        .filter(|l| l.contains(' ') && l.trim().split(' ').all(|n| n.parse::<u16>().is_ok()))
        .map(str::trim)
        .collect();
    assert_eq!(sizes, ["10 20", "40 120"], "{out}");
    let (_, inspect) = d.request("GET", &format!("/exec/{id}/json"), "");
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(v["Running"], false);
    assert_eq!(v["ExitCode"], 0);
    // The console socket is gone with the exec.
    let left: Vec<_> = std::fs::read_dir(d.dir.path().join("exec"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".console"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // An exec that does not exist.
    let (code, body) = d.request("POST", "/exec/nosuch/resize?h=1&w=1", "");
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("No such exec instance"), "{body}");
    // A missing executable with a tty: the runtime's error reaches the client and the exit
    // code is Docker's 126/127 family, not a hang.
    let out = d.docker(&["exec", "-t", "box", "/nonexistent"]);
    assert!(!out.status.success());
}

/// A hijacked `POST` (with a JSON `body`) on the daemon's socket: the status line, and the
/// connection positioned after the response headers.
fn hijack(d: &Daemon, path: &str, body: &str) -> (String, std::os::unix::net::UnixStream) {
    use std::io::Read;
    let mut s = std::os::unix::net::UnixStream::connect(d.socket()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: berth\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && s.read(&mut b).unwrap() == 1 {
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    (head.lines().next().unwrap_or("").to_string(), s)
}

/// Reads until the daemon closes the connection (or 20 s pass, which fails the read).
fn read_to_close(s: &mut std::os::unix::net::UnixStream) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    s.read_to_end(&mut out)
        .expect("the daemon closes the connection");
    out
}

#[test]
fn attach_replays_logs_and_detach_keys_let_go() {
    let d = Daemon::with_busybox();
    let id = d.ok(&[
        "run",
        "-d",
        "--name",
        "lg",
        "busybox",
        "sh",
        "-c",
        "echo one; echo two >&2; sleep 600",
    ]);
    let id = id.trim();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !d.ok(&["logs", "lg"]).contains("one") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    // logs=1 without stream: the log so far, framed by stream, then the end.
    let (status, mut s) = hijack(
        &d,
        "/containers/lg/attach?logs=1&stream=0&stdout=1&stderr=1",
        "",
    );
    assert!(status.contains("101"), "{status}");
    let out = read_to_close(&mut s);
    let mut want = vec![1u8, 0, 0, 0, 0, 0, 0, 4];
    want.extend_from_slice(b"one\n");
    want.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 4]);
    want.extend_from_slice(b"two\n");
    assert_eq!(out, want);
    // Only stderr asked for.
    let (_, mut s) = hijack(&d, "/containers/lg/attach?logs=1&stderr=1", "");
    assert_eq!(&read_to_close(&mut s)[8..], b"two\n");
    // Neither logs nor stream: nothing, at once (the Python SDK's default attach).
    let (status, mut s) = hijack(&d, "/containers/lg/attach?stdout=1&stderr=1", "");
    assert!(status.contains("101"), "{status}");
    assert!(read_to_close(&mut s).is_empty());

    // A shell with a tty and stdin: typed input reaches it, ctrl-p ctrl-q lets go and the
    // container runs on.
    d.ok(&["run", "-dit", "--name", "tt", "busybox", "sh"]);
    let (_, mut s) = hijack(
        &d,
        "/containers/tt/attach?stream=1&stdin=1&stdout=1&stderr=1",
        "",
    );
    s.write_all(b"echo $((6*7))\r").unwrap();
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !String::from_utf8_lossy(&seen).contains("42") && Instant::now() < deadline {
        use std::io::Read;
        let mut b = [0u8; 256];
        let n = s.read(&mut b).unwrap();
        seen.extend_from_slice(&b[..n]);
    }
    assert!(
        String::from_utf8_lossy(&seen).contains("42"),
        "{}",
        String::from_utf8_lossy(&seen)
    );
    s.write_all(&[0x10, 0x11]).unwrap();
    read_to_close(&mut s);
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Status}}", "tt"]).trim(),
        "running"
    );
    // Other keys (no tty this time, so the bytes arrive as sent): ctrl-p ctrl-q now pass
    // through, ctrl-x detaches, and what was typed before it arrives.
    d.ok(&[
        "run",
        "-di",
        "--name",
        "rd",
        "busybox",
        "sh",
        "-c",
        "head -c 4 > /tmp/r; sleep 600",
    ]);
    let (_, mut s) = hijack(
        &d,
        "/containers/rd/attach?stream=1&stdin=1&stdout=1&detachKeys=ctrl-x",
        "",
    );
    s.write_all(b"\x10\x11ab\x18").unwrap();
    read_to_close(&mut s);
    let deadline = Instant::now() + Duration::from_secs(20);
    let got = || d.ok(&["exec", "rd", "od", "-An", "-tx1", "/tmp/r"]);
    while got().trim() != "10 11 61 62" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(got().trim(), "10 11 61 62");
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Status}}", "rd"]).trim(),
        "running"
    );
    // The docker CLI under a terminal detaches the same way.
    let out = d.typed_under_script("docker attach tt", &[&[0x10, 0x11]]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("read escape sequence"),
        "{out:?}"
    );
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Status}}", "tt"]).trim(),
        "running"
    );
    // Bad keys: Docker's 400, before anything is taken over; for an exec at its creation.
    let (code, body) = d.request(
        "POST",
        "/containers/tt/attach?stream=1&detachKeys=ctrl-1",
        "",
    );
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("Invalid detach keys (ctrl-1) provided"),
        "{body}"
    );
    let (code, body) = d.request(
        "POST",
        "/containers/tt/exec",
        r#"{"Cmd":["true"],"DetachKeys":"nope"}"#,
    );
    assert_eq!(code, 400, "{body}");
    // An exec with stdin detaches too, and its process runs on.
    let eid = exec_id(
        &d,
        "tt",
        r#"{"Cmd":["sh","-c","read x; echo $x > /tmp/e; head -c 1000000 /dev/zero; echo > /tmp/done; sleep 600"],"AttachStdin":true,"AttachStdout":true,"Tty":true}"#,
    );
    let (status, mut s) = hijack(
        &d,
        &format!("/exec/{eid}/start"),
        r#"{"Detach":false,"Tty":true}"#,
    );
    assert!(status.contains("101"), "{status}");
    std::thread::sleep(Duration::from_millis(500));
    s.write_all(b"typed\r\x10\x11").unwrap();
    read_to_close(&mut s);
    let deadline = Instant::now() + Duration::from_secs(20);
    while d.docker(&["exec", "tt", "cat", "/tmp/e"]).stdout != b"typed\n"
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(d.ok(&["exec", "tt", "cat", "/tmp/e"]), "typed\n");
    // Its output after the detach (1 MB, far more than a pty holds) is drained, not left to
    // block it.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !d
        .docker(&["exec", "tt", "test", "-e", "/tmp/done"])
        .status
        .success()
    {
        assert!(
            Instant::now() < deadline,
            "the detached exec blocked on its output"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (_, inspect) = d.request("GET", &format!("/exec/{eid}/json"), "");
    assert!(inspect.contains("\"Running\":true"), "{inspect}");
    d.ok(&["rm", "-f", "tt", "rd", id]);
}

#[test]
fn image_changes_are_reported_as_events_as_dockerd_reports_them() {
    let d = Daemon::with_busybox();
    // `--since` counts whole seconds: start in a second after the busybox load's.
    let t0 = chrono_now_secs() + 1;
    while chrono_now_secs() < t0 {
        std::thread::sleep(Duration::from_millis(20));
    }
    let t0 = t0.to_string();
    let bb = d.ok(&["image", "inspect", "-f", "{{.Id}}", "busybox"]);
    let bb = bb.trim();
    d.ok(&["tag", "busybox", "bb:2"]);
    let saved = d.dir.path().join("bb.tar");
    d.ok(&["save", "-o", saved.to_str().unwrap(), "bb:2"]);
    d.ok(&["rmi", "bb:2"]);
    d.ok(&["load", "-i", saved.to_str().unwrap()]);
    let rootfs = d.dir.path().join("one.tar");
    {
        let mut t = tar::Builder::new(std::fs::File::create(&rootfs).unwrap());
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_mode(0o644);
        t.append_data(&mut h, "f", &b"hi"[..]).unwrap();
        t.finish().unwrap();
    }
    let imported = d.ok(&[
        "import",
        "-c",
        "LABEL team=infra",
        rootfs.to_str().unwrap(),
        "imp:1",
    ]);
    let imported = imported.trim();
    d.ok(&["run", "--name", "cc", "busybox", "true"]);
    let committed = d.ok(&["commit", "-m", "why", "cc", "cm:1"]);
    let committed = committed.trim();
    d.ok(&["rm", "cc"]);
    d.ok(&["rmi", "cm:1"]);
    d.ok(&["image", "prune", "-f"]);
    let until = (chrono_now_secs() + 1).to_string();
    let events = |filter: &str| {
        d.ok(&[
            "events",
            "--since",
            &t0,
            "--until",
            &until,
            "--filter",
            filter,
            "--format",
            "{{.Type}} {{.Action}} {{.Actor.ID}} {{.Actor.Attributes.name}}",
        ])
    };
    let got = events("type=image");
    let want = [
        format!("image tag {bb} bb:2"),
        format!("image save {bb} {bb}"),
        format!("image untag {bb} {bb}"),
        format!("image load {bb} {bb}"),
        format!("image tag {imported} imp:1"),
        format!("image import {imported} {imported}"),
        format!("image tag {committed} cm:1"),
        format!("image untag {committed} {committed}"),
        format!("image delete {committed} {committed}"),
        "image prune  <no value>".to_string(),
    ];
    assert_eq!(got.lines().collect::<Vec<_>>(), want, "{got}");
    // The image's labels come along; the prune says what it freed.
    let labelled = d.ok(&[
        "events",
        "--since",
        &t0,
        "--until",
        &until,
        "--filter",
        "type=image",
        "--filter",
        "event=import",
        "--format",
        "{{index .Actor.Attributes \"team\"}}",
    ]);
    assert_eq!(labelled.trim(), "infra");
    let prune = d.ok(&[
        "events",
        "--since",
        &t0,
        "--until",
        &until,
        "--filter",
        "event=prune",
        "--format",
        "{{json .Actor.Attributes}}",
    ]);
    assert!(prune.contains("\"reclaimed\""), "{prune}");
    // `image=` finds an image's events by name (with or without the tag) and by ID, and a
    // container's by its image.
    let by_name = events("image=imp");
    assert_eq!(by_name.lines().count(), 1, "{by_name}");
    let by_id = events(&format!("image={imported}"));
    assert_eq!(by_id.lines().count(), 2, "{by_id}");
    // The commit is the container's event, naming the image it made.
    let commit = d.ok(&[
        "events", "--since", &t0, "--until", &until, "--filter", "event=commit", "--format",
        "{{.Type}} {{.Actor.Attributes.name}} {{.Actor.Attributes.imageID}} {{.Actor.Attributes.comment}}",
    ]);
    assert_eq!(commit.trim(), format!("container cc {committed} why"));
}

#[test]
fn berthd_serves_tcp_hosts_beside_its_socket() {
    assert!(
        berth_testkit::have_docker_cli(),
        "this test drives berthd with the docker CLI"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tcp = format!("tcp://127.0.0.1:{port}");
    let d = Daemon::start_with(&["--host", &tcp]);
    d.load_busybox();
    // The docker CLI over TCP: a run whose output comes through the hijacked attach.
    let out = d.docker(&["-H", &tcp, "run", "--rm", "busybox", "echo", "over tcp"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "over tcp\n");
    // berth too; both hosts see the same daemon.
    d.ok(&["run", "-d", "--name", "seen", "busybox", "sleep", "600"]);
    let ps = d.berth_ok(&["-H", &tcp, "ps", "--format", "{{.Names}}"]);
    assert_eq!(ps.trim(), "seen");
    let out = d.berth(&["-H", &tcp, "exec", "seen", "echo", "exec over tcp"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "exec over tcp\n",
        "{out:?}"
    );
    d.ok(&["rm", "-f", "seen"]);
    // A port in use is refused with its address named.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    // Bounded, and on this daemon's network prefix: were the port not refused first, the
    // prefix's lock would stop it before it made anything on the host.
    let other = std::process::Command::new(berth_testkit::bin("berthd"))
        .args(["--root", d.dir.path().join("other").to_str().unwrap()])
        .args([
            "--exec-root",
            d.dir.path().join("other-exec").to_str().unwrap(),
        ])
        .args(["--host", &format!("tcp://{addr}")])
        .args(["--network-prefix", &d.net_prefix()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = d.finish(other, "a berthd on a taken port");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("listen on tcp://{addr}")),
        "{out:?}"
    );
}

#[test]
fn volumes_keep_data_and_refuse_removal_while_used() {
    let d = Daemon::with_busybox();
    assert_eq!(d.ok(&["volume", "create", "data"]), "data\n");
    assert_eq!(d.ok(&["volume", "ls", "-q"]), "data\n");
    d.ok(&[
        "run",
        "--rm",
        "-v",
        "data:/d",
        "busybox",
        "sh",
        "-c",
        "echo kept > /d/f",
    ]);
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "--mount",
            "type=volume,src=data,dst=/m,readonly",
            "busybox",
            "cat",
            "/m/f"
        ]),
        "kept\n"
    );
    assert!(!d
        .docker(&[
            "run",
            "--rm",
            "-v",
            "data:/d:ro",
            "busybox",
            "touch",
            "/d/g"
        ])
        .status
        .success());
    // In use: refused, with the user named; the data stays.
    d.ok(&[
        "run", "-d", "--name", "user", "-v", "data:/d", "busybox", "sleep", "600",
    ]);
    let e = d.fails(&["volume", "rm", "data"]);
    assert!(e.contains("volume is in use"), "{e}");
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{range .Mounts}}{{.Type}} {{.Name}} {{.Destination}}{{end}}",
            "user"
        ]),
        "volume data /d\n"
    );
    d.ok(&["rm", "-f", "user"]);
    // Anonymous volumes (-v /path) go with `rm -v`; named ones stay.
    d.ok(&[
        "create", "--name", "anon", "-v", "/scratch", "busybox", "true",
    ]);
    assert_eq!(d.ok(&["volume", "ls", "-q"]).lines().count(), 2);
    d.ok(&["rm", "-v", "anon"]);
    assert_eq!(d.ok(&["volume", "ls", "-q"]), "data\n");
    let df = d.ok(&["system", "df"]);
    assert!(df.contains("Local Volumes   1"), "{df}");
    d.ok(&["volume", "rm", "data"]);
    assert!(d
        .fails(&["volume", "inspect", "data"])
        .contains("no such volume"));
    assert!(d
        .fails(&["volume", "create", "bad/name"])
        .contains("invalid characters"));
}

#[test]
fn restart_policies_and_log_rotation() {
    let d = Daemon::with_busybox();
    // on-failure:2 restarts a failing container twice, then leaves it exited.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "flaky",
        "--restart",
        "on-failure:2",
        "busybox",
        "sh",
        "-c",
        "echo run; exit 3",
    ]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = d.ok(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.RestartCount}} {{.State.ExitCode}}",
            "flaky",
        ]);
        if s == "exited 2 3\n" {
            break;
        }
        assert!(Instant::now() < deadline, "never settled: {s}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(d.ok(&["logs", "flaky"]), "run\nrun\nrun\n");
    // always: restarted after a clean exit; a stop is final.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "forever",
        "--restart",
        "always",
        "busybox",
        "sh",
        "-c",
        "sleep 0.2",
    ]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while d
        .ok(&["inspect", "-f", "{{.RestartCount}}", "forever"])
        .trim()
        == "0"
    {
        assert!(Instant::now() < deadline, "no restart");
        std::thread::sleep(Duration::from_millis(50));
    }
    d.ok(&["stop", "forever"]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Status}}", "forever"]),
        "exited\n"
    );
    // --rm and a restart policy do not go together (the CLI refuses before asking; the API
    // refuses too).
    let (status, body) = d.request(
        "POST",
        "/v1.44/containers/create",
        r#"{"Image":"busybox","Cmd":["true"],"HostConfig":{"AutoRemove":true,"RestartPolicy":{"Name":"always"}}}"#,
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("AutoRemove"), "{body}");

    // json-file rotation: max-size 1k, max-file 2 keeps the newest lines within two files.
    let id = d
        .ok(&[
            "run",
            "-d",
            "--log-opt",
            "max-size=1k",
            "--log-opt",
            "max-file=2",
            "busybox",
            "sh",
            "-c",
            "for i in $(seq 1 200); do echo line-$i; done",
        ])
        .trim()
        .to_string();
    assert_eq!(d.ok(&["wait", &id]), "0\n");
    let dir = d.root().join("containers").join(&id);
    let log = dir.join(format!("{id}-json.log"));
    assert!(std::fs::metadata(&log).unwrap().len() <= 1024);
    assert!(
        std::fs::metadata(dir.join(format!("{id}-json.log.1")))
            .unwrap()
            .len()
            <= 1024
    );
    assert!(!dir.join(format!("{id}-json.log.2")).exists());
    let logs = d.ok(&["logs", &id]);
    assert!(logs.ends_with("line-200\n"), "{logs}");
    assert!(
        !logs.contains("line-1\n"),
        "the oldest lines were rotated away"
    );
}

#[test]
fn stats_and_prune() {
    let d = Daemon::with_busybox();
    d.ok(&[
        "run",
        "-d",
        "--name",
        "busy",
        "--memory",
        "64m",
        "--pids-limit",
        "20",
        "busybox",
        "sh",
        "-c",
        "while true; do :; done",
    ]);
    let s = d.ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}}|{{.CPUPerc}}|{{.MemUsage}}|{{.PIDs}}",
    ]);
    let f: Vec<&str> = s.trim().split('|').collect();
    assert_eq!(f[0], "busy", "{s}");
    let cpu: f64 = f[1].trim_end_matches('%').parse().unwrap();
    assert!(cpu > 20.0, "a spinning shell uses CPU: {s}");
    assert!(f[2].ends_with("/ 64MiB"), "{s}");
    assert_eq!(f[3], "1");
    assert!(d
        .fails(&["stats", "--no-stream", "nosuch"])
        .contains("No such container"));
    d.ok(&["rm", "-f", "busy"]);
    // prune removes stopped containers only.
    d.ok(&["run", "--name", "done", "busybox", "true"]);
    d.ok(&["run", "-d", "--name", "alive", "busybox", "sleep", "600"]);
    let out = d.ok(&["container", "prune", "-f"]);
    assert_eq!(out.lines().filter(|l| l.len() == 64).count(), 1, "{out}");
    assert_eq!(d.ok(&["ps", "-a", "--format", "{{.Names}}"]), "alive\n");
}

#[test]
fn cp_copies_both_ways_and_stays_inside_the_container() {
    let d = Daemon::with_busybox();
    d.ok(&[
        "run",
        "-d",
        "--name",
        "box",
        "busybox",
        "sh",
        "-c",
        "ln -s / /escape; sleep 600",
    ]);
    let host = d.dir.path().join("cp");
    std::fs::create_dir_all(host.join("tree/sub")).unwrap();
    std::fs::write(host.join("tree/sub/a"), "A").unwrap();
    std::fs::write(host.join("file"), "F").unwrap();
    d.ok(&["cp", host.join("file").to_str().unwrap(), "box:/tmp/"]);
    d.ok(&["cp", host.join("tree").to_str().unwrap(), "box:/root/"]);
    assert_eq!(
        d.ok(&["exec", "box", "cat", "/tmp/file", "/root/tree/sub/a"]),
        "FA"
    );
    // Through a symlink to / in the container: the container's /, never the host's.
    let marker = format!("berth-cp-escape-{}", std::process::id());
    std::fs::write(host.join(&marker), "x").unwrap();
    d.ok(&[
        "cp",
        host.join(&marker).to_str().unwrap(),
        "box:/escape/tmp/",
    ]);
    assert!(
        !Path::new("/tmp").join(&marker).exists(),
        "cp wrote on the host"
    );
    assert_eq!(
        d.ok(&["exec", "box", "cat", &format!("/tmp/{marker}")]),
        "x"
    );
    // Out of a stopped container (its rootfs is mounted for the copy only).
    d.ok(&["stop", "-t", "0", "box"]);
    let back = d.dir.path().join("back");
    d.ok(&["cp", "box:/root/tree", back.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(back.join("sub/a")).unwrap(), "A");
    let e = d.fails(&["cp", "box:/no/such", back.to_str().unwrap()]);
    assert!(e.contains("Could not find the file"), "{e}");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(d.root().to_str().unwrap()),
        "the copy's mount is gone"
    );
}

#[test]
fn diff_commit_and_export() {
    let d = Daemon::with_busybox();
    d.ok(&[
        "run",
        "--name",
        "src",
        "busybox",
        "sh",
        "-c",
        "echo new > /new; echo extra >> /etc/passwd; rm /etc/group",
    ]);
    assert_eq!(
        d.ok(&["diff", "src"]),
        "C /etc\nD /etc/group\nC /etc/passwd\nA /new\n"
    );
    let id = d.ok(&[
        "commit",
        "-c",
        "CMD [\"cat\", \"/new\"]",
        "-m",
        "made here",
        "src",
        "derived:1",
    ]);
    assert!(id.starts_with("sha256:"), "{id}");
    // The new image runs with its changes and its new CMD.
    assert_eq!(d.ok(&["run", "--rm", "derived:1"]), "new\n");
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "derived:1",
            "sh",
            "-c",
            "tail -1 /etc/passwd; [ -e /etc/group ] || echo no-group"
        ]),
        "extra\nno-group\n"
    );
    let hist = d.ok(&["history", "--format", "{{.Comment}}", "derived:1"]);
    assert_eq!(hist.lines().next(), Some("made here"));
    // The image of a container cannot be removed while the container exists.
    assert!(d.fails(&["rmi", "busybox"]).contains("being used"));
    // export: the whole filesystem, changes included.
    let out = d.cmd_with("docker", &["export", "src"]).output().unwrap();
    assert!(out.status.success());
    let mut names = Vec::new();
    for e in tar::Archive::new(&out.stdout[..]).entries().unwrap() {
        names.push(e.unwrap().path().unwrap().to_string_lossy().into_owned());
    }
    assert!(names.iter().any(|n| n.trim_start_matches("./") == "new"));
    assert!(names
        .iter()
        .any(|n| n.trim_start_matches("./") == "bin/busybox"));
    assert!(!names
        .iter()
        .any(|n| n.trim_start_matches("./") == "etc/group"));
}

/// `commit` pauses a running container while it reads the changes (Docker's default) and
/// resumes it; `--pause=false` leaves it running throughout.
#[test]
fn commit_pauses_a_running_container_unless_told_not_to() {
    let d = Daemon::with_busybox();
    d.ok(&[
        "run",
        "-d",
        "--name",
        "live",
        "busybox",
        "sh",
        "-c",
        "echo state > /state; exec sleep 60",
    ]);
    let actions = |since: u64| {
        let until = (chrono_now_secs() + 1).to_string();
        d.ok(&[
            "events",
            "--since",
            &since.to_string(),
            "--until",
            &until,
            "--filter",
            "container=live",
            "--format",
            "{{.Action}}",
        ])
    };
    let since = chrono_now_secs();
    d.ok(&["commit", "live", "live:paused"]);
    let seen = actions(since);
    let got: Vec<&str> = seen
        .lines()
        .filter(|a| *a == "pause" || *a == "unpause")
        .collect();
    assert_eq!(got, ["pause", "unpause"], "{seen}");
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Status}}", "live"]),
        "running\n"
    );
    assert_eq!(
        d.ok(&["run", "--rm", "live:paused", "cat", "/state"]),
        "state\n"
    );
    // The second commit's events are told apart by time: wait for the next second.
    std::thread::sleep(Duration::from_millis(1100));
    let since = chrono_now_secs();
    d.ok(&["commit", "--pause=false", "live", "live:unpaused"]);
    let seen = actions(since);
    assert!(!seen.lines().any(|a| a == "pause"), "{seen}");
    assert_eq!(
        d.ok(&["run", "--rm", "live:unpaused", "cat", "/state"]),
        "state\n"
    );
    d.ok(&["rm", "-f", "live"]);
}

#[test]
fn health_checks_report_status_and_events() {
    let d = Daemon::with_busybox();
    let since = chrono_now_secs();
    d.ok(&[
        "run",
        "-d",
        "--name",
        "hc",
        "--health-cmd",
        "test -f /tmp/ok",
        "--health-interval",
        "100ms",
        "--health-retries",
        "2",
        "busybox",
        "sh",
        "-c",
        "sleep 0.5; touch /tmp/ok; sleep 600",
    ]);
    let status = |d: &Daemon| d.ok(&["inspect", "-f", "{{.State.Health.Status}}", "hc"]);
    let deadline = Instant::now() + Duration::from_secs(15);
    while status(&d) != "healthy\n" {
        assert!(Instant::now() < deadline, "never healthy: {}", status(&d));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(d
        .ok(&["ps", "--format", "{{.Status}}"])
        .contains("(healthy)"));
    d.ok(&["exec", "hc", "rm", "/tmp/ok"]);
    let deadline = Instant::now() + Duration::from_secs(15);
    while status(&d) != "unhealthy\n" {
        assert!(Instant::now() < deadline, "never unhealthy: {}", status(&d));
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = d.ok(&[
        "inspect",
        "-f",
        "{{(index .State.Health.Log 0).ExitCode}}",
        "hc",
    ]);
    assert!(matches!(log.trim(), "0" | "1"), "{log}");
    let until = (chrono_now_secs() + 1).to_string();
    let events = d.ok(&[
        "events",
        "--since",
        &since.to_string(),
        "--until",
        &until,
        "--filter",
        "container=hc",
        "--format",
        "{{.Action}}",
    ]);
    assert!(events.contains("health_status: healthy"), "{events}");
    assert!(events.contains("health_status: unhealthy"), "{events}");
}

fn chrono_now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// What is mounted under `dir`, from /proc/self/mountinfo.
fn mounts_under(dir: &Path) -> Vec<String> {
    let needle = dir.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&needle))
        .map(String::from)
        .collect()
}

/// Every container is in a state its surroundings agree with: running ones answer `exec`
/// and are the only ones with a mounted rootfs and a cgroup.
fn assert_consistent(d: &Daemon, round: usize) {
    let list = d.ok(&["ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.State}}"]);
    let mut running = Vec::new();
    for line in list.lines() {
        let (id, state) = line.split_once(' ').unwrap();
        match state {
            "running" => {
                let out = d.docker(&["exec", id, "true"]);
                let err = String::from_utf8_lossy(&out.stderr);
                // A `run --rm ... true` caught mid-run may end (and go) in between: then it
                // must no longer be running.
                if !out.status.success() {
                    let now = d.docker(&["inspect", "-f", "{{.State.Running}}", id]);
                    assert!(
                        !now.status.success()
                            || String::from_utf8_lossy(&now.stdout).trim() == "false",
                        "round {round}: running {id} does not answer exec: {err}"
                    );
                }
                if out.status.success() {
                    running.push(id.to_string());
                }
            }
            "created" | "exited" => {}
            // An --rm container that ended just after the restart is on its way out; it must
            // be gone shortly.
            "removing" => {
                let deadline = Instant::now() + Duration::from_secs(10);
                while d.docker(&["inspect", id]).status.success() {
                    assert!(
                        Instant::now() < deadline,
                        "round {round}: {id} stuck removing"
                    );
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            other => panic!("round {round}: {id} is {other}"),
        }
    }
    for m in mounts_under(&d.root()) {
        assert!(
            running.iter().any(|id| m.contains(id.as_str())),
            "round {round}: {m} is mounted but its container is not running"
        );
    }
    let parent = Path::new("/sys/fs/cgroup/pids").join(d.cgroup_parent());
    if let Ok(rd) = std::fs::read_dir(&parent) {
        for e in rd.flatten().filter(|e| e.path().is_dir()) {
            let name = e.file_name().to_string_lossy().into_owned();
            assert!(
                running.contains(&name),
                "round {round}: cgroup {name} exists but its container is not running"
            );
        }
    }
}

#[test]
fn berthd_killed_at_any_moment_leaves_a_consistent_state() {
    let mut d = Daemon::with_busybox();
    let socket = d.socket();
    let config = d.dir.path().join("docker-config");
    let mut seed: u64 = std::process::id() as u64 ^ 0x9e37_79b9_7f4a_7c15;
    for round in 0..6 {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let churn = {
            let stop = stop.clone();
            let (socket, config) = (socket.clone(), config.clone());
            std::thread::spawn(move || {
                let docker = |args: &[&str]| {
                    let _ = std::process::Command::new("docker")
                        .env("DOCKER_HOST", format!("unix://{}", socket.display()))
                        .env("DOCKER_CONFIG", &config)
                        .args(args)
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status();
                };
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let name = format!("c{round}-{i}");
                    docker(&["run", "-d", "--name", &name, "busybox", "sleep", "600"]);
                    docker(&["run", "--rm", "busybox", "true"]);
                    if i % 2 == 0 {
                        docker(&["rm", "-f", &name]);
                    }
                    i += 1;
                }
            })
        };
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let delay = 150 + (seed >> 33) % 600;
        std::thread::sleep(Duration::from_millis(delay));
        d.kill9();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        churn.join().unwrap();
        d.spawn();
        eprintln!("round {round}: killed after {delay} ms");
        assert_consistent(&d, round);
    }
    // And all of it goes away cleanly.
    let ids = d.ok(&["ps", "-aq"]);
    for id in ids.split_whitespace() {
        d.ok(&["rm", "-f", id]);
    }
    assert!(mounts_under(&d.root()).is_empty());
    assert_eq!(
        std::fs::read_dir(d.root().join("containers"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn update_changes_limits_of_a_running_container() {
    let d = Daemon::with_busybox();
    d.ok(&[
        "run", "-d", "--name", "up", "--memory", "32m", "busybox", "sleep", "600",
    ]);
    let read = |f: &str| {
        d.ok(&[
            "exec",
            "up",
            "sh",
            "-c",
            &format!("cat /sys/fs/cgroup/{f} 2>/dev/null || echo missing"),
        ])
        .trim()
        .to_string()
    };
    let v1 = read("memory/memory.limit_in_bytes") != "missing";
    d.ok(&[
        "update",
        "--memory",
        "64m",
        "--memory-swap",
        "128m",
        "--pids-limit",
        "7",
        "up",
    ]);
    if v1 {
        assert_eq!(read("memory/memory.limit_in_bytes"), "67108864");
        assert_eq!(read("pids/pids.max"), "7");
    } else {
        assert_eq!(read("memory.max"), "67108864");
        assert_eq!(read("pids.max"), "7");
    }
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}}",
            "up"
        ]),
        "67108864 7\n"
    );
    // Kept in the record: a restart applies the updated limits again.
    d.ok(&["restart", "-t", "0", "up"]);
    if v1 {
        assert_eq!(read("memory/memory.limit_in_bytes"), "67108864");
    }
    let e = d.fails(&["update", "--memory", "64m", "--memory-swap", "32m", "up"]);
    assert!(e.contains("memoryswap limit should be larger"), "{e}");
    assert!(d
        .fails(&["update", "--memory", "8m", "nosuch"])
        .contains("No such container"));
}

#[test]
fn forced_rmi_and_prune_keep_what_containers_use() {
    let d = Daemon::with_busybox();
    d.ok(&["run", "-d", "--name", "user", "busybox", "sleep", "600"]);
    let image = d
        .ok(&["inspect", "-f", "{{.Image}}", "user"])
        .trim()
        .to_string();
    assert!(d
        .fails(&["rmi", "busybox"])
        .contains("being used by a container"));
    // Forced: the tag goes, the image and its layers stay while the container needs them.
    assert_eq!(
        d.ok(&["rmi", "-f", "busybox"]).trim(),
        "Untagged: busybox:latest"
    );
    d.ok(&["image", "prune", "-af"]);
    assert_eq!(
        d.ok(&["run", "--rm", &image, "echo", "layers intact"]),
        "layers intact\n"
    );
    d.ok(&["restart", "-t", "0", "user"]);
    // Once the container is gone, prune takes the image.
    d.ok(&["rm", "-f", "user"]);
    let out = d.ok(&["image", "prune", "-f"]);
    assert!(out.contains(&image), "{out}");
    assert_eq!(d.ok(&["images", "-aq"]), "");
    // The layers were swept at once; berthd frees their files after it has answered.
    let snapshots = d.root().join("snapshots");
    let left = |dir: &std::path::Path| std::fs::read_dir(dir).unwrap().count();
    assert_eq!(left(&snapshots), 0, "{}", snapshots.display());
    let trash = d.root().join("trash");
    let deadline = Instant::now() + Duration::from_secs(10);
    while left(&trash) > 0 {
        assert!(Instant::now() < deadline, "{} not emptied", trash.display());
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(trash.is_dir());
}

#[test]
fn devices_are_passed_in_with_their_numbers() {
    let d = Daemon::with_busybox();
    // /dev/null always exists; under another name it is only there when asked for.
    let out = d.ok(&[
        "run",
        "--rm",
        "--device",
        "/dev/null:/dev/mynull",
        "busybox",
        "sh",
        "-c",
        "stat -c '%t:%T' /dev/mynull; echo x > /dev/mynull && echo writable",
    ]);
    assert_eq!(out, "1:3\nwritable\n");
    assert!(!d
        .docker(&["run", "--rm", "busybox", "test", "-e", "/dev/mynull"])
        .status
        .success());
    let e = d.fails(&["run", "--rm", "--device", "/etc/passwd", "busybox", "true"]);
    assert!(e.contains("not a device node"), "{e}");
    let e = d.fails(&[
        "run",
        "--rm",
        "--device",
        "/dev/no-such-dev",
        "busybox",
        "true",
    ]);
    assert!(e.contains("error gathering device information"), "{e}");
}

#[test]
fn pause_unpause_and_rename() {
    let d = Daemon::with_busybox();
    d.ok(&[
        "run",
        "-d",
        "--name",
        "ticker",
        "busybox",
        "sh",
        "-c",
        "i=0; while true; do i=$((i+1)); echo $i > /tmp/t; sleep 0.05; done",
    ]);
    d.ok(&["pause", "ticker"]);
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.Paused}}",
            "ticker"
        ]),
        "paused true\n"
    );
    assert!(d
        .ok(&["ps", "--format", "{{.Status}}"])
        .contains("(Paused)"));
    // Frozen in the kernel's freezer (v1 here; cgroup.freeze on v2 hosts).
    let id = d
        .ok(&["inspect", "-f", "{{.Id}}", "ticker"])
        .trim()
        .to_string();
    let v1 = Path::new("/sys/fs/cgroup/freezer")
        .join(d.cgroup_parent())
        .join(&id)
        .join("freezer.state");
    let v2 = Path::new("/sys/fs/cgroup")
        .join(d.cgroup_parent())
        .join(&id)
        .join("cgroup.freeze");
    if v1.exists() {
        assert_eq!(std::fs::read_to_string(&v1).unwrap().trim(), "FROZEN");
    } else {
        assert_eq!(std::fs::read_to_string(&v2).unwrap().trim(), "1");
    }
    let freezer = |d: &Daemon| d.ok(&["exec", "ticker", "cat", "/tmp/t"]);
    assert!(d.fails(&["exec", "ticker", "true"]).contains("paused"));
    assert!(d.fails(&["pause", "ticker"]).contains("already paused"));
    d.ok(&["unpause", "ticker"]);
    let a = freezer(&d);
    std::thread::sleep(Duration::from_millis(300));
    assert_ne!(a, freezer(&d), "running again after unpause");
    assert!(d.fails(&["unpause", "ticker"]).contains("not paused"));
    // rename: the new name works, the old one is free.
    d.ok(&["rename", "ticker", "clock"]);
    assert_eq!(d.ok(&["inspect", "-f", "{{.Name}}", "clock"]), "/clock\n");
    assert!(d.fails(&["inspect", "ticker"]).contains("No such"));
    d.ok(&["create", "--name", "other", "busybox", "true"]);
    assert!(d
        .fails(&["rename", "clock", "other"])
        .contains("already in use"));
    d.ok(&["start", "other"]);
    assert_eq!(d.ok(&["wait", "other"]), "0\n");
    d.ok(&["rm", "-f", "clock", "other"]);
}

#[test]
fn oom_kill_is_reported_and_a_refused_load_leaves_images_runnable() {
    let d = Daemon::with_busybox();
    // A memory hog under a small limit: killed by the kernel, reported as Docker does.
    let out = d.docker(&[
        "run",
        "--name",
        "hog",
        "--memory",
        "16m",
        "--memory-swap",
        "16m",
        "busybox",
        "sh",
        "-c",
        "x=a; while true; do x=$x$x; done",
    ]);
    assert_eq!(
        out.status.code(),
        Some(137),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{.State.OOMKilled}} {{.State.ExitCode}}",
            "hog"
        ]),
        "true 137\n"
    );
    // A corrupt archive is refused and the stored image still runs.
    let bad = d.dir.path().join("bad.tar");
    std::fs::write(&bad, b"this is not a tar archive at all").unwrap();
    assert!(!d
        .docker(&["load", "-i", bad.to_str().unwrap()])
        .status
        .success());
    assert_eq!(
        d.ok(&["run", "--rm", "busybox", "echo", "intact"]),
        "intact\n"
    );
}

/// Save and load stream (neither side holds the archive whole): what `docker save` writes
/// loads back; an upload cut off halfway is refused and stores nothing; a save of an unknown
/// image is a 404 before any byte of archive.
#[test]
fn streamed_save_and_load_refuse_a_cut_off_upload() {
    use std::io::Read;
    let d = Daemon::with_busybox();
    d.ok(&["tag", "busybox", "half:1"]);
    let saved = d.dir.path().join("half.tar");
    d.ok(&["save", "-o", saved.to_str().unwrap(), "half:1"]);
    let archive = std::fs::read(&saved).unwrap();
    d.ok(&["rmi", "half:1"]);
    let before = d.ok(&[
        "images",
        "-a",
        "--format",
        "{{.Repository}}:{{.Tag}} {{.ID}}",
    ]);

    // Content-Length promises the whole archive; half of it comes, then the client stops
    // writing. The server must answer with an error, not a loaded image. The docker CLI
    // prints a bad archive's error and exits 1.
    let bad = d.dir.path().join("bad.tar");
    std::fs::write(&bad, b"this is no archive").unwrap();
    let err = d.fails(&["load", "-i", bad.to_str().unwrap()]);
    assert!(!err.is_empty() && !err.contains("Loaded"), "{err}");
    let mut s = std::os::unix::net::UnixStream::connect(d.socket()).unwrap();
    write!(
        s,
        "POST /v1.44/images/load?quiet=1 HTTP/1.1\r\nHost: berth\r\nContent-Type: application/x-tar\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        archive.len()
    )
    .unwrap();
    s.write_all(&archive[..archive.len() / 2]).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    // As dockerd: the stream has begun (200), the error is inside it.
    assert!(
        answer.contains("\"errorDetail\"") && !answer.contains("Loaded image"),
        "a cut-off load was accepted: {answer}"
    );
    assert!(answer.contains("the request body was cut off"), "{answer}");
    // Whatever the server did with the half, it is done by the time another request on the
    // store is answered (a load holds the store's lock until it ends).
    d.ok(&["tag", "busybox", "probe:1"]);
    d.ok(&["rmi", "probe:1"]);
    assert_eq!(
        d.ok(&[
            "images",
            "-a",
            "--format",
            "{{.Repository}}:{{.Tag}} {{.ID}}"
        ]),
        before
    );
    assert_eq!(
        d.ok(&["run", "--rm", "busybox", "echo", "intact"]),
        "intact\n"
    );

    // The streamed archive is whole: it loads back and runs.
    let out = d.ok(&["load", "-i", saved.to_str().unwrap()]);
    assert!(out.contains("Loaded image: half:1"), "{out}");
    assert_eq!(d.ok(&["run", "--rm", "half:1", "echo", "whole"]), "whole\n");

    let (status, body) = d.request("GET", "/v1.44/images/get?names=nosuch:9", "");
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("No such image: nosuch:9"), "{body}");
}

#[test]
fn a_new_volume_gets_the_images_content() {
    let d = Daemon::with_busybox();
    // Mounted over the image's /etc: the empty volume is filled from it first.
    assert!(d
        .ok(&[
            "run",
            "--rm",
            "-v",
            "etc:/etc",
            "busybox",
            "cat",
            "/etc/passwd"
        ])
        .starts_with("root:"));
    assert!(d
        .ok(&["run", "--rm", "-v", "etc:/data", "busybox", "ls", "/data"])
        .contains("passwd"));
    // nocopy: left empty, but for the files berth binds over it (as Docker does).
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "-v",
            "bare:/etc:nocopy",
            "busybox",
            "/bin/ls",
            "/etc"
        ]),
        "hostname\nhosts\nresolv.conf\n"
    );

    // What a copy keeps: device nodes, fifos, hard links as links, owners, modes and times.
    let mut layer = tar::Builder::new(Vec::new());
    layer.follow_symlinks(false);
    layer
        .append_dir_all(".", d.dir.path().join("busybox-rootfs"))
        .unwrap();
    let entry = |kind: tar::EntryType, path: &str, mode: u32, body: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_path(path).unwrap();
        h.set_mode(mode);
        h.set_uid(7);
        h.set_gid(8);
        h.set_mtime(1_000_000_000);
        h.set_size(body.len() as u64);
        (h, body.to_vec())
    };
    let mut items = vec![
        entry(tar::EntryType::Directory, "data/", 0o750, b""),
        entry(tar::EntryType::Directory, "data/sub/", 0o700, b""),
        entry(tar::EntryType::Regular, "data/f", 0o640, b"hi"),
        entry(tar::EntryType::Fifo, "data/fifo", 0o600, b""),
        entry(tar::EntryType::Char, "data/null", 0o666, b""),
    ];
    items[4].0.set_device_major(1).unwrap();
    items[4].0.set_device_minor(3).unwrap();
    let mut link = entry(tar::EntryType::Link, "data/h", 0o640, b"").0;
    link.set_link_name("data/f").unwrap();
    for (mut h, body) in items {
        h.set_cksum();
        layer.append(&h, &body[..]).unwrap();
    }
    link.set_cksum();
    layer.append(&link, &b""[..]).unwrap();
    let layer = layer.into_inner().unwrap();
    let config = serde_json::json!({"Cmd": ["sh"], "Volumes": {"/data": {}}});
    let tar = berth_testkit::save_archive(d.dir.path(), &layer, "devs:1", config, "test");
    d.ok(&["load", "-i", tar.to_str().unwrap()]);
    let out = d.ok(&[
        "run",
        "--rm",
        "-v",
        "fresh:/data",
        "devs:1",
        "sh",
        "-c",
        "cd /data && stat -c '%n %F %t,%T %h %u:%g %a %Y' f h fifo null sub . && cat h",
    ]);
    assert_eq!(
        out,
        "f regular file 0,0 2 7:8 640 1000000000\n\
         h regular file 0,0 2 7:8 640 1000000000\n\
         fifo fifo 0,0 1 7:8 600 1000000000\n\
         null character special file 1,3 1 7:8 666 1000000000\n\
         sub directory 0,0 2 7:8 700 1000000000\n\
         . directory 0,0 3 7:8 750 1000000000\n\
         hi"
    );
}

#[test]
fn exited_containers_leave_nothing_even_with_processes_outside_a_pid_namespace() {
    let d = Daemon::with_busybox();
    // Without a pid namespace of its own, the init's exit kills nothing: the monitor's
    // cleanup finds the cgroup busy and has the runtime kill what is left.
    let id = d.ok(&[
        "run",
        "-d",
        "--pid",
        "host",
        "busybox",
        "sh",
        "-c",
        "sleep 1000 & echo started",
    ]);
    let id = id.trim().to_string();
    assert_eq!(d.ok(&["wait", &id]).trim(), "0");
    let deadline = Instant::now() + Duration::from_secs(10);
    let stray = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|p| std::fs::read(p.path().join("cgroup")).ok())
            .any(|c| String::from_utf8_lossy(&c).contains(&id))
    };
    while stray() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!stray(), "a process of {id} outlived it");
    d.ok(&["rm", &id]);
    assert_gone(&d, &id);
    // And the ordinary case, with the cleanup done by the monitor itself.
    let id = d.ok(&["run", "-d", "busybox", "true"]);
    let id = id.trim().to_string();
    assert_eq!(d.ok(&["wait", &id]).trim(), "0");
    assert!(!d.dir.path().join("exec/runtime").join(&id).exists());
    d.ok(&["rm", &id]);
    assert_gone(&d, &id);
}

#[test]
fn a_client_hanging_up_while_output_flows_leaves_the_container_running() {
    let d = Daemon::with_busybox();
    // Output without pause, so the monitor finds a client's hang-up in the same round as
    // output to hand it. It used to drop the client at its failed write while still
    // handling that round's events by index, and died of it (and the container with it:
    // the CI failure of `attach_replays_logs_and_detach_keys_let_go`).
    d.ok(&[
        "run",
        "-d",
        "--name",
        "chatty",
        "busybox",
        "sh",
        "-c",
        "while :; do echo x; done",
    ]);
    for round in 0..10 {
        // A client that first closes its input (the monitor keeps it for the output), then
        // goes: the monitor sees the hang-up while it has output for it.
        let (_, mut s) = hijack(&d, "/containers/chatty/attach?stream=1&stdout=1", "");
        s.shutdown(std::net::Shutdown::Write).unwrap();
        for _ in 0..10 {
            use std::io::Read;
            let mut b = [0u8; 4096];
            assert!(s.read(&mut b).unwrap() > 0, "round {round}: output ended");
        }
        drop(s);
        std::thread::sleep(Duration::from_millis(20));
        let (code, body) = d.request("GET", "/containers/chatty/json", "");
        assert_eq!(code, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            v["State"]["Running"],
            true,
            "round {round}: {}\n{}",
            v["State"],
            d.log_tail()
        );
    }
    d.ok(&["rm", "-f", "chatty"]);
}
