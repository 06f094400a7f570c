//! Container networking through berthd, driven by the real `docker` CLI (and berth's own
//! for its `network` commands): user networks with names and aliases, published ports from
//! the host, NAT to a server outside, `--internal`, the network modes, the /etc files, the
//! API's errors, a restart, and 200 create/remove cycles that leave nothing on the host.
//!
//! The "outside" is a network namespace of the test's own joined to the host by a veth pair
//! with TEST-NET-2 addresses and no route back to any container subnet: a container reaches
//! it only through berth's masquerade.

use std::io::Read;
use std::net::{Ipv4Addr, TcpListener};
use std::process::Command;
use std::time::{Duration, Instant};

use berth_testkit::outside::{http_get, Family, Outside};
use berth_testkit::{have_docker_cli, Daemon};

fn sh(cmd: &str) -> String {
    let o = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The host's primary address: the one on its default route's interface.
fn primary_ip() -> Ipv4Addr {
    let route = sh("ip -4 route show default");
    let dev = route
        .split_whitespace()
        .skip_while(|w| *w != "dev")
        .nth(1)
        .expect("a default route")
        .to_string();
    let addr = sh(&format!("ip -4 -o addr show dev {dev} scope global"));
    addr.split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .and_then(|a| a.parse().ok())
        .expect("an address on the default route's interface")
}

fn tag() -> String {
    format!("{:x}", std::process::id() & 0xffff)
}

/// What berth has on the host for this daemon: its bridges and veths on them, its table.
fn host_state(d: &Daemon) -> (Vec<String>, String) {
    let p = d.net_prefix();
    let mut links: Vec<String> = sh("ip -o link show")
        .lines()
        .filter(|l| l.contains(&p))
        .map(|l| l.split(": ").nth(1).unwrap_or("").to_string())
        .collect();
    links.sort();
    (links, sh(&format!("nft list table ip {p}")))
}

/// Waits (10 s at most) for the host to be as `before`, and says how it is not: veths go
/// with their namespaces, which the kernel destroys in the background.
fn assert_settled(d: &Daemon, before: &(Vec<String>, String)) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while host_state(d) != *before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(host_state(d), *before);
}

#[test]
fn containers_on_a_user_network_find_each_other_by_name_and_alias() {
    let d = Daemon::with_busybox();
    d.ok(&["network", "create", "appnet"]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "appnet",
        "--network-alias",
        "front",
        "busybox",
        "sh",
        "-c",
        "mkdir /www && echo hello-from-web > /www/index.html && exec httpd -f -p 80 -h /www",
    ]);
    let out = d.ok(&[
        "run",
        "--rm",
        "--network",
        "appnet",
        "busybox",
        "sh",
        "-c",
        "nslookup web && nslookup front && wget -qO- http://web/ && wget -qO- http://front/ && ping -c1 -W2 web",
    ]);
    assert_eq!(out.matches("hello-from-web").count(), 2, "{out}");
    assert!(out.contains(" 0% packet loss"), "{out}");
    let ip = d
        .ok(&[
            "inspect",
            "-f",
            "{{.NetworkSettings.Networks.appnet.IPAddress}}",
            "web",
        ])
        .trim()
        .to_string();
    assert!(out.contains(&format!("Address: {ip}")), "{out} lacks {ip}");
    // /etc/resolv.conf points at the network's embedded server; /etc/hosts names itself.
    let files = d.ok(&[
        "run",
        "--rm",
        "--network",
        "appnet",
        "--hostname",
        "probe",
        "busybox",
        "cat",
        "/etc/resolv.conf",
        "/etc/hosts",
    ]);
    let gw = d
        .ok(&[
            "network",
            "inspect",
            "-f",
            "{{range .IPAM.Config}}{{.Gateway}}{{end}}",
            "appnet",
        ])
        .trim()
        .to_string();
    assert!(files.contains(&format!("nameserver {gw}\n")), "{files}");
    assert!(files.contains("\tprobe\n"), "{files}");
    // Names are per network: the default bridge does not know them, and cannot reach web.
    let out = d.docker(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        &format!("timeout 3 wget -qO- http://{ip}/; echo rc=$?"),
    ]);
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("hello-from-web"),
        "isolated networks reached each other"
    );
    // Inspect shows the endpoint; the network shows the container.
    let aliases = d.ok(&[
        "inspect",
        "-f",
        "{{json .NetworkSettings.Networks.appnet.Aliases}}",
        "web",
    ]);
    assert!(aliases.contains("\"front\""), "{aliases}");
    let members = d.ok(&[
        "network",
        "inspect",
        "-f",
        "{{range .Containers}}{{.Name}} {{.IPv4Address}}{{end}}",
        "appnet",
    ]);
    assert!(members.starts_with(&format!("web {ip}/")), "{members}");
    // In use: the network stays.
    let e = d.fails(&["network", "rm", "appnet"]);
    assert!(e.contains("active endpoints"), "{e}");
    d.ok(&["rm", "-f", "web"]);
    d.ok(&["network", "rm", "appnet"]);
    assert!(
        !host_state(&d).0.iter().any(|l| l.contains('-')),
        "the network's bridge is left: {:?}",
        host_state(&d).0
    );
}

