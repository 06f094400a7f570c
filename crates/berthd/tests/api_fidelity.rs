//! The Engine API as docker clients use it (issue 18): what a dockerd 20.10 that is not in a
//! swarm answers, API versions, the image fields older clients read, and the endpoints berth
//! does not serve yet answering with what is missing instead of a 404 or a broken pipe.

use berth_testkit::Daemon;

#[test]
fn versions_outside_the_supported_range_get_dockers_400() {
    let d = Daemon::start();
    let (status, body) = d.request("GET", "/v1.99/version", "");
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("client version 1.99 is too new. Maximum supported API version is 1.44"),
        "{body}"
    );
    let (status, body) = d.request("GET", "/v1.12/containers/json", "");
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("client version 1.12 is too old. Minimum supported API version is 1.24, please upgrade your client to a newer version"),
        "{body}"
    );
    for ok in ["/v1.24/version", "/v1.44/version", "/version"] {
        let (status, body) = d.request("GET", ok, "");
        assert_eq!(status, 200, "{ok}: {body}");
    }
    let v: serde_json::Value = serde_json::from_str(&d.request("GET", "/version", "").1).unwrap();
    assert!(
        v["GoVersion"].as_str().unwrap().starts_with("rustc "),
        "{v}"
    );
}

#[test]
fn swarm_endpoints_answer_as_a_dockerd_outside_a_swarm() {
    let d = Daemon::with_busybox();
    for path in [
        "/swarm",
        "/nodes",
        "/services",
        "/tasks",
        "/secrets",
        "/configs",
        "/v1.41/nodes/abc",
    ] {
        let (status, body) = d.request("GET", path, "");
        assert_eq!(status, 503, "{path}: {body}");
        assert!(
            body.contains("This node is not a swarm manager. Use \\\"docker swarm init\\\""),
            "{path}: {body}"
        );
    }
    let (status, body) = d.request("POST", "/swarm/leave", "");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("This node is not part of a swarm"), "{body}");
    let err = d.fails(&["node", "ls"]);
    assert!(err.contains("This node is not a swarm manager"), "{err}");
    let info = d.ok(&["info"]);
    assert!(info.contains("Swarm: inactive"), "{info}");
    assert!(info.contains("Live Restore Enabled: true"), "{info}");
    let info: serde_json::Value = serde_json::from_str(&d.request("GET", "/info", "").1).unwrap();
    assert_eq!(info["Swarm"]["LocalNodeState"], "inactive");
    assert_eq!(info["ExperimentalBuild"], false);
    assert!(info["Debug"].is_boolean(), "{info}");
}

#[test]
fn what_berth_does_not_serve_yet_says_so() {
    let d = Daemon::with_busybox();
    // docker system prune ends with the build cache: nothing to prune, and the total.
    d.ok(&["run", "--name", "gone", "busybox", "true"]);
    let out = d.ok(&["system", "prune", "-f"]);
    assert!(out.contains("Total reclaimed space:"), "{out}");
    assert!(d.ok(&["ps", "-aq"]).is_empty());
    let (status, body) = d.request("POST", "/build/prune", "");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"SpaceReclaimed\":0"), "{body}");
    // A legacy build: the context is read, the answer is a clear message.
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), "FROM busybox\nRUN true\n").unwrap();
    std::fs::write(ctx.path().join("big"), vec![7u8; 4 << 20]).unwrap();
    let out = d
        .cmd_with(
            "docker",
            &["build", "-t", "x", ctx.path().to_str().unwrap()],
        )
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("building images is not supported by berth yet"),
        "{err}"
    );
    // push and search name the missing registry client; no axum message leaks.
    d.ok(&["tag", "busybox", "127.0.0.1:5999/busybox"]);
    let out = d.docker(&["push", "127.0.0.1:5999/busybox"]);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("pushing images is not supported by berth yet"),
        "{text}"
    );
    assert!(!text.contains("deserialize"), "{text}");
    let err = d.fails(&["search", "busybox"]);
    assert!(
        err.contains("searching registries is not supported"),
        "{err}"
    );
    let (status, body) = d.request("POST", "/auth", r#"{"username":"u","password":"p"}"#);
    assert_eq!(status, 501, "{body}");
    assert!(body.contains("logging in to a registry"), "{body}");
    // Tagging still works, and a tag request without a repository is Docker's 400.
    let (status, body) = d.request("POST", "/images/busybox/tag", "");
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("repository name must have at least one component"),
        "{body}"
    );
}

#[test]
fn image_inspect_carries_container_and_container_config() {
    let d = Daemon::with_busybox();
    let cc = d.ok(&[
        "image",
        "inspect",
        "-f",
        "{{json .ContainerConfig}}",
        "busybox",
    ]);
    let cc: serde_json::Value = serde_json::from_str(&cc).unwrap();
    assert_eq!(cc["Volumes"], serde_json::Value::Null);
    assert_eq!(cc["Image"], "");
    let id = d.ok(&[
        "run",
        "-d",
        "--name",
        "src",
        "busybox",
        "sh",
        "-c",
        "echo x > /f; sleep 30",
    ]);
    let id = id.trim();
    d.ok(&["commit", "src", "committed:1"]);
    let container = d.ok(&["image", "inspect", "-f", "{{.Container}}", "committed:1"]);
    assert_eq!(container.trim(), id);
    d.ok(&["rm", "-f", "src"]);
}

