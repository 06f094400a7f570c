//! From Docker's view of a container (image config + create request) to an OCI runtime spec.
//!
//! Pure functions: they read nothing but what they are given (the rootfs's passwd and group
//! files are passed in as text), so every rule here is unit-tested. The defaults follow
//! moby's `oci/defaults.go` and `daemon/oci_linux.go`: Docker's default capability set, masked
//! and read-only /proc paths, the device allow-list, /dev/shm of 64 MiB.

use std::collections::BTreeMap;
use std::path::Path;

use bollard_stubs::models::{ContainerConfig, HostConfig};
use serde_json::{json, Value};

use crate::seccomp;

/// The `PATH` Docker gives a container whose image sets none.
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Docker's default capabilities (moby `oci/caps/defaults.go`).
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability the kernels we run on know, for `--privileged` and `--cap-add ALL`.
pub const ALL_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// A bad create request, in words a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SpecError(pub String);

fn bad(msg: impl Into<String>) -> SpecError {
    SpecError(msg.into())
}

/// Merges the image's config into the container's, as dockerd does at create time
/// (moby `daemon/commit.go: merge`): unset fields come from the image, the environment is the
/// image's overridden key by key, and the image's `Cmd` is used only when the request sets
/// neither `Cmd` nor a non-empty `Entrypoint`.
pub fn merge_image_config(c: &mut ContainerConfig, image: Option<&oci_spec::image::Config>) {
    let Some(img) = image else { return };
    if c.user.as_deref().unwrap_or("").is_empty() {
        c.user = img.user().clone().filter(|u| !u.is_empty());
    }
    let mut env: Vec<String> = img.env().clone().unwrap_or_default();
    for e in c.env.take().unwrap_or_default() {
        let key = e.split('=').next().unwrap_or("");
        if let Some(slot) = env
            .iter_mut()
            .find(|x| x.split('=').next().unwrap_or("") == key)
        {
            *slot = e;
        } else {
            env.push(e);
        }
    }
    c.env = Some(env);
    if c.entrypoint.as_ref().is_none_or(|e| e.is_empty()) {
        if c.cmd.as_ref().is_none_or(|c| c.is_empty()) {
            c.cmd = img.cmd().clone();
        }
        if c.entrypoint.is_none() {
            c.entrypoint = img.entrypoint().clone();
        }
    }
    // `--entrypoint ''` (the docker CLI sends `[""]`): no entrypoint, and, as with any
    // entrypoint given, not the image's cmd either (dockerd records it as null).
    if c.entrypoint.as_deref() == Some(&[String::new()][..]) {
        c.entrypoint = None;
    }
    if c.working_dir.as_deref().unwrap_or("").is_empty() {
        c.working_dir = img.working_dir().clone().filter(|w| !w.is_empty());
    }
    if c.stop_signal.is_none() {
        c.stop_signal = img.stop_signal().clone();
    }
    if let Some(labels) = img.labels() {
        let mine = c.labels.get_or_insert_with(Default::default);
        for (k, v) in labels {
            mine.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    if let Some(ports) = img.exposed_ports() {
        let mine = c.exposed_ports.get_or_insert_with(Vec::new);
        for p in ports {
            if !mine.contains(p) {
                mine.push(p.clone());
            }
        }
    }
    if let Some(v) = img.volumes() {
        let mine = c.volumes.get_or_insert_with(Vec::new);
        for p in v {
            if !mine.contains(p) {
                mine.push(p.clone());
            }
        }
    }
}

/// The process's argv: entrypoint then cmd.
pub fn argv(c: &ContainerConfig) -> Result<Vec<String>, SpecError> {
    let mut args: Vec<String> = c.entrypoint.clone().unwrap_or_default();
    args.extend(c.cmd.clone().unwrap_or_default());
    if args.is_empty() || args[0].is_empty() {
        return Err(bad("No command specified"));
    }
    Ok(args)
}

/// A user resolved against the container's /etc/passwd and /etc/group.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct User {
    /// uid.
    pub uid: u32,
    /// gid.
    pub gid: u32,
    /// Supplementary groups (from /etc/group membership).
    pub additional_gids: Vec<u32>,
    /// The home directory, for `HOME`.
    pub home: String,
}

/// Resolves Docker's `--user` forms (`name`, `uid`, `name:group`, `uid:gid`, ...) as moby's
/// `user.GetExecUser` does: names must exist in the image; numbers need not.
pub fn resolve_user(spec: &str, passwd: &str, group: &str) -> Result<User, SpecError> {
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let u = if u.is_empty() { "0" } else { u };
    let pw: Vec<Vec<&str>> = passwd
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 7)
        .collect();
    let gr: Vec<Vec<&str>> = group
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 4)
        .collect();
    let entry = pw
        .iter()
        .find(|f| f[0] == u || (u.parse::<u32>().is_ok() && f[2] == u));
    let mut user = match (entry, u.parse::<u32>()) {
        (Some(f), _) => User {
            uid: f[2]
                .parse()
                .map_err(|_| bad(format!("bad uid in /etc/passwd for {u}")))?,
            gid: f[3]
                .parse()
                .map_err(|_| bad(format!("bad gid in /etc/passwd for {u}")))?,
            additional_gids: Vec::new(),
            home: f[5].to_string(),
        },
        (None, Ok(uid)) => User {
            uid,
            gid: 0,
            additional_gids: Vec::new(),
            home: "/".into(),
        },
        (None, Err(_)) => {
            return Err(bad(format!(
                "unable to find user {u}: no matching entries in passwd file"
            )))
        }
    };
    if let Some(g) = g {
        user.gid = match gr.iter().find(|f| f[0] == g) {
            Some(f) => f[2]
                .parse()
                .map_err(|_| bad(format!("bad gid in /etc/group for {g}")))?,
            None => g.parse().map_err(|_| {
                bad(format!(
                    "unable to find group {g}: no matching entries in group file"
                ))
            })?,
        };
    } else if let Some(name) = entry.map(|f| f[0]) {
        for f in &gr {
            if f[3].split(',').any(|m| m == name) {
                if let Ok(gid) = f[2].parse::<u32>() {
                    if gid != user.gid && !user.additional_gids.contains(&gid) {
                        user.additional_gids.push(gid);
                    }
                }
            }
        }
    }
    Ok(user)
}

