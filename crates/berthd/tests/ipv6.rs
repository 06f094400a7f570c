//! IPv6 through berthd as Docker 28 has it, driven by the docker CLI: dual-stack networks
//! (several IPAM configs, a ULA /64 when none is given), containers' IPv6 addresses, routes,
//! `/etc/hosts` and inspect fields, AAAA answers from the embedded DNS (UDP and TCP),
//! published ports on `[::]` (and `[::1]`), NAT66 and routed mode towards a host outside,
//! `--internal` and isolation for IPv6, and nothing left behind by `network rm`.
//!
//! The "outside" is a network namespace of the test's own, joined to the host by a veth pair
//! with addresses of 2001:db8::/32 (documentation) and no route back to any container subnet:
//! a container reaches it only through berth's NAT66 (or, in routed mode, through a route the
//! test adds). Every test uses subnets of its own, so they can run at once. (busybox's
//! `wget -T` crashes on IPv6 addresses: `timeout` bounds it instead.)

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use berth_testkit::outside::{http_get, Family, Outside};
use berth_testkit::Daemon;

fn sh(cmd: &str) -> String {
    let o = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

/// Retries `f` for up to 10 s until it gives `want`.
fn eventually(what: &str, want: &str, f: impl Fn() -> Result<String, String>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match f() {
            Ok(b) if b.trim() == want => return,
            r => assert!(Instant::now() < deadline, "{what}: {r:?}, want {want}"),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

const SERVE: &str = "mkdir /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www";

fn inspect(d: &Daemon, what: &str, format: &str) -> String {
    d.ok(&["inspect", "-f", format, what]).trim().to_string()
}

/// `docker` with whitespace-separated `args` (none of which has a space); its stdout.
fn ok(d: &Daemon, args: &str) -> String {
    d.ok(&args.split_whitespace().collect::<Vec<_>>())
}

/// The same for a command that must fail; its stderr.
fn fails(d: &Daemon, args: &str) -> String {
    d.fails(&args.split_whitespace().collect::<Vec<_>>())
}

fn net_inspect(d: &Daemon, net: &str, format: &str) -> String {
    d.ok(&["network", "inspect", "-f", format, net])
        .trim()
        .to_string()
}

const CONFIGS: &str = "{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}};{{end}}";

#[test]
fn dual_stack_networks_take_several_subnets_and_survive_a_restart() {
    let mut d = Daemon::with_busybox();
    ok(
        &d,
        "network create --ipv6 --subnet 10.250.1.0/24 --subnet fd00:b0:1::/64 dual",
    );
    assert_eq!(net_inspect(&d, "dual", "{{.EnableIPv6}}"), "true");
    assert_eq!(
        net_inspect(&d, "dual", CONFIGS),
        "10.250.1.0/24 10.250.1.1;fd00:b0:1::/64 fd00:b0:1::1;"
    );
    // The bridge has both gateways.
    let br = format!(
        "{}-{}",
        d.net_prefix(),
        &net_inspect(&d, "dual", "{{.Id}}")[..15 - d.net_prefix().len() - 1]
    );
    let addrs = sh(&format!("ip -o addr show dev {br}"));
    assert!(addrs.contains("inet 10.250.1.1/24"), "{addrs}");
    assert!(addrs.contains("inet6 fd00:b0:1::1/64"), "{addrs}");
    // --ipv6 alone: an IPv4 subnet from the defaults and a ULA /64 (fd00::/8) for IPv6.
    ok(&d, "network create --ipv6 auto6");
    let cfg = net_inspect(&d, "auto6", CONFIGS);
    let v6 = cfg.split(';').nth(1).unwrap();
    assert!(
        v6.starts_with("fd") && v6.contains("::/64 ") && v6.ends_with("::1"),
        "{cfg}"
    );
    // An IPv6 subnet only: IPv4 from the defaults.
    ok(&d, "network create --ipv6 --subnet fd00:b0:2::/64 only6");
    let cfg = net_inspect(&d, "only6", CONFIGS);
    assert!(cfg.ends_with(";fd00:b0:2::/64 fd00:b0:2::1;"), "{cfg}");
    // Any number of configs that overlap nothing, with gateways and ranges.
    ok(&d, "network create --ipv6 --subnet 10.250.2.0/24 --subnet 10.250.3.0/24 --gateway 10.250.3.254 --subnet fd00:b0:3::/64 --ip-range fd00:b0:3::100/120 many");
    // The CLI sends the configs of one family in no fixed order.
    let mut cfg: Vec<String> = net_inspect(&d, "many", CONFIGS)
        .split(';')
        .map(str::to_string)
        .collect();
    cfg.sort();
    assert_eq!(
        cfg.join(";"),
        ";10.250.2.0/24 10.250.2.1;10.250.3.0/24 10.250.3.254;fd00:b0:3::/64 fd00:b0:3::1"
    );
    let ip6 = ok(
        &d,
        "run --rm --network many busybox ip -o -6 addr show eth0 scope global",
    );
    assert!(ip6.contains("inet6 fd00:b0:3::100/64"), "{ip6}");
    let e = fails(&d, "network create --ipv6 --subnet fd00:b0:1::/80 clash");
    assert!(e.contains("Pool overlaps"), "{e}");
    // What was made survives a restart of berthd.
    d.kill9();
    d.spawn();
    assert_eq!(
        net_inspect(&d, "dual", CONFIGS),
        "10.250.1.0/24 10.250.1.1;fd00:b0:1::/64 fd00:b0:1::1;"
    );
    let ip6 = ok(
        &d,
        "run --rm --network dual busybox ip -o -6 addr show eth0 scope global",
    );
    assert!(ip6.contains("inet6 fd00:b0:1::2/64"), "{ip6}");
    for n in ["dual", "auto6", "only6", "many"] {
        d.ok(&["network", "rm", n]);
    }
}

/// A DNS query for `name` of type `qtype` over TCP to `server`; the answer's bytes.
fn dns_tcp(server: &str, name: &str, qtype: u16) -> Vec<u8> {
    let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.').filter(|l| !l.is_empty()) {
        q.push(label.len() as u8);
        q.extend(label.as_bytes());
    }
    q.push(0);
    q.extend(qtype.to_be_bytes());
    q.extend([0, 1]);
    let mut s = TcpStream::connect_timeout(&server.parse().unwrap(), Duration::from_secs(3))
        .expect("the embedded DNS takes TCP");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(&(q.len() as u16).to_be_bytes()).unwrap();
    s.write_all(&q).unwrap();
    let mut len = [0u8; 2];
    s.read_exact(&mut len).unwrap();
    let mut r = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut r).unwrap();
    r
}

#[test]
fn containers_get_ipv6_addresses_routes_hosts_and_aaaa_names() {
    let d = Daemon::with_busybox();
    ok(
        &d,
        "network create --ipv6 --subnet 10.250.11.0/24 --subnet fd00:b0:11::/64 v6net",
    );
    d.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "v6net",
        "busybox",
        "sh",
        "-c",
        SERVE,
    ]);
    assert_eq!(
        inspect(
            &d,
            "web",
            "{{with .NetworkSettings.Networks.v6net}}{{.GlobalIPv6Address}} {{.GlobalIPv6PrefixLen}} {{.IPv6Gateway}} {{.IPAddress}}{{end}}"
        ),
        "fd00:b0:11::2 64 fd00:b0:11::1 10.250.11.2"
    );
    // dockerd's keys, null when unset.
    let ep = inspect(&d, "web", "{{json .NetworkSettings.Networks.v6net}}");
    for key in [
        r#""IPAMConfig":null"#,
        r#""Links":null"#,
        r#""DriverOpts":null"#,
        r#""MacAddress":"02:42:"#,
        r#""Aliases":["#,
    ] {
        assert!(ep.contains(key), "{key} in {ep}");
    }
    let members = net_inspect(&d, "v6net", "{{range .Containers}}{{.IPv6Address}}{{end}}");
    assert_eq!(members, "fd00:b0:11::2/64");
    // The list has them too (docker-py's containers.list, `ps --format`).
    let (_, list) = d.request("GET", "/containers/json", "");
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    let s = &list[0]["NetworkSettings"]["Networks"]["v6net"];
    assert_eq!(s["GlobalIPv6Address"], "fd00:b0:11::2", "{s}");
    assert_eq!(s["IPv6Gateway"], "fd00:b0:11::1", "{s}");
    assert_eq!(s["GlobalIPv6PrefixLen"], 64, "{s}");
    // --ip6, the IPv6 default route, both addresses in /etc/hosts, IPv6 not disabled.
    let out = d.ok(&[
        "run",
        "--rm",
        "--network",
        "v6net",
        "--ip6",
        "fd00:b0:11::99",
        "--hostname",
        "probe",
        "busybox",
        "sh",
        "-c",
        "ip -o -6 addr show eth0 scope global; ip -6 route; cat /etc/hosts; \
         cat /proc/sys/net/ipv6/conf/eth0/disable_ipv6; \
         ping -6 -c1 -W3 web; nslookup -type=AAAA web; wget -qO- http://[fd00:b0:11::2]/",
    ]);
    assert!(out.contains("inet6 fd00:b0:11::99/64"), "{out}");
    assert!(out.contains("default via fd00:b0:11::1 dev eth0"), "{out}");
    assert!(
        out.contains("\n10.250.11.3\tprobe\nfd00:b0:11::99\tprobe\n"),
        "{out}"
    );
    assert!(out.contains("\n0\n"), "disable_ipv6: {out}");
    assert!(out.contains(" 0% packet loss"), "{out}");
    assert!(out.contains("Address: fd00:b0:11::2"), "{out}");
    let web = inspect(&d, "web", "{{.Config.Hostname}}");
    assert!(out.trim_end().ends_with(&web), "{out}");
    // IPAMConfig shows what was asked, for a created container too.
    ok(
        &d,
        "create --name fixed --network v6net --ip6 fd00:b0:11::77 busybox true",
    );
    assert_eq!(
        inspect(
            &d,
            "fixed",
            "{{json .NetworkSettings.Networks.v6net.IPAMConfig}}"
        ),
        r#"{"IPv6Address":"fd00:b0:11::77"}"#
    );
    let e = fails(
        &d,
        "run --rm --network v6net --ip6 fd00:b0:99::5 busybox true",
    );
    assert!(
        e.contains("does not belong to any of this network's subnets"),
        "{e}"
    );
    // The embedded DNS over TCP too (from the host, on the gateway): AAAA and A.
    let aaaa = dns_tcp("10.250.11.1:53", "web", 28);
    let want: std::net::Ipv6Addr = "fd00:b0:11::2".parse().unwrap();
    assert!(aaaa.windows(16).any(|w| w == want.octets()), "{aaaa:?}");
    let a = dns_tcp("10.250.11.1:53", "web", 1);
    assert!(a.windows(4).any(|w| w == [10, 250, 11, 2]), "{a:?}");
    // Connected to a second dual-stack network while running: an address there too.
    ok(&d, "network create --ipv6 --subnet fd00:b0:12::/64 v6two");
    ok(&d, "network connect --ip6 fd00:b0:12::5 v6two web");
    let eth1 = ok(&d, "exec web ip -o -6 addr show eth1");
    assert!(eth1.contains("inet6 fd00:b0:12::5/64"), "{eth1}");
    assert_eq!(
        inspect(
            &d,
            "web",
            "{{.NetworkSettings.Networks.v6two.GlobalIPv6Address}}"
        ),
        "fd00:b0:12::5"
    );
    ok(&d, "network disconnect v6two web");
    ok(&d, "rm -f web fixed");
    ok(&d, "network rm v6net v6two");
}

