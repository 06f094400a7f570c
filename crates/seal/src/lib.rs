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
//! EROFS. We do not even re-exec from it when we can avoid it: [`ensure_protected`] maps the
//! protected copy over the running image, page for identical page, and points the process's
//! exe link at it (`PR_SET_MM_MAP`, as CRIU does), which costs a few syscalls instead of a
//! second process start (measured: 1.3 ms per container start on these VMs). Where that is
//! not possible (more than one thread, no CAP_SYS_ADMIN, a kernel that refuses), we re-exec
//! from the overlay: one small mount plus one exec.
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
        Ok(fd) => {
            match adopt_in_place(&fd) {
                Ok(()) if current_protection()? == Protection::ReadOnlyOverlay => {
                    tracing::debug!("runtime binary protected in place (read-only overlay)");
                    return Ok(());
                }
                Ok(()) => tracing::debug!("in-place protection did not take, re-executing"),
                Err(e) => tracing::debug!(error = %e, "cannot protect in place, re-executing"),
            }
            reexec(fd)
        }
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

/// One mapping of the executable, from `/proc/self/maps`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Region {
    start: usize,
    end: usize,
    prot: libc::c_int,
    offset: u64,
}

/// The mappings in `maps` (the text of `/proc/self/maps`) of the file with device `dev` and
/// inode `ino`, in address order.
fn exe_regions(maps: &str, dev: u64, ino: u64) -> io::Result<Vec<Region>> {
    let bad =
        |line: &str| io::Error::other(format!("unexpected line in /proc/self/maps: {line:?}"));
    let mut out = Vec::new();
    for line in maps.lines() {
        let mut f = line.split_ascii_whitespace();
        let (Some(range), Some(perms), Some(offset), Some(mdev), Some(mino)) =
            (f.next(), f.next(), f.next(), f.next(), f.next())
        else {
            return Err(bad(line));
        };
        let (Some((maj, min)), Ok(mino)) = (mdev.split_once(':'), mino.parse::<u64>()) else {
            return Err(bad(line));
        };
        let (Ok(maj), Ok(min)) = (u32::from_str_radix(maj, 16), u32::from_str_radix(min, 16))
        else {
            return Err(bad(line));
        };
        if mino != ino || libc::makedev(maj, min) != dev {
            continue;
        }
        let (Some((start, end)), Ok(offset)) =
            (range.split_once('-'), u64::from_str_radix(offset, 16))
        else {
            return Err(bad(line));
        };
        let (Ok(start), Ok(end)) = (
            usize::from_str_radix(start, 16),
            usize::from_str_radix(end, 16),
        ) else {
            return Err(bad(line));
        };
        let p = perms.as_bytes();
        if p.len() < 4 || p[3] != b'p' {
            return Err(io::Error::other(format!(
                "the executable is mapped shared: {line:?}"
            )));
        }
        let mut prot = libc::PROT_NONE;
        for (i, bit) in [libc::PROT_READ, libc::PROT_WRITE, libc::PROT_EXEC]
            .into_iter()
            .enumerate()
        {
            if p[i] != b'-' {
                prot |= bit;
            }
        }
        out.push(Region {
            start,
            end,
            prot,
            offset,
        });
    }
    Ok(out)
}

/// Whether the page whose `/proc/self/pagemap` entry is `entry` holds private data (a page
/// copied on write, present or swapped out) rather than the file's own content (present file
/// page, or never touched).
fn page_is_private(entry: u64) -> bool {
    const PRESENT: u64 = 1 << 63;
    const SWAPPED: u64 = 1 << 62;
    const FILE_OR_SHARED: u64 = 1 << 61;
    entry & SWAPPED != 0 || (entry & PRESENT != 0 && entry & FILE_OR_SHARED == 0)
}

