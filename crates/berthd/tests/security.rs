//! What confines a container and what runs as its pid 1, through berthd and the real
//! `docker` CLI: Docker's default seccomp profile, the profiles users give, and `--init`,
//! observed from inside real containers.

use std::time::{Duration, Instant};

use berth_testkit::Daemon;

#[test]
fn default_seccomp_profile_confines_like_dockers() {
    let d = Daemon::with_busybox();
    // A user namespace needs no capability, so only the filter stops it (unshare without
    // CAP_SYS_ADMIN); forks, threads and ordinary syscalls go on working.
    let probe = "unshare -U true && echo unshared || echo refused; linux32 true && echo persona-ok";
    assert_eq!(
        d.ok(&["run", "--rm", "busybox", "sh", "-c", probe]),
        "refused\npersona-ok\n"
    );
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "--security-opt",
            "seccomp=unconfined",
            "busybox",
            "sh",
            "-c",
            probe
        ]),
        "unshared\npersona-ok\n"
    );
    // --cap-add SYS_ADMIN opens the syscalls that go with it, as in Docker.
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "--cap-add",
            "SYS_ADMIN",
            "busybox",
            "sh",
            "-c",
            probe
        ]),
        "unshared\npersona-ok\n"
    );
    // exec'd processes get the container's filter too.
    let id = d.ok(&["run", "-d", "busybox", "sleep", "30"]);
    let id = id.trim();
    assert_eq!(
        d.ok(&["exec", id, "sh", "-c", "unshare -U true || echo refused"]),
        "refused\n"
    );
    let inspect = d.ok(&["info", "--format", "{{json .SecurityOptions}}"]);
    assert!(
        inspect.contains("name=seccomp,profile=builtin"),
        "{inspect}"
    );
}

#[test]
fn custom_seccomp_profiles_apply_and_bad_ones_are_refused() {
    let d = Daemon::with_busybox();
    let profile = d.dir.path().join("no-mkdir.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    let out = d.docker(&[
        "run",
        "--rm",
        "--security-opt",
        &opt,
        "busybox",
        "sh",
        "-c",
        "mkdir /tmp/x; echo $?; touch /tmp/y && echo touched",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1\ntouched\n");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Operation not permitted"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let bad = d.dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_SOMETIMES"}]}"#,
    )
    .unwrap();
    let before = d.ok(&["ps", "-aq"]);
    let err = d.fails(&[
        "run",
        "--rm",
        "--security-opt",
        &format!("seccomp={}", bad.display()),
        "busybox",
        "true",
    ]);
    assert!(
        err.contains("syscalls[0]: unknown action \"SCMP_ACT_SOMETIMES\""),
        "{err}"
    );
    assert_eq!(
        d.ok(&["ps", "-aq"]),
        before,
        "a refused create made nothing"
    );
}

#[test]
fn init_runs_as_pid_1_and_forwards_signals() {
    let d = Daemon::with_busybox();
    // The init is pid 1 and the command its child.
    let ps = d.ok(&[
        "run",
        "--rm",
        "--init",
        "busybox",
        "sh",
        "-c",
        "cat /proc/1/cmdline | tr '\\0' ' '; echo; echo $$",
    ]);
    let mut lines = ps.lines();
    assert_eq!(
        lines.next(),
        Some("/sbin/docker-init -- sh -c cat /proc/1/cmdline | tr '\\0' ' '; echo; echo $$ ")
    );
    assert_ne!(lines.next(), Some("1"), "{ps}");
    // A command that ignores SIGTERM as pid 1 (the kernel drops signals pid 1 has no
    // handler for) stops at once under the init, which forwards SIGTERM to it.
    let id = d.ok(&["run", "-d", "--init", "busybox", "sleep", "60"]);
    let id = id.trim();
    let t = Instant::now();
    d.ok(&["stop", "-t", "20", id]);
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "stop took {:?}",
        t.elapsed()
    );
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{.State.ExitCode}} {{.HostConfig.Init}}",
            id
        ])
        .trim(),
        "143 true"
    );
    // Without it, the same stop has to wait for the timeout and SIGKILL.
    let id = d.ok(&["run", "-d", "busybox", "sleep", "60"]);
    let id = id.trim();
    let t = Instant::now();
    d.ok(&["stop", "-t", "2", id]);
    assert!(
        t.elapsed() >= Duration::from_secs(2),
        "stop took {:?}",
        t.elapsed()
    );
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.ExitCode}}", id]).trim(),
        "137"
    );
}
