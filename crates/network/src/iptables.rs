//! Living beside other firewall users. dockerd sets the iptables `FORWARD` policy to DROP,
//! and a packet is dropped if any base chain at the forward hook drops it, whatever berth's
//! own table says; so every berth bridge gets ACCEPT rules in `FORWARD` (marked with berth's
//! comment, and removed with the network), as other container engines do beside Docker.
//! They are harmless under an ACCEPT policy, and in place before a dockerd that starts later
//! changes it. A bridge with IPv6 gets the same in `ip6tables` (Docker 27 and later set that
//! `FORWARD` policy to DROP too).

use std::process::{Command, Stdio};

/// `iptables`, or `ip6tables` for IPv6.
fn tool(v6: bool) -> &'static str {
    if v6 {
        "ip6tables"
    } else {
        "iptables"
    }
}

fn run(tool: &str, args: &[&str]) -> Option<bool> {
    Command::new(tool)
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

/// Makes sure `FORWARD` accepts traffic into and out of `bridge` (no-op without iptables);
/// with `v6` in `ip6tables` as well.
pub fn allow_forwarding(bridge: &str, comment: &str, v6: bool) {
    allow(tool(false), bridge, comment);
    if v6 {
        allow(tool(true), bridge, comment);
    }
}

fn allow(tool: &str, bridge: &str, comment: &str) {
    for spec in specs(bridge, comment) {
        let mut check = vec!["-C", "FORWARD"];
        check.extend(&spec);
        if run(tool, &check) == Some(false) {
            let mut insert = vec!["-I", "FORWARD", "1"];
            insert.extend(&spec);
            if run(tool, &insert) != Some(true) {
                tracing::warn!(
                    bridge,
                    "could not add an {tool} FORWARD rule for the bridge"
                );
            }
        }
    }
}

/// Removes what [`allow_forwarding`] added for `bridge` (`v6`: in `ip6tables` too).
pub fn forget_forwarding(bridge: &str, comment: &str, v6: bool) {
    let tools: &[bool] = if v6 { &[false, true] } else { &[false] };
    for v6 in tools {
        for spec in specs(bridge, comment) {
            let mut delete = vec!["-D", "FORWARD"];
            delete.extend(&spec);
            // Every copy (a crash between check and insert could have made two).
            for _ in 0..8 {
                if run(tool(*v6), &delete) != Some(true) {
                    break;
                }
            }
        }
    }
}

/// Removes every `FORWARD` rule carrying exactly `comment`, whichever bridge it names, in
/// `iptables` and `ip6tables`: the sweep for a daemon leaving the host for good, and for
/// tests.
pub fn forget_all(comment: &str) {
    forget_all_in(tool(false), comment);
    forget_all_in(tool(true), comment);
}

fn forget_all_in(tool: &str, comment: &str) {
    let Ok(out) = Command::new(tool)
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
        run(tool, &delete);
    }
}
