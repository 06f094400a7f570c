//! The blocking half of a start: the container's rootfs mounted, its /etc files, the OCI
//! spec (`config.json`) and the monitor's `monitor.json`.

use std::path::{Path, PathBuf};

use crate::start::{NetNsBuf, NetUp};
use crate::{archive, io_err, net, spec, volumes, Engine, EngineError, Record, Result};

impl Engine {
    /// Mounts the container's overlay (image layers + its upper) on its `rootfs`.
    pub(crate) fn mount_rootfs(&self, rec: &Record) -> Result<()> {
        let dir = self.ctr_dir(&rec.id);
        let rootfs = dir.join("rootfs");
        let image = self.images.record(
            &rec.image
                .parse()
                .map_err(|_| EngineError::Internal(format!("bad image ID {}", rec.image)))?,
        )?;
        let mut lowers: Vec<PathBuf> = image
            .chain
            .iter()
            .rev()
            .map(|c| self.images.snapshots().layer_dir(c))
            .collect();
        if lowers.is_empty() {
            let empty = dir.join("empty");
            std::fs::create_dir_all(&empty).map_err(io_err("create", &empty))?;
            lowers.push(empty);
        }
        // A mount left by a crash is replaced.
        let _ = berth_image::snapshot::unmount(&rootfs);
        // A container removed at its exit needs its changes never synced to disk.
        let upper = berth_image::snapshot::Upper {
            upper: dir.join("diff"),
            work: dir.join("work"),
            volatile: rec.host_config.auto_remove.unwrap_or(false),
        };
        berth_image::snapshot::mount_overlay(&rootfs, &lowers, Some(&upper))
            .map_err(|e| EngineError::Image(e.into()))
    }

    /// Blocking half of a start: mount, etc files, user, spec, monitor config.
    pub(crate) fn prepare(&self, rec: &Record, up: &NetUp) -> Result<()> {
        let dir = self.ctr_dir(&rec.id);
        let rootfs = dir.join("rootfs");
        self.mount_rootfs(rec)?;
        // As dockerd: a working directory the image lacks is made (the runtime would fail).
        if let Some(w) = rec.config.working_dir.as_deref().filter(|w| !w.is_empty()) {
            archive::mkdir_in_root(&rootfs, w)?;
        }
        // A bind source that went away since create: named here, not as the runtime's
        // "failed to prepare rootfs".
        for m in &rec.mounts {
            if let (Some("bind"), Some(src)) = (m.typ.as_deref(), m.source.as_deref()) {
                if std::fs::symlink_metadata(src).is_err() {
                    let _ = berth_image::snapshot::unmount(&rootfs);
                    return Err(EngineError::InvalidParameter(format!(
                        "invalid mount config for type \"bind\": bind source path does not exist: {src}"
                    )));
                }
            }
        }
        for m in &rec.mounts {
            if m.typ.as_deref() == Some("volume") && m.mode.as_deref() != Some("nocopy") {
                if let (Some(src), Some(dst)) = (&m.source, &m.destination) {
                    volumes::copy_up(&rootfs, dst, Path::new(src))?;
                }
            }
        }
        let hostname = rec.config.hostname.clone().unwrap_or_default();
        let (link_env, link_hosts) = self.resolve_links(rec)?;
        write_etc(&dir, rec, &hostname, up, &link_hosts)?;
        let read = |p: &str| std::fs::read_to_string(rootfs.join(p)).unwrap_or_default();
        let mut user = spec::resolve_user(
            rec.config.user.as_deref().unwrap_or(""),
            &read("etc/passwd"),
            &read("etc/group"),
        )
        .map_err(|e| EngineError::InvalidParameter(e.0))?;
        spec::add_groups(
            &mut user,
            rec.host_config.group_add.as_deref().unwrap_or_default(),
            &read("etc/group"),
        )
        .map_err(|e| EngineError::InvalidParameter(e.0))?;
        let cgroup = format!("/{}/{}", self.cfg.cgroup_parent.trim_matches('/'), rec.id);
        let spec = spec::build(
            &rec.config,
            &rec.host_config,
            &spec::Inputs {
                id: &rec.id,
                rootfs: &rootfs,
                etc_dir: &dir,
                hostname: &hostname,
                user: &user,
                cgroup: &cgroup,
                cgroup_v2: self.cgroup_v2,
                mounts: &rec.mounts,
                devices: &resolve_devices(&rec.host_config)?,
                host: self.host,
                init: self.init_for(&rec.host_config)?,
                netns: up.netns.as_spec(),
                link_env: &link_env,
            },
        )
        .map_err(|e| EngineError::InvalidParameter(e.0))?;
        // config.json and monitor.json are made anew at every start, so a crash that tears
        // one only affects a container that was not running yet: no fsync on the hot path.
        let path = dir.join("config.json");
        std::fs::write(
            &path,
            &serde_json::to_vec(&spec).map_err(|e| EngineError::Internal(e.to_string()))?,
        )
        .map_err(io_err("write", &path))?;
        let log = log_config(rec)?;
        let _ = std::fs::remove_file(dir.join("exit.json"));
        let mcfg = self.monitor_config(rec, &dir, rootfs, &cgroup, log);
        let path = dir.join("monitor.json");
        std::fs::write(
            &path,
            &serde_json::to_vec(&mcfg).map_err(|e| EngineError::Internal(e.to_string()))?,
        )
        .map_err(io_err("write", &path))
    }

