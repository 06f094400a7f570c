//! The attacks runc had to fix, tried for real.

mod common;

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;

use common::*;
use serde_json::json;

fn sha256_of(path: &str) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// CVE-2019-5736: the init of a created container is the runtime binary until `start`. A
/// process in another container that can see it (shared pid namespace, CAP_SYS_PTRACE: the
/// strongest attacker) opens it through /proc/<pid>/exe, waits for the runtime process to go
/// away, and writes through the open descriptor, as the original exploit did. The write must
/// fail with EROFS and the binary on disk must stay intact.
#[test]
fn container_cannot_overwrite_runtime_through_proc_exe() {
    let before = sha256_of(BIN);
    let victim = Ctr::new("victim", &["true"]);
    let out = victim.create();
    assert!(out.status.success(), "{}", stderr(&out));
    let pid = victim.pid();

    // From the host first: even host root cannot open it for writing (an unprotected runtime
    // gives ETXTBSY here, not EROFS).
    let err = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/{pid}/exe"))
        .unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");

    let script = format!(
        "exec 5</proc/{pid}/exe || exit 1; echo opened > /out; \
         while [ -e /proc/{pid}/exe ]; do usleep 10000; done; \
         (echo pwned >> /proc/self/fd/5 && echo WROTE) >> /out 2>&1; \
         (: > /proc/self/fd/5 && echo TRUNCATED) >> /out 2>&1; echo done >> /out"
    );
    let mut attacker = Ctr::new("attacker", &["sh", "-c", &script]);
    let ns = attacker.spec["linux"]["namespaces"].as_array_mut().unwrap();
    ns.retain(|n| n["type"] != "pid");
    attacker.add_caps(&["CAP_SYS_PTRACE", "CAP_DAC_OVERRIDE"]);
    assert!(attacker.create().status.success());
    attacker.ok(&["start", &attacker.id]);
    let out_file = attacker.rootfs().join("out");
    let read_out = || std::fs::read_to_string(&out_file).unwrap_or_default();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !read_out().contains("opened") {
        assert!(
            std::time::Instant::now() < deadline,
            "attacker never opened the exe: {}",
            read_out()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The runtime's process goes away; the attacker now holds the only reference.
    victim.ok(&["delete", "--force", &victim.id]);
    attacker.wait_status("stopped");
    let text = read_out();
    assert!(text.contains("done"), "{text}");
    assert!(
        !text.contains("WROTE") && !text.contains("TRUNCATED"),
        "{text}"
    );
    assert!(text.contains("Read-only file system"), "{text}");
    assert_eq!(sha256_of(BIN), before, "the runtime binary changed");
}

/// The protection is taken without a second exec: the runtime maps its protected copy over
/// itself (crates/seal). What a container could reach must then be exactly what a re-exec
/// would leave: the init of a created container maps nothing of the host binary (by device
/// and inode, so no path trick hides it) and its exe is on the read-only overlay; and it was
/// not re-executed (a re-exec leaves its marker in the exec-time environment).
#[test]
fn runtime_is_protected_in_place_and_maps_nothing_of_the_host_binary() {
    use std::os::unix::fs::MetadataExt;
    let host = std::fs::metadata(BIN).unwrap();
    let host_dev = format!(
        "{:02x}:{:02x}",
        libc::major(host.dev()),
        libc::minor(host.dev())
    );
    let victim = Ctr::new("inplace", &["true"]);
    let out = victim.create();
    assert!(out.status.success(), "{}", stderr(&out));
    let pid = victim.pid();

    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let of_host: Vec<&str> = maps
        .lines()
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() >= 5 && f[3] == host_dev && f[4] == host.ino().to_string()
        })
        .collect();
    assert!(
        of_host.is_empty(),
        "the init maps the host binary: {of_host:?}"
    );
    let exe = std::fs::metadata(format!("/proc/{pid}/exe")).unwrap();
    assert_eq!(
        exe.ino(),
        host.ino(),
        "the exe is the same binary, seen through the overlay"
    );
    assert_ne!(
        exe.dev(),
        host.dev(),
        "the exe is not the host's file itself"
    );

    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    assert!(
        !String::from_utf8_lossy(&environ).contains("_BERTH_RUNTIME_SEALED"),
        "the runtime re-executed itself instead of protecting itself in place"
    );
}

