//! Containers as Docker runs them (issue 18, items 7 to 9), through the docker CLI: what is
//! made for the user, what is refused at create, and the exit codes and words of a command
//! that cannot run.

use berth_testkit::Daemon;

fn run(d: &Daemon, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["run", "--rm"];
    all.extend_from_slice(args);
    let out = d.docker(&all);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn missing_bind_sources_and_working_directories_are_made_and_entrypoint_resets() {
    let d = Daemon::with_busybox();
    let host = d.dir.path().join("made-by-v").join("deep");
    let bind = format!("{}:/x", host.display());
    let (rc, out, err) = run(&d, &["-v", &bind, "busybox", "sh", "-c", "echo hi > /x/f"]);
    assert_eq!(rc, 0, "{err}");
    assert_eq!(out, "");
    assert!(host.is_dir());
    assert_eq!(std::fs::read_to_string(host.join("f")).unwrap(), "hi\n");
    // --mount refuses a missing source instead, with dockerd's words.
    let missing = d.dir.path().join("not-there");
    let mount = format!("type=bind,source={},target=/x", missing.display());
    let (rc, _, err) = run(&d, &["--mount", &mount, "busybox", "true"]);
    assert_eq!(rc, 125);
    assert!(
        err.contains(&format!(
            "invalid mount config for type \"bind\": bind source path does not exist: {}",
            missing.display()
        )),
        "{err}"
    );
    assert!(!missing.exists());
    // -w: a working directory the image lacks is made.
    let (rc, out, err) = run(&d, &["-w", "/work/dir", "busybox", "pwd"]);
    assert_eq!((rc, out.as_str()), (0, "/work/dir\n"), "{err}");
    // ... inside the container even through a symlink that points out of it.
    d.ok(&[
        "run",
        "--name",
        "linked",
        "busybox",
        "ln",
        "-s",
        "/../../../../tmp",
        "/escape",
    ]);
    d.ok(&["commit", "linked", "linked:1"]);
    let marker = format!("berth-test-escape-{}", std::process::id());
    let workdir = format!("/escape/{marker}");
    let (rc, out, err) = run(&d, &["-w", &workdir, "linked:1", "pwd"]);
    // The process's getcwd() names the directory the link led to, in the container.
    assert_eq!(
        (rc, out.trim()),
        (0, format!("/tmp/{marker}").as_str()),
        "{err}"
    );
    assert!(
        !std::path::Path::new("/tmp").join(&marker).exists(),
        "the working directory was made on the host"
    );
    // --entrypoint '' resets the entrypoint (the CLI sends [""]): the command runs alone.
    let (rc, out, err) = run(&d, &["--entrypoint", "", "busybox", "echo", "hi"]);
    assert_eq!((rc, out.as_str()), (0, "hi\n"), "{err}");
    d.ok(&[
        "create",
        "--name",
        "ep",
        "--entrypoint",
        "",
        "busybox",
        "echo",
        "x",
    ]);
    let ep = d.ok(&[
        "inspect",
        "-f",
        "{{json .Config.Entrypoint}} {{json .Config.Cmd}}",
        "ep",
    ]);
    assert_eq!(ep, "null [\"echo\",\"x\"]\n");
    // ... and without a command there is nothing to run, as dockerd says.
    let (rc, _, err) = run(&d, &["--entrypoint", "", "busybox"]);
    assert_eq!(rc, 125);
    assert!(err.contains("No command specified"), "{err}");
}

#[test]
fn commands_that_cannot_run_exit_126_and_127_with_dockers_words() {
    let d = Daemon::with_busybox();
    let (rc, _, err) = run(&d, &["busybox", "/etc/passwd"]);
    assert_eq!(rc, 126, "{err}");
    assert!(
        err.contains("exec: \"/etc/passwd\": permission denied"),
        "{err}"
    );
    assert!(!err.contains("error error"), "{err}");
    let (rc, _, err) = run(&d, &["busybox", "nosuch"]);
    assert_eq!(rc, 127, "{err}");
    assert!(
        err.contains("exec: \"nosuch\": executable file not found in $PATH"),
        "{err}"
    );
    assert_eq!(
        err.matches("nosuch").count(),
        1,
        "said more than once: {err}"
    );
    // A bind source removed after create is named at start.
    let src = d.dir.path().join("gone-later");
    std::fs::create_dir(&src).unwrap();
    let mount = format!("type=bind,source={},target=/x", src.display());
    d.ok(&[
        "create", "--name", "later", "--mount", &mount, "busybox", "true",
    ]);
    std::fs::remove_dir(&src).unwrap();
    let err = d.fails(&["start", "later"]);
    assert!(
        err.contains(&format!(
            "bind source path does not exist: {}",
            src.display()
        )),
        "{err}"
    );
}

#[test]
fn create_validates_limits_and_policies_as_dockerd() {
    let d = Daemon::with_busybox();
    let (rc, _, err) = run(&d, &["-m", "4m", "busybox", "true"]);
    assert_eq!(rc, 125);
    assert!(err.contains("Minimum memory limit allowed is 6MB"), "{err}");
    let cpus = std::thread::available_parallelism().unwrap().get();
    let (rc, _, err) = run(&d, &["--cpus", "64", "busybox", "true"]);
    assert_eq!(rc, 125);
    assert!(
        err.contains(&format!(
            "Range of CPUs is from 0.01 to {cpus}.00, as there are only {cpus} CPUs available"
        )),
        "{err}"
    );
    let (status, body) = d.request(
        "POST",
        "/containers/create",
        r#"{"Image":"busybox","Cmd":["true"],"HostConfig":{"RestartPolicy":{"Name":"sometimes"}}}"#,
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("invalid restart policy: unknown policy 'sometimes'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"),
        "{body}"
    );
    assert!(!body.contains("JSON"), "{body}");
    assert_eq!(d.ok(&["ps", "-aq"]), "");
}

#[test]
fn cp_reaches_volumes_and_binds_and_diff_sees_files_made_again_as_added() {
    let d = Daemon::with_busybox();
    let host = d.dir.path().join("bound");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("from-host"), "h\n").unwrap();
    let bind = format!("{}:/bound", host.display());
    d.ok(&[
        "run",
        "-d",
        "--name",
        "vc",
        "-v",
        "named:/data",
        "-v",
        &bind,
        "busybox",
        "sh",
        "-c",
        "echo v > /data/in-volume; sleep 300",
    ]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !d
        .docker(&["exec", "vc", "test", "-f", "/data/in-volume"])
        .status
        .success()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the volume file never appeared"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = d.dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let o = |p: &str| out.join(p).to_str().unwrap().to_string();
    // Out of a volume and a bind, a file and a whole mount (named as in the container).
    d.ok(&["cp", "vc:/data/in-volume", &o("f1")]);
    assert_eq!(std::fs::read_to_string(out.join("f1")).unwrap(), "v\n");
    d.ok(&["cp", "vc:/data", &o("")]);
    assert_eq!(
        std::fs::read_to_string(out.join("data/in-volume")).unwrap(),
        "v\n"
    );
    d.ok(&["cp", "vc:/bound/from-host", &o("f2")]);
    assert_eq!(std::fs::read_to_string(out.join("f2")).unwrap(), "h\n");
    // Into them: the container sees it, and so does the host for the bind.
    std::fs::write(out.join("up"), "u\n").unwrap();
    d.ok(&["cp", &o("up"), "vc:/data/up"]);
    assert_eq!(d.ok(&["exec", "vc", "cat", "/data/up"]), "u\n");
    d.ok(&["cp", &o("up"), "vc:/bound/"]);
    assert_eq!(std::fs::read_to_string(host.join("up")).unwrap(), "u\n");
    // Stopped, the same paths still answer.
    d.ok(&["stop", "-t", "0", "vc"]);
    d.ok(&["cp", "vc:/data/up", &o("f3")]);
    assert_eq!(std::fs::read_to_string(out.join("f3")).unwrap(), "u\n");
    d.ok(&["rm", "vc"]);

    // diff: a file an image layer deleted, made again by the container, is added (A).
    d.ok(&["run", "--name", "del", "busybox", "rm", "/etc/group"]);
    d.ok(&["commit", "del", "nogroup:1"]);
    d.ok(&[
        "run",
        "--name",
        "again",
        "nogroup:1",
        "sh",
        "-c",
        "echo g > /etc/group",
    ]);
    let diff = d.ok(&["diff", "again"]);
    assert!(diff.lines().any(|l| l == "A /etc/group"), "{diff}");
    d.ok(&["rm", "del", "again"]);
}

#[test]
fn links_mac_addresses_groups_and_the_drivers_berth_has() {
    let d = Daemon::with_busybox();
    d.ok(&[
        "run",
        "-d",
        "--name",
        "db",
        "--expose",
        "5432",
        "-e",
        "PASSWORD=s3cret",
        "busybox",
        "sleep",
        "300",
    ]);
    let db_ip = d.ok(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "db"]);
    let db_ip = db_ip.trim();
    d.ok(&[
        "create",
        "--name",
        "web",
        "--link",
        "db:data-base",
        "busybox",
        "sh",
        "-c",
        "env | grep ^DATA_BASE | sort; grep -w data-base /etc/hosts; sleep 300",
    ]);
    assert_eq!(
        d.ok(&["inspect", "-f", "{{json .HostConfig.Links}}", "web"]),
        "[\"/db:/web/data-base\"]\n"
    );
    d.ok(&["start", "web"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let logs = loop {
        let l = d.ok(&["logs", "web"]);
        if l.contains("data-base") && l.contains("DATA_BASE_NAME")
            || std::time::Instant::now() > deadline
        {
            break l;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    for want in [
        format!("DATA_BASE_PORT=tcp://{db_ip}:5432"),
        format!("DATA_BASE_PORT_5432_TCP_ADDR={db_ip}"),
        "DATA_BASE_PORT_5432_TCP_PORT=5432".to_string(),
        "DATA_BASE_NAME=/web/data-base".to_string(),
        "DATA_BASE_ENV_PASSWORD=s3cret".to_string(),
    ] {
        assert!(logs.lines().any(|l| l == want), "no {want} in {logs}");
    }
    assert!(
        logs.lines()
            .any(|l| l.starts_with(db_ip) && l.contains("data-base")),
        "{logs}"
    );
    let links = d.ok(&[
        "inspect",
        "-f",
        "{{json .NetworkSettings.Networks.bridge.Links}}",
        "web",
    ]);
    assert_eq!(links, "[\"db:data-base\"]\n");
    // A link to a container that is not running refuses the start, as dockerd does.
    d.ok(&["stop", "-t", "0", "web"]);
    d.ok(&["stop", "-t", "0", "db"]);
    let err = d.fails(&["start", "web"]);
    assert!(
        err.contains("Cannot link to a non running container: /db AS /web/data-base"),
        "{err}"
    );
    // rm --link drops the link only.
    d.ok(&["rm", "--link", "/web/data-base"]);
    assert_eq!(
        d.ok(&["inspect", "-f", "{{json .HostConfig.Links}}", "web"]),
        "[]\n"
    );
    d.ok(&["start", "web"]);
    let err = d.fails(&["create", "--link", "nosuch:x", "busybox", "true"]);
    assert!(err.contains("could not get container for nosuch"), "{err}");
    d.ok(&["rm", "-f", "web", "db"]);

    // --mac-address and --group-add reach the container.
    let out = d.ok(&[
        "run",
        "--rm",
        "--mac-address",
        "92:d0:c6:0a:29:33",
        "--group-add",
        "daemon",
        "--group-add",
        "4242",
        "busybox",
        "sh",
        "-c",
        "cat /sys/class/net/eth0/address; id -G",
    ]);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("92:d0:c6:0a:29:33"), "{out}");
    let groups: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert!(groups.contains(&"1") && groups.contains(&"4242"), "{out}");
    // Runtime and log driver read back; unknown drivers refused in dockerd's words.
    d.ok(&["create", "--name", "plain", "busybox", "true"]);
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{.HostConfig.Runtime}} {{.HostConfig.LogConfig.Type}}",
            "plain"
        ]),
        "berth-runtime json-file\n"
    );
    let err = d.fails(&["run", "--log-driver", "bogus", "busybox", "true"]);
    assert!(
        err.contains("logger: no log driver named 'bogus' is registered"),
        "{err}"
    );
    let (status, body) = d.request(
        "POST",
        "/volumes/create",
        r#"{"Name":"v1","Driver":"bogus"}"#,
    );
    assert_eq!(status, 404, "{body}");
    assert!(
        body.contains("error looking up volume plugin bogus: plugin \\\"bogus\\\" not found"),
        "{body}"
    );
    let err = d.fails(&["run", "--runtime", "nosuch", "busybox", "true"]);
    assert!(err.contains("Unknown runtime specified nosuch"), "{err}");
    // A restarting container is not removed without force.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "loop",
        "--restart",
        "always",
        "busybox",
        "sh",
        "-c",
        "exit 1",
    ]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let out = d.docker(&["rm", "loop"]);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            !out.status.success(),
            "a container with a restart policy was removed"
        );
        if err.contains("You cannot remove a restarting container") {
            break;
        }
        assert!(
            err.contains("You cannot remove a running container"),
            "{err}"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "never seen restarting: {err}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    d.ok(&["rm", "-f", "loop", "plain"]);
}
