//! The cgroup v2 code paths, on a hybrid host.
//!
//! The test runs the runtime in a private mount namespace in which /sys/fs/cgroup is the
//! host's cgroup2 hierarchy alone, so libcgroups detects a pure v2 host. On this machine the
//! resource controllers (memory, pids, cpu) are bound to the v1 hierarchies and cannot appear
//! in cgroup2, so limits are not tried here; what v2 does without controllers is: creating and
//! removing the cgroup, moving processes in, the eBPF device filter, and cgroup.freeze.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::json;

/// Removes the container's cgroup from the unified hierarchy even if the script failed.
struct V2Cgroup(std::path::PathBuf);

impl Drop for V2Cgroup {
    fn drop(&mut self) {
        if self.0.exists() {
            let _ = std::fs::write(self.0.join("cgroup.kill"), "1");
            std::thread::sleep(Duration::from_millis(50));
            let _ = std::fs::remove_dir(&self.0);
        }
    }
}

fn unified_mount() -> Option<std::path::PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    text.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        (right.split_whitespace().next() == Some("cgroup2"))
            .then(|| left.split_whitespace().nth(4).map(Into::into))
            .flatten()
    })
}

#[test]
fn pure_v2_view_runs_containers_with_device_filter_and_freezer() {
    let unified = unified_mount().expect("this host has no cgroup2 hierarchy mounted");
    let mut c = Ctr::new(
        "v2",
        &["sh", "-c", "head -c1 /dev/null && echo devnull-ok; mknod /tmp/sda b 8 0 && (head -c1 /tmp/sda >/dev/null 2>&1 || echo sda-denied); exec sleep 1000"],
    );
    c.add_caps(&["CAP_MKNOD"]);
    let cg = format!("/rt-v2-{}", c.id);
    c.spec["linux"]["cgroupsPath"] = json!(cg);
    c.write_spec();
    let cgdir = unified.join(cg.trim_start_matches('/'));
    let _guard = V2Cgroup(cgdir.clone());

    let rt = format!("{} --root {}", BIN, c.root.path().display());
    let bundle = c.bundle.path().display().to_string();
    let id = &c.id;
    let script = format!(
        r#"set -e
umount -l /sys/fs/cgroup
mount -t cgroup2 none /sys/fs/cgroup
trap '{rt} delete --force {id} >/dev/null 2>&1' EXIT
{rt} create --bundle {bundle} {id} > {bundle}/out 2>&1 </dev/null
{rt} start {id}
for i in $(seq 100); do grep -q sda-denied {bundle}/out && break; sleep 0.05; done
cat {bundle}/out
echo procs=$(wc -l < /sys/fs/cgroup{cg}/cgroup.procs)
{rt} pause {id}
echo freeze=$(cat /sys/fs/cgroup{cg}/cgroup.freeze) status=$({rt} state {id} | grep -o '"status": "[a-z]*"')
{rt} resume {id}
echo freeze=$(cat /sys/fs/cgroup{cg}/cgroup.freeze)
{rt} delete --force {id}
test -d /sys/fs/cgroup{cg} && echo cgroup-left || echo cgroup-gone
"#
    );
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "--propagation", "private", "sh", "-c", &script]);
    let out = output_with_timeout(cmd, Duration::from_secs(60));
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            "devnull-ok",
            "sda-denied",
            "procs=1",
            "freeze=1 status=\"status\": \"paused\"",
            "freeze=0",
            "cgroup-gone"
        ],
        "{}",
        stderr(&out)
    );
    assert!(!cgdir.exists());
}
