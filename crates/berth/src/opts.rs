//! `create` and `run` flags, Docker's names and forms, turned into the Engine API's create
//! body (the JSON of `POST /containers/create`, by Docker's field names). Parsing follows the docker CLI (`cli/command/container/opts.go`): sizes with binary
//! units, Go durations, `-e NAME` taken from the environment, `--env-file`, `-v` split into
//! binds and anonymous volumes, `--mount` key=value lists, seccomp profiles read from their
//! files. What the daemon checks (limits, capabilities, mounts) it checks; errors here are
//! only about the flags' syntax.

use std::collections::HashMap;

use anyhow::{bail, Context};
use clap::Args;
use serde_json::{json, Map, Value};

/// The flags that shape a container.
#[derive(Args, Debug, Clone, Default)]
pub struct ContainerOpts {
    /// Assign a name to the container
    #[arg(long)]
    pub name: Option<String>,
    /// Keep STDIN open even if not attached
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    pub tty: bool,
    /// Attach to STDIN, STDOUT or STDERR
    #[arg(short, long, value_name = "STREAM")]
    pub attach: Vec<String>,
    /// Set environment variables (NAME=VALUE, or NAME to pass the current value)
    #[arg(short, long = "env", value_name = "LIST")]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long, value_name = "FILE")]
    pub env_file: Vec<String>,
    /// Set meta data on a container (KEY=VALUE)
    #[arg(short, long = "label", value_name = "LIST")]
    pub label: Vec<String>,
    /// Read in a line delimited file of labels
    #[arg(long, value_name = "FILE")]
    pub label_file: Vec<String>,
    /// Bind mount a volume ([SRC:]DST[:OPTS])
    #[arg(short, long = "volume", value_name = "LIST")]
    pub volume: Vec<String>,
    /// Attach a filesystem mount to the container (type=bind|volume|tmpfs,source=...,target=...)
    #[arg(long, value_name = "MOUNT")]
    pub mount: Vec<String>,
    /// Mount a tmpfs directory (PATH[:OPTIONS])
    #[arg(long, value_name = "LIST")]
    pub tmpfs: Vec<String>,
    /// Mount volumes from the specified container(s)
    #[arg(long, value_name = "LIST")]
    pub volumes_from: Vec<String>,
    /// Add a host device to the container (HOST[:CONTAINER[:PERMISSIONS]])
    #[arg(long, value_name = "LIST")]
    pub device: Vec<String>,
    /// Working directory inside the container
    #[arg(short, long, value_name = "DIR")]
    pub workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short, long)]
    pub user: Option<String>,
    /// Add additional groups to join
    #[arg(long, value_name = "LIST")]
    pub group_add: Vec<String>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long, value_name = "COMMAND")]
    pub entrypoint: Option<String>,
    /// Container host name
    #[arg(short = 'h', long)]
    pub hostname: Option<String>,
    /// Container NIS domain name
    #[arg(long)]
    pub domainname: Option<String>,
    /// Connect a container to a network (bridge, host, none, container:<name|id>, or a
    /// network made with `berth network create`)
    #[arg(long, visible_alias = "net", value_name = "NETWORK")]
    pub network: Option<String>,
    /// Add network-scoped alias for the container (user-defined networks)
    #[arg(long, visible_alias = "net-alias", value_name = "LIST")]
    pub network_alias: Vec<String>,
    /// IPv4 address (e.g., 172.30.100.104) on a user-defined network
    #[arg(long)]
    pub ip: Option<String>,
    /// IPv6 address (e.g., 2001:db8::33) on a user-defined network
    #[arg(long)]
    pub ip6: Option<String>,
    /// Container MAC address (e.g., 92:d0:c6:0a:29:33)
    #[arg(long, value_name = "STRING")]
    pub mac_address: Option<String>,
    /// Add link to another container (name:alias)
    #[arg(long, value_name = "LIST")]
    pub link: Vec<String>,
    /// Runtime to use for this container
    #[arg(long, value_name = "STRING")]
    pub runtime: Option<String>,
    /// Optional volume driver for the container
    #[arg(long, value_name = "STRING")]
    pub volume_driver: Option<String>,
    /// Add a custom host-to-IP mapping (host:ip)
    #[arg(long, value_name = "LIST")]
    pub add_host: Vec<String>,
    /// Set custom DNS servers
    #[arg(long, value_name = "LIST")]
    pub dns: Vec<String>,
    /// Set custom DNS search domains
    #[arg(long, value_name = "LIST")]
    pub dns_search: Vec<String>,
    /// Set DNS options
    #[arg(long, value_name = "LIST")]
    pub dns_option: Vec<String>,
    /// Publish a container's port(s) to the host ([IP:][HOST_PORT:]CONTAINER_PORT[/PROTO])
    #[arg(short, long, value_name = "LIST")]
    pub publish: Vec<String>,
    /// Publish all exposed ports to random ports
    #[arg(short = 'P', long)]
    pub publish_all: bool,
    /// Expose a port or a range of ports
    #[arg(long, value_name = "LIST")]
    pub expose: Vec<String>,
    /// Memory limit (e.g. 64m, 1g)
    #[arg(short, long, value_name = "BYTES")]
    pub memory: Option<String>,
    /// Swap limit equal to memory plus swap: -1 to enable unlimited swap
    #[arg(long, value_name = "BYTES", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Memory soft limit
    #[arg(long, value_name = "BYTES")]
    pub memory_reservation: Option<String>,
    /// Number of CPUs
    #[arg(long, value_name = "DECIMAL")]
    pub cpus: Option<String>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long, value_name = "INT")]
    pub cpu_shares: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) period
    #[arg(long, value_name = "INT")]
    pub cpu_period: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) quota
    #[arg(long, value_name = "INT")]
    pub cpu_quota: Option<i64>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long, value_name = "LIST")]
    pub cpuset_cpus: Option<String>,
    /// MEMs in which to allow execution (0-3, 0,1)
    #[arg(long, value_name = "LIST")]
    pub cpuset_mems: Option<String>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long, value_name = "INT", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Block IO (relative weight), between 10 and 1000, or 0 to disable
    #[arg(long, value_name = "UINT16")]
    pub blkio_weight: Option<u16>,
    /// Ulimit options (NAME=SOFT[:HARD])
    #[arg(long, value_name = "ULIMIT")]
    pub ulimit: Vec<String>,
    /// Size of /dev/shm
    #[arg(long, value_name = "BYTES")]
    pub shm_size: Option<String>,
    /// Tune host's OOM preferences (-1000 to 1000)
    #[arg(long, value_name = "INT", allow_hyphen_values = true)]
    pub oom_score_adj: Option<i64>,
    /// Disable OOM Killer
    #[arg(long)]
    pub oom_kill_disable: bool,
    /// Add Linux capabilities
    #[arg(long, value_name = "LIST")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long, value_name = "LIST")]
    pub cap_drop: Vec<String>,
    /// Give extended privileges to this container
    #[arg(long)]
    pub privileged: bool,
    /// Mount the container's root filesystem as read only
    #[arg(long)]
    pub read_only: bool,
    /// Security Options (seccomp=PROFILE.json|unconfined, no-new-privileges)
    #[arg(long, value_name = "LIST")]
    pub security_opt: Vec<String>,
    /// Sysctl options (NAME=VALUE)
    #[arg(long, value_name = "MAP")]
    pub sysctl: Vec<String>,
    /// Run an init inside the container that forwards signals and reaps processes
    #[arg(long)]
    pub init: bool,
    /// PID namespace to use (host)
    #[arg(long, value_name = "STRING")]
    pub pid: Option<String>,
    /// IPC mode to use (host, private, shareable)
    #[arg(long, value_name = "STRING")]
    pub ipc: Option<String>,
    /// UTS namespace to use
    #[arg(long, value_name = "STRING")]
    pub uts: Option<String>,
    /// Cgroup namespace to use (host|private)
    #[arg(long, value_name = "STRING")]
    pub cgroupns: Option<String>,
    /// Optional parent cgroup for the container
    #[arg(long, value_name = "STRING")]
    pub cgroup_parent: Option<String>,
    /// Restart policy to apply when a container exits (no, always, unless-stopped, on-failure[:N])
    #[arg(long, value_name = "STRING")]
    pub restart: Option<String>,
    /// Signal to stop the container
    #[arg(long, value_name = "STRING")]
    pub stop_signal: Option<String>,
    /// Timeout (in seconds) to stop a container
    #[arg(long, value_name = "INT")]
    pub stop_timeout: Option<i64>,
    /// Command to run to check health
    #[arg(long, value_name = "STRING")]
    pub health_cmd: Option<String>,
    /// Time between running the check (ms|s|m|h)
    #[arg(long, value_name = "DURATION")]
    pub health_interval: Option<String>,
    /// Maximum time to allow one check to run (ms|s|m|h)
    #[arg(long, value_name = "DURATION")]
    pub health_timeout: Option<String>,
    /// Consecutive failures needed to report unhealthy
    #[arg(long, value_name = "INT")]
    pub health_retries: Option<i64>,
    /// Start period for the container to initialize before counting retries (ms|s|m|h)
    #[arg(long, value_name = "DURATION")]
    pub health_start_period: Option<String>,
    /// Disable any container-specified HEALTHCHECK
    #[arg(long)]
    pub no_healthcheck: bool,
    /// Logging driver for the container
    #[arg(long, value_name = "STRING")]
    pub log_driver: Option<String>,
    /// Log driver options (max-size=10m, max-file=3)
    #[arg(long, value_name = "LIST")]
    pub log_opt: Vec<String>,
    /// Write the container ID to the file
    #[arg(long, value_name = "FILE")]
    pub cidfile: Option<String>,
    /// Set platform if server is multi-platform capable
    #[arg(long, value_name = "STRING")]
    pub platform: Option<String>,
    /// Pull image before creating ("always", "missing", "never")
    #[arg(long, value_name = "STRING", default_value = "missing")]
    pub pull: String,
    /// Suppress the pull output
    #[arg(short, long)]
    pub quiet: bool,
}