#[test]
fn published_ports_reach_the_container_from_the_host_and_are_freed_on_exit() {
    let d = Daemon::with_busybox();
    let start = "mkdir /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www";
    let id = d
        .ok(&[
            "run",
            "-d",
            "-p",
            "127.0.0.1::80",
            "-p",
            ":80",
            "--expose",
            "81",
            "busybox",
            "sh",
            "-c",
            start,
        ])
        .trim()
        .to_string();
    let short = &id[..12];
    let ports = d.ok(&["port", short]);
    let port_of = |prefix: &str| -> u16 {
        ports
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in {ports}"))
    };
    let local = port_of("80/tcp -> 127.0.0.1:");
    let any = port_of("80/tcp -> 0.0.0.0:");
    // The host reaches it at 127.0.0.1 and at its own primary address.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match http_get(&format!("127.0.0.1:{local}"), "/") {
            Ok(b) if b.trim() == short => break,
            r => assert!(Instant::now() < deadline, "127.0.0.1:{local}: {r:?}"),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let primary = primary_ip();
    assert_eq!(
        http_get(&format!("{primary}:{any}"), "/").unwrap().trim(),
        short
    );
    assert_eq!(
        http_get(&format!("127.0.0.1:{any}"), "/").unwrap().trim(),
        short
    );
    // Bound to 127.0.0.1 only: not on the primary address.
    assert!(http_get(&format!("{primary}:{local}"), "/").is_err());
    // Another container reaches it through the host's address (and itself, hairpin).
    let via = d.ok(&[
        "run",
        "--rm",
        "busybox",
        "wget",
        "-qO-",
        &format!("http://{primary}:{any}/"),
    ]);
    assert_eq!(via.trim(), short);
    let hairpin = d.ok(&[
        "exec",
        short,
        "wget",
        "-qO-",
        &format!("http://{primary}:{any}/"),
    ]);
    assert_eq!(hairpin.trim(), short);
    // ps and inspect show them; an exposed-only port is listed without a binding.
    let ps = d.ok(&["ps", "--format", "{{.Ports}}"]);
    assert!(ps.contains(&format!("127.0.0.1:{local}->80/tcp")), "{ps}");
    assert!(ps.contains("81/tcp"), "{ps}");
    // The port is taken: a second container asking for it is refused at start and nothing
    // of its networking is made (it stays created, as with dockerd).
    let before = d.ok(&["ps", "-q"]);
    let host_before = host_state(&d);
    let e = d.fails(&[
        "run",
        "-d",
        "-p",
        &format!("127.0.0.1:{local}:80"),
        "busybox",
        "sleep",
        "30",
    ]);
    assert!(e.contains("port is already allocated"), "{e}");
    assert_eq!(d.ok(&["ps", "-q"]), before);
    assert_settled(&d, &host_before);
    // A range gives the first free port of it.
    let probe = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = probe.local_addr().unwrap().port();
    drop(probe);
    let ranged = d
        .ok(&[
            "run",
            "-d",
            "-p",
            &format!("127.0.0.1:{base}-{}:80", base + 3),
            "busybox",
            "sh",
            "-c",
            start,
        ])
        .trim()
        .to_string();
    let p = d.ok(&["port", &ranged, "80"]);
    let got: u16 = p.trim().rsplit(':').next().unwrap().parse().unwrap();
    assert!((base..=base + 3).contains(&got), "{p}");
    // -P publishes the ports the image EXPOSEs.
    let base = d.ok(&["create", "busybox", "true"]).trim().to_string();
    d.ok(&["commit", "--change", "EXPOSE 80", &base, "exposing:v1"]);
    d.ok(&["rm", &base]);
    let all = d
        .ok(&["run", "-d", "-P", "exposing:v1", "sh", "-c", start])
        .trim()
        .to_string();
    let p = d.ok(&["port", &all, "80/tcp"]);
    let pp: u16 = p.trim().rsplit(':').next().unwrap().parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while http_get(&format!("127.0.0.1:{pp}"), "/").is_err() {
        assert!(Instant::now() < deadline, "-P port {pp} not reachable");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Stopped: the ports are free again and the forwards gone.
    d.ok(&["rm", "-f", short, &ranged, &all]);
    for port in [local, any, got, pp] {
        TcpListener::bind(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("port {port} still held: {e}"));
    }
    let (_, table) = host_state(&d);
    assert!(!table.contains("dnat to"), "{table}");
}

#[test]
fn containers_reach_outside_through_nat_and_internal_networks_cannot() {
    let d = Daemon::with_busybox();
    let outside = Outside::start(Family::V4);
    // The outside has no route to any container: it sees the host's address.
    let seen = d.ok(&["run", "--rm", "busybox", "wget", "-qO-", &outside.url()]);
    assert_eq!(seen.trim(), outside.near);
    d.ok(&["network", "create", "outnet"]);
    let seen = d.ok(&[
        "run",
        "--rm",
        "--network",
        "outnet",
        "busybox",
        "wget",
        "-qO-",
        &outside.url(),
    ]);
    assert_eq!(seen.trim(), outside.near);
    // The other way: from that other host, a published port (arriving on an interface of
    // the host, so through prerouting's DNAT) reaches the container.
    let id = d
        .ok(&[
            "run",
            "-d",
            "-p",
            ":80",
            "busybox",
            "sh",
            "-c",
            "mkdir /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www",
        ])
        .trim()
        .to_string();
    let port = d.ok(&["port", &id, "80"]);
    let port = port.trim().rsplit(':').next().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let o = Command::new("ip")
            .args(["netns", "exec", &outside.ns, "busybox", "wget", "-qO-"])
            .arg(format!("http://{}:{port}/", outside.near))
            .output()
            .unwrap();
        if String::from_utf8_lossy(&o.stdout).trim() == &id[..12] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "from outside: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    d.ok(&["rm", "-f", &id]);
    // A server on the host, on its primary address, is reached too.
    let primary = primary_ip();
    let server = TcpListener::bind((primary, 0)).unwrap();
    let port = server.local_addr().unwrap().port();
    let got = std::thread::spawn(move || {
        let (mut c, peer) = server.accept().unwrap();
        let mut line = String::new();
        c.read_to_string(&mut line).unwrap();
        (line, peer)
    });
    d.ok(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        &format!("echo ping-from-container | nc {primary} {port}"),
    ]);
    let (line, _) = got.join().unwrap();
    assert_eq!(line.trim(), "ping-from-container");
    // --internal: containers reach each other, but nothing outside.
    d.ok(&["network", "create", "--internal", "inner"]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "peer",
        "--network",
        "inner",
        "busybox",
        "sleep",
        "60",
    ]);
    let out = d.ok(&[
        "run",
        "--rm",
        "--network",
        "inner",
        "busybox",
        "sh",
        "-c",
        &format!(
            "ping -c1 -W2 peer >/dev/null && echo peer-ok; timeout 3 wget -qO- {}; echo rc=$?",
            outside.url()
        ),
    ]);
    assert!(out.contains("peer-ok"), "{out}");
    assert!(
        !out.contains(&outside.near),
        "internal reached outside: {out}"
    );
    assert!(!out.contains("rc=0"), "{out}");
    d.ok(&["rm", "-f", "peer"]);
    drop(outside);
}