#[test]
fn published_ports_answer_on_ipv6_from_the_host_outside_and_other_containers() {
    let d = Daemon::with_busybox();
    let outside = Outside::start(Family::V6);
    ok(
        &d,
        "network create --ipv6 --subnet 10.250.21.0/24 --subnet fd00:b0:21::/64 pub6",
    );
    ok(
        &d,
        "network create --ipv6 --subnet 10.250.22.0/24 --subnet fd00:b0:22::/64 other6",
    );
    let id = d.ok(&[
        "run",
        "-d",
        "--network",
        "pub6",
        "-p",
        ":80",
        "busybox",
        "sh",
        "-c",
        SERVE,
    ]);
    let short = &id.trim()[..12];
    let ports = d.ok(&["port", short, "80"]);
    let v6 = ports
        .lines()
        .find_map(|l| l.strip_prefix("[::]:"))
        .unwrap_or_else(|| panic!("no [::] binding in {ports}"))
        .trim()
        .to_string();
    assert!(
        ports.contains(&format!("0.0.0.0:{v6}")),
        "one port for both families: {ports}"
    );
    // From the host: IPv6 loopback (relayed) and IPv4 loopback (DNAT).
    eventually("[::1]", short, || http_get(&format!("[::1]:{v6}"), "/"));
    eventually("127.0.0.1", short, || {
        http_get(&format!("127.0.0.1:{v6}"), "/")
    });
    // From another host, over IPv6, to the host's address on its link (prerouting DNAT).
    let url = format!("http://[{}]:{v6}/", outside.near);
    eventually("from outside", short, || Ok(outside.get(&url)));
    // From containers: the same network (hairpin) and another one (through the isolation).
    for net in ["pub6", "other6"] {
        let got = d.ok(&[
            "run",
            "--rm",
            "--network",
            net,
            "busybox",
            "timeout",
            "3",
            "wget",
            "-qO-",
            &url,
        ]);
        assert_eq!(got.trim(), short, "from {net}");
    }
    // A container without IPv6 (the default bridge) published on [::1]: relayed to its
    // IPv4 address, as through Docker's proxy.
    let v4only = d.ok(&["run", "-d", "-p", "[::1]::80", "busybox", "sh", "-c", SERVE]);
    let v4short = &v4only.trim()[..12];
    let port = d.ok(&["port", v4short, "80"]);
    let port = port.trim().strip_prefix("[::1]:").expect(&port).to_string();
    eventually("[::1] to IPv4", v4short, || {
        http_get(&format!("[::1]:{port}"), "/")
    });
    d.ok(&["rm", "-f", v4short]);
    // A second container cannot have the port, on either family.
    let e = d.fails(&[
        "run",
        "-d",
        "--network",
        "pub6",
        "-p",
        &format!("[::]:{v6}:80"),
        "busybox",
        "sleep",
        "30",
    ]);
    assert!(e.contains("port is already allocated"), "{e}");
    // Gone with the container: the port is free on both families.
    d.ok(&["rm", "-f", short]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpListener::bind(format!("[::]:{v6}")).is_err() {
        assert!(Instant::now() < deadline, "[::]:{v6} still held");
        std::thread::sleep(Duration::from_millis(50));
    }
    let table = sh(&format!("nft list table ip6 {}", d.net_prefix()));
    assert!(!table.contains("dnat to"), "{table}");
    ok(&d, "network rm pub6 other6");
}

#[test]
fn nat66_routed_internal_and_isolation() {
    let d = Daemon::with_busybox();
    let outside = Outside::start(Family::V6);
    let net = |name: &str, n: u8, extra: &[&str]| {
        let (v4, v6) = (format!("10.250.{n}.0/24"), format!("fd00:b0:{n}::/64"));
        let mut args = vec![
            "network", "create", "--ipv6", "--subnet", &v4, "--subnet", &v6,
        ];
        args.extend(extra);
        args.push(name);
        d.ok(&args);
    };
    net("nat6", 31, &[]);
    net(
        "routed6",
        32,
        &["-o", "com.docker.network.bridge.gateway_mode_ipv6=routed"],
    );
    net("int6", 33, &["--internal"]);
    net("iso6", 34, &[]);
    // NAT66: the outside sees the host's address.
    let seen = d.ok(&[
        "run",
        "--rm",
        "--network",
        "nat6",
        "busybox",
        "timeout",
        "5",
        "wget",
        "-qO-",
        &outside.url(),
    ]);
    assert_eq!(seen.trim(), format!("[{}]", outside.near));
    // Routed: the container's own address, given a route back.
    let st = Command::new("ip")
        .args([
            "-n",
            &outside.ns,
            "-6",
            "route",
            "add",
            "fd00:b0:32::/64",
            "via",
            &outside.near,
        ])
        .status()
        .unwrap();
    assert!(st.success());
    let seen = d.ok(&[
        "run",
        "--rm",
        "--network",
        "routed6",
        "--ip6",
        "fd00:b0:32::42",
        "busybox",
        "timeout",
        "5",
        "wget",
        "-qO-",
        &outside.url(),
    ]);
    assert_eq!(seen.trim(), "[fd00:b0:32::42]");
    // Internal: no IPv6 default route and no way out.
    let out = d.docker(&[
        "run",
        "--rm",
        "--network",
        "int6",
        "busybox",
        "sh",
        "-c",
        &format!(
            "ip -6 route; timeout 3 wget -qO- {} ; echo rc=$?",
            outside.url()
        ),
    ]);
    let out = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!out.contains("default"), "{out}");
    assert!(
        out.contains("rc=1") && !out.contains(&outside.near),
        "{out}"
    );
    // Isolation: a container of one network cannot reach one of another over IPv6.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "target",
        "--network",
        "iso6",
        "busybox",
        "sh",
        "-c",
        SERVE,
    ]);
    let target = inspect(
        &d,
        "target",
        "{{.NetworkSettings.Networks.iso6.GlobalIPv6Address}}",
    );
    assert!(target.starts_with("fd00:b0:34::"), "{target}");
    let out = d.docker(&[
        "run",
        "--rm",
        "--network",
        "nat6",
        "busybox",
        "sh",
        "-c",
        &format!("timeout 3 wget -qO- http://[{target}]/; echo rc=$?"),
    ]);
    let out = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.contains("rc=1"),
        "isolated networks reached each other: {out}"
    );
    let same = d.ok(&[
        "run",
        "--rm",
        "--network",
        "iso6",
        "busybox",
        "timeout",
        "3",
        "wget",
        "-qO-",
        &format!("http://[{target}]/"),
    ]);
    assert_eq!(same.trim(), inspect(&d, "target", "{{.Config.Hostname}}"));
    d.ok(&["rm", "-f", "target"]);
    ok(&d, "network rm nat6 routed6 int6 iso6");
}

