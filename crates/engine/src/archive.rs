//! `docker cp`: reading a path of a container's filesystem as a tar archive, and unpacking a
//! tar archive into one of its directories, running or not.
//!
//! Paths are resolved inside the container's root with `openat2(RESOLVE_IN_ROOT)`, so a
//! symlink in the container cannot point the copy at the host; unpacking goes through
//! berth-image's layer extractor, which refuses entries that climb out (`..`, absolute
//! names, paths through symlinks). A stopped container's rootfs is mounted for the copy and
//! unmounted after it.

use std::io::{Seek, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{Mode, OFlags, ResolveFlags};

use crate::{io_err, Engine, EngineError, Result};

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
fn resolve_in_root(root: &Path, path: &str) -> Result<PathBuf> {
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
        self.with_rootfs(key, move |root| stat_of(&resolve_in_root(root, &path)?))
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
        self.with_rootfs(key, move |root| {
            let full = resolve_in_root(root, &path)?;
            let stat = stat_of(&full)?;
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
        self.with_rootfs(key, move |root| {
            let full = resolve_in_root(root, &path)?;
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
}