#[test]
fn network_modes_and_etc_files_are_dockers() {
    let d = Daemon::with_busybox();
    d.ok(&[
        "run",
        "-d",
        "--name",
        "base",
        "busybox",
        "sh",
        "-c",
        "mkdir /www && echo shared > /www/index.html && exec httpd -f -p 80 -h /www",
    ]);
    let base_ip = d
        .ok(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "base"])
        .trim()
        .to_string();
    assert!(base_ip.parse::<Ipv4Addr>().is_ok(), "{base_ip:?}");
    // container: shares base's namespace: its address, its loopback, its hostname.
    let out = d.ok(&[
        "run",
        "--rm",
        "--network",
        "container:base",
        "busybox",
        "sh",
        "-c",
        "ip -4 -o addr show eth0; wget -qO- http://127.0.0.1/; hostname",
    ]);
    assert!(out.contains(&format!("inet {base_ip}/")), "{out}");
    assert!(out.contains("shared"), "{out}");
    let base_host = d.ok(&["inspect", "-f", "{{.Config.Hostname}}", "base"]);
    assert!(out.ends_with(&base_host), "{out} vs {base_host}");
    let e = d.fails(&[
        "run",
        "--rm",
        "--network",
        "container:base",
        "-p",
        "80:80",
        "busybox",
        "true",
    ]);
    assert!(e.contains("conflicting options"), "{e}");
    // none: a loopback that is up, nothing else.
    let out = d.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "ip",
        "-o",
        "link",
    ]);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.contains("lo:") && out.contains(",UP"), "{out}");
    // host: the host's interfaces, its /etc/hosts, and a warning for published ports.
    let out = d.docker(&[
        "run",
        "--rm",
        "--network",
        "host",
        "-p",
        "80:80",
        "busybox",
        "ip",
        "-o",
        "link",
    ]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&d.bridge()),
        "{out:?}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("discarded when using host network mode"),
        "{out:?}"
    );
    // --add-host (host-gateway too), --dns, --dns-search, --dns-option, --hostname, --domainname.
    let gw = d
        .ok(&["inspect", "-f", "{{.NetworkSettings.Gateway}}", "base"])
        .trim()
        .to_string();
    let out = d.ok(&[
        "run",
        "--rm",
        "--hostname",
        "box",
        "--domainname",
        "example.org",
        "--add-host",
        "db:10.1.2.3",
        "--add-host",
        "host.docker.internal:host-gateway",
        "--dns",
        "192.0.2.53",
        "--dns-search",
        "corp.example",
        "--dns-option",
        "ndots:2",
        "busybox",
        "sh",
        "-c",
        "cat /etc/hosts /etc/resolv.conf /etc/hostname",
    ]);
    assert!(out.contains("10.1.2.3\tdb\n"), "{out}");
    assert!(
        out.contains(&format!("{gw}\thost.docker.internal\n")),
        "{out}"
    );
    assert!(out.contains("\tbox.example.org box\n"), "{out}");
    assert!(
        out.contains("nameserver 192.0.2.53\nsearch corp.example\noptions ndots:2\n"),
        "{out}"
    );
    assert!(out.ends_with("box\n"), "{out}");
    d.ok(&["rm", "-f", "base"]);
}