/// `64m` -> 67108864: Docker's RAMInBytes (binary units, an optional `b`).
pub fn parse_bytes(s: &str) -> anyhow::Result<i64> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let body = lower.strip_suffix('b').unwrap_or(&lower);
    let body = body.strip_suffix('i').unwrap_or(body);
    let (num, mult) = match body.chars().last() {
        Some('k') => (&body[..body.len() - 1], 1i64 << 10),
        Some('m') => (&body[..body.len() - 1], 1 << 20),
        Some('g') => (&body[..body.len() - 1], 1 << 30),
        Some('t') => (&body[..body.len() - 1], 1 << 40),
        Some('p') => (&body[..body.len() - 1], 1 << 50),
        _ => (body, 1),
    };
    let n: f64 = num
        .trim()
        .parse()
        .ok()
        .filter(|n: &f64| n.is_finite() && *n >= 0.0)
        .with_context(|| format!("invalid size: '{s}'"))?;
    Ok((n * mult as f64) as i64)
}

/// Go's `time.ParseDuration` (`1h30m`, `1.5s`, `300ms`), in nanoseconds.
pub fn parse_duration(s: &str) -> anyhow::Result<i64> {
    let bad = || anyhow::anyhow!("time: invalid duration \"{s}\"");
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let value: f64 = rest[..n].parse().map_err(|_| bad())?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..u] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        total += value * unit;
        rest = &rest[u..];
    }
    Ok(if neg { -(total as i64) } else { total as i64 })
}