/// Moves the running process onto `protected` (an `O_PATH` descriptor of the same binary on
/// the read-only overlay) without executing it again.
///
/// Every mapping of the executable is replaced at its address by a private mapping of the
/// protected copy at the same offset; pages the process has written (relocations, globals)
/// are copied across first, so memory reads the same before and after. Then the process's exe
/// link is pointed at the copy (`PR_SET_MM_EXE_FILE`, which the kernel allows only once nothing
/// maps the old file any more). Children forked afterwards, the container's init among them,
/// inherit both. Written by hand because no crate does this; the caller re-executes instead
/// when it fails, so a failure part-way leaves a process that is merely unprotected.
fn adopt_in_place(protected: &OwnedFd) -> io::Result<()> {
    use std::os::unix::fs::{FileExt, MetadataExt};

    // Another thread could write a global between its copy and its remapping: only when alone.
    let status = std::fs::read_to_string("/proc/self/status")?;
    if !status
        .lines()
        .any(|l| l.split_ascii_whitespace().eq(["Threads:", "1"]))
    {
        return Err(io::Error::other("the process has more than one thread"));
    }
    let copy = File::open(format!("/proc/self/fd/{}", protected.as_raw_fd()))?;
    let own = std::fs::metadata("/proc/self/exe")?;
    // Matched by device and inode. Where maps and stat disagree on them (a binary on btrfs,
    // whose subvolumes have devices of their own, or on an overlay) nothing matches and the
    // caller re-executes instead.
    let regions = exe_regions(
        &std::fs::read_to_string("/proc/self/maps")?,
        own.dev(),
        own.ino(),
    )?;
    if regions.is_empty() {
        return Err(io::Error::other(
            "no mapping of the executable in /proc/self/maps",
        ));
    }
    // SAFETY: sysconf has no preconditions.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })
        .map_err(|_| io::Error::other("no page size"))?;
    let pagemap = File::open("/proc/self/pagemap")?;
    let mut private_pages = Vec::with_capacity(regions.len());
    for r in &regions {
        let pages = (r.end - r.start) / page;
        let mut raw = vec![0u8; pages * 8];
        pagemap.read_exact_at(&mut raw, (r.start / page * 8) as u64)?;
        let private: Vec<usize> = raw
            .chunks_exact(8)
            .enumerate()
            .filter(|(_, e)| page_is_private(u64::from_ne_bytes((*e).try_into().expect("8 bytes"))))
            .map(|(i, _)| i)
            .collect();
        if !private.is_empty() && r.prot & libc::PROT_READ == 0 {
            return Err(io::Error::other("written pages in an unreadable mapping"));
        }
        private_pages.push(private);
    }

    // No signal handler may run (and write a global) while a region is half moved.
    // SAFETY: sigset_t is plain data, fully initialised by sigfillset before it is read.
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above; pthread_sigmask fills it in.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: sigfillset writes `all`; pthread_sigmask reads `all` and writes `old`.
    unsafe {
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
    }
    let result = regions
        .iter()
        .zip(&private_pages)
        .try_for_each(|(r, private)| remap_region(&copy, r, private, page))
        .and_then(|()| set_exe_file(&copy));
    // SAFETY: restores the mask saved above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
    result
}

/// The kernel's `struct prctl_mm_map` (linux/prctl.h), which the libc crate does not define.
#[repr(C)]
struct PrctlMmMap {
    start_code: u64,
    end_code: u64,
    start_data: u64,
    end_data: u64,
    start_brk: u64,
    brk: u64,
    start_stack: u64,
    arg_start: u64,
    arg_end: u64,
    env_start: u64,
    env_end: u64,
    auxv: *mut u64,
    auxv_size: u32,
    exe_fd: u32,
}