#[test]
fn bad_network_requests_get_dockers_errors_and_change_nothing() {
    let d = Daemon::with_busybox();
    d.ok(&[
        "network",
        "create",
        "--subnet",
        "10.213.0.0/24",
        "--label",
        "team=a",
        "taken",
    ]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "ctr",
        "--network",
        "taken",
        "busybox",
        "sleep",
        "60",
    ]);
    let before = host_state(&d);
    let req = |m: &str, p: &str, b: &str| d.request(m, p, b);
    for (method, path, body, status, want) in [
        (
            "POST",
            "/networks/create",
            r#"{"Name":"over","IPAM":{"Config":[{"Subnet":"10.213.0.128/25"}]}}"#,
            403,
            "overlaps",
        ),
        (
            "POST",
            "/networks/create",
            r#"{"Name":"cidr","IPAM":{"Config":[{"Subnet":"10.300.0.0/24"}]}}"#,
            400,
            "10.300.0.0/24",
        ),
        (
            "POST",
            "/networks/create",
            r#"{"Name":"gw","IPAM":{"Config":[{"Subnet":"10.214.0.0/24","Gateway":"10.9.9.9"}]}}"#,
            400,
            "gateway",
        ),
        (
            "POST",
            "/networks/create",
            r#"{"Name":"taken"}"#,
            409,
            "already exists",
        ),
        (
            "POST",
            "/networks/create",
            r#"{"Name":"  "}"#,
            400,
            "invalid name",
        ),
        (
            "POST",
            "/networks/create",
            r#"{"Name":"x","Driver":"overlay"}"#,
            404,
            "overlay",
        ),
        (
            "POST",
            "/networks/create",
            r#"{"Name":"#,
            400,
            "invalid JSON",
        ),
        (
            "GET",
            "/networks/nosuch",
            "",
            404,
            "network nosuch not found",
        ),
        ("DELETE", "/networks/taken", "", 403, "active endpoints"),
        ("DELETE", "/networks/bridge", "", 403, "pre-defined"),
        (
            "POST",
            "/networks/taken/connect",
            r#"{"Container":"ctr"}"#,
            403,
            "already exists",
        ),
        (
            "POST",
            "/networks/bridge/disconnect",
            r#"{"Container":"nosuch"}"#,
            404,
            "No such container",
        ),
        (
            "POST",
            "/containers/create",
            r#"{"Image":"busybox","HostConfig":{"NetworkMode":"nosuch"}}"#,
            404,
            "network nosuch not found",
        ),
        (
            "POST",
            "/containers/create",
            r#"{"Image":"busybox","HostConfig":{"PortBindings":{"80/tcp":[{"HostPort":"99999"}]}}}"#,
            400,
            "host port",
        ),
        (
            "POST",
            "/containers/create",
            r#"{"Image":"busybox","NetworkingConfig":{"EndpointsConfig":{"bridge":{"IPAMConfig":{"IPv4Address":"172.17.0.99"}}}}}"#,
            400,
            "user defined networks only",
        ),
        (
            "POST",
            "/containers/create",
            r#"{"Image":"busybox","HostConfig":{"NetworkMode":"taken"},"NetworkingConfig":{"EndpointsConfig":{"taken":{"IPAMConfig":{"IPv4Address":"10.99.0.5"}}}}}"#,
            400,
            "does not belong",
        ),
    ] {
        let (got, text) = req(method, path, body);
        assert_eq!(got, status, "{method} {path} {body}: {text}");
        assert!(
            text.contains(want),
            "{method} {path}: {text} lacks {want:?}"
        );
    }
    assert_settled(&d, &before);
    // The label filter and prune: prune keeps a network in use.
    let ls = d.ok(&[
        "network",
        "ls",
        "-f",
        "label=team=a",
        "--format",
        "{{.Name}}",
    ]);
    assert_eq!(ls, "taken\n");
    d.ok(&["network", "create", "spare"]);
    let pruned = d.ok(&["network", "prune", "-f"]);
    assert!(
        pruned.contains("spare") && !pruned.contains("taken"),
        "{pruned}"
    );
    d.ok(&["rm", "-f", "ctr"]);
}

