//! The per-container monitor's configuration and wire protocol, shared by the monitor binary
//! (`berth-monitor`) and the engine that starts and talks to it.
//!
//! One monitor runs per running container. It owns the container's stdio, its log file and
//! its exit status, so a container outlives berthd: berthd can be stopped or killed and finds
//! its containers again through their monitors' sockets (live restore).
//!
//! The conversation:
//! 1. The engine writes a [`Config`] file and starts `berth-monitor CONFIG` with one end of a
//!    socketpair as fd 3 ([`SYNC_FD`]).
//! 2. The monitor starts the container through the OCI runtime and writes one [`Started`] line
//!    on fd 3.
//! 3. The engine connects the attach streams that were waiting for the start, then writes one
//!    byte (or closes fd 3). Only then does the monitor read the container's output, so an
//!    attach made before `start` (as `docker run` does) sees all of it.
//! 4. Clients connect to [`Config::socket`] and send one [`Request`] line. `Attach` turns the
//!    connection into the container's stdio (Docker's multiplexed framing without a tty, raw
//!    bytes with one); `Wait` gets one [`Exit`] line when the container has exited and been
//!    cleaned up.
//! 5. When the container exits, the monitor deletes it from the runtime, unmounts its rootfs,
//!    writes [`Exit`] to [`Config::exit_file`] (atomically), answers the waiters and exits.

use std::io::{self, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The fd on which a freshly started monitor finds its sync socket.
pub const SYNC_FD: i32 = 3;
/// The fd of the container's `monitor.lock`, locked by the engine and held by the monitor
/// (open, untouched) for its whole life: the lock says whether a monitor is alive.
pub const LOCK_FD: i32 = 4;
/// Where the engine may hand the monitor the runtime binary already opened so that no
/// container can write it (`berth_seal::open_protected`); see [`Config::runtime_protected`].
pub const RUNTIME_FD: i32 = 5;

/// Everything a monitor needs to run one container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    /// The container ID (also its ID in the OCI runtime).
    pub id: String,
    /// The OCI runtime binary (`berth-runtime`).
    pub runtime: PathBuf,
    /// The runtime opened through a read-only overlay, at [`RUNTIME_FD`]: when set, the
    /// container is started by exec'ing `/proc/self/fd/5`, and the runtime, finding itself
    /// protected, skips its own protective re-exec (one process start less per container).
    #[serde(default)]
    pub runtime_protected: bool,
    /// The runtime's `--root`.
    pub runtime_root: PathBuf,
    /// The OCI bundle.
    pub bundle: PathBuf,
    /// Where the monitor listens for clients.
    pub socket: PathBuf,
    /// Where the container's exit status is written.
    pub exit_file: PathBuf,
    /// Whether [`Config::exit_file`] must survive a crash of the machine (fsynced). Off for
    /// containers removed when they exit (`--rm`): nothing reads their status after a reboot
    /// (the engine removes a `--rm` container it finds dead), and the two fsyncs cost every
    /// such exit ~0.6 ms. Written atomically either way, so a restarted engine reads it.
    #[serde(default = "durable_by_default")]
    pub durable_exit: bool,
    /// Where the runtime writes the init's pid.
    pub pid_file: PathBuf,
    /// The process has a terminal.
    pub tty: bool,
    /// Keep the container's stdin open for attach (`-i`).
    pub open_stdin: bool,
    /// Close the container's stdin when the first attached client closes its input.
    pub stdin_once: bool,
    /// The json-file log, if logging is on.
    pub log: Option<LogConfig>,
    /// An overlay mount to remove once the container is gone.
    pub rootfs_mount: Option<PathBuf>,
    /// The container's cgroup, relative to each hierarchy's root (for the OOM check).
    pub cgroup: PathBuf,
}

fn durable_by_default() -> bool {
    true
}

/// Docker's json-file log driver settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogConfig {
    /// The log file.
    pub path: PathBuf,
    /// Rotate when the file would exceed this many bytes (0: never).
    pub max_size: u64,
    /// How many files to keep, the current one included (at least 1).
    pub max_file: u32,
}

/// The monitor's answer on the sync fd.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Started {
    /// The container runs; its init has this pid.
    Running {
        /// The init's pid.
        pid: i32,
    },
    /// The runtime refused; the message is its error.
    Failed {
        /// What the runtime said.
        message: String,
    },
}

/// A client's first line on the monitor's socket.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Request {
    /// Become the container's stdio.
    Attach {
        /// Forward what the client sends to the container's stdin.
        stdin: bool,
        /// Send the container's stdout.
        stdout: bool,
        /// Send the container's stderr.
        stderr: bool,
    },
    /// Answer with an [`Exit`] line once the container is gone.
    Wait,
    /// Set the terminal's size.
    Resize {
        /// Rows.
        height: u16,
        /// Columns.
        width: u16,
    },
}

/// How the container ended.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Exit {
    /// The exit code; 128 + n for a process killed by signal n (as Docker reports it).
    pub exit_code: i32,
    /// When, RFC 3339 with nanoseconds.
    pub finished_at: String,
    /// The kernel's OOM killer ran in the container's cgroup.
    pub oom_killed: bool,
}

/// Docker's stream types in its multiplexed framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// stdin (only in Docker's framing of logs, never sent here).
    Stdin = 0,
    /// stdout.
    Stdout = 1,
    /// stderr.
    Stderr = 2,
}

/// The 8-byte header Docker puts before each chunk of a multiplexed stream.
pub fn frame_header(stream: Stream, len: usize) -> [u8; 8] {
    let n = (len as u32).to_be_bytes();
    [stream as u8, 0, 0, 0, n[0], n[1], n[2], n[3]]
}

/// Receives the one file descriptor (a pty master, from an OCI runtime's `--console-socket`)
/// sent with a message on a connected unix socket. On a non-blocking socket this fails with
/// `WouldBlock` until the message is there.
pub fn receive_fd(conn: impl AsFd) -> io::Result<OwnedFd> {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut anc = RecvAncillaryBuffer::new(&mut space);
    let mut buf = [0u8; 256];
    rustix::net::recvmsg(
        &conn,
        &mut [IoSliceMut::new(&mut buf)],
        &mut anc,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    for msg in anc.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = msg {
            if let Some(fd) = fds.next() {
                return Ok(fd);
            }
        }
    }
    Err(io::Error::other("the runtime sent no terminal"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_header_is_dockers() {
        assert_eq!(
            frame_header(Stream::Stderr, 0x0102_0304),
            [2, 0, 0, 0, 1, 2, 3, 4]
        );
        assert_eq!(frame_header(Stream::Stdout, 3), [1, 0, 0, 0, 0, 0, 0, 3]);
    }

    #[test]
    fn requests_round_trip() {
        let r = Request::Attach {
            stdin: true,
            stdout: true,
            stderr: false,
        };
        let s = serde_json::to_string(&r).unwrap();
        assert_eq!(
            s,
            r#"{"attach":{"stdin":true,"stdout":true,"stderr":false}}"#
        );
        assert_eq!(serde_json::from_str::<Request>(&s).unwrap(), r);
        assert_eq!(
            serde_json::from_str::<Request>(r#""wait""#).unwrap(),
            Request::Wait
        );
    }
}
