//! What docker users read about their containers (issue 18, item 10): network counters in
//! `stats`, sizes in `ps -s`, `inspect -s` and `system df`, `top` with ps's own arguments,
//! and the events dockerd sends around attach, exec, OOM and networking.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use berth_testkit::Daemon;

#[test]
fn stats_sizes_and_top_read_what_is_there() {
    let d = Daemon::with_busybox();
    let gw = "{{range .NetworkSettings.Networks}}{{.Gateway}}{{end}}";
    d.ok(&[
        "run",
        "-d",
        "--name",
        "busy",
        "busybox",
        "sh",
        "-c",
        "head -c 3000000 /dev/zero > /blob; while true; do sleep 1; done",
    ]);
    let gateway = d.ok(&["inspect", "-f", gw, "busy"]);
    d.ok(&["exec", "busy", "ping", "-c", "3", "-W", "1", gateway.trim()]);
    // NET I/O from the container's veth: no longer 0B / 0B.
    let net = d.ok(&["stats", "--no-stream", "--format", "{{.NetIO}}", "busy"]);
    assert!(!net.trim().starts_with("0B"), "{net}");
    assert!(!net.trim().ends_with("/ 0B"), "{net}");

    // Sizes: the 3 MB written is the writable layer.
    let deadline = Instant::now() + Duration::from_secs(10);
    while d.ok(&["exec", "busy", "wc", "-c", "/blob"]).trim() != "3000000 /blob" {
        assert!(Instant::now() < deadline, "the blob was not written");
        std::thread::sleep(Duration::from_millis(100));
    }
    let ps = d.ok(&["ps", "-s", "--format", "{{.Size}}", "--filter", "name=busy"]);
    assert!(ps.starts_with("3MB (virtual "), "{ps}");
    let rw = d.ok(&["inspect", "-s", "-f", "{{.SizeRw}} {{.SizeRootFs}}", "busy"]);
    let (rw, root) = rw.trim().split_once(' ').unwrap();
    let (rw, root): (u64, u64) = (rw.parse().unwrap(), root.parse().unwrap());
    assert!((3_000_000..3_200_000).contains(&rw), "{rw}");
    assert!(
        root > rw + 1_000_000,
        "{root}: the image's layers are counted too"
    );
    // system df: the image a container uses is not all reclaimable.
    let df = d.ok(&["system", "df", "--format", "{{.Type}} {{.Reclaimable}}"]);
    let images = df.lines().find(|l| l.starts_with("Images ")).unwrap();
    assert!(images.ends_with("(0%)"), "{df}");

    // top takes ps's arguments.
    let top = d.ok(&["top", "busy", "-o", "pid,comm"]);
    let mut lines = top.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["PID", "COMMAND"]);
    let comms: Vec<&str> = lines.filter_map(|l| l.split_whitespace().nth(1)).collect();
    assert!(comms.contains(&"sh") && comms.contains(&"sleep"), "{top}");
    let aux = d.ok(&["top", "busy", "aux"]);
    assert!(aux.starts_with("USER"), "{aux}");
    assert!(aux.contains("%CPU"), "{aux}");
    let err = d.fails(&["top", "busy", "-o", "comm"]);
    assert!(
        err.contains("Couldn't find PID field in ps output"),
        "{err}"
    );
    d.ok(&["rm", "-f", "busy"]);
}

#[test]
fn events_cover_attach_exec_oom_and_networking() {
    let d = Daemon::with_busybox();
    let mut events = d
        .cmd_with(
            "docker",
            &[
                "events",
                "--format",
                "{{.Type}} {{.Action}} {{index .Actor.Attributes \"name\"}}",
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = events.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Give the stream a moment to be registered before anything happens.
    std::thread::sleep(Duration::from_millis(500));
    d.ok(&["run", "--name", "ev", "busybox", "true"]);
    d.ok(&["run", "-d", "--name", "ex", "busybox", "sleep", "300"]);
    d.ok(&["exec", "ex", "true"]);
    // Killed by the kernel's OOM killer: the run fails, its events say why.
    d.docker(&[
        "run",
        "--name",
        "oom",
        "-m",
        "8m",
        "--memory-swap",
        "8m",
        "busybox",
        "sh",
        "-c",
        "head -c 64m /dev/zero | tail",
    ]);
    d.ok(&["rm", "-f", "ex"]);
    let want = [
        "container attach ev",
        "network connect bridge",
        "container start ev",
        "network disconnect bridge",
        "container die ev",
        "container exec_create: true ex",
        "container exec_start: true ex",
        "container exec_die ex",
        "container oom oom",
        "container die oom",
    ];
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !want.iter().all(|w| seen.iter().any(|s: &String| s == w)) && Instant::now() < deadline {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
            seen.push(l);
        }
    }
    let _ = events.kill();
    let _ = events.wait();
    for w in want {
        assert!(seen.iter().any(|s| s == w), "no {w:?} in {seen:#?}");
    }
    // In dockerd's order for one run: attach, connect, start, disconnect, die.
    let at = |w: &str| seen.iter().position(|s| s == w).unwrap();
    assert!(at("container attach ev") < at("container start ev"));
    assert!(at("container start ev") < at("container die ev"));
    assert!(at("container oom oom") < at("container die oom"));
}