/// `KEY=VALUE` lines of an env or label file; `#` comments and blank lines skipped; a line
/// with only a name takes its value from the environment when `from_env` (env files).
fn read_kv_file(path: &str, from_env: bool) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("open {path}"))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (k, _) = line.split_once('=').unwrap_or((line, ""));
        if k.is_empty() || k.contains(char::is_whitespace) {
            bail!(
                "{path}: line {}: variable '{}' contains whitespaces",
                n + 1,
                k
            );
        }
        if line.contains('=') {
            out.push(line.to_string());
        } else if from_env {
            if let Ok(v) = std::env::var(line) {
                out.push(format!("{line}={v}"));
            }
        } else {
            out.push(format!("{line}="));
        }
    }
    Ok(out)
}

/// `-e NAME` takes the value from the environment (and is dropped when unset), as Docker.
fn env_list(files: &[String], flags: &[String]) -> anyhow::Result<Vec<String>> {
    let mut env = Vec::new();
    for f in files {
        env.extend(read_kv_file(f, true)?);
    }
    for e in flags {
        if e.contains('=') {
            env.push(e.clone());
        } else if let Ok(v) = std::env::var(e) {
            env.push(format!("{e}={v}"));
        }
    }
    Ok(env)
}

fn key_values(list: &[String], what: &str) -> anyhow::Result<Map<String, Value>> {
    let mut m = Map::new();
    for kv in list {
        let Some((k, v)) = kv.split_once('=') else {
            bail!("invalid argument {kv:?} for \"--{what}\" flag: expected KEY=VALUE");
        };
        m.insert(k.to_string(), json!(v));
    }
    Ok(m)
}

