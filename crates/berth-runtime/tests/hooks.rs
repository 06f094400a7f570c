//! Hooks as the OCI runtime spec has them, checked the way the runtime-tools validation suite
//! (and crun) check them: prestart, createRuntime, createContainer and startContainer failures
//! are errors that leave nothing behind; poststart and poststop failures are warnings that
//! change nothing else; poststart hooks run once the process is executed; every hook reads
//! the container's state on stdin. And the seccomp specs that suite writes: they start, and
//! they confine.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// A hook that fails (exit status 1), after saying so on stderr.
fn failing_hook() -> Value {
    json!({"path": "/bin/sh", "args": ["sh", "-c", "echo hook-says-no >&2; exit 1"]})
}

/// A hook that appends `word` to `file`: proof that it ran, and in which order.
fn marking_hook(file: &Path, word: &str) -> Value {
    json!({"path": "/bin/sh", "args": ["sh", "-c", format!("echo {word} >> {}", file.display())]})
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Asserts that nothing of the container is left: no state directory, no cgroup.
fn assert_gone(c: &Ctr) {
    assert!(
        !c.root.path().join(&c.id).exists(),
        "the container's state directory is left behind"
    );
    let out = c.rt(&["state", &c.id]);
    assert!(!out.status.success(), "`state` still finds the container");
    assert_eq!(
        c.cgroup_dirs(),
        Vec::<PathBuf>::new(),
        "cgroups left behind"
    );
}

/// Waits (5 s at most) for `pid` to be gone.
fn assert_exits(pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(pid) {
        assert!(Instant::now() < deadline, "process {pid} is still running");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn failing_poststop_hook_is_a_warning_and_run_keeps_the_exit_status() {
    let mut c = Ctr::new("poststopfail", &["sh", "-c", "exit 3"]);
    let marks = c.bundle.path().join("marks");
    c.spec["hooks"] = json!({"poststop": [failing_hook(), marking_hook(&marks, "after")]});
    let out = c.run();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("berth-runtime: warning: poststop hook /bin/sh failed")
            && err.contains("exit code: 1"),
        "no warning: {err}"
    );
    assert!(
        err.contains("hook-says-no"),
        "the hook's stderr is lost: {err}"
    );
    assert_eq!(
        read(&marks),
        "after\n",
        "the remaining poststop hooks must run"
    );
    assert_gone(&c);
}

#[test]
fn failing_poststop_hook_does_not_stop_delete_force() {
    let mut c = Ctr::new("poststopdel", &["sleep", "100"]);
    let marks = c.bundle.path().join("marks");
    c.spec["hooks"] = json!({"poststop": [failing_hook(), marking_hook(&marks, "after")]});
    assert!(c.create().status.success());
    c.ok(&["start", &c.id]);
    let pid = c.pid();
    let out = c.rt(&["delete", "--force", &c.id]);
    let err = stderr(&out);
    assert!(out.status.success(), "delete -f failed: {err}");
    assert!(err.contains("warning: poststop hook"), "no warning: {err}");
    assert_eq!(read(&marks), "after\n");
    assert_exits(pid);
    assert_gone(&c);

    // The same with a container that has already stopped, and a plain delete.
    let mut c = Ctr::new("poststopdel2", &["true"]);
    c.spec["hooks"] = json!({"poststop": [failing_hook()]});
    assert!(c.create().status.success());
    c.ok(&["start", &c.id]);
    c.wait_status("stopped");
    let out = c.rt(&["delete", &c.id]);
    assert!(out.status.success(), "delete failed: {}", stderr(&out));
    assert_gone(&c);
}

#[test]
fn failing_poststart_hook_is_a_warning_and_the_container_runs_on() {
    let mut c = Ctr::new("poststartfail", &["sh", "-c", "echo ran; exit 4"]);
    let marks = c.bundle.path().join("marks");
    c.spec["hooks"] = json!({"poststart": [failing_hook(), marking_hook(&marks, "after")]});
    let out = c.run();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert_eq!(stdout(&out), "ran\n");
    assert!(
        err.contains("warning: poststart hook /bin/sh failed"),
        "{err}"
    );
    assert_eq!(read(&marks), "after\n");
    assert_gone(&c);

    // create + start: start succeeds and the container keeps running.
    let mut c = Ctr::new("poststartfail2", &["sleep", "100"]);
    c.spec["hooks"] = json!({"poststart": [failing_hook()]});
    assert!(c.create().status.success());
    let out = c.rt(&["start", &c.id]);
    assert!(out.status.success(), "start failed: {}", stderr(&out));
    assert!(stderr(&out).contains("warning: poststart hook"));
    assert_eq!(c.status(), "running");
    assert!(alive(c.pid()));
    c.ok(&["delete", "--force", &c.id]);
    assert_gone(&c);
}

#[test]
fn failing_hooks_before_the_process_are_errors_that_leave_nothing_behind() {
    // startContainer runs inside the container (its marking hook cannot reach the bundle
    // and proves nothing there), the others in the runtime's namespaces.
    for phase in [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
    ] {
        let mut c = Ctr::new(&format!("{}fail", phase.to_lowercase()), &["touch", "/ran"]);
        let marks = c.bundle.path().join("marks");
        c.spec["hooks"] = json!({
            phase: [failing_hook(), marking_hook(&marks, "not-run")],
            "poststop": [marking_hook(&marks, "poststop")]
        });
        c.write_spec();
        let pid_file = c.bundle.path().join("pid");
        let bundle = c.bundle.path().to_str().unwrap().to_string();
        let out = c.rt(&[
            "run",
            "--pid-file",
            pid_file.to_str().unwrap(),
            "--bundle",
            &bundle,
            &c.id,
        ]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{phase}: {err}");
        assert!(err.contains("exit code: 1"), "{phase}: {err}");
        assert!(!c.rootfs().join("ran").exists(), "{phase}: the process ran");
        // The remaining hooks of the phase do not run; the lifecycle goes on to destroy
        // the container and run the poststop hooks.
        assert_eq!(read(&marks), "poststop\n", "{phase}");
        // The init was made (the pid file is written before the hooks run) and is gone.
        let pid: i32 = read(&pid_file)
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("{phase}: no pid file: {e}"));
        assert_exits(pid);
        assert_gone(&c);
    }
}

#[test]
fn poststart_hooks_run_after_the_process_is_executed() {
    // The poststart hook records what the container's pid is running. A slow startContainer
    // hook holds the exec back: a `start` that did not wait for the exec would run the
    // poststart hook while the pid is still the runtime's init.
    let mut c = Ctr::new("poststartafter", &["sleep", "100"]);
    let seen = c.bundle.path().join("seen");
    let record = format!(
        "pid=$(sed -n 's/.*\"pid\": *\\([0-9][0-9]*\\).*/\\1/p'); cat /proc/$pid/comm > {}",
        seen.display()
    );
    c.spec["hooks"] = json!({
        "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "sleep 0.5"]}],
        "poststart": [{"path": "/bin/sh", "args": ["sh", "-c", record]}]
    });
    assert!(c.create().status.success());
    let started = Instant::now();
    c.ok(&["start", &c.id]);
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "start returned before the process was executed"
    );
    assert_eq!(read(&seen), "sleep\n");
    assert_eq!(c.status(), "running");
}

/// The state file a hook wrote, parsed.
fn hook_state(path: &Path) -> Value {
    let text = read(path);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}: {text:?}", path.display()))
}

