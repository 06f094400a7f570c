//! Replacing a file atomically: the new content goes to a temporary sibling, which is renamed
//! over the file, so a reader or a crash sees the old content or the new, never a mix.
//!
//! Hand-written (a dozen lines) because berth needs both strengths: [`Durability::Durable`]
//! (fsync of the file before the rename and of the directory after, what survives a crash of
//! the machine; for state under /var/lib) and [`Durability::Atomic`] (no fsync; for per-boot
//! state on /run, where a start's few hundred microseconds of fsync buy nothing). The crates
//! that do this (`atomic-write-file`, `tempfile::persist`) always fsync or never do.

use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// How much a write must survive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Readers and a crash of the process see old or new content; a crash of the machine
    /// may lose the new content (tmpfs state, which a reboot clears anyway).
    Atomic,
    /// Also survives a crash of the machine: file and directory fsynced.
    Durable,
}

/// Distinguishes the temporary files of concurrent writes within one process.
static SEQ: AtomicU64 = AtomicU64::new(0);

/// Replaces `path` with `data`. The temporary sibling (`.<name>.tmp<pid>.<n>`, unique per
/// write, so two threads writing the same file never share one) is removed if the rename
/// fails. Concurrent writers of one file each leave a whole file; the last rename wins.
pub fn write(path: &Path, data: &[u8], durability: Durability) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let tmp = dir.join(format!(
        ".{}.tmp{}.{}",
        path.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        if durability == Durability::Durable {
            f.sync_all()?;
        }
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    if durability == Durability::Durable {
        sync_dir(dir)?;
    }
    Ok(())
}

/// fsyncs a directory, so that the entries made or removed in it survive a crash.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_content_and_leaves_no_temporary() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        write(&p, b"one", Durability::Durable).unwrap();
        write(&p, b"two", Durability::Atomic).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn concurrent_writers_of_one_file_never_collide() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("record.json");
        std::thread::scope(|s| {
            for t in 0..8u8 {
                let p = &p;
                s.spawn(move || {
                    for _ in 0..200 {
                        write(p, &[t; 512], Durability::Atomic).unwrap();
                    }
                });
            }
        });
        let data = std::fs::read(&p).unwrap();
        assert_eq!(data.len(), 512);
        assert!(data.iter().all(|b| *b == data[0]), "a torn file");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_failed_write_keeps_the_old_file_and_no_temporary() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        write(&p, b"old", Durability::Durable).unwrap();
        // A directory in the way of the rename.
        let blocked = d.path().join("dir");
        std::fs::create_dir(&blocked).unwrap();
        std::fs::write(blocked.join("x"), b"").unwrap();
        assert!(write(&blocked, b"new", Durability::Durable).is_err());
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 2);
    }
}