#[test]
fn berth_network_commands_connect_disconnect_and_port() {
    let d = Daemon::start();
    d.berth_load_busybox();
    let id = d.berth_ok(&[
        "network",
        "create",
        "--subnet",
        "10.215.0.0/24",
        "--gateway",
        "10.215.0.254",
        "--ip-range",
        "10.215.0.128/25",
        "--label",
        "k=v",
        "bnet",
    ]);
    assert_eq!(id.trim().len(), 64);
    let ls = d.berth_ok(&["network", "ls"]);
    assert!(
        ls.starts_with("NETWORK ID     NAME      DRIVER    SCOPE\n"),
        "{ls}"
    );
    for n in ["bnet", "bridge", "host", "none"] {
        assert!(ls.contains(&format!(" {n} ")), "{ls}");
    }
    let cfg = d.berth_ok(&[
        "network",
        "inspect",
        "-f",
        "{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}} {{.IPRange}}{{end}} {{.Labels.k}}",
        "bnet",
    ]);
    assert_eq!(cfg, "10.215.0.0/24 10.215.0.254 10.215.0.128/25 v\n");
    d.berth_ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "-p",
        "127.0.0.1::80",
        "busybox",
        "sleep",
        "60",
    ]);
    // Connected while running: a second interface, the fixed address, the alias.
    d.berth_ok(&[
        "network",
        "connect",
        "--ip",
        "10.215.0.200",
        "--alias",
        "wa",
        "bnet",
        "web",
    ]);
    let addrs = d.berth_ok(&["exec", "web", "ip", "-4", "-o", "addr"]);
    assert!(
        addrs.contains("eth1") && addrs.contains("10.215.0.200/24"),
        "{addrs}"
    );
    let found = d.berth_ok(&[
        "run",
        "--rm",
        "--network",
        "bnet",
        "busybox",
        "nslookup",
        "wa",
    ]);
    assert!(found.contains("10.215.0.200"), "{found}");
    // New addresses come from the range.
    let got = d.berth_ok(&[
        "run",
        "--rm",
        "--network",
        "bnet",
        "busybox",
        "ip",
        "-4",
        "-o",
        "addr",
        "show",
        "eth0",
    ]);
    assert!(
        got.contains("inet 10.215.0.128/24") || got.contains("inet 10.215.0.129/24"),
        "{got}"
    );
    let e = d.berth_fails(&["network", "connect", "bnet", "web"]);
    assert!(e.contains("already exists"), "{e}");
    d.berth_ok(&["network", "disconnect", "bnet", "web"]);
    let addrs = d.berth_ok(&["exec", "web", "ip", "-4", "-o", "addr"]);
    assert!(!addrs.contains("eth1"), "{addrs}");
    let e = d.berth_fails(&["network", "disconnect", "bnet", "web"]);
    assert!(e.contains("is not connected"), "{e}");
    // port: all mappings, then one.
    let all = d.berth_ok(&["port", "web"]);
    assert!(all.starts_with("80/tcp -> 127.0.0.1:"), "{all}");
    let one = d.berth_ok(&["port", "web", "80"]);
    assert!(one.starts_with("127.0.0.1:"), "{one}");
    let e = d.berth_fails(&["port", "web", "81"]);
    assert!(e.contains("No public port '81/tcp'"), "{e}");
    // An unknown network: no pull attempt, the real reason.
    let e = d.berth_fails(&["run", "--rm", "--network", "nosuch", "busybox", "true"]);
    assert!(
        e.contains("network nosuch not found") && !e.contains("Unable to find image"),
        "{e}"
    );
    d.berth_ok(&["rm", "-f", "web"]);
    assert_eq!(d.berth_ok(&["network", "rm", "bnet"]), "bnet\n");
    // --opt: the bridge's name and the MTU, as Docker's bridge driver reads them.
    let br = format!("{}x", d.net_prefix());
    d.berth_ok(&[
        "network",
        "create",
        "-o",
        &format!("com.docker.network.bridge.name={br}"),
        "-o",
        "com.docker.network.driver.mtu=1280",
        "optnet",
    ]);
    assert!(sh("ip -o link show type bridge").contains(&format!(": {br}:")));
    let mtu = d.berth_ok(&[
        "run",
        "--rm",
        "--network",
        "optnet",
        "busybox",
        "cat",
        "/sys/class/net/eth0/mtu",
    ]);
    assert_eq!(mtu, "1280\n");
    d.berth_ok(&["network", "rm", "optnet"]);
    assert!(!sh("ip -o link show").contains(&format!(": {br}:")));
}

