//! The detach keys through berth's own CLI on a real terminal (script(1) makes the pty):
//! `run -it`, `start -ai`, `attach` and `exec -it` let go of the container and give the
//! terminal back, as the docker CLI does.

use berth_testkit::{bin, Daemon};

/// Runs `command` (berth's CLI against `d`) on a terminal of its own and types `keys`;
/// its exit code and output. A session that does not let go fails the test after a minute.
fn typed(d: &Daemon, command: &str, keys: &'static [&'static [u8]]) -> (Option<i32>, String) {
    let berth = bin("berth");
    let command = command.replacen("berth", berth.to_str().unwrap(), 1);
    let out = d.typed_under_script(&command, keys);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn running(d: &Daemon, name: &str) -> bool {
    d.berth_ok(&["inspect", "-f", "{{.State.Running}}", name]) == "true\n"
}

#[test]
fn detach_keys_let_go_of_run_start_attach_and_exec() {
    assert!(
        std::process::Command::new("script")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "this test needs script(1) from util-linux"
    );
    let d = Daemon::start();
    d.berth_load_busybox();

    // run -it: typed input reaches the shell; Ctrl-P Ctrl-Q detaches, exit 0, silently.
    let (code, out) = typed(
        &d,
        "berth run -it --name one busybox sh",
        &[b"echo ty''ped\r", b"\x10\x11"],
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("typed"), "{out}");
    assert!(!out.contains("escape"), "{out}");
    assert!(running(&d, "one"));

    // start -ai: the same.
    d.berth_ok(&["create", "-it", "--name", "two", "busybox", "sh"]);
    let (code, out) = typed(
        &d,
        "berth start -ai two",
        &[b"echo st''arted\r", b"\x10\x11"],
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("started"), "{out}");
    assert!(running(&d, "two"));

    // attach with keys of its own: Docker's "read escape sequence" and 1.
    let (code, out) = typed(&d, "berth attach --detach-keys ctrl-x one", &[b"\x18"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("read escape sequence"), "{out}");
    assert!(running(&d, "one"));

    // exec -it: the same, and the container runs on; a Ctrl-P not followed by Ctrl-Q is
    // passed to the process.
    let (code, out) = typed(
        &d,
        "berth exec -it one sh",
        &[b"echo ex''ec\r\x10", b"\x11"],
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("exec"), "{out}");
    assert!(out.contains("read escape sequence"), "{out}");
    assert!(running(&d, "one"));

    // A bad key sequence is refused before anything runs.
    let err = d.berth_fails(&["run", "--detach-keys", "ctrl-", "busybox", "true"]);
    assert!(err.contains("Invalid detach keys"), "{err}");
    d.berth_ok(&["rm", "-f", "one", "two"]);
}