/// Adds `--group-add` groups (names from the container's /etc/group, or numbers) to the
/// user's supplementary groups, as dockerd does for the container and its execs.
pub fn add_groups(user: &mut User, groups: &[String], group: &str) -> Result<(), SpecError> {
    for g in groups {
        let gid = match group
            .lines()
            .map(|l| l.split(':').collect::<Vec<_>>())
            .find(|f| f.len() >= 3 && f[0] == g)
        {
            Some(f) => f[2]
                .parse()
                .map_err(|_| bad(format!("bad gid in /etc/group for {g}")))?,
            None => g.parse::<u32>().map_err(|_| {
                bad(format!(
                    "Unable to find group {g}: no matching entries in group file"
                ))
            })?,
        };
        if !user.additional_gids.contains(&gid) {
            user.additional_gids.push(gid);
        }
    }
    Ok(())
}

/// What the spec is made from besides the container's config.
pub struct Inputs<'a> {
    /// The container ID.
    pub id: &'a str,
    /// The mounted rootfs.
    pub rootfs: &'a Path,
    /// The directory holding the container's `hostname`, `hosts` and `resolv.conf`.
    pub etc_dir: &'a Path,
    /// The hostname.
    pub hostname: &'a str,
    /// The resolved user.
    pub user: &'a User,
    /// The cgroup path (relative to each hierarchy's root).
    pub cgroup: &'a str,
    /// The host's cgroups are v2 only (Docker then defaults to a private cgroup namespace).
    pub cgroup_v2: bool,
    /// Binds, volumes and tmpfs mounts, resolved from `-v`/`--mount`/`VOLUME` by the engine.
    pub mounts: &'a [bollard_stubs::models::MountPoint],
    /// Host devices (`--device`), resolved by the engine.
    pub devices: &'a [Device],
    /// The host's architecture and kernel, which seccomp profiles' rules may depend on.
    pub host: seccomp::Host,
    /// The init binary to run as pid 1 (`--init`), when the container has one.
    pub init: Option<&'a Path>,
    /// Which network namespace it runs in.
    pub netns: NetNs<'a>,
    /// Legacy links' variables (`DB_PORT=...`): before the container's own environment,
    /// which wins on a clash, as in dockerd.
    pub link_env: &'a [String],
}

/// A container's network namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetNs<'a> {
    /// The host's (`--network host`).
    Host,
    /// A new one the runtime makes (`--network none`: loopback only).
    New,
    /// The one bound on this file: a sandbox made for it, or another container's.
    Join(&'a Path),
}

/// Where `--init` puts the init binary in the container, as dockerd does.
pub const INIT_PATH: &str = "/sbin/docker-init";

/// A host device made available in the container (`--device`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Where it appears in the container.
    pub path: String,
    /// `c` or `b`.
    pub kind: char,
    /// Major number.
    pub major: u64,
    /// Minor number.
    pub minor: u64,
    /// Permission bits of the node.
    pub mode: u32,
    /// cgroup access: some of `rwm`.
    pub access: String,
}

