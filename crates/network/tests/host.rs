//! The network manager on the real host, as root: a network, a sandbox on it with a published
//! port, traffic through the bridge, and nothing left once it is torn down.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::process::Command;

use berth_network::{CreateNetwork, IpamRequest, Join, Manager, Member, NetConfig, PortRequest};

/// A unique prefix per test process, so parallel tests never share a bridge or a table.
fn prefix() -> String {
    format!("bnt{:x}", std::process::id() & 0xffff)
}

fn sh(cmd: &str) -> String {
    let o = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

/// Removes whatever the test made, however it ends.
struct Cleanup(String, std::path::PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let p = &self.0;
        for l in sh("ip -o link show").lines() {
            if let Some(name) = l.split(": ").nth(1) {
                let name = name.split('@').next().unwrap_or(name);
                if name.starts_with(p.as_str()) {
                    let _ = Command::new("ip").args(["link", "del", name]).status();
                }
            }
        }
        for family in ["ip", "ip6"] {
            let _ = Command::new("nft")
                .args(["delete", "table", family, p])
                .status();
        }
        berth_network::iptables::forget_all(p);
        let _ = std::fs::remove_file(berth_network::prefix_lock_path(p));
        let dir = self.1.join("netns");
        if let Ok(d) = std::fs::read_dir(&dir) {
            for e in d.flatten() {
                let _ = Command::new("umount").arg("-l").arg(e.path()).status();
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandbox_on_a_network_reaches_its_gateway_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let p = prefix();
    let _clean = Cleanup(p.clone(), dir.path().to_path_buf());
    let cfg = NetConfig {
        state_dir: dir.path().join("state"),
        netns_dir: dir.path().join("netns"),
        prefix: p.clone(),
        bip: None,
        mtu: None,
    };
    let m = Manager::open(cfg.clone()).await.unwrap();
    let nets = m.list().await;
    assert_eq!(
        nets.iter()
            .map(|n| n.name.as_str())
            .collect::<std::collections::BTreeSet<_>>(),
        ["bridge", "host", "none"].into_iter().collect()
    );
    assert!(sh("ip -o link show type bridge").contains(&format!("{p}0")));

    let net = m
        .create(CreateNetwork {
            name: "appnet".into(),
            ipam: vec![IpamRequest {
                subnet: Some("10.231.0.0/24".into()),
                ..Default::default()
            }],
            labels: BTreeMap::from([("k".into(), "v".into())]),
            ..Default::default()
        })
        .await
        .unwrap();
    let e = m
        .create(CreateNetwork {
            name: "other".into(),
            ipam: vec![IpamRequest {
                subnet: Some("10.231.0.128/25".into()),
                ..Default::default()
            }],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(e.to_string().contains("Pool overlaps"), "{e}");
    let e = m
        .create(CreateNetwork {
            name: "appnet".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(e.to_string().contains("already exists"), "{e}");

    let member = Member {
        id: "c0ffee".repeat(10) + "abcd",
        name: "web".into(),
        dns: vec![],
    };
    let ports = [PortRequest {
        proto: "tcp".into(),
        ctr_port: 80,
        host_ip: Some(Ipv4Addr::LOCALHOST.into()),
        host_ports: (0, 0),
    }];
    let (ns, eps) = m
        .sandbox(
            &member,
            &[Join {
                network: "appnet".into(),
                ip: Some(Ipv4Addr::new(10, 231, 0, 9)),
                aliases: vec!["front".into()],
                ..Default::default()
            }],
            &ports,
        )
        .await
        .unwrap();
    assert_eq!(eps.len(), 1);
    assert_eq!(eps[0].endpoint.ip, Ipv4Addr::new(10, 231, 0, 9));
    assert_eq!(eps[0].endpoint.mac, "02:42:0a:e7:00:09");
    assert_eq!(eps[0].network, "appnet");
    let inside = sh(&format!(
        "nsenter --net={} ip -o addr show eth0",
        ns.display()
    ));
    assert!(inside.contains("10.231.0.9/24"), "{inside}");
    let route = sh(&format!("nsenter --net={} ip route", ns.display()));
    assert!(route.contains("default via 10.231.0.1 dev eth0"), "{route}");
    let ping = sh(&format!(
        "nsenter --net={} busybox ping -c1 -W2 10.231.0.1",
        ns.display()
    ));
    assert!(ping.contains(" 0% packet loss"), "{ping}");
    // The published port: held on the host, forwarded in berth's table.
    let mapped = m.ports_of(&member.id).await;
    assert_eq!(mapped.len(), 1);
    let table = sh(&format!("nft list table ip {p}"));
    assert!(
        table.contains(&format!(
            "dport {} dnat to 10.231.0.9:80",
            mapped[0].host_port
        )),
        "{table}"
    );
    // Its name in the embedded DNS, from inside.
    let dns = sh(&format!(
        "nsenter --net={} busybox nslookup front 10.231.0.1",
        ns.display()
    ));
    assert!(dns.contains("10.231.0.9"), "{dns}");
    // In use: the network cannot go.
    let e = m.remove("appnet").await.unwrap_err();
    assert!(e.to_string().contains("active endpoints"), "{e}");

    m.teardown(&member.id).await;
    assert!(!ns.exists());
    // The veth goes with the namespace, which the kernel destroys in the background.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while sh("ip -o link show type veth").contains(&eps[0].endpoint.host_iface) {
        assert!(
            std::time::Instant::now() < deadline,
            "the veth outlived its namespace"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(!sh(&format!("nft list table ip {p}")).contains("dnat to"));
    m.remove(&net.id).await.unwrap();
    assert!(!sh("ip -o link show").contains(net.bridge.as_deref().unwrap()));

    // What was made survives a restart of the manager (the default bridge's subnet too).
    let before = m.get("bridge").await.unwrap();
    drop(m);
    let again = Manager::open(cfg).await.unwrap();
    assert_eq!(again.get("bridge").await.unwrap().pool, before.pool);
    again.remove_from_host().await;
    assert!(!sh("ip -o link show type bridge").contains(&format!("{p}0")));
}
