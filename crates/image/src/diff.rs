//! The other direction: a container's overlay upper directory back into a layer tar (for
//! `commit` and `export` of changes). overlayfs records a deletion as a 0/0 character device
//! and a replaced directory as `trusted.overlay.opaque=y`; in the layer they become `.wh.NAME`
//! and `DIR/.wh..wh..opq`, the OCI whiteout forms that [`crate::layer::unpack`] reads back.

use std::collections::HashMap;
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::layer::{OPAQUE_WHITEOUT, WHITEOUT_PREFIX};

/// Writes the changes recorded in `upper` as an uncompressed layer tar to `out`; returns the
/// number of entries. Files hard-linked to each other stay so: the first is stored, the
/// others as links to it.
pub fn write_diff<W: Write>(upper: &Path, out: W) -> io::Result<u64> {
    let mut builder = tar::Builder::new(out);
    builder.follow_symlinks(false);
    let mut w = Walk {
        root: upper,
        b: &mut builder,
        count: 0,
        links: HashMap::new(),
    };
    w.walk(Path::new(""))?;
    let count = w.count;
    builder.finish()?;
    Ok(count)
}

struct Walk<'a, W: Write> {
    root: &'a Path,
    b: &'a mut tar::Builder<W>,
    count: u64,
    /// The first path stored of each multiply linked file, by (device, inode).
    links: HashMap<(u64, u64), PathBuf>,
}

impl<W: Write> Walk<'_, W> {
    fn walk(&mut self, rel: &Path) -> io::Result<()> {
        let dir = self.root.join(rel);
        let mut names: Vec<_> = std::fs::read_dir(&dir)?.collect::<Result<Vec<_>, _>>()?;
        // Deterministic order: the same changes make the same layer (and the same digest).
        names.sort_by_key(|e| e.file_name());
        for entry in names {
            let name = entry.file_name();
            let path = rel.join(&name);
            let full = self.root.join(&path);
            let meta = std::fs::symlink_metadata(&full)?;
            let ft = meta.file_type();
            self.count += 1;
            if ft.is_char_device() && meta.rdev() == 0 {
                let wh = rel.join(format!("{WHITEOUT_PREFIX}{}", name.to_string_lossy()));
                append_empty(self.b, &wh, &meta)?;
                continue;
            }
            let key = (meta.dev(), meta.ino());
            let linked = !ft.is_dir() && meta.nlink() > 1;
            if let Some(first) = self.links.get(&key).filter(|_| linked) {
                let mut h = tar::Header::new_gnu();
                h.set_metadata(&meta);
                h.set_entry_type(tar::EntryType::Link);
                h.set_size(0);
                self.b.append_link(&mut h, &path, first)?;
                continue;
            }
            self.b.append_path_with_name(&full, &path)?;
            if linked {
                self.links.insert(key, path.clone());
            }
            if ft.is_dir() {
                if is_opaque(&full) {
                    append_empty(self.b, &path.join(OPAQUE_WHITEOUT), &meta)?;
                    self.count += 1;
                }
                self.walk(&path)?;
            }
        }
        Ok(())
    }
}

fn is_opaque(dir: &Path) -> bool {
    let mut buf = [0u8; 4];
    matches!(rustix::fs::lgetxattr(dir, "trusted.overlay.opaque", &mut buf), Ok(1) if buf[0] == b'y')
}

fn append_empty<W: Write>(
    b: &mut tar::Builder<W>,
    name: &Path,
    like: &std::fs::Metadata,
) -> io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(0);
    h.set_mode(0o644);
    h.set_mtime(like.mtime().max(0) as u64);
    b.append_data(&mut h, name, io::empty())
}