/// Splits `--device host[:container[:rwm]]` (Docker's forms).
pub fn parse_device(spec: &str) -> Result<(String, String, String), SpecError> {
    let parts: Vec<&str> = spec.split(':').collect();
    let valid_access = |a: &str| !a.is_empty() && a.chars().all(|c| "rwm".contains(c));
    let (host, ctr, access) = match parts.as_slice() {
        [h] => (*h, *h, "rwm"),
        [h, a] if valid_access(a) => (*h, *h, *a),
        [h, c] => (*h, *c, "rwm"),
        [h, c, a] => (*h, *c, *a),
        _ => return Err(bad(format!("invalid device specification: {spec}"))),
    };
    if !host.starts_with('/') || !ctr.starts_with('/') {
        return Err(bad(format!(
            "invalid device specification: {spec}: paths must be absolute"
        )));
    }
    if !valid_access(access) {
        return Err(bad(format!(
            "invalid device specification: {spec}: bad cgroup permissions {access:?}"
        )));
    }
    Ok((host.into(), ctr.into(), access.into()))
}

/// Builds config.json.
pub fn build(c: &ContainerConfig, h: &HostConfig, i: &Inputs) -> Result<Value, SpecError> {
    let privileged = h.privileged.unwrap_or(false);
    let tty = c.tty.unwrap_or(false);
    let mut args = argv(c)?;
    if i.init.is_some() {
        // The init reaps zombies and forwards signals to the command, its only child.
        args.splice(0..0, [INIT_PATH.to_string(), "--".into()]);
    }

    // Environment: the merged config's, plus what Docker adds.
    let mut env: Vec<String> = vec![format!("HOSTNAME={}", i.hostname)];
    let mut cenv = c.env.clone().unwrap_or_default();
    if !cenv.iter().any(|e| e.starts_with("PATH=")) {
        cenv.insert(0, DEFAULT_PATH.into());
    }
    let key = |e: &str| e.split('=').next().unwrap_or("").to_string();
    let own: std::collections::HashSet<String> = cenv.iter().map(|e| key(e)).collect();
    env.extend(
        i.link_env
            .iter()
            .filter(|e| !own.contains(&key(e)))
            .cloned(),
    );
    env.extend(cenv);
    if tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!(
            "HOME={}",
            if i.user.home.is_empty() {
                "/"
            } else {
                &i.user.home
            }
        ));
    }

    let caps = capabilities(h)?;
    let mut no_new_privs = false;
    let mut filter = seccomp::Choice::Default;
    for opt in h.security_opt.clone().unwrap_or_default() {
        let (k, v) = opt.split_once(['=', ':']).unwrap_or((&opt, "true"));
        match k {
            "no-new-privileges" => {
                no_new_privs = v
                    .parse::<bool>()
                    .map_err(|_| bad(format!("invalid --security-opt: {opt:?}")))?
            }
            "seccomp" => filter = seccomp::Choice::parse(v)?,
            "label" | "apparmor" => {}
            _ => return Err(bad(format!("invalid --security-opt: {opt:?}"))),
        }
    }
    // As dockerd: privileged containers run without a filter.
    let filter = match (&filter, privileged) {
        (_, true) | (seccomp::Choice::Unconfined, _) => None,
        (seccomp::Choice::Default, _) => Some(seccomp::default_profile().to_oci(&caps, i.host)),
        (seccomp::Choice::Custom(p), _) => Some(p.to_oci(&caps, i.host)),
    };

    let rlimits = h
        .ulimits
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|u| {
            let name = u.name.unwrap_or_default();
            Ok(json!({
                "type": format!("RLIMIT_{}", rlimit_name(&name)?),
                "soft": u.soft.unwrap_or(0),
                "hard": u.hard.unwrap_or(0),
            }))
        })
        .collect::<Result<Vec<_>, SpecError>>()?;

    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", if privileged { "rw" } else { "ro" }]}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", if privileged { "rw" } else { "ro" }]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
    ];
    let shm = h.shm_size.filter(|s| *s > 0).unwrap_or(64 << 20);
    mounts.push(json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", format!("size={shm}")]}));
    if let Some(init) = i.init {
        mounts.push(json!({
            "destination": INIT_PATH, "type": "bind", "source": init,
            "options": ["rbind", "rprivate", "ro"],
        }));
    }
    for f in ["resolv.conf", "hostname", "hosts"] {
        mounts.push(json!({
            "destination": format!("/etc/{f}"), "type": "bind",
            "source": i.etc_dir.join(f), "options": ["rbind", "rprivate"],
        }));
    }
    for m in i.mounts {
        let dst = m.destination.clone().unwrap_or_default();
        let rw = m.rw.unwrap_or(true);
        if m.typ.as_deref() == Some("tmpfs") {
            let mut o = vec!["nosuid".to_string(), "nodev".into(), "noexec".into()];
            o.extend(m.mode.clone().filter(|x| !x.is_empty()));
            if !rw {
                o.push("ro".into());
            }
            mounts.push(
                json!({"destination": dst, "type": "tmpfs", "source": "tmpfs", "options": o}),
            );
            continue;
        }
        let prop = m
            .propagation
            .clone()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "rprivate".into());
        let mut o = vec!["rbind".to_string(), prop];
        if !rw {
            o.push("ro".into());
        }
        mounts.push(json!({"destination": dst, "type": "bind", "source": m.source, "options": o}));
    }
    for (dst, opts) in h.tmpfs.clone().unwrap_or_default() {
        if !dst.starts_with('/') {
            return Err(bad(format!(
                "invalid --tmpfs {dst:?}: the path must be absolute"
            )));
        }
        let mut o = vec!["nosuid".to_string(), "nodev".into(), "noexec".into()];
        o.extend(opts.split(',').filter(|s| !s.is_empty()).map(String::from));
        mounts.push(json!({"destination": dst, "type": "tmpfs", "source": "tmpfs", "options": o}));
    }
    // Later mounts over the same destination win, as in Docker (a bind over /etc/hosts...).
    let mut seen = BTreeMap::new();
    for (n, m) in mounts.iter().enumerate() {
        seen.insert(m["destination"].as_str().unwrap_or("").to_string(), n);
    }
    let mut mounts: Vec<Value> = mounts
        .into_iter()
        .enumerate()
        .filter(|(n, m)| seen.get(m["destination"].as_str().unwrap_or("")) == Some(n))
        .map(|(_, m)| m)
        .collect();
    // Parents before children, as dockerd sorts them: a volume over /etc must not hide the
    // /etc/hosts bind that follows it (the sort is stable, so equal depths keep their order).
    mounts.sort_by_key(|m| {
        m["destination"]
            .as_str()
            .unwrap_or("")
            .trim_end_matches('/')
            .matches('/')
            .count()
    });

    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
    ];
    match i.netns {
        NetNs::Host => {}
        NetNs::New => namespaces.push(json!({"type": "network"})),
        NetNs::Join(p) => namespaces.push(json!({"type": "network", "path": p})),
    }
    if h.pid_mode.as_deref() == Some("host") {
        namespaces.retain(|n| n["type"] != "pid");
    }
    if h.ipc_mode.as_deref() == Some("host") {
        namespaces.retain(|n| n["type"] != "ipc");
    }
    let cgroupns = h
        .cgroupns_mode
        .map(|m| m.to_string())
        .unwrap_or_else(|| if i.cgroup_v2 { "private" } else { "host" }.into());
    if cgroupns == "private" {
        namespaces.push(json!({"type": "cgroup"}));
    }

    let mut resources = json!({});
    let mut devices = vec![json!({"allow": privileged, "access": "rwm"})];
    if !privileged {
        for (t, maj, min) in [
            ("c", -1i64, -1i64),
            ("b", -1, -1),
            ("c", 1, 3),
            ("c", 1, 5),
            ("c", 1, 7),
            ("c", 1, 8),
            ("c", 1, 9),
            ("c", 5, 0),
            ("c", 5, 1),
            ("c", 5, 2),
            ("c", 136, -1),
            ("c", 10, 200),
        ] {
            let access = if maj == -1 { "m" } else { "rwm" };
            let mut d = json!({"allow": true, "type": t, "access": access});
            if maj >= 0 {
                d["major"] = json!(maj);
            }
            if min >= 0 {
                d["minor"] = json!(min);
            }
            devices.push(d);
        }
    }
    for d in i.devices {
        devices.push(json!({"allow": true, "type": d.kind.to_string(), "major": d.major, "minor": d.minor, "access": d.access}));
    }
    resources["devices"] = json!(devices);
    let memory = h.memory.unwrap_or(0);
    if memory > 0 {
        let mut m = json!({"limit": memory});
        match h.memory_swap.unwrap_or(0) {
            -1 => m["swap"] = json!(-1),
            0 => m["swap"] = json!(memory * 2),
            s if s < memory => {
                return Err(bad(
                    "minimum memoryswap limit should be larger than memory limit, see usage",
                ))
            }
            s => m["swap"] = json!(s),
        }
        if let Some(r) = h.memory_reservation.filter(|r| *r > 0) {
            m["reservation"] = json!(r);
        }
        resources["memory"] = m;
    } else if h.memory_swap.unwrap_or(0) > 0 {
        return Err(bad(
            "you should always set the memory limit when using memoryswap limit, see usage",
        ));
    }
    let mut cpu = serde_json::Map::new();
    if let Some(s) = h.cpu_shares.filter(|s| *s > 0) {
        cpu.insert("shares".into(), json!(s));
    }
    let nano = h.nano_cpus.unwrap_or(0);
    if nano > 0 {
        if h.cpu_quota.unwrap_or(0) > 0 || h.cpu_period.unwrap_or(0) > 0 {
            return Err(bad(
                "conflicting options: Nano CPUs and CPU Period/Quota cannot both be set",
            ));
        }
        let period = 100_000i64;
        cpu.insert("period".into(), json!(period));
        cpu.insert("quota".into(), json!(nano * period / 1_000_000_000));
    }
    if let Some(q) = h.cpu_quota.filter(|q| *q > 0) {
        cpu.insert("quota".into(), json!(q));
    }
    if let Some(p) = h.cpu_period.filter(|p| *p > 0) {
        cpu.insert("period".into(), json!(p));
    }
    if let Some(c) = h.cpuset_cpus.clone().filter(|c| !c.is_empty()) {
        cpu.insert("cpus".into(), json!(c));
    }
    if let Some(m) = h.cpuset_mems.clone().filter(|m| !m.is_empty()) {
        cpu.insert("mems".into(), json!(m));
    }
    if !cpu.is_empty() {
        resources["cpu"] = Value::Object(cpu);
    }
    if let Some(p) = h.pids_limit.filter(|p| *p > 0) {
        resources["pids"] = json!({"limit": p});
    }
    if let Some(w) = h.blkio_weight.filter(|w| *w > 0) {
        resources["blockIO"] = json!({"weight": w});
    }

    let mut linux = json!({
        "namespaces": namespaces,
        "resources": resources,
        "cgroupsPath": i.cgroup,
    });
    if let Some(s) = filter {
        linux["seccomp"] = s;
    }
    if !privileged {
        linux["maskedPaths"] = json!(MASKED_PATHS);
        linux["readonlyPaths"] = json!(READONLY_PATHS);
    }
    if let Some(s) = h.sysctls.clone().filter(|s| !s.is_empty()) {
        linux["sysctl"] = json!(s);
    }
    if !i.devices.is_empty() {
        linux["devices"] = json!(i
            .devices
            .iter()
            .map(|d| json!({
                "path": d.path, "type": d.kind.to_string(), "major": d.major, "minor": d.minor,
                "fileMode": d.mode, "uid": 0, "gid": 0,
            }))
            .collect::<Vec<_>>());
    }

    let mut process = json!({
        "terminal": tty,
        "user": {"uid": i.user.uid, "gid": i.user.gid},
        "args": args,
        "env": env,
        "cwd": c.working_dir.clone().filter(|w| !w.is_empty()).unwrap_or_else(|| "/".into()),
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "noNewPrivileges": no_new_privs,
    });
    if !i.user.additional_gids.is_empty() {
        process["user"]["additionalGids"] = json!(i.user.additional_gids);
    }
    if !rlimits.is_empty() {
        process["rlimits"] = json!(rlimits);
    }
    if let Some(adj) = h.oom_score_adj.filter(|a| *a != 0) {
        process["oomScoreAdj"] = json!(adj);
    }

    Ok(json!({
        "ociVersion": "1.2.0",
        "process": process,
        "root": {"path": i.rootfs, "readonly": h.readonly_rootfs.unwrap_or(false)},
        "hostname": i.hostname,
        "mounts": mounts,
        "linux": linux,
    }))
}

