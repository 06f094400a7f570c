//! "Another host" for the networking tests: a web server in a network namespace of the
//! test's own, joined to the host by a veth pair (`near` is the host's end, `far` the
//! server's, port 8080), whose CGI answers with the address a request came from. Addresses
//! are documentation ranges with no route back to any container subnet, so a container
//! reaches it only through berth's NAT (or a route the test adds). Tests running at once
//! each take a slot of their own (a lock file), whose number also names the namespace and
//! veth: whatever of them is there while a test holds the slot was left by a killed test,
//! and is removed first. Everything goes when the value is dropped.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Which family the outside host's addresses are of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// A /30 of 198.51.100.0/24 (TEST-NET-2).
    V4,
    /// A /64 of 2001:db8:b0::/48.
    V6,
}

/// The outside host; see the module's doc.
pub struct Outside {
    /// Its namespace.
    pub ns: String,
    /// The host's end of the veth pair.
    pub veth: String,
    /// The host's address towards it.
    pub near: String,
    /// Its own address.
    pub far: String,
    family: Family,
    server: Option<std::process::Child>,
    www: tempfile::TempDir,
    /// The locked slot file and its path, removed on drop.
    _slot: std::fs::File,
    slot_path: String,
}

impl Outside {
    /// Makes the namespace, the veth pair and the server, and waits until it answers.
    pub fn start(family: Family) -> Outside {
        // Two interfaces with the same subnet would steal each other's traffic. The lock
        // file is removed on drop, so a lock only counts if the path is still that file.
        let (lock, ns_name, veth_name, peer_name) = match family {
            Family::V4 => ("outside", "btout", "btvo", "btvi"),
            Family::V6 => ("outside6", "bt6o", "bt6vo", "bt6vi"),
        };
        let (slot, n) = (0..64u8)
            .find_map(|n| {
                use std::os::unix::fs::MetadataExt;
                let path = format!("/run/berth-test-{lock}-{n}.lock");
                let f = std::fs::File::create(&path).ok()?;
                f.try_lock().ok()?;
                let same = std::fs::metadata(&path).ok()?.ino() == f.metadata().ok()?.ino();
                same.then_some((f, n))
            })
            .expect("a free slot for an outside host");
        let (ns, veth, peer) = (
            format!("{ns_name}{n}"),
            format!("{veth_name}{n}"),
            format!("{peer_name}{n}"),
        );
        let _ = Command::new("ip").args(["link", "del", &veth]).status();
        let _ = Command::new("ip").args(["netns", "del", &ns]).status();
        let (near, far, len, nodad) = match family {
            Family::V4 => (
                format!("198.51.100.{}", n * 4 + 1),
                format!("198.51.100.{}", n * 4 + 2),
                30,
                "",
            ),
            Family::V6 => {
                let addr = |h| std::net::Ipv6Addr::new(0x2001, 0xdb8, 0xb0, n.into(), 0, 0, 0, h);
                (addr(1).to_string(), addr(2).to_string(), 64, " nodad")
            }
        };
        let www = tempfile::tempdir().unwrap();
        let cgi = www.path().join("cgi-bin");
        std::fs::create_dir(&cgi).unwrap();
        let script = cgi.join("ip");
        std::fs::write(
            &script,
            "#!/bin/busybox sh\necho 'Content-Type: text/plain'\necho\necho \"$REMOTE_ADDR\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let mut o = Outside {
            ns: ns.clone(),
            veth: veth.clone(),
            near: near.clone(),
            far: far.clone(),
            family,
            server: None,
            www,
            _slot: slot,
            slot_path: format!("/run/berth-test-{lock}-{n}.lock"),
        };
        for c in [
            format!("ip netns add {ns}"),
            format!("ip link add {veth} type veth peer name {peer}"),
            format!("ip link set {peer} netns {ns}"),
            format!("ip addr add {near}/{len} dev {veth}{nodad}"),
            format!("ip link set {veth} up"),
            format!("ip -n {ns} addr add {far}/{len} dev {peer}{nodad}"),
            format!("ip -n {ns} link set {peer} up"),
            format!("ip -n {ns} link set lo up"),
        ] {
            let st = Command::new("sh").arg("-c").arg(&c).status().unwrap();
            assert!(st.success(), "{c}");
        }
        let listen = o.host(8080);
        o.server = Some(
            Command::new("ip")
                .args([
                    "netns", "exec", &ns, "busybox", "httpd", "-f", "-p", &listen,
                ])
                .arg("-h")
                .arg(o.www.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while http_get(&listen, "/cgi-bin/ip").is_err() {
            assert!(
                Instant::now() < deadline,
                "the outside server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        o
    }

    /// `far:port` (`[far]:port` for IPv6).
    fn host(&self, port: u16) -> String {
        match self.family {
            Family::V4 => format!("{}:{port}", self.far),
            Family::V6 => format!("[{}]:{port}", self.far),
        }
    }

    /// The CGI's address, as a container's wget takes it.
    pub fn url(&self) -> String {
        format!("http://{}/cgi-bin/ip", self.host(8080))
    }

    /// An HTTP GET from inside the outside namespace (busybox's `wget -T` crashes on IPv6
    /// addresses: `timeout` bounds it instead); what came back, or nothing.
    pub fn get(&self, url: &str) -> String {
        let o = Command::new("ip")
            .args([
                "netns", "exec", &self.ns, "busybox", "timeout", "3", "wget", "-qO-", url,
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        if let Some(mut s) = self.server.take() {
            let _ = s.kill();
            let _ = s.wait();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.veth])
            .status();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
        let _ = std::fs::remove_file(&self.slot_path);
    }
}

/// An HTTP/1.0 GET of `path` at `addr` (`127.0.0.1:8080`, `[::1]:8080`); the body (after
/// the server's headers, or a CGI's own bare `\n\n`), or why not.
pub fn http_get(addr: &str, path: &str) -> Result<String, String> {
    let a: SocketAddr = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
    let mut s = TcpStream::connect_timeout(&a, Duration::from_secs(3))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    let body = out
        .split_once("\r\n\r\n")
        .or_else(|| out.split_once("\n\n"))
        .map_or("", |(_, b)| b);
    Ok(body.to_string())
}
