//! Living beside other firewall users. dockerd sets the iptables `FORWARD` policy to DROP,
//! and a packet is dropped if any base chain at the forward hook drops it, whatever berth's
//! own table says; so every berth bridge gets ACCEPT rules in `FORWARD` (marked with berth's
//! comment, and removed with the network), as other container engines do beside Docker.
//! They are harmless under an ACCEPT policy, and in place before a dockerd that starts later
//! changes it.

use std::process::{Command, Stdio};

fn iptables(args: &[&str]) -> Option<bool> {
    Command::new("iptables")
        .arg("-w")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()
        .map(|s| s.success())
}

fn specs<'a>(bridge: &'a str, comment: &'a str) -> [Vec<&'a str>; 2] {
    [
        vec![
            "-i",
            bridge,
            "-m",
            "comment",
            "--comment",
            comment,
            "-j",
            "ACCEPT",
        ],
        vec![
            "-o",
            bridge,
            "-m",
            "comment",
            "--comment",
            comment,
            "-j",
            "ACCEPT",
        ],
    ]
}

/// Makes sure `FORWARD` accepts traffic into and out of `bridge` (no-op without iptables).
pub fn allow_forwarding(bridge: &str, comment: &str) {
    for spec in specs(bridge, comment) {
        let mut check = vec!["-C", "FORWARD"];
        check.extend(&spec);
        if iptables(&check) == Some(false) {
            let mut insert = vec!["-I", "FORWARD", "1"];
            insert.extend(&spec);
            if iptables(&insert) != Some(true) {
                tracing::warn!(
                    bridge,
                    "could not add an iptables FORWARD rule for the bridge"
                );
            }
        }
    }
}

/// Removes what [`allow_forwarding`] added for `bridge`.
pub fn forget_forwarding(bridge: &str, comment: &str) {
    for spec in specs(bridge, comment) {
        let mut delete = vec!["-D", "FORWARD"];
        delete.extend(&spec);
        // Every copy (a crash between check and insert could have made two).
        for _ in 0..8 {
            if iptables(&delete) != Some(true) {
                break;
            }
        }
    }
}

/// Removes every `FORWARD` rule carrying exactly `comment`, whichever bridge it names: the
/// sweep for a daemon leaving the host for good, and for tests.
pub fn forget_all(comment: &str) {
    let Ok(out) = Command::new("iptables")
        .args(["-w", "-S", "FORWARD"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
    else {
        return;
    };
    let wanted = format!("--comment {comment} ");
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // `-A FORWARD -i br -m comment --comment x -j ACCEPT`: delete it by its spec.
        let Some(spec) = line.strip_prefix("-A FORWARD ") else {
            continue;
        };
        if !spec.contains(&wanted) {
            continue;
        }
        let mut delete = vec!["-D", "FORWARD"];
        delete.extend(spec.split_whitespace());
        iptables(&delete);
    }
}