/// `--mount type=bind,source=/a,target=/b,readonly,bind-propagation=rshared`.
pub fn parse_mount(spec: &str) -> anyhow::Result<Value> {
    let mut m = Map::new();
    let mut bind = Map::new();
    let mut volume = Map::new();
    let mut tmpfs = Map::new();
    let mut labels = Map::new();
    let mut driver_opts = Map::new();
    let mut typ = "volume".to_string();
    let bool_of = |k: &str, v: Option<&str>| -> anyhow::Result<bool> {
        match v {
            None | Some("true" | "1") => Ok(true),
            Some("false" | "0") => Ok(false),
            Some(v) => bail!("invalid value for {k}: {v}"),
        }
    };
    for field in spec.split(',').filter(|f| !f.is_empty()) {
        let (k, v) = match field.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v)),
            None => (field.trim().to_ascii_lowercase(), None),
        };
        let need = |v: Option<&str>| {
            v.map(String::from)
                .with_context(|| format!("invalid field '{field}' must be a key=value pair"))
        };
        match k.as_str() {
            "type" => typ = need(v)?,
            "source" | "src" => {
                m.insert("Source".into(), json!(need(v)?));
            }
            "target" | "dst" | "destination" => {
                m.insert("Target".into(), json!(need(v)?));
            }
            "readonly" | "ro" => {
                m.insert("ReadOnly".into(), json!(bool_of(&k, v)?));
            }
            "consistency" => {
                m.insert("Consistency".into(), json!(need(v)?));
            }
            "bind-propagation" => {
                bind.insert("Propagation".into(), json!(need(v)?));
            }
            "bind-nonrecursive" => {
                bind.insert("NonRecursive".into(), json!(bool_of(&k, v)?));
            }
            "volume-nocopy" => {
                volume.insert("NoCopy".into(), json!(bool_of(&k, v)?));
            }
            "volume-subpath" => {
                volume.insert("Subpath".into(), json!(need(v)?));
            }
            "volume-label" => {
                let l = need(v)?;
                let (lk, lv) = l.split_once('=').unwrap_or((&l, ""));
                labels.insert(lk.to_string(), json!(lv));
            }
            "volume-driver" => {
                volume.insert("DriverConfig".into(), json!({"Name": need(v)?}));
            }
            "volume-opt" => {
                let o = need(v)?;
                let (ok, ov) = o.split_once('=').unwrap_or((&o, ""));
                driver_opts.insert(ok.to_string(), json!(ov));
            }
            "tmpfs-size" => {
                tmpfs.insert("SizeBytes".into(), json!(parse_bytes(&need(v)?)?));
            }
            "tmpfs-mode" => {
                let mode = need(v)?;
                let mode = i64::from_str_radix(&mode, 8)
                    .with_context(|| format!("invalid value for tmpfs-mode: {mode}"))?;
                tmpfs.insert("Mode".into(), json!(mode));
            }
            _ => bail!("unexpected key '{k}' in '{field}'"),
        }
    }
    if !["bind", "volume", "tmpfs"].contains(&typ.as_str()) {
        bail!("invalid mount type {typ:?}: expected bind, volume or tmpfs");
    }
    if !m.contains_key("Target") {
        bail!("target is required");
    }
    if !labels.is_empty() {
        volume.insert("Labels".into(), Value::Object(labels));
    }
    if !driver_opts.is_empty() {
        let mut dc = volume
            .remove("DriverConfig")
            .unwrap_or_else(|| json!({"Name": "local"}));
        dc["Options"] = Value::Object(driver_opts);
        volume.insert("DriverConfig".into(), dc);
    }
    m.insert("Type".into(), json!(typ));
    for (k, o) in [
        ("BindOptions", bind),
        ("VolumeOptions", volume),
        ("TmpfsOptions", tmpfs),
    ] {
        if !o.is_empty() {
            m.insert(k.into(), Value::Object(o));
        }
    }
    Ok(Value::Object(m))
}

/// `-p [ip:][host:]container[/proto]`, ranges included: (exposed ports, bindings).
pub fn parse_publish(spec: &str) -> anyhow::Result<Vec<(String, Value)>> {
    let (addr, proto) = match spec.rsplit_once('/') {
        Some((a, p)) => (a, p.to_ascii_lowercase()),
        None => (spec, "tcp".to_string()),
    };
    if !["tcp", "udp", "sctp"].contains(&proto.as_str()) {
        bail!("invalid proto: {proto}");
    }
    let parts: Vec<&str> = addr.rsplitn(3, ':').collect();
    let (ip, host, ctr) = match parts.as_slice() {
        [c] => ("", "", *c),
        [c, h] => ("", *h, *c),
        [c, h, ip] => (ip.trim_matches(['[', ']']), *h, *c),
        _ => bail!("invalid port format: {spec}"),
    };
    let range = |r: &str| -> anyhow::Result<(u16, u16)> {
        let (a, b) = r.split_once('-').unwrap_or((r, r));
        let a: u16 = a
            .parse()
            .with_context(|| format!("invalid containerPort: {r}"))?;
        let b: u16 = b
            .parse()
            .with_context(|| format!("invalid containerPort: {r}"))?;
        if b < a {
            bail!("invalid range specified for port: {r}");
        }
        Ok((a, b))
    };
    let (c0, c1) = range(ctr)?;
    let hosts = if host.is_empty() {
        None
    } else {
        Some(range(host)?)
    };
    if let Some((h0, h1)) = hosts {
        if h1 - h0 != c1 - c0 && h0 != h1 {
            bail!("invalid ranges specified for container and host Ports: {ctr} and {host}");
        }
    }
    let mut out = Vec::new();
    for (i, p) in (c0..=c1).enumerate() {
        let host_port = match hosts {
            None => String::new(),
            Some((h0, h1)) if h0 == h1 && c0 != c1 => format!("{h0}"),
            Some((h0, _)) => format!("{}", h0 as usize + i),
        };
        out.push((
            format!("{p}/{proto}"),
            json!({"HostIp": ip, "HostPort": host_port}),
        ));
    }
    Ok(out)
}