#[test]
fn network_rm_leaves_no_ipv6_rules_addresses_or_bridges() {
    let d = Daemon::with_busybox();
    let p = d.net_prefix();
    let nft = |family: &str| sh(&format!("nft list table {family} {p} 2>&1"));
    let v4_before = nft("ip");
    assert!(
        nft("ip6").contains("No such file"),
        "no ip6 table without IPv6 networks"
    );
    ok(
        &d,
        "network create --ipv6 --subnet 10.250.41.0/24 --subnet fd00:b0:41::/64 gone6",
    );
    let table = nft("ip6");
    assert!(
        table.contains("fd00:b0:41::/64") && table.contains("masquerade"),
        "{table}"
    );
    assert!(sh("ip6tables -S FORWARD").contains(&format!("--comment {p}")));
    ok(
        &d,
        "run -d --name held6 --network gone6 -p :80 busybox sleep 60",
    );
    assert!(nft("ip6").contains("dnat to"));
    d.ok(&["rm", "-f", "held6"]);
    d.ok(&["network", "rm", "gone6"]);
    assert!(nft("ip6").contains("No such file"), "{}", nft("ip6"));
    assert_eq!(nft("ip"), v4_before);
    assert!(!sh("ip6tables -S FORWARD").contains(&format!("--comment {p} ")));
    let addrs = sh("ip -o -6 addr show");
    assert!(!addrs.contains("fd00:b0:41::"), "{addrs}");
    let links = sh("ip -o link show");
    assert!(!links.contains(&format!("{p}-")), "{links}");
}
