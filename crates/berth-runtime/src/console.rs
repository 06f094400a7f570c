//! A terminal for foreground `run` and `exec` when the process asks for one and the caller gave
//! no `--console-socket`: like runc, the runtime receives the pty master itself and relays it
//! to its own stdin and stdout (raw mode, window size kept in step).
//!
//! libcontainer only hands the master out through a console socket, so the runtime listens on
//! one of its own, under the state root, for the length of the call.

use std::io::{IoSliceMut, Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use nix::sys::termios::{self, SetArg, Termios};

use crate::error::{Result, RuntimeError};

/// A console socket the runtime itself listens on.
pub struct ConsoleListener {
    path: PathBuf,
    listener: UnixListener,
}

impl ConsoleListener {
    /// Listens on a fresh socket in `dir`. The name holds only our pid (one runtime process
    /// makes one terminal): a unix socket path must fit in 108 bytes, and the container ID
    /// alone is up to 64 of them.
    pub fn bind(dir: &Path) -> Result<Self> {
        let path = dir.join(format!(".console-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).map_err(RuntimeError::io(&path))?;
        Ok(ConsoleListener { path, listener })
    }

    /// The socket's path, for libcontainer's `--console-socket`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Takes the pty master that the container's init sent (it is already queued on the
    /// socket by the time create returns).
    pub fn receive_master(self) -> Result<OwnedFd> {
        let (conn, _) = self
            .listener
            .accept()
            .map_err(RuntimeError::io(&self.path))?;
        let mut buf = [0u8; 4096];
        let mut iov = [IoSliceMut::new(&mut buf)];
        let mut cmsg = nix::cmsg_space!([RawFd; 1]);
        let msg = recvmsg::<()>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(|e| RuntimeError::io(&self.path)(e.into()))?;
        for c in msg
            .cmsgs()
            .map_err(|e| RuntimeError::io(&self.path)(e.into()))?
        {
            if let ControlMessageOwned::ScmRights(fds) = c {
                if let Some(&fd) = fds.first() {
                    // SAFETY: the kernel just installed this fd for us via SCM_RIGHTS; nothing
                    // else owns it.
                    return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
                }
            }
        }
        Err(RuntimeError::Usage(
            "the container sent no terminal over the console socket".into(),
        ))
    }
}

impl Drop for ConsoleListener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The relay threads take no signals: they go to the main thread, which forwards them (a
/// handler running on a relay thread could not be waited for when the main thread stops
/// catching signals).
fn block_signals() {
    let _ = nix::sys::signal::pthread_sigmask(
        nix::sys::signal::SigmaskHow::SIG_BLOCK,
        Some(&nix::sys::signal::SigSet::all()),
        None,
    );
}

/// Relays a pty master to the runtime's stdin/stdout until the master closes.
pub struct Relay {
    master: OwnedFd,
    saved: Option<Termios>,
    output: Option<std::thread::JoinHandle<()>>,
}

impl Relay {
    /// Puts our terminal (if stdin is one) in raw mode, copies its size to the pty and starts
    /// copying in both directions on two threads. (Threads are safe here: libcontainer has
    /// finished forking by the time a master exists.)
    pub fn start(master: OwnedFd) -> Result<Self> {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(stdin.as_fd()).ok();
        if let Some(t) = &saved {
            let mut raw = t.clone();
            termios::cfmakeraw(&mut raw);
            let _ = termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw);
        }
        let relay_err = |e: std::io::Error| RuntimeError::io("pty master")(e);
        copy_window_size(&master);
        let mut to_pty = std::fs::File::from(master.try_clone().map_err(relay_err)?);
        std::thread::spawn(move || {
            block_signals();
            let mut input = std::io::stdin().lock();
            let mut buf = [0u8; 8192];
            while let Ok(n) = input.read(&mut buf) {
                if n == 0 || to_pty.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        });
        let mut from_pty = std::fs::File::from(master.try_clone().map_err(relay_err)?);
        let output = std::thread::spawn(move || {
            block_signals();
            let mut out = std::io::stdout();
            let mut buf = [0u8; 8192];
            // Ends with EIO once the last process holding the pty's slave side is gone.
            while let Ok(n) = from_pty.read(&mut buf) {
                if n == 0 || out.write_all(&buf[..n]).and_then(|_| out.flush()).is_err() {
                    break;
                }
            }
        });
        Ok(Relay {
            master,
            saved,
            output: Some(output),
        })
    }

    /// The terminal changed size (SIGWINCH): pass the new size to the pty, whose kernel side
    /// signals the container's foreground process group.
    pub fn resize(&self) {
        copy_window_size(&self.master);
    }

    /// Waits for the remaining output and restores the terminal.
    pub fn finish(mut self) {
        if let Some(out) = self.output.take() {
            let _ = out.join();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(t) = &self.saved {
            let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, t);
        }
    }
}

fn copy_window_size(master: &OwnedFd) {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `winsize` into the struct we pass; fd 0 may not be a tty,
    // in which case the call fails and we leave the pty's size alone.
    if unsafe { libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) } == 0 {
        // SAFETY: TIOCSWINSZ reads one `winsize` from the struct we pass.
        unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    }
}