    /// What the monitor is told: which runtime, bundle and socket, where the exit and the
    /// init's pid go, the stdio and the log.
    fn monitor_config(
        &self,
        rec: &Record,
        dir: &Path,
        rootfs: PathBuf,
        cgroup: &str,
        log: Option<berth_monitor::LogConfig>,
    ) -> berth_monitor::Config {
        berth_monitor::Config {
            id: rec.id.clone(),
            runtime: self.cfg.runtime.clone(),
            runtime_protected: self.runtime_fd.is_some(),
            runtime_root: self.cfg.exec_root.join("runtime"),
            bundle: dir.to_path_buf(),
            socket: self.socket(&rec.id),
            exit_file: dir.join("exit.json"),
            durable_exit: !rec.host_config.auto_remove.unwrap_or(false),
            pid_file: dir.join("init.pid"),
            tty: rec.config.tty.unwrap_or(false),
            open_stdin: rec.config.open_stdin.unwrap_or(false),
            stdin_once: rec.config.stdin_once.unwrap_or(false),
            log,
            rootfs_mount: Some(rootfs),
            cgroup: PathBuf::from(cgroup),
        }
    }
}

/// The monitor's log settings from the container's log config (json-file's `max-size` and
/// `max-file`); None for the `none` driver.
fn log_config(rec: &Record) -> Result<Option<berth_monitor::LogConfig>> {
    let log_cfg = &rec.host_config.log_config;
    let log = match log_cfg.as_ref().and_then(|l| l.typ.as_deref()) {
        None | Some("") | Some("json-file") => {
            let opts = log_cfg
                .as_ref()
                .and_then(|l| l.config.clone())
                .unwrap_or_default();
            Some(berth_monitor::LogConfig {
                path: PathBuf::from(&rec.log_path),
                max_size: opts
                    .get("max-size")
                    .map(|s| parse_size(s))
                    .transpose()?
                    .unwrap_or(0),
                max_file: opts
                    .get("max-file")
                    .map(|s| {
                        s.parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(|| {
                            EngineError::InvalidParameter(format!(
                                "invalid value for max-file: {s}"
                            ))
                        })
                    })
                    .transpose()?
                    .unwrap_or(1),
            })
        }
        Some("none") => None,
        Some(other) => {
            return Err(EngineError::InvalidParameter(format!(
                "logging driver {other:?} is not supported: use json-file or none"
            )))
        }
    };
    Ok(log)
}

