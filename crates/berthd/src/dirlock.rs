//! One berthd per data root and per exec root.
//!
//! Two daemons on one `--root` would each believe they own every container in it: the second
//! cannot reach the first one's monitors (they live under the first one's exec root), so it
//! declares running containers dead, tears down their networking and restarts them. berthd
//! therefore takes an exclusive `flock` on a file in each directory before it touches
//! anything, and keeps it for its lifetime. The kernel drops the lock when the process dies,
//! however it dies, so a lock left by a dead daemon never blocks the next one; the file only
//! carries the holder's pid, for the message that refuses a second daemon.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::Path;

use anyhow::{bail, Context};

/// The file in each directory that the running daemon holds locked.
pub const LOCK_FILE: &str = "berthd.lock";

/// A held lock; dropping it (or the process ending) releases it.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

/// Locks `dir` (created if missing) for this process, or refuses with the holder's pid.
/// `flag` names the setting the directory came from, for the message.
pub fn lock(dir: &Path, flag: &str) -> anyhow::Result<DirLock> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let path = dir.join(LOCK_FILE);
    // Close-on-exec (std's default): no monitor or runtime inherits the lock.
    let mut file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("open {}", path.display()))?;
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(rustix::io::Errno::WOULDBLOCK) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let holder = match pid.trim() {
                "" => "another berthd".to_string(),
                p => format!("another berthd (pid {p})"),
            };
            bail!(
                "{holder} is using {flag} {}: stop it first, or give this daemon a {flag} of its own (each berthd needs its own --root and --exec-root)",
                dir.display()
            );
        }
        Err(e) => return Err(e).with_context(|| format!("lock {}", path.display())),
    }
    file.set_len(0)?;
    file.rewind()?;
    writeln!(file, "{}", std::process::id())
        .with_context(|| format!("write {}", path.display()))?;
    Ok(DirLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_with_the_holders_pid_and_a_released_one_is_taken() {
        let d = tempfile::tempdir().unwrap();
        let held = lock(d.path(), "--root").unwrap();
        // flock locks belong to the open file description: a second open in this process
        // conflicts just as another process's would.
        let err = lock(d.path(), "--root").unwrap_err().to_string();
        assert!(
            err.contains(&format!("(pid {})", std::process::id())),
            "{err}"
        );
        assert!(err.contains("--root"), "{err}");
        drop(held);
        let again = lock(d.path(), "--root").unwrap();
        let pid = std::fs::read_to_string(d.path().join(LOCK_FILE)).unwrap();
        assert_eq!(pid.trim(), std::process::id().to_string());
        drop(again);
    }
}