/// The memory layout fields of `/proc/self/stat` that `PR_SET_MM_MAP` sets, in the order of
/// [`PrctlMmMap`] minus `brk` (which stat does not show): start_code, end_code, start_data,
/// end_data, start_brk, start_stack, arg_start, arg_end, env_start, env_end.
fn stat_layout(stat: &str) -> io::Result<[u64; 10]> {
    let bad = || io::Error::other("unexpected /proc/self/stat");
    // Fields after the command name (which may hold spaces and parentheses); the first of
    // them is field 3 of proc(5).
    let rest = stat.rsplit_once(')').ok_or_else(bad)?.1;
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    let field = |n: usize| -> io::Result<u64> {
        fields
            .get(n - 3)
            .and_then(|f| f.parse().ok())
            .ok_or_else(bad)
    };
    Ok([
        field(26)?,
        field(27)?,
        field(45)?,
        field(46)?,
        field(47)?,
        field(28)?,
        field(48)?,
        field(49)?,
        field(50)?,
        field(51)?,
    ])
}

/// Points the process's exe link at `file`. `PR_SET_MM_MAP` rather than the simpler
/// `PR_SET_MM_EXE_FILE` because the latter wants CAP_SYS_RESOURCE, which hosts and sandboxes
/// often withhold from root, while the former wants CAP_SYS_ADMIN (or CAP_CHECKPOINT_RESTORE),
/// which a runtime has anyway. It also sets the mm's layout fields, so it is given their
/// current values, read just before and unchanged since (no allocation in between).
fn set_exe_file(file: &File) -> io::Result<()> {
    let [start_code, end_code, start_data, end_data, start_brk, start_stack, arg_start, arg_end, env_start, env_end] =
        stat_layout(&std::fs::read_to_string("/proc/self/stat")?)?;
    // SAFETY: brk(0) changes nothing and returns the current program break.
    let brk = unsafe { libc::syscall(libc::SYS_brk, 0usize) } as u64;
    let exe_fd = u32::try_from(file.as_raw_fd()).map_err(|_| io::Error::other("bad fd"))?;
    let map = PrctlMmMap {
        start_code,
        end_code,
        start_data,
        end_data,
        start_brk,
        brk,
        start_stack,
        arg_start,
        arg_end,
        env_start,
        env_end,
        auxv: std::ptr::null_mut(),
        auxv_size: 0,
        exe_fd,
    };
    // SAFETY: PR_SET_MM_MAP reads `size_of::<PrctlMmMap>()` bytes from `map`, which is laid
    // out as the kernel's struct; with auxv_size 0 it does not read `auxv`. The kernel checks
    // the rest (capability, ranges, that nothing maps the old executable any more).
    let rc = unsafe {
        libc::prctl(
            libc::PR_SET_MM,
            libc::PR_SET_MM_MAP as libc::c_ulong,
            &map as *const PrctlMmMap as libc::c_ulong,
            std::mem::size_of::<PrctlMmMap>() as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Replaces the mapping `r` by the same range of `file`, copying the pages listed in
/// `private` (indexes of pages the process wrote) from the old mapping first.
fn remap_region(file: &File, r: &Region, private: &[usize], page: usize) -> io::Result<()> {
    let len = r.end - r.start;
    let staging_prot = if private.is_empty() {
        r.prot
    } else {
        r.prot | libc::PROT_READ | libc::PROT_WRITE
    };
    let offset =
        libc::off_t::try_from(r.offset).map_err(|_| io::Error::other("offset too large"))?;
    // SAFETY: a new private mapping at an address of the kernel's choosing; nothing else
    // refers to it until it is moved over `r` below.
    let new = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            staging_prot,
            libc::MAP_PRIVATE,
            file.as_raw_fd(),
            offset,
        )
    };
    if new == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    let fail = |new: *mut libc::c_void| {
        let e = io::Error::last_os_error();
        // SAFETY: `new` is the staging mapping made above, not yet moved anywhere.
        unsafe { libc::munmap(new, len) };
        e
    };
    for &i in private {
        // SAFETY: both ranges are `page` bytes inside mappings of `len` bytes (`i` indexes a
        // page of `r`), the source is readable (checked by the caller) and the target is the
        // writable staging mapping; they do not overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(
                (r.start + i * page) as *const u8,
                (new as *mut u8).add(i * page),
                page,
            );
        }
    }
    // SAFETY: changes the protection of our own staging mapping only.
    if staging_prot != r.prot && unsafe { libc::mprotect(new, len, r.prot) } < 0 {
        return Err(fail(new));
    }
    // SAFETY: moves the staging mapping over `r`, which it now equals byte for byte (file pages
    // from the same file at the same offset, written pages copied), so code and data at those
    // addresses read the same after the call as before it.
    let moved = unsafe {
        libc::mremap(
            new,
            len,
            len,
            libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
            r.start as *mut libc::c_void,
        )
    };
    if moved == libc::MAP_FAILED {
        return Err(fail(new));
    }
    Ok(())
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
    fn maps_lines_of_the_executable_are_found() {
        let maps = "\
00200000-0033e000 r--p 00000000 fe:00 5311045                    /usr/bin/x
0033e000-008c2000 r-xp 0013d000 fe:00 5311045                    /usr/bin/x
00929000-0092e000 rw-p 00726000 fe:00 5311045                    /usr/bin/x (deleted)
0a38c000-0a3d1000 rw-p 00000000 00:00 0                          [heap]
7f946c6d9000-7f946c6e9000 r--p 00000000 fe:00 326603             /usr/lib/libm.so.6
7f946c6e9000-7f946c75d000 r-xp 00010000 00:28 5311045            /other/x
";
        let regions = exe_regions(maps, libc::makedev(0xfe, 0), 5311045).unwrap();
        assert_eq!(
            regions,
            vec![
                Region {
                    start: 0x200000,
                    end: 0x33e000,
                    prot: libc::PROT_READ,
                    offset: 0
                },
                Region {
                    start: 0x33e000,
                    end: 0x8c2000,
                    prot: libc::PROT_READ | libc::PROT_EXEC,
                    offset: 0x13d000
                },
                Region {
                    start: 0x929000,
                    end: 0x92e000,
                    prot: libc::PROT_READ | libc::PROT_WRITE,
                    offset: 0x726000
                },
            ]
        );
        assert!(exe_regions("garbage\n", 0, 0).is_err());
        let shared = "00200000-0033e000 r--s 00000000 fe:00 7 /x\n";
        assert!(exe_regions(shared, libc::makedev(0xfe, 0), 7).is_err());
    }

    #[test]
    fn written_pages_are_told_from_file_pages() {
        assert!(!page_is_private(0), "never touched: the file's content");
        assert!(!page_is_private(1 << 63 | 1 << 61), "present file page");
        assert!(
            page_is_private(1 << 63),
            "present anonymous page: copied on write"
        );
        assert!(
            page_is_private(1 << 62),
            "swapped out: only anonymous pages swap"
        );
    }

    #[test]
    fn stat_layout_reads_the_memory_fields() {
        // Field n of proc(5) holds n here, from field 3 on; the name has spaces and ')'.
        let fields: Vec<String> = (3..=52).map(|n| n.to_string()).collect();
        let stat = format!("4242 (a b) c) {}", fields.join(" "));
        assert_eq!(
            stat_layout(&stat).unwrap(),
            [26, 27, 45, 46, 47, 28, 48, 49, 50, 51]
        );
        assert!(stat_layout("4242 (short) S 1 2").is_err());
        assert_eq!(
            std::mem::size_of::<PrctlMmMap>(),
            104,
            "linux/prctl.h's size"
        );
    }

    #[test]
    fn overlay_paths_are_escaped() {
        assert_eq!(escape_overlay_path(OsStr::new("/a/b")), "/a/b");
        assert_eq!(
            escape_overlay_path(OsStr::new("/a:b,c\\d")),
            "/a\\:b\\,c\\\\d"
        );
    }
}
