//! Isolation and limits, observed from inside real containers.

mod common;

use common::*;
use serde_json::json;

#[test]
fn exit_code_is_the_containers() {
    let c = Ctr::new("exit", &["sh", "-c", "exit 7"]);
    assert_eq!(c.run().status.code(), Some(7));
    let c = Ctr::new("exit0", &["true"]);
    assert_eq!(c.run().status.code(), Some(0));
}

#[test]
fn killed_by_signal_exits_128_plus_signal() {
    // pid 1 ignores signals it has no handler for, except from outside its namespace: `kill`.
    let c = Ctr::new("sigexit", &["sh", "-c", "echo ready; sleep 1000"]);
    let run = c.spawn_run();
    assert_eq!(run.line(), "ready");
    c.ok(&["kill", &c.id, "KILL"]);
    assert_eq!(run.wait().0.code(), Some(137));
}

#[test]
fn process_is_pid_1_with_hostname_and_env() {
    let mut c = Ctr::new(
        "pid1",
        &[
            "sh",
            "-c",
            "echo $$; hostname; echo $FOO; pwd; cat /proc/sys/kernel/domainname",
        ],
    );
    c.spec["domainname"] = json!("berth.example");
    c.spec["process"]["env"]
        .as_array_mut()
        .unwrap()
        .push(json!("FOO=bar"));
    c.spec["process"]["cwd"] = json!("/tmp");
    let out = c.run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "1\nberth-test\nbar\n/tmp\nberth.example\n");
}

#[test]
fn memory_limit_oom_kills() {
    let mut c = Ctr::new(
        "oom",
        &["dd", "if=/dev/zero", "of=/dev/null", "bs=128M", "count=1"],
    );
    c.spec["linux"]["resources"] = json!({"memory": {"limit": 32 << 20, "swap": 32 << 20}});
    let out = c.run();
    assert_eq!(
        out.status.code(),
        Some(137),
        "dd should be OOM-killed: {}",
        stderr(&out)
    );

    // The same program fits without the limit, so the kill above was the limit's doing.
    let c = Ctr::new(
        "nooom",
        &["dd", "if=/dev/zero", "of=/dev/null", "bs=128M", "count=1"],
    );
    let out = c.run();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn pids_limit_makes_fork_fail() {
    let script = "for i in 1 2 3 4 5 6 7 8 9 10; do sleep 3 & done 2>&1; kill $(jobs -p) 2>/dev/null; echo end";
    let mut c = Ctr::new("pids", &["sh", "-c", script]);
    c.spec["linux"]["resources"] = json!({"pids": {"limit": 4}});
    let out = c.run();
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        all.contains("can't fork"),
        "expected fork failure, got: {all}"
    );
}

#[test]
fn cpu_and_memory_limits_land_in_the_cgroup() {
    let mut c = Ctr::new("cglimits", &["sleep", "30"]);
    c.spec["linux"]["resources"] = json!({
        "memory": {"limit": 48 << 20},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0"},
        "pids": {"limit": 33}
    });
    let out = c.create();
    assert!(out.status.success(), "{}", stderr(&out));
    let read = |file: &str| -> String {
        c.cgroup_dirs()
            .iter()
            .map(|d| d.join(file))
            .find(|p| p.exists())
            .map(|p| std::fs::read_to_string(p).unwrap().trim().to_string())
            .unwrap_or_else(|| panic!("no cgroup file {file}"))
    };
    if std::path::Path::new("/sys/fs/cgroup/memory").exists() {
        assert_eq!(read("memory.limit_in_bytes"), (48u64 << 20).to_string());
        assert_eq!(read("cpu.shares"), "512");
        assert_eq!(read("cpu.cfs_quota_us"), "50000");
        assert_eq!(read("cpuset.cpus"), "0");
        assert_eq!(read("pids.max"), "33");
    } else {
        assert_eq!(read("memory.max"), (48u64 << 20).to_string());
        assert_eq!(read("cpu.max"), "50000 100000");
        assert_eq!(read("pids.max"), "33");
    }
}

