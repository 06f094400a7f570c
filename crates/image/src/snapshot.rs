//! Layer snapshots on overlayfs: each layer unpacked once, into a directory keyed by its chain
//! ID, and shared by every image and container that has it below.
//!
//! `<root>/<chain hex>/fs` is a layer's tree. It is unpacked into `<root>/.tmp-*` and renamed
//! into place only when complete, so a crash never leaves a half-unpacked layer under a valid
//! name. A container's rootfs is an overlay of its image's layers (top first) plus a writable
//! upper directory of its own.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::digest::Digest;
use crate::layer::{self, LayerError, UnpackOptions, UnpackStats};

/// Snapshot errors.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The layer stream was refused or unreadable.
    #[error(transparent)]
    Layer(#[from] LayerError),
    /// The uncompressed layer does not hash to the diff ID the image config names.
    #[error("layer diff ID mismatch: config says {expected}, layer is {actual}")]
    DiffIdMismatch {
        /// From the image config.
        expected: Digest,
        /// What the stream hashed to.
        actual: Digest,
    },
    /// A parent snapshot is missing.
    #[error("parent snapshot {0} not found")]
    NoParent(Digest),
    /// File-system trouble.
    #[error("{what} {}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// Where.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// mount(2) or umount(2) failed.
    #[error("{what} {}", path.display())]
    Mount {
        /// What was being done.
        what: &'static str,
        /// The mount point.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: rustix::io::Errno,
    },
}

/// A layer unpacked by [`Snapshotter::stage`], waiting to be adopted as a snapshot.
#[derive(Debug)]
pub struct Staged {
    tmp: tempfile::TempDir,
    stats: UnpackStats,
}

impl Staged {
    /// What was unpacked (with the stream's diff ID unless it was staged as known).
    pub fn stats(&self) -> &UnpackStats {
        &self.stats
    }
}

/// Renames the entries of `from` whose names start with `prefix` into `dir` (as
/// `unfinished-<name>`, `dir` asked for at the first); returns how many, or the path that
/// failed.
pub(crate) fn move_out_prefixed(
    from: &Path,
    prefix: &str,
    dir: &mut dyn FnMut() -> std::io::Result<PathBuf>,
) -> Result<usize, (PathBuf, std::io::Error)> {
    let mut moved = 0;
    for entry in std::fs::read_dir(from).map_err(|e| (from.to_path_buf(), e))? {
        let entry = entry.map_err(|e| (from.to_path_buf(), e))?;
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with(prefix) {
            continue;
        }
        let dest = dir()
            .map_err(|e| (entry.path(), e))?
            .join(format!("unfinished-{}", name.to_string_lossy()));
        match std::fs::rename(entry.path(), dest) {
            Ok(()) => moved += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err((entry.path(), e)),
        }
    }
    Ok(moved)
}

/// The chain ID of a layer: its diff ID for the bottom layer, otherwise
/// `sha256(parent_chain + " " + diff_id)` (OCI image spec, config.md).
pub fn chain_id(parent: Option<&Digest>, diff_id: &Digest) -> Digest {
    match parent {
        None => diff_id.clone(),
        Some(p) => {
            let mut h = Sha256::new();
            h.update(format!("{p} {diff_id}").as_bytes());
            Digest::from_hasher(h)
        }
    }
}

/// Layer directories under one root.
#[derive(Debug, Clone)]
pub struct Snapshotter {
    root: PathBuf,
}

