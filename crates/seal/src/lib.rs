//! Defence against CVE-2019-5736: a container process must never be able to write to the
//! runtime binary through `/proc/self/exe` or `/proc/<pid>/exe`.
//!
//! Every process that enters a container (the init of `create`/`run`, the tenant of `exec`) is
//! forked from this binary, so until it execs the container's program its `/proc/<pid>/exe`
//! points at the runtime on the host. youki re-executes itself from a sealed memfd copy, which
//! costs ~7 ms per start on these machines (a full copy of the binary each time). We do what
//! runc 1.2 does instead: mount a *detached* overlayfs whose only layers are the binary's
//! directory and an empty directory. An overlay without an upper layer is read-only at the
//! superblock, cannot be remounted read-write, and is attached to no mount tree, so nothing in
//! a container can reach it except through the exe link, and every open for writing fails with
//! EROFS. We re-exec from it once; the cost is one small mount plus one exec (about 1 ms).
//!
//! When overlayfs is not available (no CAP_SYS_ADMIN, old kernel) we fall back to the sealed
//! memfd copy, and if that fails too we refuse to start a container rather than run unprotected.
//! libcontainer does not do any of this itself (youki's binary does, not the library), which is
//! why it lives here: a crate of its own, because berthd opens the runtime this way once
//! ([`open_protected`]) and execs it from there, which spares every runtime start its re-exec.

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::fcntl::{AtFlags, OFlag};
use rustix::mount::{
    fsconfig_create, fsconfig_set_string, fsmount, fsopen, FsMountFlags, FsOpenFlags,
    MountAttrFlags,
};

/// Set in the environment of the re-executed process so that a failed check cannot loop.
const SEALED_ENV: &str = "_BERTH_RUNTIME_SEALED";

/// `OVERLAYFS_SUPER_MAGIC` from linux/magic.h.
const OVERLAYFS_MAGIC: i64 = 0x794c_7630;

/// Errors of the binary-protection step; all of them stop the container from starting.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// `/proc/self/exe` could not be opened or inspected.
    #[error("inspect /proc/self/exe")]
    Inspect(#[source] io::Error),
    /// Neither the overlay nor the memfd re-exec could be set up.
    #[error("protect the runtime binary against CVE-2019-5736 (overlay: {overlay}; memfd copy: {memfd})")]
    Unprotectable {
        /// Why the read-only overlay could not be made.
        overlay: String,
        /// Why the sealed memfd copy could not be made.
        memfd: String,
    },
    /// We re-executed ourselves but the new image is still not protected.
    #[error("re-executed from a protected copy, but /proc/self/exe is still writable")]
    StillUnprotected,
}

/// How the running binary is protected, if at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protection {
    /// Running from a read-only overlayfs (our own detached mount).
    ReadOnlyOverlay,
    /// Running from a memfd sealed against writes.
    SealedMemfd,
    /// Running from an ordinary, writable file.
    None,
}

/// Reports how the current executable is protected.
pub fn current_protection() -> Result<Protection, SealError> {
    let exe = File::open("/proc/self/exe").map_err(SealError::Inspect)?;
    let st = nix::sys::statfs::fstatfs(&exe).map_err(|e| SealError::Inspect(e.into()))?;
    let read_only = st.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY);
    if st.filesystem_type().0 as i64 == OVERLAYFS_MAGIC && read_only {
        return Ok(Protection::ReadOnlyOverlay);
    }
    // SAFETY: F_GET_SEALS takes no argument and only reads the fd's seal set.
    let seals = unsafe { libc::fcntl(exe.as_raw_fd(), libc::F_GET_SEALS) };
    let needed = libc::F_SEAL_SEAL | libc::F_SEAL_WRITE | libc::F_SEAL_GROW | libc::F_SEAL_SHRINK;
    if seals >= 0 && seals & needed == needed {
        return Ok(Protection::SealedMemfd);
    }
    Ok(Protection::None)
}

/// Names the process after `argv[0]` when it was executed through a descriptor
/// (`/proc/self/fd/N`, as berthd starts the runtime from [`open_protected`]): the kernel then
/// names it `N`, which is what `ps` and `top` would show.
pub fn name_after_argv0() {
    let Some(arg0) = std::env::args_os().next() else {
        return;
    };
    let Some(base) = Path::new(&arg0).file_name() else {
        return;
    };
    let mut name = base.as_bytes().to_vec();
    name.truncate(15);
    let Ok(name) = CString::new(name) else { return };
    let current = std::fs::read("/proc/self/comm").unwrap_or_default();
    if current.strip_suffix(b"\n").unwrap_or(&current) != name.as_bytes() {
        // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes, which
        // `name` is (truncated to 15 plus the NUL).
        unsafe {
            libc::prctl(libc::PR_SET_NAME, name.as_ptr());
        }
    }
}

/// Makes sure the current process runs from a copy of the binary that no container can write.
///
/// Returns at once when that already holds; otherwise re-executes the process (same argv and
/// environment plus a marker) and never returns on success.
pub fn ensure_protected() -> Result<(), SealError> {
    let already_tried = std::env::var_os(SEALED_ENV).is_some();
    if current_protection()? != Protection::None {
        if already_tried {
            // SAFETY: the runtime is single-threaded at this point (called first thing in
            // main), so nothing reads the environment concurrently.
            unsafe { std::env::remove_var(SEALED_ENV) };
        }
        return Ok(());
    }
    if already_tried {
        return Err(SealError::StillUnprotected);
    }
    let exe = std::fs::read_link("/proc/self/exe").map_err(SealError::Inspect)?;
    let overlay_err = match overlay_exe(&exe) {
        Ok(fd) => reexec(fd),
        Err(e) => e,
    };
    tracing::debug!(error = %overlay_err, "read-only overlay unavailable, copying into a sealed memfd");
    let memfd_err = match memfd_exe() {
        Ok(fd) => reexec(fd),
        Err(e) => e,
    };
    Err(SealError::Unprotectable {
        overlay: overlay_err.to_string(),
        memfd: memfd_err.to_string(),
    })
}

