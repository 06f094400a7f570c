//! Volumes (the `local` driver): directories under `<root>/volumes/<name>/_data`, with their
//! record in `volume.json` beside it; and the resolution of a container's `-v`, `--mount` and
//! image `VOLUME`s into the mounts its spec gets.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bollard_stubs::models::{ContainerConfig, HostConfig, MountPoint, MountType};
use serde::{Deserialize, Serialize};

use crate::{io_err, names, Engine, EngineError, Result};

/// A volume as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VolumeRecord {
    /// Its name (64 hex digits for anonymous volumes).
    pub name: String,
    /// Always `local`.
    pub driver: String,
    /// The directory containers see.
    pub mountpoint: PathBuf,
    /// Creation time, RFC 3339.
    pub created_at: String,
    /// User labels.
    pub labels: HashMap<String, String>,
    /// Made for a container (image VOLUME, `-v /path`): removed with `rm -v` and `--rm`.
    pub anonymous: bool,
}

/// The local driver (or none named) is berth's; any other is dockerd's 404 for a plugin it
/// cannot find (berth has no volume plugins).
fn check_driver(d: &str) -> Result<()> {
    if d.is_empty() || d == "local" {
        return Ok(());
    }
    Err(EngineError::NotFound(format!(
        "error looking up volume plugin {d}: plugin \"{d}\" not found"
    )))
}

impl Engine {
    fn vol_dir(&self, name: &str) -> PathBuf {
        self.cfg.root.join("volumes").join(name)
    }

    /// `POST /volumes/create`. Creating a volume that exists returns it, as Docker does.
    pub fn volume_create(
        &self,
        name: Option<&str>,
        driver: Option<&str>,
        driver_opts: &HashMap<String, String>,
        labels: HashMap<String, String>,
    ) -> Result<VolumeRecord> {
        if let Some(d) = driver {
            check_driver(d)?;
        }
        if !driver_opts.is_empty() {
            return Err(EngineError::InvalidParameter(
                "local volume options (type, device, o) are not supported yet".into(),
            ));
        }
        let (name, anonymous) = match name.filter(|n| !n.is_empty()) {
            Some(n) => {
                if !names::valid(n) {
                    return Err(EngineError::InvalidParameter(format!(
                        "create {n}: \"{n}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
                    )));
                }
                (n.to_string(), false)
            }
            None => (crate::random_id()?, true),
        };
        let _g = self.volume_lock.lock().expect("volume lock");
        if let Ok(v) = self.volume_inspect(&name) {
            return Ok(v);
        }
        let dir = self.vol_dir(&name);
        let data = dir.join("_data");
        std::fs::create_dir_all(&data).map_err(io_err("create", &data))?;
        let rec = VolumeRecord {
            name: name.clone(),
            driver: "local".into(),
            mountpoint: data,
            created_at: crate::now(),
            labels,
            anonymous,
        };
        let path = dir.join("volume.json");
        berth_atomic::write(
            &path,
            &serde_json::to_vec(&rec).map_err(|e| EngineError::Internal(e.to_string()))?,
            berth_atomic::Durability::Durable,
        )
        .map_err(io_err("write", &path))?;
        self.publish_volume(&name, "create");
        Ok(rec)
    }