#[test]
fn without_cap_sys_admin_mount_fails() {
    let c = Ctr::new("nocap", &["mount", "-t", "tmpfs", "none", "/mnt"]);
    let out = c.run();
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("Operation not permitted")
            || stderr(&out).contains("permission denied"),
        "{}",
        stderr(&out)
    );

    // With the capability the same mount works: the failure above was the capability.
    let mut c = Ctr::new(
        "cap",
        &[
            "sh",
            "-c",
            "mkdir -p /mnt && mount -t tmpfs none /mnt && echo mounted",
        ],
    );
    c.add_caps(&["CAP_SYS_ADMIN"]);
    let out = c.run();
    assert_eq!(stdout(&out), "mounted\n", "{}", stderr(&out));
}

#[test]
fn capability_sets_are_what_the_spec_says() {
    let c = Ctr::new(
        "capsets",
        &["sh", "-c", "grep -E '^Cap(Bnd|Eff)' /proc/self/status"],
    );
    let out = c.run();
    // CAP_KILL(5), CAP_NET_BIND_SERVICE(10), CAP_AUDIT_WRITE(29)
    let want = (1u64 << 5) | (1 << 10) | (1 << 29);
    for line in stdout(&out).lines() {
        let hex = line.split_whitespace().nth(1).unwrap();
        assert_eq!(u64::from_str_radix(hex, 16).unwrap(), want, "{line}");
    }
}

fn seccomp_errno_spec(c: &mut Ctr) {
    c.spec["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
            {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
             "args": [{"index": 1, "value": 10, "op": "SCMP_CMP_EQ"}]}
        ]
    });
}

#[test]
fn seccomp_errno_rule_makes_syscall_fail_with_eperm() {
    let mut c = Ctr::new("seccomp", &["mkdir", "/tmp/x"]);
    seccomp_errno_spec(&mut c);
    let out = c.run();
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("Operation not permitted"),
        "{}",
        stderr(&out)
    );
    assert!(!c.rootfs().join("tmp/x").exists());

    let c = Ctr::new("noseccomp", &["mkdir", "/tmp/x"]);
    assert_eq!(c.run().status.code(), Some(0));
}

#[test]
fn seccomp_filters_are_compiled_once_per_profile() {
    let mut c = Ctr::new(
        "seccompcache",
        &["sh", "-c", "mkdir /tmp/x || echo refused"],
    );
    seccomp_errno_spec(&mut c);
    let cache = c.root.path().join(".seccomp");
    let programs = || {
        let mut v: Vec<(String, std::time::SystemTime)> = std::fs::read_dir(&cache)
            .map(|d| {
                d.flatten()
                    .map(|e| {
                        let m = e.metadata().unwrap().modified().unwrap();
                        (e.file_name().to_string_lossy().into_owned(), m)
                    })
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    assert_eq!(stdout(&c.run()), "refused\n");
    let first = programs();
    assert_eq!(first.len(), 1, "{first:?}");
    // The same profile again: the stored program is loaded (not rewritten) and confines.
    assert_eq!(stdout(&c.run()), "refused\n");
    assert_eq!(programs(), first);
    // Another profile gets a program of its own, and the old one does not apply to it.
    c.spec["linux"]["seccomp"]["syscalls"][0]["names"] = json!(["rmdir"]);
    let out = c.run();
    assert_eq!(stdout(&out), "", "{}", stderr(&out));
    assert!(c.rootfs().join("tmp/x").exists());
    assert_eq!(programs().len(), 2);
}

#[test]
fn seccomp_loads_without_no_new_privileges() {
    // Docker's specs say `"noNewPrivileges": false`: the filter must then be loaded while
    // the init still holds CAP_SYS_ADMIN, and the container keeps only its own capabilities.
    let mut c = Ctr::new(
        "seccompnnp",
        &[
            "sh",
            "-c",
            "mkdir /tmp/x || echo refused; grep NoNewPrivs /proc/self/status",
        ],
    );
    seccomp_errno_spec(&mut c);
    c.spec["process"]["noNewPrivileges"] = json!(false);
    c.spec["process"]["capabilities"] = json!({
        "bounding": ["CAP_CHOWN"], "effective": ["CAP_CHOWN"], "permitted": ["CAP_CHOWN"]
    });
    let out = c.run();
    assert_eq!(
        stdout(&out),
        "refused\nNoNewPrivs:\t0\n",
        "{}",
        stderr(&out)
    );
}

#[test]
fn seccomp_argument_filter_matches_only_its_argument() {
    // kill(pid, SIGUSR1) is refused, kill(pid, 0) is not.
    let mut c = Ctr::new(
        "seccompargs",
        &[
            "sh",
            "-c",
            "kill -0 $$ && echo zero-ok; trap '' USR1; kill -USR1 $$ || echo usr1-refused",
        ],
    );
    seccomp_errno_spec(&mut c);
    let out = c.run();
    assert_eq!(stdout(&out), "zero-ok\nusr1-refused\n", "{}", stderr(&out));
}

#[test]
fn seccomp_masked_equal_compares_the_masked_argument() {
    // kill(pid, sig) is refused when (sig & 0b1100) == 0b1000: SIGUSR1 (10) is, SIGUSR2 (12)
    // and 0 are not. `value` is the mask and `valueTwo` the value, as in runc and Docker's
    // profiles (Docker's clone rule depends on it).
    let mut c = Ctr::new(
        "seccompmasked",
        &[
            "sh",
            "-c",
            "trap '' USR1 USR2; kill -0 $$ && echo zero-ok; kill -USR2 $$ && echo usr2-ok; kill -USR1 $$ || echo usr1-refused",
        ],
    );
    c.spec["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                      "args": [{"index": 1, "value": 12, "valueTwo": 8, "op": "SCMP_CMP_MASKED_EQ"}]}]
    });
    let out = c.run();
    assert_eq!(
        stdout(&out),
        "zero-ok\nusr2-ok\nusr1-refused\n",
        "{}",
        stderr(&out)
    );
}

#[test]
fn seccomp_kill_action_kills_with_sigsys() {
    let mut c = Ctr::new("seccompkill", &["mkdir", "/tmp/y"]);
    c.spec["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL_PROCESS"}]
    });
    assert_eq!(c.run().status.code(), Some(128 + 31));
}