/// Opens `exe` so that it can be executed (`execveat(fd, "", AT_EMPTY_PATH)`, or
/// `/proc/self/fd/<fd>`) as a process no container can write through its exe link: through a
/// detached read-only overlay of its directory, else as a sealed memfd copy. A daemon that
/// starts the runtime often opens it once and execs it from here, so that the runtime finds
/// itself protected and skips its own re-exec ([`ensure_protected`]).
pub fn open_protected(exe: &Path) -> Result<OwnedFd, SealError> {
    let overlay_err = match overlay_exe(exe) {
        Ok(fd) => return Ok(fd),
        Err(e) => e,
    };
    let memfd_err = match memfd_copy(exe) {
        Ok(fd) => return Ok(fd),
        Err(e) => e,
    };
    Err(SealError::Unprotectable {
        overlay: overlay_err.to_string(),
        memfd: memfd_err.to_string(),
    })
}

/// Opens `exe` through a detached, read-only overlayfs of its directory.
fn overlay_exe(exe: &Path) -> io::Result<OwnedFd> {
    let dir = exe
        .parent()
        .ok_or_else(|| io::Error::other("executable has no parent directory"))?;
    let name = exe
        .file_name()
        .ok_or_else(|| io::Error::other("executable has no file name"))?;
    // Overlayfs needs two lower layers when it has no upper one; the second is an empty,
    // detached tmpfs, so no directory on the host has to be created or kept for it.
    let empty = detached_mount("tmpfs", &[("size", "4k"), ("mode", "0555")])?;
    let empty_path = format!("/proc/self/fd/{}", empty.as_raw_fd());
    let lowerdir = format!("{}:{}", escape_overlay_path(dir.as_os_str()), empty_path);
    let overlay = detached_mount("overlay", &[("lowerdir", lowerdir.as_str())])?;
    let fd = nix::fcntl::openat(
        Some(overlay.as_raw_fd()),
        Path::new(name),
        OFlag::O_PATH | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    // SAFETY: openat just returned this fd and nothing else owns it.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

/// Creates a filesystem with the new mount API and returns its (unattached) root.
fn detached_mount(fstype: &str, options: &[(&str, &str)]) -> io::Result<OwnedFd> {
    let fs = fsopen(fstype, FsOpenFlags::FSOPEN_CLOEXEC)?;
    for (key, value) in options {
        fsconfig_set_string(fs.as_fd(), *key, *value)?;
    }
    fsconfig_create(fs.as_fd())?;
    let attrs = MountAttrFlags::MOUNT_ATTR_RDONLY
        | MountAttrFlags::MOUNT_ATTR_NODEV
        | MountAttrFlags::MOUNT_ATTR_NOSUID;
    Ok(fsmount(fs.as_fd(), FsMountFlags::FSMOUNT_CLOEXEC, attrs)?)
}

/// Overlay separates layers with ':' and treats '\' as an escape; escape both.
fn escape_overlay_path(p: &OsStr) -> String {
    let mut out = String::new();
    for c in p.to_string_lossy().chars() {
        if c == ':' || c == '\\' || c == ',' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The slow fallback: a sealed memfd holding a full copy of the binary.
fn memfd_exe() -> io::Result<OwnedFd> {
    memfd_copy(Path::new("/proc/self/exe"))
}

/// A sealed memfd holding a full copy of `exe`.
fn memfd_copy(exe: &Path) -> io::Result<OwnedFd> {
    let name = CString::new("berth-runtime").expect("no NUL");
    let memfd = nix::sys::memfd::memfd_create(
        &name,
        nix::sys::memfd::MemFdCreateFlag::MFD_CLOEXEC
            | nix::sys::memfd::MemFdCreateFlag::MFD_ALLOW_SEALING,
    )?;
    let mut src = File::open(exe)?;
    let mut dst = File::from(memfd);
    io::copy(&mut src, &mut dst)?;
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_WRITE | libc::F_SEAL_GROW | libc::F_SEAL_SHRINK;
    // SAFETY: F_ADD_SEALS takes an int of seal bits; the fd is a memfd we own.
    if unsafe { libc::fcntl(dst.as_raw_fd(), libc::F_ADD_SEALS, seals) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(OwnedFd::from(dst))
}

/// Re-executes the current process from `fd`. Returns only on failure.
fn reexec(fd: OwnedFd) -> io::Error {
    let args: Vec<CString> = std::env::args_os()
        .map(|a| CString::new(a.as_bytes()).unwrap_or_default())
        .collect();
    let mut env: Vec<CString> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).ok()
        })
        .collect();
    env.push(CString::new(format!("{SEALED_ENV}=1")).expect("no NUL"));
    let err = nix::unistd::execveat(
        Some(fd.as_raw_fd()),
        c"",
        &args,
        &env,
        AtFlags::AT_EMPTY_PATH,
    );
    match err {
        Err(e) => e.into(),
        Ok(never) => match never {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_paths_are_escaped() {
        assert_eq!(escape_overlay_path(OsStr::new("/a/b")), "/a/b");
        assert_eq!(
            escape_overlay_path(OsStr::new("/a:b,c\\d")),
            "/a\\:b\\,c\\\\d"
        );
    }
}