#[test]
fn hooks_read_the_state_on_stdin() {
    let mut c = Ctr::new("hookstate", &["sleep", "100"]);
    let dir = c.bundle.path().to_path_buf();
    let save = |name: &str| {
        json!({"path": "/bin/sh", "args": ["sh", "-c", format!("cat > {}/{name}.json", dir.display())],
               "timeout": 10})
    };
    c.spec["annotations"] = json!({"org.example.key": "hook stdin test"});
    c.spec["hooks"] = json!({
        "prestart": [save("prestart")],
        "createRuntime": [save("createRuntime")],
        "createContainer": [save("createContainer")],
        // Runs inside the container's root: saves into the rootfs.
        "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "cat > /startContainer.json"]}],
        "poststart": [save("poststart")],
        "poststop": [save("poststop")]
    });
    assert!(c.create().status.success());
    let pid = c.pid();
    c.ok(&["start", &c.id]);
    c.ok(&["delete", "--force", &c.id]);

    let bundle = std::fs::canonicalize(c.bundle.path()).unwrap();
    // (hook, status, pid): the host pid for hooks in the runtime namespace, the pid the
    // container sees (1, its own pid namespace) for those in the container's.
    let expected = [
        ("prestart", "created", Some(pid)),
        ("createRuntime", "created", Some(pid)),
        ("createContainer", "created", Some(1)),
        ("startContainer", "created", Some(1)),
        ("poststart", "running", Some(pid)),
        ("poststop", "stopped", None),
    ];
    for (hook, status, want_pid) in expected {
        let path = if hook == "startContainer" {
            c.rootfs().join("startContainer.json")
        } else {
            dir.join(format!("{hook}.json"))
        };
        let s = hook_state(&path);
        assert!(
            s["ociVersion"].as_str().is_some_and(|v| !v.is_empty()),
            "{hook}: {s}"
        );
        assert_eq!(s["id"], json!(c.id), "{hook}: {s}");
        assert_eq!(s["status"], json!(status), "{hook}: {s}");
        assert_eq!(s["bundle"], json!(bundle), "{hook}: {s}");
        assert_eq!(
            s["annotations"],
            json!({"org.example.key": "hook stdin test"}),
            "{hook}: {s}"
        );
        if let Some(want) = want_pid {
            assert_eq!(s["pid"], json!(want), "{hook}: {s}");
        }
    }
    assert_gone(&c);
}