/// CVE-2024-21626: no host file descriptor and no host working directory reach the container
/// process; only stdio and `--preserve-fds` survive.
#[test]
fn no_host_fd_or_cwd_leaks_into_the_container() {
    let c = Ctr::new(
        "fdleak",
        &[
            "sh",
            "-c",
            "echo $(ls /proc/self/fd); readlink /proc/self/cwd; cat <&3 || echo no-fd3",
        ],
    );
    c.write_spec();
    // The caller holds extra fds open without CLOEXEC (a host directory and a file), and its
    // cwd is a host directory; none of it may show up inside.
    let host_dir = std::fs::File::open("/etc").unwrap();
    let extra: OwnedFd = host_dir.into();
    let leak_fd = extra.as_raw_fd();
    let bundle = c.bundle.path().to_str().unwrap().to_string();
    let mut cmd = c.cmd(&["run", "--bundle", &bundle, &c.id]);
    cmd.current_dir("/etc");
    // SAFETY: only async-signal-safe calls (fcntl, dup2) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            // Clear CLOEXEC so the fd is inherited by the runtime, and also place it at 3.
            libc::fcntl(leak_fd, libc::F_SETFD, 0);
            libc::dup2(leak_fd, 3);
            libc::fcntl(3, libc::F_SETFD, 0);
            Ok(())
        });
    }
    let out = output_with_timeout(cmd, std::time::Duration::from_secs(30));
    let text = stdout(&out);
    let mut lines = text.lines();
    let fds: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    // ls's own directory fd may appear as 3 only if it is the listing fd; busybox ls opens the
    // directory as fd 3, so anything above 3 is a leak and 3 must not be /etc.
    assert!(
        fds.iter().all(|f| ["0", "1", "2", "3"].contains(f)),
        "fds: {fds:?} {}",
        stderr(&out)
    );
    assert_eq!(
        lines.next(),
        Some("/"),
        "cwd must be the spec's, not the caller's: {text}"
    );
    assert!(
        text.contains("no-fd3"),
        "fd 3 leaked into the container: {text}"
    );
    drop(extra);
}

#[test]
fn preserve_fds_passes_exactly_the_requested_fds() {
    let c = Ctr::new(
        "preserve",
        &["sh", "-c", "cat <&3; cat <&4 2>/dev/null || echo no-fd4"],
    );
    c.write_spec();
    let data = c.bundle.path().join("data");
    std::fs::write(&data, "through-fd3\n").unwrap();
    let f3: OwnedFd = std::fs::File::open(&data).unwrap().into();
    let f4: OwnedFd = std::fs::File::open(&data).unwrap().into();
    let (r3, r4) = (f3.as_raw_fd(), f4.as_raw_fd());
    let bundle = c.bundle.path().to_str().unwrap().to_string();
    let mut cmd = c.cmd(&["run", "--preserve-fds", "1", "--bundle", &bundle, &c.id]);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            libc::dup2(r3, 3);
            libc::dup2(r4, 4);
            // dup2 onto itself keeps CLOEXEC; clear it either way.
            libc::fcntl(3, libc::F_SETFD, 0);
            libc::fcntl(4, libc::F_SETFD, 0);
            Ok(())
        });
    }
    let out = output_with_timeout(cmd, std::time::Duration::from_secs(30));
    assert_eq!(stdout(&out), "through-fd3\nno-fd4\n", "{}", stderr(&out));
    drop((f3, f4));
}

/// libcontainer 0.7 bind-mounts v1 cgroup directories read-write even when the spec's cgroup
/// mount is `ro`; a container root could then raise its own memory limit. berth keeps them
/// read-only, with a cgroup namespace (the default) and without one.
#[test]
fn container_cannot_raise_its_own_cgroup_limits() {
    for with_cgroupns in [true, false] {
        let target = if std::path::Path::new("/sys/fs/cgroup/memory").exists() {
            "/sys/fs/cgroup/memory/memory.limit_in_bytes"
        } else {
            "/sys/fs/cgroup/memory.max"
        };
        let mut c = Ctr::new(
            "cgro",
            &["sh", "-c", &format!("echo 1073741824 > {target} && echo RAISED; touch /sys/fs/cgroup/x && echo TOUCHED; true")],
        );
        c.spec["linux"]["resources"] = json!({"memory": {"limit": 64 << 20}});
        if !with_cgroupns {
            c.spec["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .retain(|n| n["type"] != "cgroup");
        }
        assert!(c.create().status.success());
        let limit_file = c
            .cgroup_dirs()
            .into_iter()
            .map(|d| {
                d.join(if target.ends_with("max") {
                    "memory.max"
                } else {
                    "memory.limit_in_bytes"
                })
            })
            .find(|p| p.exists())
            .unwrap();
        let out = {
            c.ok(&["start", &c.id]);
            c.wait_status("stopped");
            std::fs::read_to_string(&limit_file).unwrap()
        };
        assert_eq!(
            out.trim(),
            (64u64 << 20).to_string(),
            "cgroupns={with_cgroupns}"
        );
        let said = std::fs::read_to_string(c.bundle.path().join(".stdout")).unwrap();
        let errors = std::fs::read_to_string(c.bundle.path().join(".stderr")).unwrap();
        assert!(
            !said.contains("RAISED") && !said.contains("TOUCHED"),
            "{said}"
        );
        assert_eq!(
            errors.matches("Read-only file system").count(),
            2,
            "{errors}"
        );
    }
}

/// Seccomp rules are never dropped: the same program is refused with the rule and allowed
/// without it (the isolation tests check the actions); here the rule also survives `exec`.
#[test]
fn seccomp_applies_to_exec_processes_too() {
    let mut c = Ctr::new("seccompexec", &["sleep", "30"]);
    c.spec["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
    });
    assert!(c.create().status.success());
    c.ok(&["start", &c.id]);
    let out = c.rt(&["exec", &c.id, "mkdir", "/tmp/z"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("Operation not permitted"),
        "{}",
        stderr(&out)
    );
}