fn restart_policy(s: &str) -> anyhow::Result<Value> {
    let (name, count) = match s.split_once(':') {
        Some((n, c)) => (
            n,
            Some(
                c.parse::<i64>()
                    .with_context(|| format!("invalid restart policy format: {s}"))?,
            ),
        ),
        None => (s, None),
    };
    match name {
        "no" | "always" | "unless-stopped" if count.is_none() => {
            Ok(json!({"Name": name, "MaximumRetryCount": 0}))
        }
        "on-failure" => Ok(json!({"Name": name, "MaximumRetryCount": count.unwrap_or(0)})),
        _ => bail!(
            "invalid restart policy format: {s:?}: use no, always, unless-stopped or on-failure[:max-retries]"
        ),
    }
}

/// `--security-opt seccomp=FILE`: the CLI sends the profile's contents, as docker does.
fn security_opts(opts: &[String]) -> anyhow::Result<Vec<String>> {
    opts.iter()
        .map(|o| {
            let (k, v) = o.split_once(['=', ':']).unwrap_or((o, ""));
            if k == "seccomp" && !["unconfined", "builtin", ""].contains(&v) {
                let text = std::fs::read_to_string(v)
                    .with_context(|| format!("opening seccomp profile ({v}) failed"))?;
                let profile: Value = serde_json::from_str(&text)
                    .with_context(|| format!("seccomp profile ({v}): invalid JSON"))?;
                Ok(format!("seccomp={profile}"))
            } else {
                Ok(o.clone())
            }
        })
        .collect()
}