    fn publish_volume(&self, name: &str, action: &str) {
        self.publish(crate::Event {
            typ: "volume",
            action: action.into(),
            id: name.into(),
            attributes: [("driver".to_string(), "local".to_string())].into(),
            time_nano: chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0),
        });
    }

    /// `GET /volumes/{name}`.
    pub fn volume_inspect(&self, name: &str) -> Result<VolumeRecord> {
        let path = self.vol_dir(name).join("volume.json");
        if !names::valid(name) {
            return Err(EngineError::NoSuchVolume(name.into()));
        }
        let b = std::fs::read(&path).map_err(|_| EngineError::NoSuchVolume(name.into()))?;
        serde_json::from_slice(&b)
            .map_err(|e| EngineError::Internal(format!("{}: {e}", path.display())))
    }

    /// `GET /volumes`.
    pub fn volume_list(&self) -> Vec<VolumeRecord> {
        let mut out: Vec<VolumeRecord> = std::fs::read_dir(self.cfg.root.join("volumes"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| self.volume_inspect(&e.file_name().to_string_lossy()).ok())
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// IDs of the containers that mount the volume.
    pub fn volume_users(&self, name: &str) -> Vec<String> {
        self.list()
            .into_iter()
            .filter(|r| r.mounts.iter().any(|m| m.name.as_deref() == Some(name)))
            .map(|r| r.id)
            .collect()
    }

    /// `DELETE /volumes/{name}`: refused while a container uses it, even with `force`.
    pub fn volume_remove(&self, name: &str, force: bool) -> Result<()> {
        let _g = self.volume_lock.lock().expect("volume lock");
        if let Err(e) = self.volume_inspect(name) {
            return if force { Ok(()) } else { Err(e) };
        }
        let users = self.volume_users(name);
        if !users.is_empty() {
            return Err(EngineError::Conflict(format!(
                "remove {name}: volume is in use - [{}]",
                users.join(", ")
            )));
        }
        let dir = self.vol_dir(name);
        let gone = self
            .cfg
            .root
            .join("volumes")
            .join(format!(".removing-{name}"));
        std::fs::rename(&dir, &gone).map_err(io_err("remove", &dir))?;
        std::fs::remove_dir_all(&gone).map_err(io_err("remove", &gone))?;
        self.publish_volume(name, "destroy");
        Ok(())
    }

    /// `POST /volumes/prune`: the unused volumes `filter` picks (anonymous ones, unless it
    /// says `all`; see [`VolumeFilter::prune`](crate::filters::VolumeFilter::prune)).
    /// Returns the names removed and the bytes freed.
    pub fn volume_prune(
        &self,
        filter: &crate::filters::VolumeFilter,
    ) -> Result<(Vec<String>, u64)> {
        let mut removed = Vec::new();
        let mut freed = 0;
        for v in self.volume_list() {
            if filter.matches(&v, || !self.volume_users(&v.name).is_empty()) {
                let size = dir_size(&v.mountpoint);
                if self.volume_remove(&v.name, false).is_ok() {
                    removed.push(v.name);
                    freed += size;
                }
            }
        }
        Ok((removed, freed))
    }

    /// Turns `-v`, `--mount` and the image's `VOLUME`s into mount points, creating the
    /// volumes they name. Checked here, at create, so a bad one makes no container.
    pub(crate) fn resolve_mounts(
        &self,
        c: &ContainerConfig,
        h: &HostConfig,
    ) -> Result<Vec<MountPoint>> {
        let bad = |m: String| EngineError::InvalidParameter(m);
        let mut out: Vec<MountPoint> = Vec::new();
        // `--volume-driver`, for the volumes `-v` and the image's VOLUMEs make.
        let driver = h.volume_driver.as_deref();
        let volume = |name: Option<&str>, dst: &str, rw: bool| -> Result<MountPoint> {
            let v = self.volume_create(name, driver, &HashMap::new(), HashMap::new())?;
            Ok(MountPoint {
                typ: Some("volume".into()),
                name: Some(v.name),
                source: Some(v.mountpoint.to_string_lossy().into_owned()),
                destination: Some(dst.into()),
                driver: Some("local".into()),
                mode: Some(if rw { "z" } else { "ro" }.into()),
                rw: Some(rw),
                propagation: Some(String::new()),
            })
        };
        let bind = |src: &str, dst: &str, rw: bool, prop: &str| MountPoint {
            typ: Some("bind".into()),
            name: None,
            source: Some(src.into()),
            destination: Some(dst.into()),
            driver: None,
            mode: Some(if rw { "" } else { "ro" }.into()),
            rw: Some(rw),
            propagation: Some(prop.into()),
        };
        for b in h.binds.clone().unwrap_or_default() {
            let (src, dst, opts) = crate::spec::parse_bind(&b).map_err(|e| bad(e.0))?;
            let ro = opts.iter().any(|o| o == "ro");
            let prop = opts
                .iter()
                .find(|o| o.contains("shared") || o.contains("slave") || o.contains("private"))
                .cloned()
                .unwrap_or_else(|| "rprivate".into());
            if src.starts_with('/') {
                // As dockerd: a `-v` bind source that does not exist is made, as a
                // directory (`--mount` refuses one instead).
                if std::fs::symlink_metadata(&src).is_err() {
                    std::fs::create_dir_all(&src).map_err(|e| {
                        bad(format!(
                            "error while creating mount source path '{src}': {e}"
                        ))
                    })?;
                }
                out.push(bind(&src, &dst, !ro, &prop));
            } else {
                let mut v = volume(Some(&src), &dst, !ro)?;
                if opts.iter().any(|o| o == "nocopy") {
                    v.mode = Some("nocopy".into());
                }
                out.push(v);
            }
        }
        for m in h.mounts.clone().unwrap_or_default() {
            let dst = m
                .target
                .clone()
                .filter(|t| t.starts_with('/'))
                .ok_or_else(|| {
                    bad("invalid mount config: Target must be an absolute path".into())
                })?;
            let rw = !m.read_only.unwrap_or(false);
            match m.typ {
                Some(MountType::BIND) => {
                    let src = m.source.clone().unwrap_or_default();
                    if !Path::new(&src).exists() {
                        return Err(bad(format!(
                            "invalid mount config for type \"bind\": bind source path does not exist: {src}"
                        )));
                    }
                    let prop = m
                        .bind_options
                        .as_ref()
                        .and_then(|o| o.propagation)
                        .map(|p| p.to_string())
                        .filter(|p| !p.is_empty())
                        .unwrap_or_else(|| "rprivate".into());
                    out.push(bind(&src, &dst, rw, &prop));
                }
                Some(MountType::VOLUME) => {
                    if let Some(d) = m
                        .volume_options
                        .as_ref()
                        .and_then(|o| o.driver_config.as_ref())
                        .and_then(|c| c.name.as_deref())
                    {
                        check_driver(d)?;
                    }
                    let mut v = volume(m.source.as_deref(), &dst, rw)?;
                    if m.volume_options.as_ref().and_then(|o| o.no_copy) == Some(true) {
                        v.mode = Some("nocopy".into());
                    }
                    out.push(v);
                }
                Some(MountType::TMPFS) => {
                    let size = m.tmpfs_options.as_ref().and_then(|o| o.size_bytes);
                    out.push(MountPoint {
                        typ: Some("tmpfs".into()),
                        name: None,
                        source: Some(String::new()),
                        destination: Some(dst),
                        driver: None,
                        mode: Some(size.map(|s| format!("size={s}")).unwrap_or_default()),
                        rw: Some(rw),
                        propagation: Some(String::new()),
                    });
                }
                other => {
                    return Err(bad(format!(
                        "mount type {:?} is not supported: use bind, volume or tmpfs",
                        other.map(|t| t.to_string()).unwrap_or_default()
                    )))
                }
            }
        }
        // The image's VOLUMEs (and `-v /path`) not covered above get anonymous volumes.
        for dst in c.volumes.clone().unwrap_or_default() {
            if !out
                .iter()
                .any(|m| m.destination.as_deref() == Some(dst.as_str()))
                && !h.tmpfs.as_ref().is_some_and(|t| t.contains_key(&dst))
            {
                out.push(volume(None, &dst, true)?);
            }
        }
        Ok(out)
    }

    /// Removes the anonymous volumes a removed container had.
    pub(crate) fn remove_anonymous(&self, mounts: &[MountPoint]) {
        for m in mounts {
            if let Some(name) = &m.name {
                if self.volume_inspect(name).is_ok_and(|v| v.anonymous) {
                    let _ = self.volume_remove(name, false);
                }
            }
        }
    }
}

/// Docker's volume copy-up: a volume that is still empty when first mounted over a directory
/// the image has gets a copy of that directory: files, directories, symlinks, hard links (as
/// links), device nodes and fifos, with owners, modes and modification times (extended
/// attributes are not copied; sockets are skipped, as tar skips them). The image path is
/// resolved inside the rootfs, so an image symlink cannot point the copy elsewhere.
pub(crate) fn copy_up(rootfs: &Path, dst: &str, volume: &Path) -> Result<()> {
    let empty = std::fs::read_dir(volume)
        .map(|mut d| d.next().is_none())
        .unwrap_or(false);
    if !empty {
        return Ok(());
    }
    let Ok(src) = crate::archive::resolve_in_root(rootfs, dst) else {
        return Ok(());
    };
    if !std::fs::symlink_metadata(&src).is_ok_and(|m| m.is_dir()) {
        return Ok(());
    }
    copy_tree(&src, volume, &mut HashMap::new())
        .map_err(io_err("copy image content into volume", volume))
}

/// Copies the inside of `from` into the existing directory `to`; `links` maps the (device,
/// inode) of a multiply linked file already copied to its copy.
fn copy_tree(
    from: &Path,
    to: &Path,
    links: &mut HashMap<(u64, u64), std::path::PathBuf>,
) -> std::io::Result<()> {
    use rustix::fs::{FileType, Mode, CWD};
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let m = std::fs::symlink_metadata(&src)?;
        let ft = m.file_type();
        if !ft.is_dir() && m.nlink() > 1 {
            if let Some(first) = links.get(&(m.dev(), m.ino())) {
                std::fs::hard_link(first, &dst)?;
                continue;
            }
            links.insert((m.dev(), m.ino()), dst.clone());
        }
        if ft.is_dir() {
            std::fs::create_dir(&dst)?;
            copy_tree(&src, &dst, links)?;
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src)?, &dst)?;
        } else if ft.is_file() {
            std::fs::copy(&src, &dst)?;
        } else {
            let kind = FileType::from_raw_mode(m.mode());
            if kind == FileType::Socket {
                continue;
            }
            rustix::fs::mknodat(
                CWD,
                &dst,
                kind,
                Mode::from_raw_mode(m.mode() & 0o7777),
                m.rdev(),
            )?;
        }
        std::os::unix::fs::lchown(&dst, Some(m.uid()), Some(m.gid()))?;
        if !ft.is_symlink() {
            std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(m.mode() & 0o7777))?;
        }
        set_times(&dst, &m)?;
    }
    let m = std::fs::metadata(from)?;
    std::os::unix::fs::lchown(to, Some(m.uid()), Some(m.gid()))?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(m.mode() & 0o7777))?;
    // Last: creating the entries changed the directory's times.
    set_times(to, &m)
}

/// Gives `path` (not what it links to) the access and modification times of `m`.
fn set_times(path: &Path, m: &std::fs::Metadata) -> std::io::Result<()> {
    use rustix::fs::{AtFlags, Timespec, Timestamps, CWD};
    use std::os::unix::fs::MetadataExt;
    let ts = |sec: i64, nsec: i64| Timespec {
        tv_sec: sec,
        tv_nsec: nsec as _,
    };
    let times = Timestamps {
        last_access: ts(m.atime(), m.atime_nsec()),
        last_modification: ts(m.mtime(), m.mtime_nsec()),
    };
    rustix::fs::utimensat(CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(())
}

/// Bytes used under a directory (allocated blocks).
pub fn dir_size(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            } else {
                total += m.blocks() * 512;
            }
        }
    }
    total
}
