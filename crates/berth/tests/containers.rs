//! berth's container commands through a private berthd, as a user types them: real
//! containers, their output, exit codes, states and files, in Docker's formats.

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use berth_testkit::{bin, Daemon};

fn setup() -> Daemon {
    let d = Daemon::start();
    d.berth_load_busybox();
    d
}

fn code(out: &std::process::Output) -> Option<i32> {
    out.status.code()
}

#[test]
fn run_prints_output_and_exits_with_the_containers_code() {
    let d = setup();
    assert_eq!(
        d.berth_ok(&["run", "--rm", "busybox", "echo", "hi"]),
        "hi\n"
    );
    let out = d.berth(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(code(&out), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
    // Docker's statuses for what never ran: 125 (daemon), 127 (no such command).
    let out = d.berth(&["run", "--rm", "nosuch:image", "true"]);
    assert_eq!(code(&out), Some(125));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Unable to find image 'nosuch:image' locally"),
        "{err}"
    );
    assert!(
        err.contains("Error response from daemon: pull access denied"),
        "{err}"
    );
    let out = d.berth(&["run", "--rm", "busybox", "no-such-command"]);
    assert_eq!(
        code(&out),
        Some(127),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = d.berth(&["run", "--rm", "--memory", "lots", "busybox", "true"]);
    assert_eq!(code(&out), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid size: 'lots'"));
    // stdin through -i, and flags that shape the container.
    let mut child = d
        .cmd_with(
            bin("berth"),
            &[
                "run",
                "--rm",
                "-i",
                "-e",
                "A=1",
                "-w",
                "/tmp",
                "-h",
                "box",
                "-u",
                "nobody",
                "busybox",
                "sh",
                "-c",
                "cat; echo $A $(pwd) $(hostname) $(id -u)",
            ],
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"from stdin\n")
        .unwrap();
    let out = d.finish(child, "berth run -i");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "from stdin\n1 /tmp box 65534\n"
    );
    // --rm left nothing.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !d.berth_ok(&["ps", "-aq"]).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(d.berth_ok(&["ps", "-aq"]), "");
}

#[test]
fn detached_containers_list_log_stop_restart_and_go() {
    let d = setup();
    let id = d.berth_ok(&[
        "run", "-d", "--name", "web", "-l", "tier=front", "busybox", "sh", "-c",
        "trap 'echo bye; exit 0' TERM; i=0; while true; do echo line $i; i=$((i+1)); sleep 0.1; done",
    ]);
    let id = id.trim();
    assert_eq!(id.len(), 64);
    let ps = d.berth_ok(&["ps"]);
    let lines: Vec<&str> = ps.lines().collect();
    assert!(
        lines[0].starts_with("CONTAINER ID   IMAGE     COMMAND                  CREATED"),
        "{ps}"
    );
    assert!(lines[1].starts_with(&id[..12]), "{ps}");
    assert!(lines[1].contains("\"sh -c trap 'echo by…\""), "{ps}");
    assert!(lines[1].contains("Up "), "{ps}");
    assert!(lines[1].ends_with("web"), "{ps}");
    assert_eq!(
        d.berth_ok(&["ps", "--format", "{{.Names}} {{.State}} {{.Labels}}"]),
        "web running tier=front\n"
    );
    assert_eq!(
        d.berth_ok(&["ps", "--filter", "label=tier=front", "-q"])
            .trim(),
        &id[..12]
    );
    let j: serde_json::Value =
        serde_json::from_str(d.berth_ok(&["ps", "--format", "{{json .}}"]).trim()).unwrap();
    assert_eq!(j["Names"], "web");
    assert_eq!(j["Image"], "busybox");

    // logs -f follows until the container stops; stop sends SIGTERM first.
    let follower = d
        .cmd_with(bin("berth"), &["logs", "-f", "web"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(d.berth_ok(&["stop", "web"]), "web\n");
    let out = d.finish(follower, "berth logs -f");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("line 0\nline 1\n"), "{text}");
    assert!(text.ends_with("bye\n"), "{text}");
    assert_eq!(d.berth_ok(&["logs", "--tail", "1", "web"]), "bye\n");
    let ts = d.berth_ok(&["logs", "-t", "--tail", "1", "web"]);
    assert!(ts.contains('T') && ts.ends_with(" bye\n"), "{ts}");
    assert_eq!(
        d.berth_ok(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.ExitCode}} {{index .Config.Labels \"tier\"}}",
            "web"
        ]),
        "exited 0 front\n"
    );
    let ps = d.berth_ok(&["ps", "-a"]);
    assert!(ps.contains("Exited (0) "), "{ps}");
    assert_eq!(d.berth_ok(&["ps", "-q"]), "", "not running");

    assert_eq!(d.berth_ok(&["restart", "-t", "1", "web"]), "web\n");
    assert_eq!(
        d.berth_ok(&["inspect", "-f", "{{.State.Running}}", "web"]),
        "true\n"
    );
    assert_eq!(d.berth_ok(&["kill", "-s", "KILL", "web"]), "web\n");
    assert_eq!(d.berth_ok(&["wait", "web"]), "137\n");
    let err = d.berth_fails(&["stop", "web", "nosuch"]);
    assert!(err.contains("No such container: nosuch"), "{err}");
    assert_eq!(d.berth_ok(&["rm", "web"]), "web\n");
    let err = d.berth_fails(&["inspect", "web"]);
    assert_eq!(err.trim(), "Error: No such object: web");
}

#[test]
fn exec_runs_processes_with_their_own_status_and_a_tty() {
    let d = setup();
    d.berth_ok(&["run", "-d", "--name", "box", "busybox", "sleep", "60"]);
    let out = d.berth(&["exec", "box", "sh", "-c", "echo in; exit 4"]);
    assert_eq!(code(&out), Some(4));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "in\n");
    assert_eq!(
        d.berth_ok(&[
            "exec",
            "-u",
            "nobody",
            "-w",
            "/tmp",
            "-e",
            "X=y",
            "box",
            "sh",
            "-c",
            "echo $(id -u) $(pwd) $X"
        ]),
        "65534 /tmp y\n"
    );
    let mut child = d
        .cmd_with(bin("berth"), &["exec", "-i", "box", "tr", "a-z", "A-Z"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"shout\n").unwrap();
    assert_eq!(
        String::from_utf8_lossy(&d.finish(child, "exec -i").stdout),
        "SHOUT\n"
    );
    // -it under a real terminal (script(1) gives berth a pty): the process has a tty of its
    // own, sized like ours, and raw bytes come back as they are written.
    let out = d
        .cmd_with(
            "script",
            &[
                "-qec",
                &format!(
                    "{} exec -it box sh -c 'tty; stty size; printf \\\\001done'",
                    bin("berth").display()
                ),
                "/dev/null",
            ],
        )
        .env("COLUMNS", "100")
        .env("LINES", "30")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = d.finish(out, "script berth exec -it");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("/dev/pts/"), "{text}");
    assert!(
        text.contains("\u{1}done"),
        "a tty's 0x01 byte is data, not a frame header: {text:?}"
    );
    let err = d.berth_fails(&["exec", "nosuch", "true"]);
    assert!(err.contains("No such container: nosuch"), "{err}");
    d.berth_ok(&["rm", "-f", "box"]);
}

#[test]
fn cp_both_ways_with_dockers_rules() {
    let d = setup();
    d.berth_ok(&[
        "run",
        "-d",
        "--name",
        "files",
        "busybox",
        "sh",
        "-c",
        "mkdir -p /data/sub && echo deep > /data/sub/f && ln -s / /data/root && sleep 60",
    ]);
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("in.txt"), "to the container\n").unwrap();
    let src = host.path().join("in.txt");
    // Into an existing directory, then onto a new name.
    d.berth_ok(&["cp", src.to_str().unwrap(), "files:/tmp"]);
    d.berth_ok(&["cp", src.to_str().unwrap(), "files:/tmp/renamed.txt"]);
    assert_eq!(
        d.berth_ok(&["exec", "files", "cat", "/tmp/in.txt", "/tmp/renamed.txt"]),
        "to the container\nto the container\n"
    );
    // Out: a directory into an existing one, a directory's contents (`/.`), a file renamed.
    d.berth_ok(&["cp", "files:/data", host.path().to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(host.path().join("data/sub/f")).unwrap(),
        "deep\n"
    );
    let contents = host.path().join("contents");
    std::fs::create_dir(&contents).unwrap();
    d.berth_ok(&["cp", "files:/data/.", contents.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(contents.join("sub/f")).unwrap(),
        "deep\n"
    );
    let renamed = host.path().join("hostname-copy");
    d.berth_ok(&["cp", "files:/etc/hostname", renamed.to_str().unwrap()]);
    assert!(!std::fs::read_to_string(&renamed).unwrap().is_empty());
    // The symlink to / inside the container is copied as a link, not followed to the host's /.
    assert_eq!(
        std::fs::read_link(host.path().join("data/root")).unwrap(),
        std::path::Path::new("/")
    );
    // A tar on stdout.
    let out = d
        .cmd_with(bin("berth"), &["cp", "files:/data/sub/f", "-"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let mut a = tar::Archive::new(&out.stdout[..]);
    let names: Vec<String> = a
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["f"]);
    let err = d.berth_fails(&["cp", "files:/nope", host.path().to_str().unwrap()]);
    assert!(
        err.contains("Could not find the file /nope in container"),
        "{err}"
    );
    let err = d.berth_fails(&["cp", src.to_str().unwrap(), host.path().to_str().unwrap()]);
    assert!(
        err.contains("must specify at least one container source"),
        "{err}"
    );
    d.berth_ok(&["rm", "-f", "files"]);
}

#[test]
fn commit_diff_export_top_rename_pause_update() {
    let d = setup();
    d.berth_ok(&[
        "run",
        "-d",
        "--name",
        "work",
        "-m",
        "64m",
        "busybox",
        "sh",
        "-c",
        "echo v1 > /made && sleep 60",
    ]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !d.berth_ok(&["diff", "work"]).contains("A /made") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(d.berth_ok(&["diff", "work"]).contains("A /made"));
    let image = d.berth_ok(&[
        "commit",
        "-m",
        "snapshot",
        "-c",
        "CMD [\"cat\", \"/made\"]",
        "work",
        "snap:1",
    ]);
    assert!(image.trim().starts_with("sha256:"), "{image}");
    assert_eq!(d.berth_ok(&["run", "--rm", "snap:1"]), "v1\n");
    assert_eq!(
        d.berth_ok(&["image", "inspect", "-f", "{{.Comment}}", "snap:1"]),
        "snapshot\n"
    );

    let tarball = d.dir.path().join("work.tar");
    d.berth_ok(&["export", "-o", tarball.to_str().unwrap(), "work"]);
    let mut a = tar::Archive::new(std::fs::File::open(&tarball).unwrap());
    assert!(a.entries().unwrap().any(|e| e
        .unwrap()
        .path()
        .unwrap()
        .to_string_lossy()
        .trim_start_matches("./")
        == "made"));

    let top = d.berth_ok(&["top", "work"]);
    assert!(top.lines().next().unwrap().contains("PID"), "{top}");
    assert!(top.contains("sleep 60"), "{top}");

    d.berth_ok(&["rename", "work", "renamed"]);
    assert_eq!(d.berth_ok(&["ps", "--format", "{{.Names}}"]), "renamed\n");
    assert_eq!(d.berth_ok(&["pause", "renamed"]), "renamed\n");
    assert!(d.berth_ok(&["ps"]).contains("(Paused)"));
    assert_eq!(d.berth_ok(&["unpause", "renamed"]), "renamed\n");
    assert_eq!(d.berth_ok(&["update", "-m", "32m", "renamed"]), "renamed\n");
    assert_eq!(
        d.berth_ok(&["inspect", "-f", "{{.HostConfig.Memory}}", "renamed"]),
        format!("{}\n", 32 << 20)
    );
    let stats = d.berth_ok(&["stats", "--no-stream"]);
    let lines: Vec<&str> = stats.lines().collect();
    assert!(
        lines[0].starts_with("CONTAINER ID   NAME      CPU %"),
        "{stats}"
    );
    assert!(
        lines[1].contains("renamed") && lines[1].contains(" / 32MiB"),
        "{stats}"
    );
    assert_eq!(
        d.berth_ok(&["stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}"]),
        "renamed 1\n",
        "sh execs its last command: sleep is the only process"
    );
    d.berth_ok(&["rm", "-f", "renamed"]);
}

#[test]
fn volumes_prune_system_df_events_and_info() {
    let d = setup();
    assert_eq!(
        d.berth_ok(&["volume", "create", "--label", "k=v", "data"]),
        "data\n"
    );
    d.berth_ok(&[
        "run",
        "--rm",
        "-v",
        "data:/data",
        "busybox",
        "sh",
        "-c",
        "echo kept > /data/f",
    ]);
    assert_eq!(
        d.berth_ok(&[
            "run",
            "--rm",
            "-v",
            "data:/data:ro",
            "busybox",
            "cat",
            "/data/f"
        ]),
        "kept\n"
    );
    let ls = d.berth_ok(&["volume", "ls"]);
    assert_eq!(ls, "DRIVER    VOLUME NAME\nlocal     data\n");
    assert_eq!(
        d.berth_ok(&["volume", "inspect", "-f", "{{.Name}} {{.Labels.k}}", "data"]),
        "data v\n"
    );
    d.berth_ok(&[
        "create", "--name", "user", "-v", "data:/d", "busybox", "true",
    ]);
    let err = d.berth_fails(&["volume", "rm", "data"]);
    assert!(err.contains("volume is in use"), "{err}");
    let df = d.berth_ok(&["system", "df"]);
    let lines: Vec<&str> = df.lines().collect();
    assert!(
        lines[0].starts_with("TYPE            TOTAL     ACTIVE    SIZE"),
        "{df}"
    );
    assert!(lines[1].starts_with("Images          1         1 "), "{df}");
    assert!(lines[2].starts_with("Containers      1         0 "), "{df}");
    assert!(lines[3].starts_with("Local Volumes   1         1 "), "{df}");
    let pruned = d.berth_ok(&["container", "prune", "-f"]);
    assert!(pruned.starts_with("Deleted Containers:\n"), "{pruned}");
    assert_eq!(d.berth_ok(&["volume", "rm", "data"]), "data\n");
    assert_eq!(d.berth_ok(&["volume", "ls", "-q"]), "");

    let since = (chrono::Utc::now() - chrono::TimeDelta::seconds(60)).to_rfc3339();
    let until = chrono::Utc::now().to_rfc3339();
    let events = d.berth_ok(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "type=volume",
    ]);
    assert!(events.contains(" volume create data"), "{events}");
    assert!(events.contains(" volume destroy data"), "{events}");
    let json = d.berth_ok(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "event=destroy",
        "--format",
        "{{.Type}} {{.Action}}",
    ]);
    assert!(json.lines().all(|l| l.ends_with(" destroy")), "{json}");

    let info = d.berth_ok(&["info"]);
    assert!(
        info.contains("Server Version: ") && info.contains(" Profile: builtin"),
        "{info}"
    );
    assert_eq!(
        d.berth_ok(&["info", "--format", "{{.Driver}}"]),
        "overlay\n"
    );
    assert_eq!(
        d.berth_ok(&["version", "--format", "{{.Server.ApiVersion}}"]),
        "1.44\n"
    );
}

#[test]
fn a_missing_daemon_is_named_with_what_to_do() {
    let out = std::process::Command::new(bin("berth"))
        .args(["-H", "unix:///nonexistent/berth.sock", "ps"])
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "Cannot connect to berthd at unix:///nonexistent/berth.sock. Is berthd running?"
        ),
        "{err}"
    );
}