/// The container's /etc/hostname, /etc/hosts and /etc/resolv.conf, as Docker writes them;
/// with `--network container:` the other container's.
fn write_etc(dir: &Path, rec: &Record, hostname: &str, up: &NetUp, links: &[String]) -> Result<()> {
    let w = |name: &str, data: &str| {
        let p = dir.join(name);
        std::fs::write(&p, data).map_err(io_err("write", &p))
    };
    w("hostname", &format!("{hostname}\n"))?;
    if let Some(other) = &up.share {
        for f in ["hosts", "resolv.conf"] {
            let data = std::fs::read_to_string(other.join(f)).unwrap_or_default();
            w(f, &data)?;
        }
        return Ok(());
    }
    let h = &rec.host_config;
    let host_net = matches!(up.netns, NetNsBuf::Host);
    let host_hosts = host_net.then(|| std::fs::read_to_string("/etc/hosts").unwrap_or_default());
    let mut extra = h.extra_hosts.clone().unwrap_or_default();
    extra.extend_from_slice(links);
    let hosts = net::hosts_file(
        host_hosts.as_deref(),
        hostname,
        rec.config.domainname.as_deref().unwrap_or(""),
        &rec.net.endpoints,
        &extra,
        up.gateway,
    )?;
    w("hosts", &hosts)?;
    // The embedded DNS answers on the gateway of the first user-defined network.
    let embedded = rec
        .net
        .endpoints
        .iter()
        .find(|a| !matches!(a.network.as_str(), "bridge" | "host" | "none"))
        .map(|a| a.endpoint.gateway);
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    w(
        "resolv.conf",
        &net::resolv_conf(&host_resolv, h, embedded, host_net),
    )
}

/// `--device`s as the spec needs them: each host path must be a device node.
pub(crate) fn resolve_devices(h: &bollard_stubs::models::HostConfig) -> Result<Vec<spec::Device>> {
    let mut out = Vec::new();
    for d in h.devices.clone().unwrap_or_default() {
        let host = d.path_on_host.clone().unwrap_or_default();
        let ctr = d
            .path_in_container
            .clone()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| host.clone());
        let access = d
            .cgroup_permissions
            .clone()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "rwm".into());
        let (host, ctr, access) = spec::parse_device(&format!("{host}:{ctr}:{access}"))
            .map_err(|e| EngineError::InvalidParameter(e.0))?;
        let st = rustix::fs::stat(host.as_str()).map_err(|e| {
            EngineError::InvalidParameter(format!(
                "error gathering device information while adding custom device {host:?}: {e}"
            ))
        })?;
        let kind = match rustix::fs::FileType::from_raw_mode(st.st_mode) {
            rustix::fs::FileType::CharacterDevice => 'c',
            rustix::fs::FileType::BlockDevice => 'b',
            _ => {
                return Err(EngineError::InvalidParameter(format!(
                    "{host} is not a device node"
                )))
            }
        };
        out.push(spec::Device {
            path: ctr,
            kind,
            major: rustix::fs::major(st.st_rdev) as u64,
            minor: rustix::fs::minor(st.st_rdev) as u64,
            mode: st.st_mode & 0o777,
            access,
        });
    }
    Ok(out)
}

/// Docker's sizes for log options: `10m`, `1g`, `512k`, plain bytes.
fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim().to_ascii_lowercase();
    let (num, mult) = match t.trim_end_matches('b').chars().last() {
        Some('k') => (&t[..t.find('k').unwrap_or(0)], 1u64 << 10),
        Some('m') => (&t[..t.find('m').unwrap_or(0)], 1 << 20),
        Some('g') => (&t[..t.find('g').unwrap_or(0)], 1 << 30),
        _ => (t.trim_end_matches('b'), 1),
    };
    num.parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .map(|n| n * mult)
        .ok_or_else(|| EngineError::InvalidParameter(format!("invalid size: {s:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("10m").unwrap(), 10 << 20);
        assert_eq!(parse_size("1k").unwrap(), 1024);
        assert_eq!(parse_size("2g").unwrap(), 2 << 30);
        assert_eq!(parse_size("100").unwrap(), 100);
        assert!(parse_size("x").is_err());
        assert!(parse_size("0").is_err());
    }
}
