//! The other direction: a container's overlay upper directory back into a layer tar (for
//! `commit` and `export` of changes). overlayfs records a deletion as a 0/0 character device
//! and a replaced directory as `trusted.overlay.opaque=y`; in the layer they become `.wh.NAME`
//! and `DIR/.wh..wh..opq`, the OCI whiteout forms that [`crate::layer::unpack`] reads back.

use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use crate::layer::{OPAQUE_WHITEOUT, WHITEOUT_PREFIX};

/// Writes the changes recorded in `upper` as an uncompressed layer tar to `out`; returns the
/// number of entries.
pub fn write_diff<W: Write>(upper: &Path, out: W) -> io::Result<u64> {
    let mut builder = tar::Builder::new(out);
    builder.follow_symlinks(false);
    let mut count = 0;
    walk(upper, Path::new(""), &mut builder, &mut count)?;
    builder.finish()?;
    Ok(count)
}

fn walk<W: Write>(
    root: &Path,
    rel: &Path,
    b: &mut tar::Builder<W>,
    count: &mut u64,
) -> io::Result<()> {
    let dir = root.join(rel);
    let mut names: Vec<_> = std::fs::read_dir(&dir)?.collect::<Result<Vec<_>, _>>()?;
    // Deterministic order: the same changes make the same layer (and the same digest).
    names.sort_by_key(|e| e.file_name());
    for entry in names {
        let name = entry.file_name();
        let path = rel.join(&name);
        let meta = std::fs::symlink_metadata(root.join(&path))?;
        let ft = meta.file_type();
        if ft.is_char_device() && meta.rdev() == 0 {
            let wh = rel.join(format!("{WHITEOUT_PREFIX}{}", name.to_string_lossy()));
            append_empty(b, &wh, &meta)?;
        } else {
            b.append_path_with_name(root.join(&path), &path)?;
            if ft.is_dir() {
                if is_opaque(&root.join(&path)) {
                    append_empty(b, &path.join(OPAQUE_WHITEOUT), &meta)?;
                    *count += 1;
                }
                walk(root, &path, b, count)?;
            }
        }
        *count += 1;
    }
    Ok(())
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
