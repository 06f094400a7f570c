//! A container's streams on the user's terminal: Docker's multiplexed framing taken apart
//! (or a tty's raw bytes passed through), stdin sent and then half-closed, the terminal in
//! raw mode while a tty session lasts, window sizes and signals passed on to the container.

use std::os::fd::AsFd;

use rustix::termios::{self, OptionalActions, Termios};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::client::{query, Api};

/// Copies a container's output from `r` to stdout and stderr until it ends: raw bytes for a
/// tty, Docker's frames otherwise (8-byte header: stream, 3 zero bytes, big-endian length).
pub async fn copy_output(mut r: impl AsyncRead + Unpin, tty: bool) -> std::io::Result<()> {
    let mut out = tokio::io::stdout();
    let mut err = tokio::io::stderr();
    if tty {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            let n = r.read(&mut buf).await?;
            if n == 0 {
                return Ok(());
            }
            out.write_all(&buf[..n]).await?;
            out.flush().await?;
        }
    }
    let mut header = [0u8; 8];
    let mut frame = Vec::new();
    loop {
        match r.read_exact(&mut header).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
        frame.resize(len, 0);
        r.read_exact(&mut frame).await?;
        match header[0] {
            2 | 3 => {
                err.write_all(&frame).await?;
                err.flush().await?;
            }
            _ => {
                out.write_all(&frame).await?;
                out.flush().await?;
            }
        }
    }
}

/// How an attached session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The container's output ended (it exited, or closed its streams).
    Output,
    /// The user typed the detach keys: the container runs on.
    Detached,
}

/// Sends stdin to `w` until it ends (then half-closes `w`, so the container reads EOF) or
/// until the detach keys are typed (returns true).
pub async fn copy_input(mut w: impl AsyncWrite + Unpin, keys: Option<Vec<u8>>) -> bool {
    let mut stdin = tokio::io::stdin();
    // The bytes that may start the sequence are held back until it completes (they are never
    // sent) or breaks (they are), as the docker CLI's escape proxy does.
    let mut watch = keys.map(berth_detach::Watch::new);
    let mut buf = vec![0u8; 8192];
    let mut send = Vec::with_capacity(buf.len());
    loop {
        let n = match stdin.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        send.clear();
        let detached = match watch.as_mut() {
            Some(w) => w.feed(&buf[..n], &mut send),
            None => {
                send.extend_from_slice(&buf[..n]);
                false
            }
        };
        if w.write_all(&send).await.is_err() || w.flush().await.is_err() {
            return false;
        }
        if detached {
            return true;
        }
    }
    if let Some(held) = watch.as_ref().map(|w| w.held().to_vec()) {
        let _ = w.write_all(&held).await;
    }
    let _ = w.shutdown().await;
    false
}

/// Runs an attached session over a hijacked connection: output until it ends, stdin (when
/// `stdin`) alongside, watched for `detach_keys` (the docker CLI watches for them only
/// with a terminal; berthd watches too, but never sees keys the client consumed).
pub async fn session(
    io: impl AsyncRead + AsyncWrite + Send + Unpin + 'static,
    tty: bool,
    stdin: bool,
    detach_keys: Option<Vec<u8>>,
) -> std::io::Result<Ended> {
    let (r, w) = tokio::io::split(io);
    let keys = detach_keys.filter(|_| tty);
    let (tx, rx) = tokio::sync::oneshot::channel();
    let input = stdin.then(|| {
        tokio::spawn(async move {
            if copy_input(w, keys).await {
                let _ = tx.send(());
            }
        })
    });
    let detached = async {
        match rx.await {
            Ok(()) => (),
            // No detach: wait for the output alone.
            Err(_) => std::future::pending().await,
        }
    };
    let result = tokio::select! {
        r = copy_output(r, tty) => r.map(|()| Ended::Output),
        () = detached => Ok(Ended::Detached),
    };
    if let Some(i) = input {
        i.abort();
    }
    result
}

/// Whether stdin, stdout are terminals.
pub fn stdin_is_tty() -> bool {
    termios::isatty(std::io::stdin())
}

/// The terminal's (height, width), if stdout (or stdin) is one.
pub fn terminal_size() -> Option<(u16, u16)> {
    let out = std::io::stdout();
    let inp = std::io::stdin();
    let ws = termios::tcgetwinsize(out.as_fd())
        .or_else(|_| termios::tcgetwinsize(inp.as_fd()))
        .ok()?;
    (ws.ws_row > 0 && ws.ws_col > 0).then_some((ws.ws_row, ws.ws_col))
}

/// The terminal in raw mode for as long as this lives (keys go to the container as they are
/// typed, Ctrl-C included); restored on drop.
pub struct RawTerminal {
    saved: Termios,
}

impl RawTerminal {
    /// Puts stdin's terminal in raw mode, if stdin is one.
    pub fn enter() -> Option<RawTerminal> {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(stdin.as_fd()).ok()?;
        let mut raw = saved.clone();
        raw.make_raw();
        termios::tcsetattr(stdin.as_fd(), OptionalActions::Now, &raw).ok()?;
        Some(RawTerminal { saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin().as_fd(), OptionalActions::Now, &self.saved);
    }
}

/// Keeps the container's (or exec's) tty the size of ours: once now, then at every SIGWINCH.
/// `path` is `/containers/{id}/resize` or `/exec/{id}/resize`.
pub fn follow_window_size(api: &Api, path: String) {
    let api = api.clone();
    tokio::spawn(async move {
        let resize = |api: Api, path: String| async move {
            if let Some((h, w)) = terminal_size() {
                let q = query(&[("h", h.to_string()), ("w", w.to_string())]);
                let _ = api.post(&path, &q, None).await;
            }
        };
        resize(api.clone(), path.clone()).await;
        let Ok(mut winch) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
        else {
            return;
        };
        while winch.recv().await.is_some() {
            resize(api.clone(), path.clone()).await;
        }
    });
}

/// Passes the signals a user sends to the command on to the container (`--sig-proxy`), as
/// `kill` requests.
pub fn proxy_signals(api: &Api, id: &str) {
    use tokio::signal::unix::{signal, SignalKind};
    for (kind, name) in [
        (SignalKind::interrupt(), "SIGINT"),
        (SignalKind::terminate(), "SIGTERM"),
        (SignalKind::hangup(), "SIGHUP"),
        (SignalKind::quit(), "SIGQUIT"),
        (SignalKind::user_defined1(), "SIGUSR1"),
        (SignalKind::user_defined2(), "SIGUSR2"),
    ] {
        let Ok(mut s) = signal(kind) else { continue };
        let api = api.clone();
        let path = format!("/containers/{id}/kill");
        tokio::spawn(async move {
            while s.recv().await.is_some() {
                let _ = api
                    .post(&path, &query(&[("signal", name.to_string())]), None)
                    .await;
            }
        });
    }
}