#[test]
fn help_system_prune_and_label_templates_as_the_docker_cli() {
    // `berth` alone: the whole help on stdout, and success (as `docker`).
    let out = std::process::Command::new(bin("berth")).output().unwrap();
    assert_eq!(code(&out), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("Commands:") && help.contains("  run "),
        "{help}"
    );
    // berthd's help names real options and says the exec root is per daemon.
    let out = std::process::Command::new(bin("berthd"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(!help.contains("berth --data-root"), "{help}");
    assert!(help.contains("Each berthd needs its own"), "{help}");

    let d = setup();
    d.berth_ok(&[
        "run",
        "--name",
        "labelled",
        "-l",
        "com.x=yes",
        "-l",
        "b=2",
        "busybox",
        "true",
    ]);
    let out = d.berth_ok(&[
        "ps",
        "-a",
        "--format",
        r#"{{.Names}} {{.Label "com.x"}} {{.Label "b"}}"#,
    ]);
    assert_eq!(out, "labelled yes 2\n");
    let json = d.berth_ok(&["ps", "-a", "--format", "json"]);
    assert!(!json.contains("_labels"), "{json}");
    // system prune: stopped containers and dangling images go, and the total is said.
    let out = d.berth_ok(&["system", "prune", "-f"]);
    assert!(out.contains("Deleted Containers:"), "{out}");
    assert!(out.contains("\nTotal reclaimed space: "), "{out}");
    assert_eq!(d.berth_ok(&["ps", "-aq"]), "");
    assert_eq!(d.berth_ok(&["images", "-q"]).lines().count(), 1);
}

#[test]
fn dual_stack_networks_through_berths_cli() {
    let d = setup();
    d.berth_ok(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "10.231.77.0/24",
        "--subnet",
        "fd00:77::/64",
        "--gateway",
        "fd00:77::1",
        "ds",
    ]);
    let out = d.berth_ok(&[
        "run",
        "--rm",
        "--network",
        "ds",
        "--ip6",
        "fd00:77::33",
        "busybox",
        "ip",
        "-6",
        "addr",
        "show",
        "eth0",
    ]);
    assert!(out.contains("inet6 fd00:77::33/64"), "{out}");
    let err = d.berth_fails(&[
        "network",
        "create",
        "--subnet",
        "10.231.78.0/24",
        "--gateway",
        "10.9.9.9",
        "x",
    ]);
    assert!(
        err.contains("no matching subnet for gateway 10.9.9.9"),
        "{err}"
    );
    d.berth_ok(&["network", "rm", "ds"]);
}