#[test]
fn read_only_rootfs_refuses_writes() {
    let mut c = Ctr::new("rorootfs", &["touch", "/newfile"]);
    c.spec["root"]["readonly"] = json!(true);
    let out = c.run();
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("Read-only file system"),
        "{}",
        stderr(&out)
    );
    assert!(!c.rootfs().join("newfile").exists());
}

#[test]
fn masked_and_readonly_proc_paths() {
    let c = Ctr::new(
        "masked",
        &["sh", "-c", "wc -c < /proc/timer_list; ls /proc/acpi 2>/dev/null | wc -l; echo 1 > /proc/sys/kernel/domainname || echo ro"],
    );
    let host_timer_list = std::fs::read("/proc/timer_list").unwrap().len();
    assert!(host_timer_list > 0);
    let out = c.run();
    let lines: Vec<String> = stdout(&out).lines().map(|l| l.trim().to_string()).collect();
    assert_eq!(lines, ["0", "0", "ro"], "{}", stderr(&out));
}

#[test]
fn user_namespace_maps_root_to_an_unprivileged_uid() {
    let mut c = Ctr::new(
        "userns",
        &[
            "sh",
            "-c",
            "cat /proc/self/uid_map /proc/self/gid_map; id -u; cat /proc/self/status | grep ^Uid",
        ],
    );
    let ns = c.spec["linux"]["namespaces"].as_array_mut().unwrap();
    ns.push(json!({"type": "user"}));
    c.spec["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    c.spec["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    // sysfs and cgroupfs cannot be mounted from a user namespace without a matching owner;
    // keep the mounts a user-namespaced container can make.
    let mounts: Vec<_> = c.spec["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| !matches!(m["type"].as_str(), Some("sysfs" | "cgroup")))
        .cloned()
        .collect();
    c.spec["mounts"] = json!(mounts);
    let out = c.run();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let fields: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(fields[0], ["0", "100000", "65536"]);
    assert_eq!(fields[1], ["0", "100000", "65536"]);
    assert_eq!(fields[2], ["0"]);
}

#[test]
fn sysctl_and_rlimits_apply() {
    let mut c = Ctr::new(
        "sysctl",
        &["sh", "-c", "cat /proc/sys/net/ipv4/ip_forward; ulimit -n"],
    );
    c.spec["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
    c.spec["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "hard": 333, "soft": 222}]);
    let out = c.run();
    assert_eq!(stdout(&out), "1\n222\n", "{}", stderr(&out));
}

#[test]
fn oom_score_adj_and_no_new_privileges() {
    let mut c = Ctr::new(
        "oomadj",
        &[
            "sh",
            "-c",
            "cat /proc/self/oom_score_adj; grep NoNewPrivs /proc/self/status",
        ],
    );
    c.spec["process"]["oomScoreAdj"] = json!(321);
    let out = c.run();
    let t = stdout(&out);
    assert!(t.starts_with("321\n"), "{t}");
    assert!(t.contains("NoNewPrivs:\t1"), "{t}");
}

#[test]
fn joins_an_existing_namespace_by_path() {
    // A first container's network namespace, joined by a second one: both see the same
    // namespace inode.
    let a = Ctr::new("nsowner", &["sleep", "30"]);
    assert!(a.create().status.success());
    let pid = a.pid();
    let ns = format!("/proc/{pid}/ns/net");
    let want = std::fs::read_link(&ns).unwrap();
    let mut b = Ctr::new("nsjoiner", &["readlink", "/proc/self/ns/net"]);
    for n in b.spec["linux"]["namespaces"].as_array_mut().unwrap() {
        if n["type"] == "network" {
            n["path"] = json!(ns);
        }
    }
    let out = b.run();
    assert_eq!(
        stdout(&out).trim(),
        want.to_str().unwrap(),
        "{}",
        stderr(&out)
    );
}

#[test]
fn devices_are_created() {
    let mut c = Ctr::new("devices", &["sh", "-c", "ls /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty /dev/fuse 2>&1; head -c 4 /dev/zero | wc -c"]);
    c.spec["linux"]["devices"] = json!([{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 438, "uid": 0, "gid": 0}]);
    let out = c.run();
    let t = stdout(&out);
    assert!(!t.contains("No such file"), "{t}");
    assert!(t.ends_with("4\n"), "{t}");
}

#[test]
fn hooks_run_in_order() {
    let mut c = Ctr::new("hooks", &["true"]);
    let log = c.bundle.path().join("hooks.log");
    let hook = |name: &str| json!({"path": "/bin/sh", "args": ["sh", "-c", format!("echo {name} >> {}", log.display())]});
    c.spec["hooks"] = json!({
        "createRuntime": [hook("createRuntime")],
        "poststart": [hook("poststart")],
        "poststop": [hook("poststop")]
    });
    let out = c.run();
    assert!(out.status.success(), "{}", stderr(&out));
    let got = std::fs::read_to_string(&log).unwrap();
    assert_eq!(got, "createRuntime\npoststart\npoststop\n");
}

#[test]
fn seccomp_log_allows_and_trace_without_tracer_fails() {
    let mut c = Ctr::new(
        "seccomplog",
        &[
            "sh",
            "-c",
            "mkdir /tmp/logged && echo logged-ok; rmdir /tmp/logged 2>&1 || true",
        ],
    );
    c.spec["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_LOG"},
            {"names": ["rmdir"], "action": "SCMP_ACT_TRACE", "errnoRet": 1}
        ]
    });
    let out = c.run();
    let t = format!("{}{}", stdout(&out), stderr(&out));
    assert!(t.contains("logged-ok"), "{t}");
    // With no tracer attached, a traced syscall fails with ENOSYS.
    assert!(t.contains("Function not implemented"), "{t}");
}

#[test]
fn device_cgroup_denies_devices_not_allowed() {
    // CAP_MKNOD lets the process create the node; the device cgroup still refuses to open it.
    let mut c = Ctr::new(
        "devcg",
        &[
            "sh",
            "-c",
            "mknod /tmp/sda b 8 0 && echo made; head -c1 /tmp/sda >/dev/null 2>&1 || echo denied",
        ],
    );
    c.add_caps(&["CAP_MKNOD"]);
    c.spec["linux"]["resources"] = json!({"devices": [{"allow": false, "access": "rwm"}]});
    let out = c.run();
    assert_eq!(stdout(&out), "made\ndenied\n", "{}", stderr(&out));
}

#[test]
fn no_pivot_still_confines_the_root() {
    let c = Ctr::new(
        "nopivot",
        &["sh", "-c", "ls /; test -e /bin/busybox && echo in-rootfs"],
    );
    c.write_spec();
    let bundle = c.bundle.path().to_str().unwrap().to_string();
    let out = c.rt(&["run", "--no-pivot", "--bundle", &bundle, &c.id]);
    let t = stdout(&out);
    assert!(t.contains("in-rootfs"), "{t} {}", stderr(&out));
    assert!(
        !t.contains("work") && !t.contains("lost+found"),
        "host root visible: {t}"
    );
}

#[test]
fn hooks_in_the_container_namespace_run_inside_it() {
    // createContainer runs in the container's namespaces before pivot_root (so its "/" is
    // still the host's, seen from the container's mount namespace); startContainer runs
    // after it, inside the container's root.
    let mut c = Ctr::new("nshooks", &["true"]);
    let outside = c.bundle.path().join("create.log");
    c.spec["hooks"] = json!({
        "createContainer": [{"path": "/bin/sh", "args": ["sh", "-c",
            format!("test -e /proc/self/ns/mnt && readlink /proc/self/ns/mnt > {}", outside.display())]}],
        "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "hostname > /hooks.log"]}]
    });
    let out = c.run();
    assert!(out.status.success(), "{}", stderr(&out));
    let inside = std::fs::read_to_string(c.rootfs().join("hooks.log")).unwrap_or_default();
    assert_eq!(
        inside, "berth-test\n",
        "startContainer runs in the container's uts and root"
    );
    let create_ns = std::fs::read_to_string(&outside).unwrap();
    let host_ns = std::fs::read_link("/proc/self/ns/mnt").unwrap();
    assert_ne!(
        create_ns.trim(),
        host_ns.to_str().unwrap(),
        "createContainer runs in the container's mount ns"
    );
}

/// A host mount made under a bind-mounted directory after the container started shows up
/// inside with `rslave` propagation and not with `rprivate`.
#[test]
fn mount_propagation_follows_the_spec() {
    struct Unmount(Vec<std::path::PathBuf>);
    impl Drop for Unmount {
        fn drop(&mut self) {
            for p in self.0.iter().rev() {
                let _ = nix::mount::umount2(p, nix::mount::MntFlags::MNT_DETACH);
            }
        }
    }
    for (prop, expect) in [("rslave", true), ("rprivate", false)] {
        let mut c = Ctr::new(
            "propagation",
            &[
                "sh",
                "-c",
                "while ! test -e /data/sub/ready; do usleep 20000; done 2>/dev/null & sleep 1000",
            ],
        );
        let shared = c.bundle.path().join("shared");
        std::fs::create_dir_all(shared.join("sub")).unwrap();
        let mut guard = Unmount(Vec::new());
        nix::mount::mount(
            Some(&shared),
            &shared,
            None::<&str>,
            nix::mount::MsFlags::MS_BIND,
            None::<&str>,
        )
        .unwrap();
        guard.0.push(shared.clone());
        nix::mount::mount(
            None::<&str>,
            &shared,
            None::<&str>,
            nix::mount::MsFlags::MS_SHARED,
            None::<&str>,
        )
        .unwrap();
        c.spec["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/data", "type": "bind", "source": shared, "options": ["rbind", prop]
        }));
        assert!(c.create().status.success());
        c.ok(&["start", &c.id]);
        let sub = shared.join("sub");
        nix::mount::mount(
            Some("tmpfs"),
            &sub,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .unwrap();
        guard.0.push(sub.clone());
        let out = c.rt(&[
            "exec",
            &c.id,
            "sh",
            "-c",
            "grep -c ' /data/sub ' /proc/self/mountinfo || true",
        ]);
        let seen = stdout(&out).trim() != "0";
        assert_eq!(seen, expect, "{prop}: {}", stdout(&out));
        c.ok(&["delete", "--force", &c.id]);
    }
}
