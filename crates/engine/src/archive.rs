//! `docker cp`: reading a path of a container's filesystem as a tar archive, and unpacking a
//! tar archive into one of its directories, running or not.
//!
//! Paths are resolved inside the container's root with `openat2(RESOLVE_IN_ROOT)`, so a
//! symlink in the container cannot point the copy at the host; unpacking goes through
//! berth-image's layer extractor, which refuses entries that climb out (`..`, absolute
//! names, paths through symlinks). A stopped container's rootfs is mounted for the copy and
//! unmounted after it.

use std::collections::HashMap;
use std::io::{Seek, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{Mode, OFlags, ResolveFlags};

use crate::{io_err, Engine, EngineError, Result, Status};

/// What `HEAD /containers/{id}/archive` reports about a path (Docker's `PathStat`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathStat {
    /// The last component.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Go's `os.FileMode`: permission bits, plus 1<<31 for a directory, 1<<27 for a symlink.
    pub mode: u32,
    /// Modification time, RFC 3339.
    pub mtime: String,
    /// Where a symlink points.
    pub link_target: String,
}

/// Resolves `path` inside `root` (symlinks and `..` stay inside) to the host path it names.
pub(crate) fn resolve_in_root(root: &Path, path: &str) -> Result<PathBuf> {
    let not_found = || EngineError::NotFoundInContainer(path.to_string());
    let rootfd = rustix::fs::open(
        root,
        OFlags::DIRECTORY | OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io_err("open", root)(e.into()))?;
    let rel = path.trim_start_matches('/');
    if rel.is_empty() {
        return Ok(root.to_path_buf());
    }
    // The last component is not followed: `cp` copies a symlink as a symlink.
    let (parent, last) = match rel.trim_end_matches('/').rsplit_once('/') {
        Some((p, l)) => (p, l),
        None => ("", rel.trim_end_matches('/')),
    };
    let dir = if parent.is_empty() {
        root.to_path_buf()
    } else {
        let fd = rustix::fs::openat2(
            &rootfd,
            parent,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        )
        .map_err(|_| not_found())?;
        std::fs::read_link(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&fd)
        ))
        .map_err(|_| not_found())?
    };
    if !dir.starts_with(root) {
        return Err(not_found());
    }
    if last == ".." || last == "." {
        return Ok(dir);
    }
    let full = dir.join(last);
    std::fs::symlink_metadata(&full).map_err(|_| not_found())?;
    Ok(full)
}

/// Creates the directory `path` inside `root` and any missing parents (mode 0755, owned by
/// root, as dockerd makes a missing working directory). Each parent is reached with
/// `openat2(RESOLVE_IN_ROOT)`, so a symlink in the image cannot point the creation outside.
pub(crate) fn mkdir_in_root(root: &Path, path: &str) -> Result<()> {
    let rootfd = rustix::fs::open(
        root,
        OFlags::DIRECTORY | OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io_err("open", root)(e.into()))?;
    let mut done = String::from(".");
    for part in path.split('/').filter(|p| !p.is_empty() && *p != ".") {
        let parent = rustix::fs::openat2(
            &rootfd,
            done.as_str(),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        )
        .map_err(|e| {
            EngineError::InvalidParameter(format!(
                "working directory {path}: {done} in the container: {e}"
            ))
        })?;
        match rustix::fs::mkdirat(&parent, part, Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => {
                return Err(EngineError::InvalidParameter(format!(
                    "working directory {path}: cannot create {part} in the container: {e}"
                )))
            }
        }
        done.push('/');
        done.push_str(part);
    }
    Ok(())
}

/// Resolves `path` as the container sees it: inside a volume or bind mount it is the
/// mount's source on the host (those are mounted only in the container's own mount
/// namespace, not in the root berthd sees), resolved inside that source as inside a root;
/// elsewhere it is resolved in the container's root.
pub(crate) fn resolve_in_container(
    root: &Path,
    mounts: &[bollard_stubs::models::MountPoint],
    path: &str,
) -> Result<PathBuf> {
    let clean = clean_path(path);
    let best = mounts
        .iter()
        .filter(|m| matches!(m.typ.as_deref(), Some("volume" | "bind")))
        .filter_map(|m| {
            let dst = clean_path(m.destination.as_deref()?);
            let src = m.source.as_deref()?;
            let rest = if clean == dst {
                ""
            } else {
                clean.strip_prefix(&dst)?.strip_prefix('/')?
            };
            Some((dst.len(), src, rest))
        })
        .max_by_key(|(len, _, _)| *len);
    match best {
        Some((_, src, rest)) => {
            // A trailing `/` or `/.` matters to `cp` (copy the content): keep it.
            let mut rel = format!("/{rest}");
            if path.ends_with('/') || path.ends_with("/.") {
                rel.push_str(if path.ends_with("/.") { "/." } else { "/" });
            }
            resolve_in_root(Path::new(src), &rel)
        }
        None => resolve_in_root(root, path),
    }
}