#[test]
fn networking_survives_a_killed_berthd() {
    let mut d = Daemon::with_busybox();
    d.ok(&["network", "create", "keep"]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "srv",
        "--network",
        "keep",
        "-p",
        "127.0.0.1::80",
        "busybox",
        "sh",
        "-c",
        "mkdir /www && echo still-here > /www/index.html && exec httpd -f -p 80 -h /www",
    ]);
    let port: u16 = d
        .ok(&["port", "srv", "80"])
        .trim()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let ip = d
        .ok(&[
            "inspect",
            "-f",
            "{{.NetworkSettings.Networks.keep.IPAddress}}",
            "srv",
        ])
        .trim()
        .to_string();
    d.kill9();
    // While berthd is away the container still serves through the kernel's forwarding.
    assert_eq!(
        http_get(&format!("127.0.0.1:{port}"), "/").unwrap().trim(),
        "still-here"
    );
    d.spawn();
    assert_eq!(
        http_get(&format!("127.0.0.1:{port}"), "/").unwrap().trim(),
        "still-here"
    );
    // Its name resolves, its address is still its own, its port still held.
    let out = d.ok(&[
        "run",
        "--rm",
        "--network",
        "keep",
        "busybox",
        "sh",
        "-c",
        "wget -qO- http://srv/ && ip -4 -o addr show eth0",
    ]);
    assert!(out.contains("still-here"), "{out}");
    assert!(
        !out.contains(&format!("inet {ip}/")),
        "an address was given twice: {out}"
    );
    assert!(
        TcpListener::bind(("127.0.0.1", port)).is_err(),
        "the port is no longer held"
    );
    d.ok(&["rm", "-f", "srv"]);
    TcpListener::bind(("127.0.0.1", port)).unwrap();
    d.ok(&["network", "rm", "keep"]);
}