/// Docker's capability set after `--privileged`, `--cap-add` and `--cap-drop`.
pub fn capabilities(h: &HostConfig) -> Result<Vec<String>, SpecError> {
    if h.privileged.unwrap_or(false) {
        return Ok(ALL_CAPS.iter().map(|c| c.to_string()).collect());
    }
    let norm = |c: &str| -> Result<String, SpecError> {
        let up = c.to_ascii_uppercase();
        if up == "ALL" {
            return Ok(up);
        }
        let full = if up.starts_with("CAP_") {
            up
        } else {
            format!("CAP_{up}")
        };
        if ALL_CAPS.contains(&full.as_str()) {
            Ok(full)
        } else {
            Err(bad(format!("unknown capability: {c:?}")))
        }
    };
    let add = h
        .cap_add
        .clone()
        .unwrap_or_default()
        .iter()
        .map(|c| norm(c))
        .collect::<Result<Vec<_>, _>>()?;
    let drop = h
        .cap_drop
        .clone()
        .unwrap_or_default()
        .iter()
        .map(|c| norm(c))
        .collect::<Result<Vec<_>, _>>()?;
    let mut caps: Vec<String> = if drop.iter().any(|c| c == "ALL") {
        Vec::new()
    } else {
        DEFAULT_CAPS
            .iter()
            .map(|c| c.to_string())
            .filter(|c| !drop.contains(c))
            .collect()
    };
    if add.iter().any(|c| c == "ALL") {
        caps = ALL_CAPS
            .iter()
            .map(|c| c.to_string())
            .filter(|c| !drop.contains(c))
            .collect();
    } else {
        for c in add {
            if !caps.contains(&c) {
                caps.push(c);
            }
        }
    }
    Ok(caps)
}