/// The last component of `path` in the container (`/` for the root): a mount's source on
/// the host has a name of its own (`_data`) that a copy must not take.
fn container_name(path: &str) -> String {
    let clean = clean_path(path);
    match clean.rsplit('/').next() {
        Some(n) if !n.is_empty() => n.to_string(),
        _ => "/".into(),
    }
}

/// `path` without `.`, `..` (never above `/`) and repeated slashes, as Go's `filepath.Clean`
/// of an absolute path.
fn clean_path(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

fn stat_of(p: &Path) -> Result<PathStat> {
    let m = std::fs::symlink_metadata(p).map_err(io_err("stat", p))?;
    let mut mode = m.mode() & 0o777;
    if m.is_dir() {
        mode |= 1 << 31;
    }
    let mut link_target = String::new();
    if m.file_type().is_symlink() {
        mode |= 1 << 27;
        link_target = std::fs::read_link(p)
            .map(|t| t.to_string_lossy().into_owned())
            .unwrap_or_default();
    }
    Ok(PathStat {
        name: p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "/".into()),
        size: m.len(),
        mode,
        mtime: chrono::DateTime::from_timestamp(m.mtime(), m.mtime_nsec() as u32)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        link_target,
    })
}

impl Engine {
    /// Runs `f` on the container's mounted root: the live one while it runs, else a mount
    /// made for the call (under the container's lifecycle lock, so a start cannot race it).
    async fn with_rootfs<T: Send + 'static>(
        self: &Arc<Self>,
        key: &str,
        f: impl FnOnce(&Path) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let ctr = self.find(key)?;
        let _op = ctr.op.lock().await;
        let rec = ctr.snapshot();
        let dir = self.ctr_dir(&rec.id);
        let rootfs = dir.join("rootfs");
        let running = rec.state.status.is_running();
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            if !running {
                this.mount_rootfs(&rec)?;
            }
            let r = f(&rootfs);
            if !running {
                let _ = berth_image::snapshot::unmount(&rootfs);
            }
            r
        })
        .await
        .map_err(|e| EngineError::Internal(e.to_string()))?
    }

    /// `HEAD /containers/{id}/archive?path=`.
    pub async fn archive_stat(self: &Arc<Self>, key: &str, path: &str) -> Result<PathStat> {
        let path = path.to_string();
        let mounts = self.inspect(key)?.mounts;
        self.with_rootfs(key, move |root| {
            let mut stat = stat_of(&resolve_in_container(root, &mounts, &path)?)?;
            stat.name = container_name(&path);
            Ok(stat)
        })
        .await
    }

    /// `GET /containers/{id}/archive?path=`: the path's stat and a tar of it (spooled to a
    /// temporary file, rewound).
    pub async fn archive_get(
        self: &Arc<Self>,
        key: &str,
        path: &str,
    ) -> Result<(PathStat, std::fs::File)> {
        let path = path.to_string();
        let mounts = self.inspect(key)?.mounts;
        self.with_rootfs(key, move |root| {
            let full = resolve_in_container(root, &mounts, &path)?;
            let mut stat = stat_of(&full)?;
            stat.name = container_name(&path);
            let mut spool = tempfile::tempfile().map_err(io_err("create", Path::new("/tmp")))?;
            {
                let mut b = tar::Builder::new(&mut spool);
                b.follow_symlinks(false);
                let name = if stat.name == "/" { "." } else { &stat.name };
                let m = std::fs::symlink_metadata(&full).map_err(io_err("stat", &full))?;
                let r = if m.is_dir() {
                    b.append_dir_all(name, &full)
                } else {
                    b.append_path_with_name(&full, name)
                };
                r.and_then(|_| b.finish())
                    .map_err(io_err("archive", &full))?;
            }
            spool.flush().map_err(io_err("archive", &full))?;
            spool.rewind().map_err(io_err("archive", &full))?;
            Ok((stat, spool))
        })
        .await
    }

    /// `PUT /containers/{id}/archive?path=`: unpacks a tar into an existing directory.
    pub async fn archive_put(
        self: &Arc<Self>,
        key: &str,
        path: &str,
        tar: std::fs::File,
    ) -> Result<()> {
        let path = path.to_string();
        let mounts = self.inspect(key)?.mounts;
        self.with_rootfs(key, move |root| {
            let full = resolve_in_container(root, &mounts, &path)?;
            if !std::fs::metadata(&full)
                .map(|m| m.is_dir())
                .unwrap_or(false)
            {
                return Err(EngineError::InvalidParameter(format!(
                    "extraction point is not a directory: {path}"
                )));
            }
            let opts = berth_image::layer::UnpackOptions {
                allow_devices: false,
                preserve_owners: true,
                diff_id_known: true,
            };
            berth_image::layer::unpack(std::io::BufReader::new(tar), &full, &opts)
                .map_err(|e| EngineError::InvalidParameter(format!("copy into {path}: {e}")))?;
            Ok(())
        })
        .await
    }
}