#[test]
fn two_hundred_create_remove_cycles_leave_nothing_on_the_host() {
    let d = Daemon::with_busybox();
    d.ok(&["network", "create", "cycle"]);
    let before = host_state(&d);
    let mine = d.dir.path().to_string_lossy().into_owned();
    let mounts = || {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.contains(&mine))
            .count()
    };
    let mounts_before = mounts();
    for i in 0..200 {
        let mut args = vec!["run", "--rm", "--network", "cycle"];
        if i % 2 == 0 {
            args.extend(["-p", "127.0.0.1::80"]);
        }
        args.extend(["busybox", "true"]);
        d.ok(&args);
    }
    // --rm removal finishes after the CLI returns.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !d.ok(&["ps", "-aq"]).is_empty() {
        assert!(Instant::now() < deadline, "containers left");
        std::thread::sleep(Duration::from_millis(20));
    }
    // No veth on its bridges, no forward in its table, no namespace bound.
    assert_settled(&d, &before);
    assert_eq!(mounts(), mounts_before, "mounts (namespaces) leaked");
    let members = d.ok(&["network", "inspect", "-f", "{{len .Containers}}", "cycle"]);
    assert_eq!(members.trim(), "0");
    let netns = std::fs::read_dir(d.dir.path().join("exec/netns"))
        .unwrap()
        .count();
    assert_eq!(netns, 0, "namespace files left");
    // The addresses were all given back: the next container gets the first one.
    let gw = d
        .ok(&[
            "network",
            "inspect",
            "-f",
            "{{range .IPAM.Config}}{{.Gateway}}{{end}}",
            "cycle",
        ])
        .trim()
        .parse::<Ipv4Addr>()
        .unwrap();
    let first = Ipv4Addr::from(u32::from(gw) + 1);
    let out = d.ok(&[
        "run",
        "--rm",
        "--network",
        "cycle",
        "busybox",
        "ip",
        "-4",
        "-o",
        "addr",
        "show",
        "eth0",
    ]);
    assert!(out.contains(&format!("inet {first}/")), "{out}");
}

#[test]
fn berth_and_a_networked_dockerd_live_side_by_side() {
    let mut d = Daemon::with_busybox();
    let t = tag();
    let outside = Outside::start(Family::V4);
    let docker = berth_testkit::Dockerd::start_networked(&format!("btdk{t}"), "10.233.0.1/24");
    let tar = berth_testkit::busybox_archive(docker.dir.path());
    docker.ok(&["load", "-i", tar.to_str().unwrap()]);
    assert_eq!(berth_testkit::forward_policy(), "DROP");
    // Out through NAT, and in through a published port, past Docker's DROP policy; for
    // berth's containers and Docker's alike (`docker` runs the docker CLI against one).
    let both_ways = |who: &str, docker: &dyn Fn(&[&str]) -> String| {
        let seen = docker(&["run", "--rm", "busybox", "wget", "-qO-", &outside.url()]);
        assert_eq!(seen.trim(), outside.near, "{who}");
        let id = docker(&[
            "run",
            "-d",
            "-p",
            "127.0.0.1::80",
            "busybox",
            "sh",
            "-c",
            "mkdir /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www",
        ])
        .trim()
        .to_string();
        let port = docker(&["port", &id, "80"]);
        let port = port.lines().next().unwrap().trim();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match http_get(port, "/") {
                Ok(b) if b.trim() == &id[..12] => break,
                r => assert!(Instant::now() < deadline, "{who}'s {port}: {r:?}"),
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        docker(&["rm", "-f", &id]);
    };
    both_ways("berthd", &|a| d.ok(a));
    // Docker's own networking still works beside berth's.
    both_ways("dockerd", &|a| docker.ok(a));
    // A berthd started after dockerd (its rules first in FORWARD again) works as well.
    d.kill9();
    d.spawn();
    both_ways("berthd, restarted", &|a| d.ok(a));
    drop(docker);
    drop(outside);
}

#[test]
fn the_embedded_dns_forwards_other_names_to_the_containers_servers() {
    let d = Daemon::with_busybox();
    // A DNS server of the test's own, on the default bridge's address (which containers
    // reach and nothing else serves DNS on), knowing one name.
    let gw: Ipv4Addr = d
        .ok(&[
            "network",
            "inspect",
            "-f",
            "{{range .IPAM.Config}}{{.Gateway}}{{end}}",
            "bridge",
        ])
        .trim()
        .parse()
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let zone = berth_network::dns::SharedZone::default();
    zone.write()
        .unwrap()
        .add(Ipv4Addr::new(10, 9, 9, 9), &["outside.test".into()], vec![]);
    let tasks = rt
        .block_on(berth_network::dns::serve((gw, 53).into(), zone, vec![]))
        .unwrap();
    d.ok(&["network", "create", "fwd"]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "named",
        "--network",
        "fwd",
        "busybox",
        "sleep",
        "60",
    ]);
    let out = d.ok(&[
        "run",
        "--rm",
        "--network",
        "fwd",
        "--dns",
        &gw.to_string(),
        "busybox",
        "sh",
        "-c",
        "cat /etc/resolv.conf; nslookup outside.test; nslookup named",
    ]);
    // resolv.conf names the network's server, which answers its own names and forwards
    // the rest to the container's --dns server.
    assert!(!out.contains(&format!("nameserver {gw}")), "{out}");
    assert!(out.contains("Address: 10.9.9.9"), "{out}");
    let named_ip = d
        .ok(&[
            "inspect",
            "-f",
            "{{.NetworkSettings.Networks.fwd.IPAddress}}",
            "named",
        ])
        .trim()
        .to_string();
    assert!(out.contains(&format!("Address: {named_ip}")), "{out}");
    for t in tasks {
        t.abort();
    }
    d.ok(&["rm", "-f", "named"]);
}

