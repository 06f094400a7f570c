//! The Python docker SDK (docker-py) drives berthd: `tests/sdk/scenarios.py`.

use std::process::Command;

use berth_testkit as common;

#[test]
fn python_docker_sdk_drives_berthd() {
    let have_sdk = Command::new("python3")
        .args(["-c", "import docker"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        have_sdk,
        "this test needs the Python docker SDK: install python3-docker (scripts/install-deps.sh)"
    );
    assert!(
        common::have_docker_cli(),
        "this test loads its image with the docker CLI: install docker.io"
    );
    let d = common::Daemon::start();
    d.load_busybox();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/scenarios.py");
    let out = d
        .cmd_with("python3", &[script.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scenarios.py failed:\n{}\n{}\nberthd log tail:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        d.log_tail()
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
}
