//! Waiting for a container process in the foreground (`run` and `exec` without `--detach`):
//! signals sent to the runtime are forwarded to the process, and the runtime exits with the
//! process's exit code (128 + signal number when it was killed), as runc does.
//!
//! No polling: SIGCHLD arrives through signal-hook's self-pipe like every other signal, and
//! the runtime sleeps in `read` until something happens.

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use signal_hook::consts::signal::*;
use signal_hook::iterator::Signals;

use crate::console::Relay;
use crate::error::{Result, RuntimeError};

/// Signals the foreground runtime forwards to the container process (everything catchable
/// except SIGCHLD, which it consumes itself, and SIGPIPE).
///
/// SIGPIPE stays ignored (Rust's default): it is raised by our own writes to a reader that
/// went away (the relay's stdout when the caller died), and caught it turned into a storm —
/// signal-hook's handler writes to its self-pipe, which is closed while the handler is being
/// unregistered, raising SIGPIPE again in the handler, forever (seen as a runtime spinning at
/// 100% CPU after the daemon that ran `exec -t` was killed).
const FORWARDED: &[i32] = &[
    SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGALRM, SIGCONT, SIGTSTP, SIGTTIN,
    SIGTTOU, SIGWINCH, SIGURG, SIGVTALRM, SIGPROF, SIGIO, SIGSYS, SIGXCPU, SIGXFSZ,
];

/// Signal handling for a process that the runtime waits for. Create it *before* the process
/// is started so that no signal or exit can slip past.
pub struct Foreground {
    signals: Signals,
}

impl Foreground {
    /// Becomes a child subreaper (the container process is a grandchild: its parent, the
    /// intermediate process, exits) and starts catching signals.
    pub fn prepare() -> Result<Self> {
        // SAFETY: PR_SET_CHILD_SUBREAPER takes an integer flag and touches no memory of ours.
        if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
            return Err(RuntimeError::io("prctl(PR_SET_CHILD_SUBREAPER)")(
                std::io::Error::last_os_error(),
            ));
        }
        let mut all = FORWARDED.to_vec();
        all.push(SIGCHLD);
        let signals = Signals::new(&all).map_err(RuntimeError::io("install signal handlers"))?;
        Ok(Foreground { signals })
    }

    /// Forwards signals to `pid` until it exits; returns the exit code to use.
    /// Other children that were reparented to us are reaped on the way. With a terminal
    /// `relay`, a window change resizes the pty instead of being forwarded (the pty then
    /// signals the container's foreground process group itself).
    pub fn wait(mut self, pid: Pid, relay: Option<&Relay>) -> Result<i32> {
        // The process may already have exited before we got here: check first.
        if let Some(code) = reap(pid)? {
            return Ok(code);
        }
        loop {
            for sig in self.signals.wait() {
                if sig == SIGCHLD {
                    if let Some(code) = reap(pid)? {
                        return Ok(code);
                    }
                } else if let (SIGWINCH, Some(relay)) = (sig, relay) {
                    relay.resize();
                } else if let Ok(s) = Signal::try_from(sig) {
                    // The process may be gone already; its exit is picked up via SIGCHLD.
                    let _ = kill(pid, s);
                }
            }
        }
    }
}

/// Reaps every exited child; returns `pid`'s exit code once it is among them.
fn reap(pid: Pid) -> Result<Option<i32>> {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(p, code)) if p == pid => return Ok(Some(code)),
            Ok(WaitStatus::Signaled(p, sig, _)) if p == pid => return Ok(Some(128 + sig as i32)),
            Ok(WaitStatus::StillAlive) => return Ok(None),
            Ok(_) => continue,
            Err(nix::errno::Errno::ECHILD) => {
                // Not our child: only possible if the subreaper could not take it over.
                return Err(RuntimeError::Usage(format!(
                    "process {pid} is not a child of the runtime; cannot wait for it"
                )));
            }
            Err(e) => return Err(RuntimeError::io("waitpid")(e.into())),
        }
    }
}
