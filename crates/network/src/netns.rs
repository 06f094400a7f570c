//! Named network namespaces: a fresh namespace bind-mounted on a file, which the OCI runtime
//! then joins by path (the way dockerd prepares a container's sandbox before the runtime
//! runs), and a netlink connection made from inside it.
//!
//! `unshare` and `setns` change the calling thread only, so both run on a short-lived thread
//! of their own; the namespace outlives it through the bind mount, and a netlink socket opened
//! on that thread stays bound to it.

use std::os::fd::AsFd;
use std::path::Path;

use rustix::mount::{mount_bind, unmount, UnmountFlags};
use rustix::thread::{move_into_link_name_space, unshare_unsafe, LinkNameSpaceType, UnshareFlags};

use crate::NetError;

/// A rtnetlink connection: the future to drive and the handle to send through.
pub type Netlink = (
    rtnetlink::proto::Connection<rtnetlink::packet_route::RouteNetlinkMessage>,
    rtnetlink::Handle,
);

fn io(what: &str, path: &Path) -> impl Fn(std::io::Error) -> NetError {
    let what = format!("{what} {}", path.display());
    move |e| NetError::Host(format!("{what}: {e}"))
}

/// Makes a new network namespace, bind-mounted on `path` (created empty), and returns a
/// netlink connection inside it. Call it from within a tokio runtime.
pub fn create(path: &Path) -> Result<Netlink, NetError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io("create", dir))?;
    }
    std::fs::File::create(path).map_err(io("create", path))?;
    let p = path.to_path_buf();
    // The socket registers with the caller's tokio reactor; the namespace is the thread's.
    let rt = tokio::runtime::Handle::current();
    let made = std::thread::spawn(move || -> Result<Netlink, NetError> {
        let _rt = rt.enter();
        // SAFETY: the thread was just spawned for this and shares nothing that a new network
        // namespace would make inconsistent (no sockets of its own, it exits afterwards).
        unsafe { unshare_unsafe(UnshareFlags::NEWNET) }
            .map_err(|e| NetError::Host(format!("unshare(CLONE_NEWNET): {e}")))?;
        mount_bind("/proc/thread-self/ns/net", &p)
            .map_err(|e| io("bind the namespace on", &p)(e.into()))?;
        let (conn, handle, _) = rtnetlink::new_connection().map_err(io("open netlink in", &p))?;
        Ok((conn, handle))
    })
    .join()
    .map_err(|_| NetError::Host("network namespace thread panicked".into()))?;
    if made.is_err() {
        remove(path);
    }
    made
}

/// A netlink connection inside the namespace bound on `path`.
pub fn connect(path: &Path) -> Result<Netlink, NetError> {
    let ns = std::fs::File::open(path).map_err(io("open", path))?;
    let p = path.to_path_buf();
    let rt = tokio::runtime::Handle::current();
    std::thread::spawn(move || -> Result<Netlink, NetError> {
        let _rt = rt.enter();
        move_into_link_name_space(ns.as_fd(), Some(LinkNameSpaceType::Network))
            .map_err(|e| io("enter", &p)(e.into()))?;
        let (conn, handle, _) = rtnetlink::new_connection().map_err(io("open netlink in", &p))?;
        Ok((conn, handle))
    })
    .join()
    .map_err(|_| NetError::Host("network namespace thread panicked".into()))?
}

/// Writes sysctls (`net/ipv6/conf/eth0/disable_ipv6`, relative to `/proc/sys`) inside the
/// namespace bound on `path`: `/proc/sys/net` is the opening thread's namespace's, so a
/// short-lived thread enters it first.
pub fn sysctls(path: &Path, values: &[(String, &'static str)]) -> Result<(), NetError> {
    let ns = std::fs::File::open(path).map_err(io("open", path))?;
    let p = path.to_path_buf();
    let values = values.to_vec();
    std::thread::spawn(move || -> Result<(), NetError> {
        move_into_link_name_space(ns.as_fd(), Some(LinkNameSpaceType::Network))
            .map_err(|e| io("enter", &p)(e.into()))?;
        for (key, value) in values {
            let file = Path::new("/proc/sys").join(&key);
            std::fs::write(&file, value).map_err(io("write", &file))?;
        }
        Ok(())
    })
    .join()
    .map_err(|_| NetError::Host("network namespace thread panicked".into()))?
}

/// Unbinds and removes a namespace file; the namespace goes when nothing else holds it.
pub fn remove(path: &Path) {
    let _ = unmount(path, UnmountFlags::DETACH);
    let _ = std::fs::remove_file(path);
}

/// Whether `path` has a namespace bound on it (a file of the nsfs filesystem).
pub fn is_bound(path: &Path) -> bool {
    const NSFS_MAGIC: i64 = 0x6e73_6673;
    // f_type's width differs between targets (i64 here, u32 on some).
    #[allow(clippy::unnecessary_cast)]
    rustix::fs::statfs(path).is_ok_and(|s| s.f_type as i64 == NSFS_MAGIC)
}
