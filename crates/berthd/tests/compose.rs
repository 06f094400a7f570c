//! Debian's docker-compose (1.29, docker-py underneath) against berthd: the first hour of a
//! Compose user, with Docker's names and outputs.

use std::path::Path;
use std::process::Output;

use berth_testkit::{have_docker_cli, Daemon};

struct Project<'a> {
    d: &'a Daemon,
    file: std::path::PathBuf,
}

impl Project<'_> {
    fn run(&self, args: &[&str]) -> Output {
        let mut all = vec![
            "-f",
            self.file.to_str().unwrap(),
            "-p",
            "proj",
            "--ansi",
            "never",
        ];
        all.extend_from_slice(args);
        self.d.docker_with("docker-compose", &all)
    }

    /// Runs docker-compose; panics with its output unless it succeeds; stdout and stderr.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "docker-compose {args:?}: {}\n{text}\nberthd log tail:\n{}",
            out.status,
            self.d.log_tail()
        );
        text
    }
}

fn write(path: &Path, worker_mode: &str) {
    std::fs::write(
        path,
        format!(
            r#"version: "3.8"
services:
  web:
    image: busybox
    command: sh -c 'echo web up; echo $$GREETING; while true; do sleep 1; done'
    environment:
      GREETING: hello from web
    volumes:
      - data:/data
    labels:
      tier: front
  worker:
    image: busybox
    command: sh -c 'echo worker $$MODE; while true; do sleep 1; done'
    environment:
      MODE: {worker_mode}
volumes:
  data:
"#
        ),
    )
    .unwrap();
}

/// Names and IDs of the containers of the project, as `docker ps -a` shows them.
fn containers(d: &Daemon) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = d
        .ok(&[
            "ps",
            "-a",
            "--filter",
            "label=com.docker.compose.project=proj",
            "--format",
            "{{.Names}} {{.ID}}",
        ])
        .lines()
        .map(|l| {
            let (n, i) = l.split_once(' ').unwrap();
            (n.to_string(), i.to_string())
        })
        .collect();
    v.sort();
    v
}

#[test]
fn docker_compose_up_ps_recreate_run_logs_exec_and_down() {
    assert!(
        have_docker_cli(),
        "this test needs the docker CLI (docker.io) to load its image"
    );
    assert!(
        std::process::Command::new("docker-compose")
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "this test drives berthd with docker-compose 1.29: install it (scripts/install-deps.sh)"
    );
    let d = Daemon::start();
    d.load_busybox();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("docker-compose.yml");
    write(&file, "one");
    let p = Project { d: &d, file };

    let up = p.ok(&["up", "-d"]);
    assert!(up.contains("Creating proj_web_1"), "{up}");
    assert!(up.contains("Creating proj_worker_1"), "{up}");
    let first = containers(&d);
    assert_eq!(
        first.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        ["proj_web_1", "proj_worker_1"]
    );

    // Each container once, by Docker's name, running.
    let ps = p.ok(&["ps"]);
    let rows: Vec<&str> = ps.lines().filter(|l| l.starts_with("proj_")).collect();
    assert_eq!(rows.len(), 2, "{ps}");
    assert!(rows.iter().all(|r| r.contains(" Up")), "{ps}");
    let services = p.ok(&["ps", "--services"]);
    let mut services: Vec<&str> = services.lines().collect();
    services.sort();
    assert_eq!(services, ["web", "worker"]);

    // An edit to one service recreates that one only.
    write(&p.file, "two");
    let up = p.ok(&["up", "-d"]);
    assert!(up.contains("Recreating proj_worker_1"), "{up}");
    assert!(up.contains("proj_web_1 is up-to-date"), "{up}");
    let second = containers(&d);
    assert_eq!(second.len(), 2, "{second:?}");
    assert_eq!(second[0], first[0], "web was recreated");
    assert_eq!(second[1].0, "proj_worker_1");
    assert_ne!(second[1].1, first[1].1, "worker was not recreated");

    // Logs of the new worker, and of web, prefixed as compose 1.29 prefixes them.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let logs = loop {
        let logs = p.ok(&["logs", "--no-color"]);
        if logs.contains("worker two") && logs.contains("hello from web")
            || std::time::Instant::now() > deadline
        {
            break logs;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(logs.contains("worker_1  | worker two"), "{logs}");
    assert!(logs.contains("web_1     | hello from web"), "{logs}");
    assert!(
        !logs.contains("worker one"),
        "the old worker's logs: {logs}"
    );

    // exec in the service's container.
    let exec = p.ok(&[
        "exec",
        "-T",
        "web",
        "sh",
        "-c",
        "echo $GREETING; ls -d /data",
    ]);
    assert_eq!(exec, "hello from web\n/data\n");

    // A one-off with --rm: its own container, gone afterwards.
    let run = p.ok(&["run", "--rm", "-T", "web", "echo", "one-off"]);
    assert!(run.contains("one-off"), "{run}");
    assert_eq!(containers(&d).len(), 2);

    // run -d starts a one-off (proj_web_run_<id>), not the service's container.
    let run = p.ok(&["run", "-d", "web", "sleep", "300"]);
    let oneoff = run
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("proj_web_run_"))
        .unwrap_or_else(|| panic!("no one-off container named: {run}"))
        .to_string();
    let all = containers(&d);
    assert_eq!(all.len(), 3, "{all:?}");
    assert_eq!(all[0], first[0], "the service's container was touched");
    let labels = d.ok(&[
        "inspect",
        "-f",
        "{{index .Config.Labels \"com.docker.compose.oneoff\"}} {{.Config.Cmd}}",
        &oneoff,
    ]);
    assert_eq!(labels, "True [sleep 300]\n");

    // down -v: containers (the one-off too), network and volume gone.
    let down = p.ok(&["down", "-v", "--remove-orphans"]);
    assert!(down.contains("Removing network proj_default"), "{down}");
    assert_eq!(containers(&d), Vec::<(String, String)>::new());
    let volumes = d.ok(&["volume", "ls", "-q"]);
    assert!(!volumes.contains("proj_data"), "{volumes}");
    let networks = d.ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(!networks.contains("proj_default"), "{networks}");
}