/// One entry of `docker diff`: 0 changed, 1 added, 2 deleted (Docker's kinds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The path in the container.
    pub path: String,
    /// 0 modified, 1 added, 2 deleted.
    pub kind: u8,
}

/// Walks a container's upper directory against its image's layers: whiteouts are deletions,
/// what the layers also have is a change, the rest was added.
/// Whether the image (its layers, top first, in overlay form) has `rel`: the topmost layer
/// that says anything about it decides; a whiteout there, or an opaque directory above
/// it, means the image does not have it (a file an image layer deleted and the container
/// made again is added, not changed).
fn in_lowers(lowers: &[PathBuf], rel: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    for l in lowers {
        match std::fs::symlink_metadata(l.join(rel)) {
            Ok(m) => return !(m.file_type().is_char_device() && m.rdev() == 0),
            Err(_) => {
                let opaque_above = rel.ancestors().skip(1).any(|a| {
                    !a.as_os_str().is_empty()
                        && rustix::fs::getxattr(l.join(a), "trusted.overlay.opaque", &mut [0u8; 1])
                            .is_ok()
                });
                if opaque_above {
                    return false;
                }
            }
        }
    }
    false
}

fn changes_of(upper: &Path, lowers: &[PathBuf]) -> Vec<Change> {
    use std::os::unix::fs::FileTypeExt;
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(upper.join(&rel)) else {
            continue;
        };
        let mut entries: Vec<_> = rd.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let r = rel.join(e.file_name());
            let Ok(ft) = e.file_type() else { continue };
            let meta = e.metadata().ok();
            let whiteout = ft.is_char_device() && meta.as_ref().is_some_and(|m| m.rdev() == 0);
            let in_lower = in_lowers(lowers, &r);
            let kind = if whiteout {
                2
            } else if in_lower {
                0
            } else {
                1
            };
            out.push(Change {
                path: format!("/{}", r.display()),
                kind,
            });
            if ft.is_dir() {
                stack.push(r);
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

impl Engine {
    fn lower_dirs(&self, image: &str) -> Result<Vec<PathBuf>> {
        let image = self.images.record(
            &image
                .parse()
                .map_err(|_| EngineError::Internal(format!("bad image ID {image}")))?,
        )?;
        Ok(image
            .chain
            .iter()
            .rev()
            .map(|c| self.images.snapshots().layer_dir(c))
            .collect())
    }

    /// `GET /containers/{id}/changes`.
    pub async fn changes(self: &Arc<Self>, key: &str) -> Result<Vec<Change>> {
        let rec = self.inspect(key)?;
        let lowers = self.lower_dirs(&rec.image)?;
        let upper = self.ctr_dir(&rec.id).join("diff");
        tokio::task::spawn_blocking(move || changes_of(&upper, &lowers))
            .await
            .map_err(|e| EngineError::Internal(e.to_string()))
    }

    /// `GET /containers/{id}/export`: the container's whole filesystem as a tar (spooled to
    /// a temporary file, rewound).
    pub async fn export(self: &Arc<Self>, key: &str) -> Result<std::fs::File> {
        self.with_rootfs(key, move |root| {
            let mut spool = tempfile::tempfile().map_err(io_err("create", Path::new("/tmp")))?;
            {
                let mut b = tar::Builder::new(&mut spool);
                b.follow_symlinks(false);
                b.append_dir_all(".", root)
                    .and_then(|_| b.finish())
                    .map_err(io_err("export", root))?;
            }
            spool.rewind().map_err(io_err("export", root))?;
            Ok(spool)
        })
        .await
    }

    /// `POST /commit`: a new image from the container's image and its changes. `changes` are
    /// Dockerfile instructions applied to the config (`CMD`, `ENV`, ...), as `--change`. With
    /// `pause` (Docker's default) a running container is paused while its changes are read,
    /// so the layer is one moment's filesystem, and resumed after (with pause and unpause
    /// events, as Docker does).
    #[allow(clippy::too_many_arguments)]
    pub async fn commit(
        self: &Arc<Self>,
        key: &str,
        reference: Option<berth_image::Reference>,
        comment: &str,
        author: &str,
        changes: &[String],
        pause: bool,
    ) -> Result<berth_image::store::ImageRecord> {
        let rec = self.inspect(key)?;
        let c = &rec.config;
        let mut section = serde_json::Map::new();
        let mut put = |k: &str, v: serde_json::Value| {
            if !v.is_null() {
                section.insert(k.into(), v);
            }
        };
        put("Env", serde_json::json!(c.env));
        put("Cmd", serde_json::json!(c.cmd));
        put("Entrypoint", serde_json::json!(c.entrypoint));
        put("WorkingDir", serde_json::json!(c.working_dir));
        put("User", serde_json::json!(c.user));
        put("Labels", serde_json::json!(c.labels));
        put("StopSignal", serde_json::json!(c.stop_signal));
        if let Some(p) = &c.exposed_ports {
            put(
                "ExposedPorts",
                serde_json::Value::Object(
                    p.iter()
                        .map(|k| (k.clone(), serde_json::json!({})))
                        .collect(),
                ),
            );
        }
        if let Some(v) = &c.volumes {
            put(
                "Volumes",
                serde_json::Value::Object(
                    v.iter()
                        .map(|k| (k.clone(), serde_json::json!({})))
                        .collect(),
                ),
            );
        }
        for ch in changes {
            berth_image::change::apply(&mut section, ch).map_err(|e| {
                EngineError::InvalidParameter(format!("invalid change {ch:?}: {e}"))
            })?;
        }
        let parent = self.images.record(
            &rec.image
                .parse()
                .map_err(|_| EngineError::Internal(format!("bad image ID {}", rec.image)))?,
        )?;
        let upper = self.ctr_dir(&rec.id).join("diff");
        let images = self.images.clone();
        let (comment, author) = (comment.to_string(), author.to_string());
        let created_by = format!("berth commit {}", &rec.id[..12]);
        let paused =
            pause && rec.state.status == Status::Running && self.pause(&rec.id, true).await.is_ok();
        let spool = tokio::task::spawn_blocking(move || -> Result<_> {
            let mut spool = tempfile::tempfile().map_err(io_err("create", Path::new("/tmp")))?;
            berth_image::diff::write_diff(&upper, &mut spool).map_err(io_err("read", &upper))?;
            spool.rewind().map_err(io_err("read", &upper))?;
            Ok(spool)
        })
        .await
        .map_err(|e| EngineError::Internal(e.to_string()));
        if paused {
            if let Err(e) = self.pause(&rec.id, false).await {
                tracing::warn!("commit {}: resume after the diff: {e}", rec.id);
            }
        }
        let spool = spool??;
        let tag = reference.clone();
        let event_comment = comment.clone();
        let id = rec.id.clone();
        let img = tokio::task::spawn_blocking(move || -> Result<_> {
            Ok(images.commit(
                &parent,
                std::io::BufReader::new(spool),
                &id,
                serde_json::Value::Object(section),
                reference.as_ref(),
                &comment,
                &author,
                &created_by,
                &crate::now(),
            )?)
        })
        .await
        .map_err(|e| EngineError::Internal(e.to_string()))??;
        // As dockerd: the container's commit event, then the new image's tag.
        let image_ref = tag.as_ref().map(|t| t.familiar()).unwrap_or_default();
        self.emit(
            &rec,
            "commit",
            &[
                ("comment", event_comment),
                ("imageID", img.id.to_string()),
                ("imageRef", image_ref.clone()),
            ],
        );
        if tag.is_some() {
            let labels = self.image_labels(&img);
            self.image_event("tag", &img.id.to_string(), &image_ref, labels);
        }
        Ok(img)
    }

    /// An image's labels, for its events.
    pub fn image_labels(&self, img: &berth_image::store::ImageRecord) -> HashMap<String, String> {
        self.images
            .config_of(img)
            .ok()
            .and_then(|c| c.config().as_ref().and_then(|c| c.labels().clone()))
            .map(|l| l.into_iter().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_inside_the_root() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/f"), "x").unwrap();
        std::os::unix::fs::symlink("/", root.join("up")).unwrap();
        std::os::unix::fs::symlink("../../../../etc", root.join("etc/esc")).unwrap();
        assert_eq!(
            resolve_in_root(&root, "/etc/f").unwrap(),
            root.join("etc/f")
        );
        // A symlink to / in the container is the container's /, not the host's.
        assert_eq!(
            resolve_in_root(&root, "/up/etc/f").unwrap(),
            root.join("etc/f")
        );
        assert_eq!(
            resolve_in_root(&root, "/etc/esc/f").unwrap(),
            root.join("etc/f")
        );
        assert!(resolve_in_root(&root, "/etc/nope").is_err());
        assert_eq!(resolve_in_root(&root, "/").unwrap(), root);
        let s = stat_of(&root.join("etc")).unwrap();
        assert_eq!(s.mode & (1 << 31), 1 << 31);
        let s = stat_of(&root.join("up")).unwrap();
        assert_eq!((s.mode & (1 << 27), s.link_target.as_str()), (1 << 27, "/"));
    }

    #[test]
    fn changes_are_classified_against_the_layers() {
        let d = tempfile::tempdir().unwrap();
        let lower = d.path().join("lower");
        let upper = d.path().join("upper");
        std::fs::create_dir_all(lower.join("etc")).unwrap();
        std::fs::write(lower.join("etc/kept"), "").unwrap();
        std::fs::write(lower.join("etc/gone"), "").unwrap();
        std::fs::create_dir_all(upper.join("etc")).unwrap();
        std::fs::write(upper.join("etc/kept"), "changed").unwrap();
        std::fs::write(upper.join("new"), "").unwrap();
        // An overlayfs whiteout: a 0/0 character device (needs root, which the suite has).
        let ok = rustix::fs::mknodat(
            rustix::fs::CWD,
            upper.join("etc/gone"),
            rustix::fs::FileType::CharacterDevice,
            Mode::from_raw_mode(0o600),
            0,
        )
        .is_ok();
        // A layer above the first deleted /etc/kept2 and made /opt opaque; the container
        // made both again: added, not changed.
        let top = d.path().join("top");
        std::fs::write(lower.join("etc/kept2"), "").unwrap();
        std::fs::create_dir_all(lower.join("opt")).unwrap();
        std::fs::write(lower.join("opt/old"), "").unwrap();
        std::fs::create_dir_all(top.join("etc")).unwrap();
        std::fs::create_dir_all(top.join("opt")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            top.join("etc/kept2"),
            rustix::fs::FileType::CharacterDevice,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        rustix::fs::setxattr(
            top.join("opt"),
            "trusted.overlay.opaque",
            b"y",
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
        std::fs::write(upper.join("etc/kept2"), "again").unwrap();
        std::fs::create_dir_all(upper.join("opt")).unwrap();
        std::fs::write(upper.join("opt/old"), "again").unwrap();
        let c = changes_of(&upper, &[top, lower]);
        let get = |p: &str| c.iter().find(|x| x.path == p).map(|x| x.kind);
        assert_eq!(get("/etc"), Some(0));
        assert_eq!(get("/etc/kept"), Some(0));
        assert_eq!(get("/new"), Some(1));
        assert_eq!(get("/etc/kept2"), Some(1));
        assert_eq!(get("/opt/old"), Some(1));
        assert!(ok, "a whiteout could not be made (the tests run as root)");
        assert_eq!(get("/etc/gone"), Some(2));
    }

    #[test]
    fn paths_in_mounts_resolve_in_their_sources() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        let vol = d.path().join("vol");
        std::fs::create_dir_all(root.join("data")).unwrap();
        std::fs::create_dir_all(vol.join("sub")).unwrap();
        std::fs::write(vol.join("sub/f"), "x").unwrap();
        std::os::unix::fs::symlink("/../..", vol.join("up")).unwrap();
        let mounts = [bollard_stubs::models::MountPoint {
            typ: Some("volume".into()),
            source: Some(vol.to_string_lossy().into_owned()),
            destination: Some("/data".into()),
            ..Default::default()
        }];
        let r = |p: &str| resolve_in_container(&root, &mounts, p).unwrap();
        assert_eq!(r("/data/sub/f"), vol.join("sub/f"));
        assert_eq!(r("/data"), vol);
        assert_eq!(r("/data/./sub/../sub/f"), vol.join("sub/f"));
        // A symlink in the volume stays in the volume.
        assert_eq!(r("/data/up/sub/f"), vol.join("sub/f"));
        // `/dat` is not under `/data`: the root's (where it does not exist).
        assert!(matches!(
            resolve_in_container(&root, &mounts, "/dat"),
            Err(EngineError::NotFoundInContainer(_))
        ));
        assert_eq!(container_name("/data/"), "data");
        assert_eq!(container_name("/"), "/");
    }
}