impl ContainerOpts {
    /// The create request for `image` running `cmd`.
    pub fn to_create(&self, image: &str, cmd: &[String]) -> anyhow::Result<Value> {
        let mut c = Map::new();
        let mut h = Map::new();
        c.insert("Image".into(), json!(image));
        if !cmd.is_empty() {
            c.insert("Cmd".into(), json!(cmd));
        }
        match &self.entrypoint {
            Some(e) if e.is_empty() => {
                c.insert("Entrypoint".into(), json!([""]));
            }
            Some(e) => {
                c.insert("Entrypoint".into(), json!([e]));
            }
            None => {}
        }
        let attach: Vec<String> = self.attach.iter().map(|a| a.to_lowercase()).collect();
        for a in &attach {
            if !["stdin", "stdout", "stderr"].contains(&a.as_str()) {
                bail!("invalid argument {a:?} for \"-a, --attach\" flag: valid streams are STDIN, STDOUT and STDERR");
            }
        }
        let attached = |s: &str| attach.is_empty() || attach.iter().any(|a| a == s);
        c.insert(
            "AttachStdin".into(),
            json!(self.interactive && (attach.is_empty() || attached("stdin"))),
        );
        c.insert("AttachStdout".into(), json!(attached("stdout")));
        c.insert("AttachStderr".into(), json!(attached("stderr")));
        c.insert("OpenStdin".into(), json!(self.interactive));
        c.insert("StdinOnce".into(), json!(self.interactive));
        c.insert("Tty".into(), json!(self.tty));
        let env = env_list(&self.env_file, &self.env)?;
        if !env.is_empty() {
            c.insert("Env".into(), json!(env));
        }
        let mut labels = Vec::new();
        for f in &self.label_file {
            labels.extend(read_kv_file(f, false)?);
        }
        labels.extend(self.label.iter().map(|l| {
            if l.contains('=') {
                l.clone()
            } else {
                format!("{l}=")
            }
        }));
        if !labels.is_empty() {
            c.insert(
                "Labels".into(),
                Value::Object(key_values(&labels, "label")?),
            );
        }
        for (k, v) in [
            ("WorkingDir", &self.workdir),
            ("User", &self.user),
            ("Hostname", &self.hostname),
            ("Domainname", &self.domainname),
            ("StopSignal", &self.stop_signal),
        ] {
            if let Some(v) = v {
                c.insert(k.into(), json!(v));
            }
        }
        if let Some(t) = self.stop_timeout {
            c.insert("StopTimeout".into(), json!(t));
        }
        // -v: host paths and named volumes are binds; a lone path is an anonymous volume.
        let mut binds = Vec::new();
        let mut volumes = Map::new();
        for v in &self.volume {
            let parts: Vec<&str> = v.split(':').collect();
            if parts.len() == 1 {
                volumes.insert(v.clone(), json!({}));
                continue;
            }
            let src = parts[0];
            if src.starts_with('.') {
                let abs = std::env::current_dir()?.join(src);
                binds.push(
                    std::iter::once(abs.to_string_lossy().into_owned())
                        .chain(parts[1..].iter().map(|s| s.to_string()))
                        .collect::<Vec<_>>()
                        .join(":"),
                );
            } else {
                binds.push(v.clone());
            }
        }
        if !volumes.is_empty() {
            c.insert("Volumes".into(), Value::Object(volumes));
        }
        if !binds.is_empty() {
            h.insert("Binds".into(), json!(binds));
        }
        if !self.mount.is_empty() {
            let mounts = self
                .mount
                .iter()
                .map(|m| {
                    parse_mount(m)
                        .with_context(|| format!("invalid argument {m:?} for \"--mount\" flag"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            h.insert("Mounts".into(), json!(mounts));
        }
        if !self.tmpfs.is_empty() {
            let mut t = Map::new();
            for spec in &self.tmpfs {
                let (p, o) = spec.split_once(':').unwrap_or((spec, ""));
                t.insert(p.to_string(), json!(o));
            }
            h.insert("Tmpfs".into(), Value::Object(t));
        }
        if !self.volumes_from.is_empty() {
            h.insert("VolumesFrom".into(), json!(self.volumes_from));
        }
        if !self.device.is_empty() {
            let devices: Vec<Value> = self
                .device
                .iter()
                .map(|d| {
                    let parts: Vec<&str> = d.split(':').collect();
                    let perms = |p: &str| !p.is_empty() && p.chars().all(|c| "rwm".contains(c));
                    let (host, ctr, p) = match parts.as_slice() {
                        [h] => (*h, *h, "rwm"),
                        [h, p] if perms(p) => (*h, *h, *p),
                        [h, c] => (*h, *c, "rwm"),
                        [h, c, p] => (*h, *c, *p),
                        _ => ("", "", ""),
                    };
                    json!({"PathOnHost": host, "PathInContainer": ctr, "CgroupPermissions": p})
                })
                .collect();
            h.insert("Devices".into(), json!(devices));
        }
        // Ports.
        let mut exposed = Map::new();
        let mut bindings: Map<String, Value> = Map::new();
        for p in &self.publish {
            for (port, b) in parse_publish(p)
                .with_context(|| format!("invalid argument {p:?} for \"-p, --publish\" flag"))?
            {
                exposed.insert(port.clone(), json!({}));
                if let Some(list) = bindings
                    .entry(port)
                    .or_insert_with(|| json!([]))
                    .as_array_mut()
                {
                    list.push(b);
                }
            }
        }
        for e in &self.expose {
            let (ports, proto) = e.split_once('/').unwrap_or((e, "tcp"));
            let (a, b) = ports.split_once('-').unwrap_or((ports, ports));
            let (a, b): (u16, u16) = (
                a.parse()
                    .with_context(|| format!("invalid range format for --expose: {e}"))?,
                b.parse()
                    .with_context(|| format!("invalid range format for --expose: {e}"))?,
            );
            for p in a..=b {
                exposed.insert(format!("{p}/{proto}"), json!({}));
            }
        }
        if !exposed.is_empty() {
            c.insert("ExposedPorts".into(), Value::Object(exposed));
        }
        if !bindings.is_empty() {
            h.insert("PortBindings".into(), Value::Object(bindings));
        }
        if self.publish_all {
            h.insert("PublishAllPorts".into(), json!(true));
        }
        // Resources.
        for (k, v) in [
            ("Memory", &self.memory),
            ("MemoryReservation", &self.memory_reservation),
            ("ShmSize", &self.shm_size),
        ] {
            if let Some(v) = v {
                h.insert(k.into(), json!(parse_bytes(v)?));
            }
        }
        if let Some(s) = &self.memory_swap {
            let v = if s == "-1" { -1 } else { parse_bytes(s)? };
            h.insert("MemorySwap".into(), json!(v));
        }
        if let Some(cpus) = &self.cpus {
            let n: f64 = cpus
                .parse()
                .ok()
                .filter(|n: &f64| *n >= 0.0)
                .with_context(|| format!("invalid argument {cpus:?} for \"--cpus\" flag"))?;
            h.insert("NanoCpus".into(), json!((n * 1e9) as i64));
        }
        for (k, v) in [
            ("CpuShares", self.cpu_shares),
            ("CpuPeriod", self.cpu_period),
            ("CpuQuota", self.cpu_quota),
            ("PidsLimit", self.pids_limit),
            ("OomScoreAdj", self.oom_score_adj),
        ] {
            if let Some(v) = v {
                h.insert(k.into(), json!(v));
            }
        }
        if let Some(w) = self.blkio_weight {
            h.insert("BlkioWeight".into(), json!(w));
        }
        for (k, v) in [
            ("CpusetCpus", &self.cpuset_cpus),
            ("CpusetMems", &self.cpuset_mems),
            ("NetworkMode", &self.network),
            ("PidMode", &self.pid),
            ("IpcMode", &self.ipc),
            ("UTSMode", &self.uts),
            ("CgroupnsMode", &self.cgroupns),
            ("CgroupParent", &self.cgroup_parent),
        ] {
            if let Some(v) = v {
                h.insert(k.into(), json!(v));
            }
        }
        if self.oom_kill_disable {
            h.insert("OomKillDisable".into(), json!(true));
        }
        if !self.ulimit.is_empty() {
            let ulimits = self
                .ulimit
                .iter()
                .map(|u| {
                    let (name, vals) = u
                        .split_once('=')
                        .with_context(|| format!("invalid ulimit argument: {u}"))?;
                    let (soft, hard) = vals.split_once(':').unwrap_or((vals, vals));
                    let num = |v: &str| {
                        v.parse::<i64>()
                            .with_context(|| format!("invalid ulimit argument: {u}"))
                    };
                    Ok(json!({"Name": name, "Soft": num(soft)?, "Hard": num(hard)?}))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            h.insert("Ulimits".into(), json!(ulimits));
        }
        for (k, v) in [
            ("CapAdd", &self.cap_add),
            ("CapDrop", &self.cap_drop),
            ("GroupAdd", &self.group_add),
            ("Dns", &self.dns),
            ("DnsSearch", &self.dns_search),
            ("DnsOptions", &self.dns_option),
            ("ExtraHosts", &self.add_host),
            ("Links", &self.link),
        ] {
            if !v.is_empty() {
                h.insert(k.into(), json!(v));
            }
        }
        if !self.security_opt.is_empty() {
            h.insert(
                "SecurityOpt".into(),
                json!(security_opts(&self.security_opt)?),
            );
        }
        if !self.sysctl.is_empty() {
            h.insert(
                "Sysctls".into(),
                Value::Object(key_values(&self.sysctl, "sysctl")?),
            );
        }
        for (k, v) in [
            ("Privileged", self.privileged),
            ("ReadonlyRootfs", self.read_only),
        ] {
            if v {
                h.insert(k.into(), json!(true));
            }
        }
        if self.init {
            h.insert("Init".into(), json!(true));
        }
        if let Some(r) = &self.restart {
            h.insert("RestartPolicy".into(), restart_policy(r)?);
        }
        for (k, v) in [
            ("Runtime", &self.runtime),
            ("VolumeDriver", &self.volume_driver),
        ] {
            if let Some(v) = v {
                h.insert(k.into(), json!(v));
            }
        }
        if self.log_driver.is_some() || !self.log_opt.is_empty() {
            h.insert(
                "LogConfig".into(),
                json!({
                    "Type": self.log_driver.clone().unwrap_or_default(),
                    "Config": key_values(&self.log_opt, "log-opt")?,
                }),
            );
        }
        // Health checks.
        if self.no_healthcheck {
            if self.health_cmd.is_some() {
                bail!("--no-healthcheck conflicts with --health-* options");
            }
            c.insert("Healthcheck".into(), json!({"Test": ["NONE"]}));
        } else {
            let mut hc = Map::new();
            if let Some(cmd) = &self.health_cmd {
                hc.insert("Test".into(), json!(["CMD-SHELL", cmd]));
            }
            for (k, v) in [
                ("Interval", &self.health_interval),
                ("Timeout", &self.health_timeout),
                ("StartPeriod", &self.health_start_period),
            ] {
                if let Some(v) = v {
                    let ns = parse_duration(v)?;
                    if ns < 0 {
                        bail!("--health-{}: cannot be negative", k.to_lowercase());
                    }
                    hc.insert(k.into(), json!(ns));
                }
            }
            if let Some(r) = self.health_retries {
                hc.insert("Retries".into(), json!(r));
            }
            if !hc.is_empty() {
                c.insert("Healthcheck".into(), Value::Object(hc));
            }
        }
        c.insert("HostConfig".into(), Value::Object(h));
        // The network's endpoint settings, keyed by the network's name as the docker CLI
        // sends them.
        if !self.network_alias.is_empty()
            || self.ip.is_some()
            || self.ip6.is_some()
            || self.mac_address.is_some()
        {
            let net = self.network.clone().unwrap_or_else(|| "default".into());
            let mut ep = Map::new();
            if let Some(m) = &self.mac_address {
                ep.insert("MacAddress".into(), json!(m));
            }
            if !self.network_alias.is_empty() {
                ep.insert("Aliases".into(), json!(self.network_alias));
            }
            if let Some(ip) = &self.ip {
                ip.parse::<std::net::Ipv4Addr>().with_context(|| {
                    format!("invalid argument {ip:?} for \"--ip\" flag: not an IPv4 address")
                })?;
                ep.insert("IPAMConfig".into(), json!({"IPv4Address": ip}));
            }
            if let Some(ip) = &self.ip6 {
                ip.parse::<std::net::Ipv6Addr>().with_context(|| {
                    format!("invalid argument {ip:?} for \"--ip6\" flag: not an IPv6 address")
                })?;
                let ipam = ep
                    .entry("IPAMConfig")
                    .or_insert_with(|| json!({}))
                    .as_object_mut()
                    .expect("an object");
                ipam.insert("IPv6Address".into(), json!(ip));
            }
            c.insert(
                "NetworkingConfig".into(),
                json!({"EndpointsConfig": {net: Value::Object(ep)}}),
            );
        }
        Ok(Value::Object(c))
    }
}

/// `--filter k=v` flags as the API's `filters` map.
pub fn filters(list: &[String]) -> anyhow::Result<HashMap<String, Vec<String>>> {
    let mut m: HashMap<String, Vec<String>> = HashMap::new();
    for f in list {
        let Some((k, v)) = f.split_once('=') else {
            bail!("bad format of filter (expected name=value): {f}");
        };
        m.entry(k.trim().to_lowercase())
            .or_default()
            .push(v.to_string());
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_parse_as_docker_reads_them() {
        assert_eq!(parse_bytes("64m").unwrap(), 64 << 20);
        assert_eq!(parse_bytes("1g").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("1.5GB").unwrap(), 3 << 29);
        assert_eq!(parse_bytes("512").unwrap(), 512);
        assert_eq!(parse_bytes("10MiB").unwrap(), 10 << 20);
        assert!(parse_bytes("ten").is_err());
        assert!(parse_bytes("-1m").is_err());
        assert_eq!(parse_duration("1s").unwrap(), 1_000_000_000);
        assert_eq!(parse_duration("1h30m").unwrap(), 5_400_000_000_000);
        assert_eq!(parse_duration("1.5s").unwrap(), 1_500_000_000);
        assert_eq!(parse_duration("300ms").unwrap(), 300_000_000);
        assert_eq!(parse_duration("0").unwrap(), 0);
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("1x").is_err());
    }

    #[test]
    fn mounts_ports_and_policies() {
        let m =
            parse_mount("type=bind,source=/a,target=/b,readonly,bind-propagation=rshared").unwrap();
        assert_eq!(m["Type"], "bind");
        assert_eq!(m["ReadOnly"], true);
        assert_eq!(m["BindOptions"]["Propagation"], "rshared");
        let m = parse_mount("type=tmpfs,dst=/t,tmpfs-size=64m,tmpfs-mode=1770").unwrap();
        assert_eq!(m["TmpfsOptions"]["SizeBytes"], 64 << 20);
        assert_eq!(m["TmpfsOptions"]["Mode"], 0o1770);
        let m = parse_mount("src=data,dst=/d,volume-nocopy,volume-label=a=b").unwrap();
        assert_eq!(m["Type"], "volume");
        assert_eq!(m["VolumeOptions"]["NoCopy"], true);
        assert_eq!(m["VolumeOptions"]["Labels"]["a"], "b");
        assert!(parse_mount("type=bind,source=/a")
            .unwrap_err()
            .to_string()
            .contains("target"));
        assert!(parse_mount("type=nfs,target=/a").is_err());
        assert!(parse_mount("target=/a,bogus=1").is_err());

        let p = parse_publish("127.0.0.1:8080:80/udp").unwrap();
        assert_eq!(p[0].0, "80/udp");
        assert_eq!(p[0].1, json!({"HostIp": "127.0.0.1", "HostPort": "8080"}));
        let p = parse_publish("8000-8001:80-81").unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[1].1["HostPort"], "8001");
        assert_eq!(parse_publish("80").unwrap()[0].1["HostPort"], "");
        assert!(parse_publish("80/icmp").is_err());
        assert!(parse_publish("x:80").is_err());

        assert_eq!(
            restart_policy("on-failure:3").unwrap()["MaximumRetryCount"],
            3
        );
        assert_eq!(restart_policy("always").unwrap()["Name"], "always");
        assert!(restart_policy("sometimes").is_err());
        assert!(restart_policy("always:2").is_err());
    }

    #[test]
    fn flags_become_the_create_request() {
        let o = ContainerOpts {
            interactive: true,
            tty: true,
            env: vec!["A=1".into(), "BERTH_SURELY_UNSET_VAR".into()],
            label: vec!["a=b".into(), "flag".into()],
            volume: vec!["/srv:/data:ro".into(), "/anon".into(), "named:/n".into()],
            memory: Some("64m".into()),
            cpus: Some("1.5".into()),
            restart: Some("on-failure:2".into()),
            health_cmd: Some("true".into()),
            health_interval: Some("2s".into()),
            entrypoint: Some(String::new()),
            ..Default::default()
        };
        let v = o.to_create("busybox", &["sh".to_string()]).unwrap();
        assert_eq!(v["Image"], "busybox");
        assert_eq!(v["Cmd"], json!(["sh"]));
        assert_eq!(v["Entrypoint"], json!([""]));
        assert_eq!(v["Env"], json!(["A=1"]));
        assert_eq!(v["Labels"], json!({"a": "b", "flag": ""}));
        assert_eq!(v["AttachStdin"], true);
        assert_eq!(v["OpenStdin"], true);
        assert_eq!(v["Tty"], true);
        assert_eq!(v["Volumes"], json!({"/anon": {}}));
        assert_eq!(
            v["HostConfig"]["Binds"],
            json!(["/srv:/data:ro", "named:/n"])
        );
        assert_eq!(v["HostConfig"]["Memory"], 64 << 20);
        assert_eq!(v["HostConfig"]["NanoCpus"], 1_500_000_000i64);
        assert_eq!(v["HostConfig"]["RestartPolicy"]["Name"], "on-failure");
        assert_eq!(v["Healthcheck"]["Test"], json!(["CMD-SHELL", "true"]));
        assert_eq!(v["Healthcheck"]["Interval"], 2_000_000_000i64);
    }
}