fn exec_create(d: &Daemon, ctr: &str, body: &str) -> String {
    let (status, out) = d.request("POST", &format!("/containers/{ctr}/exec"), body);
    assert_eq!(status, 201, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["Id"].as_str().unwrap().to_string()
}

#[test]
fn exec_output_is_framed_by_the_start_request_and_failures_exit_126_127() {
    let d = Daemon::with_busybox();
    d.ok(&["run", "-d", "--name", "ex", "busybox", "sleep", "300"]);
    // Made with a terminal, started without one: dockerd frames it (stdout, type 1).
    let id = exec_create(
        &d,
        "ex",
        r#"{"Cmd":["echo","hi"],"Tty":true,"AttachStdout":true,"AttachStderr":true}"#,
    );
    let (status, body) = d.request("POST", &format!("/exec/{id}/start"), r#"{"Tty":false}"#);
    assert_eq!(status, 200, "{body}");
    // (The body is chunked: a frame header, then the terminal's "hi\r\n".)
    assert!(body.contains("\u{1}\0\0\0\0\0\0\u{4}hi\r\n"), "{body:?}");
    // Made without one, started with Tty: raw, stdout and stderr together.
    let id = exec_create(
        &d,
        "ex",
        r#"{"Cmd":["sh","-c","echo out; echo err >&2"],"AttachStdout":true,"AttachStderr":true}"#,
    );
    let (status, body) = d.request("POST", &format!("/exec/{id}/start"), r#"{"Tty":true}"#);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("out\n") && body.contains("err\n"), "{body:?}");
    assert!(
        !body.contains('\u{1}') && !body.contains('\u{2}'),
        "{body:?}"
    );
    // A command that cannot run: 127 missing, 126 not executable, as docker exec reports.
    for (cmd, code) in [("nosuch", 127), ("/etc/passwd", 126)] {
        let out = d.docker(&["exec", "ex", cmd]);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    d.ok(&["rm", "-f", "ex"]);
}

#[test]
fn one_image_saves_by_name_and_a_bad_load_answers_in_its_stream() {
    let d = Daemon::with_busybox();
    let dir = tempfile::tempdir().unwrap();
    // GET /images/{name}/get, as docker-py's image.save() asks for it.
    let tar = dir.path().join("one.tar");
    let status = std::process::Command::new("curl")
        .args(["-sf", "--unix-socket"])
        .arg(d.socket())
        .args([
            "-o",
            tar.to_str().unwrap(),
            "http://berth/v1.41/images/busybox/get",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let list = std::process::Command::new("tar")
        .args(["-tf", tar.to_str().unwrap()])
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(list.lines().any(|l| l == "manifest.json"), "{list}");
    let (status, body) = d.request("GET", "/images/nosuch/get", "");
    assert_eq!(status, 404, "{body}");
    // A bad archive: 200, the error inside the stream, as dockerd; the CLI says it and fails.
    let (status, body) = d.request("POST", "/images/load", "not an archive");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"errorDetail\""), "{body}");
    let images = d.ok(&["images", "-q"]);
    assert_eq!(images.lines().count(), 1, "{images}");
}

#[test]
fn network_names_are_anything_but_blank_as_in_dockerd() {
    let d = Daemon::with_busybox();
    d.ok(&["network", "create", "my net"]);
    let out = d.ok(&[
        "run",
        "--rm",
        "--network",
        "my net",
        "busybox",
        "sh",
        "-c",
        "ip -4 -o addr show eth0 | wc -l",
    ]);
    assert_eq!(out, "1\n");
    let ls = d.ok(&[
        "network",
        "ls",
        "--filter",
        "name=my net",
        "--format",
        "{{.Name}}",
    ]);
    assert_eq!(ls, "my net\n");
    d.ok(&["network", "rm", "my net"]);
    let (status, body) = d.request("POST", "/networks/create", r#"{"Name":"  "}"#);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid name"), "{body}");
}

#[test]
fn refused_parameters_get_dockers_json_errors_not_axums_words() {
    let d = Daemon::with_busybox();
    d.ok(&["create", "--name", "named", "busybox", "true"]);
    let (status, body) = d.request("POST", "/containers/named/rename", "");
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("\"message\":\"Neither old nor new names may be empty\""),
        "{body}"
    );
    let (status, body) = d.request("POST", "/containers/named/resize?h=tall&w=80", "");
    assert_eq!(status, 400, "{body}");
    assert!(body.starts_with("{\"message\":"), "{body}");
    assert!(!body.contains("Failed to deserialize"), "{body}");
    let (status, body) = d.request("GET", "/containers/create", "");
    assert_eq!(status, 405, "{body}");
    assert!(body.starts_with("{\"message\":"), "{body}");
}