fn rlimit_name(n: &str) -> Result<&'static str, SpecError> {
    Ok(match n {
        "core" => "CORE",
        "cpu" => "CPU",
        "data" => "DATA",
        "fsize" => "FSIZE",
        "locks" => "LOCKS",
        "memlock" => "MEMLOCK",
        "msgqueue" => "MSGQUEUE",
        "nice" => "NICE",
        "nofile" => "NOFILE",
        "nproc" => "NPROC",
        "rss" => "RSS",
        "rtprio" => "RTPRIO",
        "rttime" => "RTTIME",
        "sigpending" => "SIGPENDING",
        "stack" => "STACK",
        _ => return Err(bad(format!("invalid ulimit type: {n}"))),
    })
}

/// Splits `-v src:dst[:opts]` and checks it: `src` is an absolute host path or a volume
/// name, `dst` absolute, the options Docker knows.
pub fn parse_bind(b: &str) -> Result<(String, String, Vec<String>), SpecError> {
    let parts: Vec<&str> = b.split(':').collect();
    let (src, dst, opts) = match parts.as_slice() {
        [s, d] => (*s, *d, ""),
        [s, d, o] => (*s, *d, *o),
        _ => return Err(bad(format!("invalid volume specification: {b:?}"))),
    };
    if src.is_empty() {
        return Err(bad(format!("invalid volume specification: {b:?}")));
    }
    if !dst.starts_with('/') {
        return Err(bad(format!(
            "invalid volume specification: {b:?}: the container path must be absolute"
        )));
    }
    if !src.starts_with('/') && !crate::names::valid(src) {
        return Err(bad(format!(
            "invalid volume specification {b:?}: {src:?} includes invalid characters for a local volume name; if you meant a host directory, use an absolute path"
        )));
    }
    let mut o = Vec::new();
    for x in opts.split(',').filter(|s| !s.is_empty()) {
        match x {
            "ro" | "rw" | "z" | "Z" | "nocopy" | "shared" | "rshared" | "slave" | "rslave"
            | "private" | "rprivate" => o.push(x.to_string()),
            _ => return Err(bad(format!("invalid mode {x:?} in volume {b:?}"))),
        }
    }
    Ok((src.into(), dst.into(), o))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str =
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\napp:x:1000:1000::/home/app:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nwheel:x:10:app\nnogroup:x:65534:\napp:x:1000:\n";

    fn inputs<'a>(user: &'a User) -> Inputs<'a> {
        Inputs {
            id: "abc",
            rootfs: Path::new("/r"),
            etc_dir: Path::new("/e"),
            hostname: "abc",
            user,
            cgroup: "/berth/abc",
            cgroup_v2: false,
            mounts: &[],
            devices: &[],
            host: seccomp::Host {
                arch: "amd64",
                kernel: (6, 1),
            },
            init: None,
            netns: NetNs::New,
            link_env: &[],
        }
    }

    fn image(entry: Option<&[&str]>, cmd: Option<&[&str]>) -> oci_spec::image::Config {
        let mut c = oci_spec::image::Config::default();
        c.set_entrypoint(entry.map(|e| e.iter().map(|s| s.to_string()).collect()));
        c.set_cmd(cmd.map(|e| e.iter().map(|s| s.to_string()).collect()));
        c.set_env(Some(vec!["PATH=/bin".into(), "A=image".into()]));
        c
    }

    fn sv(v: &[&str]) -> Option<Vec<String>> {
        Some(v.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn merge_follows_docker() {
        // No cmd, no entrypoint: both from the image.
        let mut c = ContainerConfig::default();
        merge_image_config(&mut c, Some(&image(Some(&["/ep"]), Some(&["a"]))));
        assert_eq!(argv(&c).unwrap(), ["/ep", "a"]);
        // A cmd replaces the image's cmd, keeps its entrypoint.
        let mut c = ContainerConfig {
            cmd: sv(&["b"]),
            ..Default::default()
        };
        merge_image_config(&mut c, Some(&image(Some(&["/ep"]), Some(&["a"]))));
        assert_eq!(argv(&c).unwrap(), ["/ep", "b"]);
        // An entrypoint drops the image's cmd.
        let mut c = ContainerConfig {
            entrypoint: sv(&["/x"]),
            ..Default::default()
        };
        merge_image_config(&mut c, Some(&image(Some(&["/ep"]), Some(&["a"]))));
        assert_eq!(argv(&c).unwrap(), ["/x"]);
        // --entrypoint "" clears the image's entrypoint but keeps its cmd.
        let mut c = ContainerConfig {
            entrypoint: Some(vec![]),
            ..Default::default()
        };
        merge_image_config(&mut c, Some(&image(Some(&["/ep"]), Some(&["/a"]))));
        assert_eq!(argv(&c).unwrap(), ["/a"]);
        // Environment: the container's value wins, key by key.
        let mut c = ContainerConfig {
            env: sv(&["A=mine", "B=new"]),
            ..Default::default()
        };
        merge_image_config(&mut c, Some(&image(None, Some(&["x"]))));
        assert_eq!(c.env.unwrap(), ["PATH=/bin", "A=mine", "B=new"]);
        assert_eq!(
            argv(&ContainerConfig::default()).unwrap_err().0,
            "No command specified"
        );
    }

    #[test]
    fn group_add_takes_names_and_numbers() {
        let mut u = User::default();
        add_groups(
            &mut u,
            &["audio".into(), "1234".into(), "audio".into()],
            "audio:x:29:\n",
        )
        .unwrap();
        assert_eq!(u.additional_gids, [29, 1234]);
        let e = add_groups(&mut u, &["nosuch".into()], "").unwrap_err();
        assert_eq!(
            e.0,
            "Unable to find group nosuch: no matching entries in group file"
        );
    }

    #[test]
    fn users_resolve_as_docker() {
        let u = resolve_user("app", PASSWD, GROUP).unwrap();
        assert_eq!(
            (u.uid, u.gid, u.additional_gids.clone()),
            (1000, 1000, vec![10])
        );
        assert_eq!(u.home, "/home/app");
        let u = resolve_user("1234:55", PASSWD, GROUP).unwrap();
        assert_eq!((u.uid, u.gid), (1234, 55));
        let u = resolve_user("nobody:wheel", PASSWD, GROUP).unwrap();
        assert_eq!((u.uid, u.gid), (65534, 10));
        let u = resolve_user("", PASSWD, GROUP).unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (0, 0, "/root"));
        assert!(resolve_user("ghost", PASSWD, GROUP)
            .unwrap_err()
            .0
            .contains("unable to find user ghost"));
        assert!(resolve_user("app:ghosts", PASSWD, GROUP).is_err());
    }

    #[test]
    fn capabilities_follow_add_and_drop() {
        let h = HostConfig {
            cap_drop: sv(&["net_raw", "CAP_KILL"]),
            cap_add: sv(&["SYS_ADMIN"]),
            ..Default::default()
        };
        let caps = capabilities(&h).unwrap();
        assert!(caps.contains(&"CAP_SYS_ADMIN".to_string()));
        assert!(!caps.contains(&"CAP_NET_RAW".to_string()));
        assert!(!caps.contains(&"CAP_KILL".to_string()));
        assert_eq!(caps.len(), DEFAULT_CAPS.len() - 1);
        let h = HostConfig {
            cap_drop: sv(&["ALL"]),
            cap_add: sv(&["chown"]),
            ..Default::default()
        };
        assert_eq!(capabilities(&h).unwrap(), ["CAP_CHOWN"]);
        let h = HostConfig {
            cap_add: sv(&["NOT_A_CAP"]),
            ..Default::default()
        };
        assert!(capabilities(&h).is_err());
    }

    #[test]
    fn spec_carries_limits_and_defaults() {
        let c = ContainerConfig {
            cmd: sv(&["sh"]),
            tty: Some(true),
            env: sv(&["A=1"]),
            ..Default::default()
        };
        let h = HostConfig {
            memory: Some(64 << 20),
            nano_cpus: Some(1_500_000_000),
            pids_limit: Some(20),
            readonly_rootfs: Some(true),
            tmpfs: Some([("/run".to_string(), "size=1m".to_string())].into()),
            network_mode: Some("none".into()),
            security_opt: sv(&["no-new-privileges"]),
            ..Default::default()
        };
        let user = User::default();
        let binds = [bollard_stubs::models::MountPoint {
            typ: Some("bind".into()),
            source: Some("/srv".into()),
            destination: Some("/data".into()),
            rw: Some(false),
            ..Default::default()
        }];
        let s = build(
            &c,
            &h,
            &Inputs {
                mounts: &binds,
                ..inputs(&user)
            },
        )
        .unwrap();
        assert_eq!(s["linux"]["resources"]["memory"]["limit"], 64 << 20);
        assert_eq!(s["linux"]["resources"]["memory"]["swap"], 128 << 20);
        assert_eq!(s["linux"]["resources"]["cpu"]["quota"], 150_000);
        assert_eq!(s["linux"]["resources"]["pids"]["limit"], 20);
        assert_eq!(s["root"]["readonly"], true);
        assert_eq!(s["process"]["noNewPrivileges"], true);
        assert_eq!(s["process"]["terminal"], true);
        let env: Vec<&str> = s["process"]["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(env[0], "HOSTNAME=abc");
        assert!(env.contains(&DEFAULT_PATH));
        assert!(env.contains(&"TERM=xterm"));
        let mounts = s["mounts"].as_array().unwrap();
        let data = mounts.iter().find(|m| m["destination"] == "/data").unwrap();
        assert_eq!(data["options"], json!(["rbind", "rprivate", "ro"]));
        assert!(mounts
            .iter()
            .any(|m| m["destination"] == "/run" && m["type"] == "tmpfs"));
        let ns: Vec<&str> = s["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap())
            .collect();
        assert!(ns.contains(&"network") && !ns.contains(&"cgroup"));
        let joined = build(
            &c,
            &h,
            &Inputs {
                netns: NetNs::Join(Path::new("/run/berth/netns/abc")),
                ..inputs(&user)
            },
        )
        .unwrap();
        assert!(joined["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .contains(&json!({"type": "network", "path": "/run/berth/netns/abc"})));
        let host = build(
            &c,
            &h,
            &Inputs {
                netns: NetNs::Host,
                ..inputs(&user)
            },
        )
        .unwrap();
        assert!(!host["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["type"] == "network"));
        assert!(s["linux"]["maskedPaths"]
            .as_array()
            .unwrap()
            .contains(&json!("/proc/kcore")));
    }

    #[test]
    fn devices_parse_as_docker_reads_them() {
        assert_eq!(
            parse_device("/dev/fuse").unwrap(),
            ("/dev/fuse".into(), "/dev/fuse".into(), "rwm".into())
        );
        assert_eq!(
            parse_device("/dev/null:/dev/mynull:r").unwrap(),
            ("/dev/null".into(), "/dev/mynull".into(), "r".into())
        );
        assert_eq!(parse_device("/dev/zero:rw").unwrap().2, "rw");
        assert!(parse_device("dev/zero").is_err());
        assert!(parse_device("/dev/zero:/z:xyz").is_err());
    }

    #[test]
    fn binds_parse_as_docker_reads_them() {
        assert_eq!(
            parse_bind("/srv:/data:ro,rshared").unwrap(),
            (
                "/srv".into(),
                "/data".into(),
                vec!["ro".into(), "rshared".into()]
            )
        );
        assert_eq!(parse_bind("vol1:/d").unwrap().0, "vol1");
        assert!(parse_bind("/a:rel")
            .unwrap_err()
            .0
            .contains("must be absolute"));
        assert!(parse_bind("bad name:/d").is_err());
        assert!(parse_bind("/a:/b:bogus")
            .unwrap_err()
            .0
            .contains("invalid mode"));
        assert!(parse_bind("/a").is_err());
    }

    #[test]
    fn bad_requests_are_refused_with_reasons() {
        let c = ContainerConfig {
            cmd: sv(&["sh"]),
            ..Default::default()
        };
        let user = User::default();
        for (h, want) in [
            (
                HostConfig {
                    memory_swap: Some(10),
                    ..Default::default()
                },
                "memory limit",
            ),
            (
                HostConfig {
                    security_opt: sv(&["bogus"]),
                    ..Default::default()
                },
                "invalid --security-opt",
            ),
            (
                HostConfig {
                    security_opt: sv(&[r#"seccomp={"defaultAction": "SCMP_ACT_MAYBE"}"#]),
                    ..Default::default()
                },
                "unknown action \"SCMP_ACT_MAYBE\"",
            ),
        ] {
            let e = build(&c, &h, &inputs(&user)).unwrap_err();
            assert!(e.0.contains(want), "{e} lacks {want}");
        }
    }

    #[test]
    fn init_wraps_the_command_and_is_mounted_read_only() {
        let user = User::default();
        let c = ContainerConfig {
            entrypoint: sv(&["/app"]),
            cmd: sv(&["x"]),
            ..Default::default()
        };
        let init = Path::new("/usr/bin/tini-static");
        let s = build(
            &c,
            &HostConfig::default(),
            &Inputs {
                init: Some(init),
                ..inputs(&user)
            },
        )
        .unwrap();
        assert_eq!(s["process"]["args"], json!([INIT_PATH, "--", "/app", "x"]));
        let m = s["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["destination"] == INIT_PATH)
            .unwrap();
        assert_eq!(m["source"], "/usr/bin/tini-static");
        assert!(m["options"].as_array().unwrap().contains(&json!("ro")));
    }

    #[test]
    fn seccomp_default_unless_privileged_or_unconfined() {
        let user = User::default();
        let c = ContainerConfig {
            cmd: sv(&["true"]),
            ..Default::default()
        };
        let spec_with = |h: HostConfig| build(&c, &h, &inputs(&user)).unwrap();
        let plain = spec_with(HostConfig::default());
        assert_eq!(plain["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
        let rules = plain["linux"]["seccomp"]["syscalls"].as_array().unwrap();
        assert!(!rules
            .iter()
            .any(|r| r["names"].as_array().unwrap().iter().any(|n| n == "mount")));
        // --cap-add SYS_ADMIN brings the syscalls that go with it, as in Docker.
        let admin = spec_with(HostConfig {
            cap_add: sv(&["SYS_ADMIN"]),
            ..Default::default()
        });
        let rules = admin["linux"]["seccomp"]["syscalls"].as_array().unwrap();
        assert!(rules
            .iter()
            .any(|r| r["names"].as_array().unwrap().iter().any(|n| n == "mount")));
        for h in [
            HostConfig {
                privileged: Some(true),
                ..Default::default()
            },
            HostConfig {
                security_opt: sv(&["seccomp=unconfined"]),
                ..Default::default()
            },
        ] {
            assert!(spec_with(h).pointer("/linux/seccomp").is_none());
        }
        let custom = spec_with(HostConfig {
            security_opt: sv(&[
                r#"seccomp={"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}"#,
            ]),
            ..Default::default()
        });
        assert_eq!(
            custom["linux"]["seccomp"]["defaultAction"],
            "SCMP_ACT_ALLOW"
        );
        assert_eq!(
            custom["linux"]["seccomp"]["syscalls"][0]["names"][0],
            "mkdir"
        );
    }
}