impl Snapshotter {
    /// Opens (creating if needed) a snapshot root.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, SnapshotError> {
        let root = root.into();
        std::fs::create_dir_all(&root).map_err(|source| SnapshotError::Io {
            what: "create",
            path: root.clone(),
            source,
        })?;
        Ok(Snapshotter { root })
    }

    /// The tree of a layer (whether or not it exists).
    pub fn layer_dir(&self, chain: &Digest) -> PathBuf {
        self.root.join(chain.hex()).join("fs")
    }

    /// Whether a layer is unpacked.
    pub fn has(&self, chain: &Digest) -> bool {
        self.layer_dir(chain).is_dir()
    }

    /// Unpacks a layer on top of `parent` and returns its chain ID and what was unpacked.
    /// When `expected_diff_id` is given, a layer that does not hash to it is refused and
    /// nothing is kept. Unpacking a layer that is already there is a no-op that still checks
    /// nothing: callers look up [`Snapshotter::has`] first.
    pub fn unpack<R: Read>(
        &self,
        parent: Option<&Digest>,
        layer_stream: R,
        expected_diff_id: Option<&Digest>,
        opts: &UnpackOptions,
    ) -> Result<(Digest, UnpackStats), SnapshotError> {
        if let Some(p) = parent {
            if !self.has(p) {
                return Err(SnapshotError::NoParent(p.clone()));
            }
        }
        self.unpack_unchecked(parent, layer_stream, expected_diff_id, opts)
    }

    /// [`Snapshotter::unpack`] without the parent check, for callers that unpack a whole chain
    /// at once (layers in parallel: a layer's tree does not depend on its parent's, only its
    /// chain ID does).
    pub fn unpack_unchecked<R: Read>(
        &self,
        parent: Option<&Digest>,
        layer_stream: R,
        expected_diff_id: Option<&Digest>,
        opts: &UnpackOptions,
    ) -> Result<(Digest, UnpackStats), SnapshotError> {
        let staged = self.stage(layer_stream, opts)?;
        self.adopt(staged, parent, expected_diff_id)
    }

    /// Unpacks a layer into a private directory of the snapshotter, not yet a snapshot:
    /// [`Snapshotter::adopt`] makes it one, dropping it removes it. For a load that unpacks
    /// a layer while it is still arriving, before it knows which layer (if any) it is.
    pub fn stage<R: Read>(
        &self,
        layer_stream: R,
        opts: &UnpackOptions,
    ) -> Result<Staged, SnapshotError> {
        let tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempdir_in(&self.root)
            .map_err(|source| SnapshotError::Io {
                what: "create temporary directory in",
                path: self.root.clone(),
                source,
            })?;
        let fs = tmp.path().join("fs");
        std::fs::create_dir(&fs).map_err(|source| SnapshotError::Io {
            what: "create",
            path: fs.clone(),
            source,
        })?;
        let stats = layer::unpack(layer_stream, &fs, opts)?;
        Ok(Staged { tmp, stats })
    }

    /// Makes a staged layer the snapshot on top of `parent`; returns its chain ID and what
    /// was unpacked. A layer that does not hash to `expected_diff_id` is refused (and
    /// removed); one staged with [`UnpackOptions::diff_id_known`] is taken to be
    /// `expected_diff_id`, which the caller has verified.
    pub fn adopt(
        &self,
        staged: Staged,
        parent: Option<&Digest>,
        expected_diff_id: Option<&Digest>,
    ) -> Result<(Digest, UnpackStats), SnapshotError> {
        let Staged { tmp, stats } = staged;
        let diff_id = match (&stats.diff_id, expected_diff_id) {
            (Some(d), _) => d.clone(),
            // The caller verified the stream itself (UnpackOptions::diff_id_known).
            (None, Some(known)) => known.clone(),
            (None, None) => {
                return Err(SnapshotError::Layer(LayerError::Read(
                    std::io::Error::other("diff_id_known needs the expected diff ID"),
                )))
            }
        };
        if let Some(want) = expected_diff_id {
            if want != &diff_id {
                return Err(SnapshotError::DiffIdMismatch {
                    expected: want.clone(),
                    actual: diff_id,
                });
            }
        }
        let chain = chain_id(parent, &diff_id);
        let dest = self.root.join(chain.hex());
        if dest.exists() {
            return Ok((chain, stats)); // someone else unpacked the same layer meanwhile
        }
        // The unpacked size, for `images` and `history` without walking the tree again.
        std::fs::write(tmp.path().join("size"), stats.bytes.to_string()).map_err(|source| {
            SnapshotError::Io {
                what: "write size of",
                path: tmp.path().to_path_buf(),
                source,
            }
        })?;
        let tmp_path = tmp.keep();
        if let Err(source) = std::fs::rename(&tmp_path, &dest) {
            let _ = std::fs::remove_dir_all(&tmp_path);
            // Another load of the same layer got there between the check and the rename.
            if !dest.exists() {
                return Err(SnapshotError::Io {
                    what: "rename into",
                    path: dest.clone(),
                    source,
                });
            }
        }
        Ok((chain, stats))
    }

    /// Bytes of file content in a layer (0 if unknown).
    pub fn size(&self, chain: &Digest) -> u64 {
        std::fs::read_to_string(self.root.join(chain.hex()).join("size"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Moves a layer's tree out into `dir` (same filesystem), to be deleted later: the layer
    /// is gone at once, its files are freed by whoever empties `dir`.
    pub fn move_out(&self, chain: &Digest, dir: &Path) -> Result<(), SnapshotError> {
        let from = self.root.join(chain.hex());
        match std::fs::rename(&from, dir.join(format!("snapshot-{}", chain.hex()))) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(SnapshotError::Io {
                what: "move out",
                path: from,
                source,
            }),
        }
    }

    /// Moves the trees of unpacks that never finished (`.tmp-*`: a crash, or a staged layer
    /// of a process that died) into `dir`; returns how many. Only for a caller that knows no
    /// unpack is under way (the image store's collector, holding the ingest lock).
    /// `dir` is asked for only if there is something to move.
    pub fn move_out_unfinished(
        &self,
        dir: &mut dyn FnMut() -> std::io::Result<PathBuf>,
    ) -> Result<usize, SnapshotError> {
        move_out_prefixed(&self.root, ".tmp-", dir).map_err(|(path, source)| SnapshotError::Io {
            what: "move out",
            path,
            source,
        })
    }

    /// Every unpacked layer's chain ID.
    pub fn list(&self) -> Vec<Digest> {
        Digest::list_dir(&self.root).unwrap_or_default()
    }
}

/// The writable part of a container's rootfs.
#[derive(Debug, Clone)]
pub struct Upper {
    /// Where the container's changes land.
    pub upper: PathBuf,
    /// overlayfs' scratch directory (same file system as `upper`).
    pub work: PathBuf,
    /// Mount with overlayfs' `volatile`: the upper filesystem is never synced for this mount,
    /// in particular not when it is unmounted (a `syncfs` of the whole filesystem that holds
    /// the upper, 3 ms idle and ~17 ms with 20 MB of anyone's writes pending, here). For a
    /// container whose changes are thrown away when it exits (`--rm`). After a crash of the
    /// machine such an upper may be incomplete; overlayfs then refuses to mount it again.
    pub volatile: bool,
}

/// Mounts an overlay of `lowers` (top layer first) at `target`, writable through `upper` if
/// given, read-only otherwise (a single layer then needs an empty second lower; see below).
pub fn mount_overlay(
    target: &Path,
    lowers: &[PathBuf],
    upper: Option<&Upper>,
) -> Result<(), SnapshotError> {
    let merr = |source| SnapshotError::Mount {
        what: "mount overlay at",
        path: target.to_path_buf(),
        source,
    };
    if lowers.is_empty() {
        return Err(merr(rustix::io::Errno::INVAL));
    }
    let mut data = String::from("lowerdir=");
    data.push_str(
        &lowers
            .iter()
            .map(|p| escape(p))
            .collect::<Vec<_>>()
            .join(":"),
    );
    if let Some(u) = upper {
        data.push_str(&format!(
            ",upperdir={},workdir={}",
            escape(&u.upper),
            escape(&u.work)
        ));
    }
    // Whiteouts and opaque dirs are stored as overlayfs expects them; "index=off" and
    // "xino=off" keep the mount independent of any other overlay over the same layers.
    data.push_str(",index=off,xino=off");
    let flags = if upper.is_some() {
        rustix::mount::MountFlags::empty()
    } else {
        rustix::mount::MountFlags::RDONLY
    };
    let mount = |data: &str| {
        let data = std::ffi::CString::new(data).map_err(|_| merr(rustix::io::Errno::INVAL))?;
        rustix::mount::mount("overlay", target, "overlay", flags, data.as_c_str()).map_err(merr)
    };
    match upper {
        Some(u) if u.volatile => {
            // A volatile mount leaves <workdir>/work/incompat/volatile behind, and overlayfs refuses
            // an upper that has it; the changes are disposable, so it goes.
            let _ = std::fs::remove_dir_all(u.work.join("work/incompat/volatile"));
            // Kernels before 5.10 do not know the option: then an ordinary mount.
            mount(&format!("{data},volatile")).or_else(|_| mount(&data))
        }
        _ => mount(&data),
    }
}

/// Unmounts an overlay (lazily, so a busy mount cannot block cleanup).
pub fn unmount(target: &Path) -> Result<(), SnapshotError> {
    rustix::mount::unmount(target, rustix::mount::UnmountFlags::DETACH).map_err(|source| {
        SnapshotError::Mount {
            what: "unmount",
            path: target.to_path_buf(),
            source,
        }
    })
}

fn escape(p: &Path) -> String {
    let mut out = String::new();
    for c in p.to_string_lossy().chars() {
        if matches!(c, ':' | ',' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_image_spec() {
        let a = Digest::of(b"a");
        let b = Digest::of(b"b");
        assert_eq!(chain_id(None, &a), a);
        let want = Digest::of(format!("{a} {b}").as_bytes());
        assert_eq!(chain_id(Some(&a), &b), want);
        assert_ne!(chain_id(Some(&b), &a), want, "order matters");
    }
}