#[test]
fn a_published_udp_port_reaches_the_container_and_answers() {
    let d = Daemon::with_busybox();
    let id = d
        .ok(&[
            "run",
            "-d",
            "-p",
            "127.0.0.1::9999/udp",
            "busybox",
            "sleep",
            "60",
        ])
        .trim()
        .to_string();
    let port: u16 = d
        .ok(&["port", &id, "9999/udp"])
        .trim()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let key = d
        .ok(&["inspect", "-f", "{{.NetworkSettings.SandboxKey}}", &id])
        .trim()
        .to_string();
    // busybox has no UDP server: a thread of the test enters the container's network
    // namespace and echoes one datagram back from its port 9999.
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let echo = std::thread::spawn(move || {
        let ns = std::fs::File::open(&key).unwrap();
        // SAFETY: setns on this thread only, with a descriptor of a network namespace.
        let rc = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&ns), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
        let sock = std::net::UdpSocket::bind("0.0.0.0:9999").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        ready_tx.send(()).unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = sock.recv_from(&mut buf).unwrap();
        let mut reply = b"echo:".to_vec();
        reply.extend_from_slice(&buf[..n]);
        sock.send_to(&reply, from).unwrap();
    });
    ready_rx.recv().unwrap();
    let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    client.send_to(b"hello", ("127.0.0.1", port)).unwrap();
    let mut buf = [0u8; 64];
    let (n, _) = client.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"echo:hello");
    echo.join().unwrap();
    d.ok(&["rm", "-f", &id]);
    std::net::UdpSocket::bind(("127.0.0.1", port)).expect("the UDP port is free again");
}

#[test]
fn bip_and_mtu_shape_the_default_bridge() {
    assert!(
        have_docker_cli(),
        "this test drives berthd with the docker CLI"
    );
    let d = Daemon::start_with(&["--bip", "10.240.7.1/24", "--mtu", "1400"]);
    d.load_busybox();
    let out = d.ok(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "ip -4 -o addr show eth0; ip route; cat /sys/class/net/eth0/mtu",
    ]);
    assert!(out.contains("inet 10.240.7.2/24"), "{out}");
    assert!(out.contains("default via 10.240.7.1"), "{out}");
    assert!(out.ends_with("1400\n"), "{out}");
    let bridge = sh(&format!("ip -o addr show dev {}", d.bridge()));
    assert!(bridge.contains("10.240.7.1/24"), "{bridge}");
    let e = Command::new(berth_testkit::bin("berthd"))
        .args(["--bip", "10.240.7.1", "--root", "/nonexistent/x"])
        .output()
        .unwrap();
    assert!(!e.status.success());
    assert!(
        String::from_utf8_lossy(&e.stderr).contains("--bip"),
        "{}",
        String::from_utf8_lossy(&e.stderr)
    );
}
