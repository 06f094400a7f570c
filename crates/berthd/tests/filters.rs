//! Docker's `--filter`s through the real `docker` CLI against berthd: each key selects only
//! what it names (a filter that is ignored selects everything, and `docker rm -f $(docker
//! ps -aq --filter …)` then removes everything), `label`s are ANDed, and an unknown key is
//! refused with dockerd's `invalid filter 'k'`.

use std::time::{Duration, Instant};

use berth_testkit::Daemon;

/// The lines docker prints, sorted.
fn lines(out: String) -> Vec<String> {
    let mut v: Vec<String> = out.lines().map(String::from).collect();
    v.sort();
    v
}

/// `docker ps -a` with these filters: the names, sorted.
fn ps(d: &Daemon, filters: &[&str]) -> Vec<String> {
    let mut args = vec!["ps", "-a", "--format", "{{.Names}}"];
    for f in filters {
        args.extend(["--filter", f]);
    }
    lines(d.ok(&args))
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A TCP port nothing listens on now.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn ps_filters_select_only_what_they_name() {
    let d = Daemon::with_busybox();
    let bound = d.dir.path().join("bound");
    std::fs::create_dir(&bound).unwrap();
    let bind = format!("{}:/bound", bound.display());
    d.ok(&["volume", "create", "vx"]);
    d.ok(&["network", "create", "fnet"]);
    // Created in this order: before/since go by it.
    d.ok(&[
        "create", "--name", "f-vol", "-v", "vx:/data", "--label", "a=1", "busybox", "true",
    ]);
    d.ok(&[
        "create", "--name", "f-bind", "-v", &bind, "--label", "a=1", "--label", "b=2", "busybox",
        "true",
    ]);
    d.ok(&[
        "create", "--name", "f-plain", "--label", "b=2", "busybox", "true",
    ]);
    let out = d.docker(&["run", "--name", "f-exit", "busybox", "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3));
    d.ok(&[
        "run",
        "-d",
        "--name",
        "f-net",
        "--network",
        "fnet",
        "busybox",
        "sleep",
        "300",
    ]);
    let port = free_port().to_string();
    d.ok(&[
        "run",
        "-d",
        "--name",
        "f-pub",
        "-p",
        &format!("{port}:80"),
        "busybox",
        "sleep",
        "300",
    ]);
    d.ok(&[
        "run", "-d", "--name", "f-exp", "--expose", "9000", "busybox", "sleep", "300",
    ]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "f-health",
        "--health-cmd",
        "true",
        "--health-interval",
        "1s",
        "busybox",
        "sleep",
        "300",
    ]);
    let everything = ps(&d, &[]);
    assert_eq!(everything.len(), 8, "{everything:?}");

    assert_eq!(
        ps(&d, &["label=a", "label=b"]),
        ["f-bind"],
        "labels are ANDed"
    );
    assert_eq!(ps(&d, &["label=a=1"]), ["f-bind", "f-vol"]);
    assert_eq!(ps(&d, &["volume=vx"]), ["f-vol"]);
    assert_eq!(
        ps(&d, &["volume=/bound"]),
        ["f-bind"],
        "a bind's destination"
    );
    assert_eq!(ps(&d, &["volume=/data"]), ["f-vol"]);
    assert!(ps(&d, &["volume=nothing"]).is_empty());
    assert_eq!(ps(&d, &["network=fnet"]), ["f-net"]);
    let fnet = d.ok(&["network", "inspect", "-f", "{{.Id}}", "fnet"]);
    assert_eq!(ps(&d, &[&format!("network={}", &fnet[..12])]), ["f-net"]);
    assert_eq!(ps(&d, &[&format!("publish={port}")]), ["f-pub"]);
    assert_eq!(ps(&d, &[&format!("publish={port}/tcp")]), ["f-pub"]);
    assert!(ps(&d, &[&format!("publish={port}/udp")]).is_empty());
    assert_eq!(ps(&d, &["expose=80/tcp"]), ["f-pub"]);
    assert_eq!(ps(&d, &["expose=8999-9001"]), ["f-exp"]);
    let mut no_check = everything.clone();
    no_check.retain(|n| n != "f-health");
    assert_eq!(ps(&d, &["health=none"]), no_check);
    let deadline = Instant::now() + Duration::from_secs(30);
    while ps(&d, &["health=healthy"]).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(ps(&d, &["health=healthy"]), ["f-health"]);
    assert_eq!(ps(&d, &["before=f-bind"]), ["f-vol"]);
    assert_eq!(
        ps(&d, &["since=f-net"]),
        ["f-exp", "f-health", "f-pub"],
        "the containers made after f-net"
    );
    assert!(ps(&d, &["is-task=true"]).is_empty());
    assert_eq!(ps(&d, &["is-task=false"]), everything);
    assert_eq!(ps(&d, &["exited=3"]), ["f-exit"]);
    assert_eq!(ps(&d, &["status=created"]), ["f-bind", "f-plain", "f-vol"]);
    assert_eq!(ps(&d, &["ancestor=busybox"]), everything);
    assert!(ps(&d, &["ancestor=nosuchimage"]).is_empty());
    assert_eq!(
        ps(&d, &["name=^f-p"]),
        ["f-plain", "f-pub"],
        "a regular expression"
    );
    // Without -a, a status filter still lists stopped containers.
    assert_eq!(
        lines(d.ok(&["ps", "--format", "{{.Names}}", "--filter", "status=exited"])),
        ["f-exit"]
    );

    for (filter, want) in [
        ("bogus=1", "invalid filter 'bogus'"),
        ("status=foo", "invalid filter 'status=foo'"),
        ("health=x", "invalid filter 'health=x'"),
        ("is-task=maybe", "invalid filter 'is-task=[maybe]'"),
        ("exited=x", "invalid filter 'exited=x'"),
        ("before=nosuch", "No such container: nosuch"),
        ("publish=80:80", "should not contain ':'"),
    ] {
        let err = d.fails(&["ps", "-a", "--filter", filter]);
        assert!(err.contains(want), "{filter}: {err}");
    }
    // `docker rm -f $(docker ps -aq --filter …)` removes what it names and nothing else.
    let ids = d.ok(&["ps", "-aq", "--filter", "volume=vx"]);
    assert_eq!(ids.lines().count(), 1, "{ids}");

    // Prune: `label` ANDed, `label!` excludes.
    let pruned = d.ok(&[
        "container",
        "prune",
        "-f",
        "--filter",
        "label=b",
        "--filter",
        "label!=a",
    ]);
    assert_eq!(ps(&d, &["name=f-plain"]), Vec::<String>::new(), "{pruned}");
    assert_eq!(ps(&d, &["label=a"]), ["f-bind", "f-vol"], "{pruned}");
    let err = d.fails(&["container", "prune", "-f", "--filter", "bogus=1"]);
    assert!(err.contains("invalid filter 'bogus'"), "{err}");
    d.ok(&["container", "prune", "-f", "--filter", "until=1h"]);
    assert_eq!(
        ps(&d, &["status=exited"]),
        ["f-exit"],
        "made less than 1h ago"
    );
}

#[test]
fn volume_network_image_and_event_filters() {
    let d = Daemon::with_busybox();
    let since = (unix_now() - 1).to_string();

    // Volumes.
    d.ok(&[
        "volume", "create", "--label", "team=a", "--label", "tier", "v-ab",
    ]);
    d.ok(&["volume", "create", "--label", "team=a", "v-a"]);
    d.ok(&["volume", "create", "--label", "keep", "v-keep"]);
    d.ok(&[
        "create",
        "--name",
        "user",
        "-v",
        "v-a:/data",
        "busybox",
        "true",
    ]);
    let vols = |filters: &[&str]| {
        let mut args = vec!["volume", "ls", "--format", "{{.Name}}"];
        for f in filters {
            args.extend(["--filter", f]);
        }
        lines(d.ok(&args))
    };
    assert_eq!(vols(&["label=team=a", "label=tier"]), ["v-ab"]);
    assert_eq!(vols(&["name=^v-a"]), ["v-a", "v-ab"]);
    assert_eq!(vols(&["name=^v-a$"]), ["v-a"]);
    assert_eq!(vols(&["dangling=true"]), ["v-ab", "v-keep"]);
    assert_eq!(vols(&["dangling=false"]), ["v-a"]);
    assert_eq!(vols(&["driver=local"]).len(), 3);
    let err = d.fails(&["volume", "ls", "--filter", "bogus=1"]);
    assert!(err.contains("invalid filter 'bogus'"), "{err}");
    let err = d.fails(&["volume", "ls", "--filter", "dangling=maybe"]);
    assert!(err.contains("invalid filter 'dangling=[maybe]'"), "{err}");
    let pruned = d.ok(&["volume", "prune", "-a", "-f", "--filter", "label!=keep"]);
    assert_eq!(vols(&[]), ["v-a", "v-keep"], "v-a is in use: {pruned}");

    // Networks.
    d.ok(&[
        "network", "create", "--label", "a", "--label", "b=2", "n-ab",
    ]);
    d.ok(&["network", "create", "--label", "a", "n-a"]);
    d.ok(&["network", "create", "--label", "keep", "n-keep"]);
    let nets = |filters: &[&str]| {
        let mut args = vec!["network", "ls", "--format", "{{.Name}}"];
        for f in filters {
            args.extend(["--filter", f]);
        }
        lines(d.ok(&args))
    };
    assert_eq!(nets(&["label=a", "label=b=2"]), ["n-ab"]);
    assert_eq!(nets(&["type=custom"]), ["n-a", "n-ab", "n-keep"]);
    assert_eq!(nets(&["type=builtin"]), ["bridge", "host", "none"]);
    assert_eq!(nets(&["name=^n-a$"]), ["n-a"]);
    assert_eq!(nets(&["dangling=true"]), ["n-a", "n-ab", "n-keep"]);
    assert_eq!(nets(&["driver=host"]), ["host"]);
    let err = d.fails(&["network", "ls", "--filter", "bogus=1"]);
    assert!(err.contains("invalid filter 'bogus'"), "{err}");
    let pruned = d.ok(&["network", "prune", "-f", "--filter", "label!=keep"]);
    assert_eq!(nets(&["type=custom"]), ["n-keep"], "{pruned}");

    // Images.
    d.ok(&["tag", "busybox:latest", "team/app:v1"]);
    let images = |filters: &[&str]| {
        let mut args = vec!["images", "--format", "{{.Repository}}:{{.Tag}}"];
        for f in filters {
            args.extend(["--filter", f]);
        }
        lines(d.ok(&args))
    };
    assert_eq!(images(&["reference=team/*"]), ["team/app:v1"]);
    assert_eq!(images(&["reference=busy*"]), ["busybox:latest"]);
    assert!(images(&["dangling=true"]).is_empty());
    assert_eq!(images(&["dangling=false"]).len(), 2);
    assert_eq!(images(&["until=2100-01-01T00:00:00Z"]).len(), 2);
    assert!(images(&["label=nosuchlabel"]).is_empty());
    for (filter, want) in [
        ("bogus=1", "invalid filter 'bogus'"),
        ("dangling=maybe", "invalid filter 'dangling=[maybe]'"),
        ("before=nosuchimage", "No such image"),
    ] {
        let err = d.fails(&["images", "--filter", filter]);
        assert!(err.contains(want), "{filter}: {err}");
    }
    let err = d.fails(&["image", "prune", "-f", "--filter", "bogus=1"]);
    assert!(err.contains("invalid filter 'bogus'"), "{err}");

    // Events: those of the test so far, then the stream ends (`--until` a second ahead).
    d.ok(&[
        "create", "--name", "e-ab", "--label", "a", "--label", "b", "busybox", "true",
    ]);
    d.ok(&["create", "--name", "e-a", "--label", "a", "busybox", "true"]);
    let until = (unix_now() + 1).to_string();
    let past = |format: &str, filters: &[&str]| {
        let mut args = vec!["events", "--since", &since, "--until", &until];
        args.extend(["--format", format]);
        for f in filters {
            args.extend(["--filter", f]);
        }
        lines(d.ok(&args))
    };
    let named = "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}";
    assert_eq!(
        past(
            named,
            &["type=container", "event=create", "label=a", "label=b"]
        ),
        ["container create e-ab"],
        "labels are ANDed"
    );
    assert_eq!(
        past(named, &["container=e-a", "event=create"]),
        ["container create e-a", "container create e-ab"],
        "container= matches a name or ID by prefix, as dockerd"
    );
    assert_eq!(
        past(named, &["type=network", "event=create", "network=n-keep"]),
        ["network create n-keep"]
    );
    assert_eq!(
        past("{{.Actor.ID}}", &["event=create", "volume=v-k"]),
        ["v-keep"]
    );
    let err = d.fails(&[
        "events", "--since", &since, "--until", &until, "--filter", "bogus=1",
    ]);
    assert!(err.contains("invalid filter 'bogus'"), "{err}");
}