/// The seccomp section of the validation suite's `linux_seccomp` test: everything allowed
/// but getcwd, refused with the default errno (no `errnoRet`), on the three x86 ABIs, plus
/// the allow rules its generator leaves in (one with an argument condition).
fn validation_getcwd_seccomp() -> Value {
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
            {"names": ["chroot"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"}
        ]
    })
}

#[test]
fn seccomp_refusing_getcwd_starts_and_refuses_it() {
    // With noNewPrivileges false the filter is loaded before the capabilities are dropped,
    // with true just before exec; the runtime's own check of the working directory must
    // not trip over the filter either way.
    for nnp in [false, true] {
        let mut c = Ctr::new("seccompgetcwd", &["sh", "-c", "echo started; /bin/pwd -P"]);
        c.spec["linux"]["seccomp"] = validation_getcwd_seccomp();
        c.spec["process"]["noNewPrivileges"] = json!(nnp);
        let out = c.run();
        let err = stderr(&out);
        assert_eq!(stdout(&out), "started\n", "nnp {nnp}: {err}");
        assert!(
            err.contains("Operation not permitted"),
            "nnp {nnp}: getcwd not refused with EPERM: {err}"
        );
        assert_ne!(out.status.code(), Some(0));
    }
}

#[test]
fn seccomp_refusing_getcwd_applies_to_exec_too() {
    // Docker's specs say `"noNewPrivileges": false`: the filter is loaded early, for the
    // container's init and for exec'd processes alike.
    let mut c = Ctr::new("seccompgetcwdexec", &["sleep", "100"]);
    c.spec["linux"]["seccomp"] = validation_getcwd_seccomp();
    c.spec["process"]["noNewPrivileges"] = json!(false);
    assert!(c.create().status.success());
    c.ok(&["start", &c.id]);
    let out = c.rt(&["exec", &c.id, "pwd", "-P"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("Operation not permitted"),
        "{}",
        stderr(&out)
    );
    let out = c.rt(&["exec", "--cwd", "/tmp", &c.id, "sh", "-c", "echo in-tmp"]);
    assert_eq!(stdout(&out), "in-tmp\n", "{}", stderr(&out));
}

#[test]
fn validation_suite_default_seccomp_profile_confines() {
    // The profile every runtime-tools validation test runs under (its generator's default):
    // refuse by default with the default errno, allow a list, personality only for three
    // values, clone only without namespace flags (SCMP_CMP_MASKED_EQ, no valueTwo).
    let profile: Value =
        serde_json::from_str(include_str!("fixtures/runtime-tools-seccomp.json")).expect("fixture");
    let script = "echo started; linux32 uname -m; hostname renamed || echo hostname-refused; \
                  unshare -n true || echo unshare-refused";
    let mut c = Ctr::new("seccomprtt", &["sh", "-c", script]);
    // sethostname would be allowed by the capabilities; only the profile refuses it.
    c.add_caps(&["CAP_SYS_ADMIN"]);
    c.spec["linux"]["seccomp"] = profile;
    let out = c.run();
    assert_eq!(
        stdout(&out),
        "started\ni686\nhostname-refused\nunshare-refused\n",
        "{}",
        stderr(&out)
    );
    assert_eq!(out.status.code(), Some(0));

    // Without the profile, the same container may do both.
    let mut c = Ctr::new("seccomprtt2", &["sh", "-c", script]);
    c.add_caps(&["CAP_SYS_ADMIN"]);
    let out = c.run();
    assert_eq!(stdout(&out), "started\ni686\n", "{}", stderr(&out));
}
