//! Reading a container's json-file log (`docker logs`): the rotated files oldest first, then
//! the current one; `--since`, `--until`, `--tail`, and `--follow` driven by inotify (no
//! polling) until the container stops.

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_monitor::Stream;
use serde::Deserialize;
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;

use crate::{Engine, Result};

/// One line of output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// stdout or stderr.
    pub stream: Stream,
    /// When it was written, RFC 3339 with nanoseconds.
    pub time: String,
    /// The bytes, newline included.
    pub line: Vec<u8>,
}

/// `docker logs` options.
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    /// Include stdout.
    pub stdout: bool,
    /// Include stderr.
    pub stderr: bool,
    /// Only entries at or after this time (ns since the epoch).
    pub since: Option<i64>,
    /// Only entries before this time (ns since the epoch).
    pub until: Option<i64>,
    /// Only the last n entries (of what is already written).
    pub tail: Option<usize>,
    /// Keep going with new output until the container stops.
    pub follow: bool,
}

#[derive(Deserialize)]
struct Raw {
    log: String,
    stream: String,
    time: String,
}

fn parse(line: &[u8]) -> Option<LogEntry> {
    let r: Raw = serde_json::from_slice(line).ok()?;
    Some(LogEntry {
        stream: if r.stream == "stderr" {
            Stream::Stderr
        } else {
            Stream::Stdout
        },
        time: r.time,
        line: r.log.into_bytes(),
    })
}

fn nanos(t: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(t)
        .ok()
        .and_then(|t| t.timestamp_nanos_opt())
        .unwrap_or(0)
}

impl LogOptions {
    fn wants(&self, e: &LogEntry) -> bool {
        let stream_ok = match e.stream {
            Stream::Stderr => self.stderr,
            _ => self.stdout,
        };
        if !stream_ok {
            return false;
        }
        if self.since.is_none() && self.until.is_none() {
            return true;
        }
        let t = nanos(&e.time);
        self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t < u)
    }
}

/// Reads complete lines of `f` from `*offset`, advancing it past them.
fn read_lines(f: &mut std::fs::File, offset: &mut u64, out: &mut Vec<LogEntry>) {
    if f.seek(SeekFrom::Start(*offset)).is_err() {
        return;
    }
    let mut r = BufReader::new(f);
    let mut line = Vec::new();
    loop {
        line.clear();
        match r.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(n) if line.last() == Some(&b'\n') => {
                *offset += n as u64;
                out.extend(parse(&line));
            }
            // A line still being written: read it next time.
            Ok(_) => break,
        }
    }
}

fn rotated(path: &Path, i: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{i}"));
    PathBuf::from(s)
}

impl Engine {
    /// The container's log entries, sent as they are read; the channel closes at the end (with
    /// `follow`, once the container has stopped and everything is read).
    pub fn logs(self: &Arc<Self>, key: &str, opts: LogOptions) -> Result<mpsc::Receiver<LogEntry>> {
        let ctr = self.find(key)?;
        let rec = ctr.snapshot();
        if rec
            .host_config
            .log_config
            .as_ref()
            .and_then(|l| l.typ.as_deref())
            .is_some_and(|t| t == "none")
        {
            return Err(crate::EngineError::InvalidParameter(
                "configured logging driver does not support reading".into(),
            ));
        }
        let path = PathBuf::from(&rec.log_path);
        let (tx, rx) = mpsc::channel(256);
        let mut phase = ctr.phase.subscribe();
        tokio::spawn(async move {
            // Watch before the first read, so nothing written in between is missed.
            let watch = if opts.follow {
                path.parent().and_then(|d| inotify(d).ok())
            } else {
                None
            };
            let (mut entries, mut file, mut offset) = {
                let path = path.clone();
                tokio::task::spawn_blocking(move || {
                    let mut entries = Vec::new();
                    for i in (1..100).rev() {
                        if let Ok(mut f) = std::fs::File::open(rotated(&path, i)) {
                            read_lines(&mut f, &mut 0, &mut entries);
                        }
                    }
                    let mut offset = 0;
                    let file = std::fs::File::open(&path).ok().map(|mut f| {
                        read_lines(&mut f, &mut offset, &mut entries);
                        f
                    });
                    (entries, file, offset)
                })
                .await
                .unwrap_or_default()
            };
            entries.retain(|e| opts.wants(e));
            if let Some(n) = opts.tail {
                let skip = entries.len().saturating_sub(n);
                entries.drain(..skip);
            }
            for e in entries {
                if tx.send(e).await.is_err() {
                    return;
                }
            }
            let Some(watch) = watch else { return };
            loop {
                let running = phase.borrow().running;
                // Read what is there now (also after the last wake-up before a stop).
                let mut fresh = Vec::new();
                if let Some(f) = &mut file {
                    read_lines(f, &mut offset, &mut fresh);
                    // Rotated away: finish the old file, continue with the new one.
                    let now_ino = std::fs::metadata(&path).map(|m| m.ino()).ok();
                    if now_ino.is_some() && now_ino != f.metadata().map(|m| m.ino()).ok() {
                        file = std::fs::File::open(&path).ok();
                        offset = 0;
                        if let Some(f) = &mut file {
                            read_lines(f, &mut offset, &mut fresh);
                        }
                    }
                } else if let Ok(mut f) = std::fs::File::open(&path) {
                    read_lines(&mut f, &mut offset, &mut fresh);
                    file = Some(f);
                }
                for e in fresh.into_iter().filter(|e| opts.wants(e)) {
                    if tx.send(e).await.is_err() {
                        return;
                    }
                }
                if !running {
                    return;
                }
                tokio::select! {
                    r = watch.readable() => {
                        let Ok(mut g) = r else { return };
                        let mut buf = [0u8; 4096];
                        while g.get_inner().read(&mut buf).is_ok_and(|n| n > 0) {}
                        g.clear_ready();
                    }
                    r = phase.changed() => {
                        if r.is_err() {
                            return;
                        }
                    }
                    _ = tx.closed() => return,
                }
            }
        });
        Ok(rx)
    }
}

/// An inotify descriptor watching `dir` for writes and new files.
fn inotify(dir: &Path) -> std::io::Result<AsyncFd<std::fs::File>> {
    use rustix::fs::inotify::{self, CreateFlags, WatchFlags};
    let fd = inotify::init(CreateFlags::NONBLOCK | CreateFlags::CLOEXEC)?;
    inotify::add_watch(
        &fd,
        dir,
        WatchFlags::MODIFY | WatchFlags::CREATE | WatchFlags::MOVED_TO,
    )?;
    // SAFETY: a File owns its descriptor and always reports the same one; it stays open as
    // long as the AsyncFd that owns it.
    unsafe { AsyncFd::register(std::fs::File::from(fd)) }.map_err(|e| e.into_parts().1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_read_whole_and_filtered() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("l");
        std::fs::write(
            &p,
            concat!(
                r#"{"log":"a\n","stream":"stdout","time":"2026-01-01T00:00:01Z"}"#,
                "\n",
                r#"{"log":"b\n","stream":"stderr","time":"2026-01-01T00:00:02Z"}"#,
                "\n",
                r#"{"log":"partial"#
            ),
        )
        .unwrap();
        let mut f = std::fs::File::open(&p).unwrap();
        let mut off = 0;
        let mut v = Vec::new();
        read_lines(&mut f, &mut off, &mut v);
        assert_eq!(v.len(), 2);
        assert_eq!(v[1].stream, Stream::Stderr);
        assert_eq!(v[1].line, b"b\n");
        assert!(off < std::fs::metadata(&p).unwrap().len());
        let o = LogOptions {
            stdout: true,
            stderr: true,
            since: Some(nanos("2026-01-01T00:00:02Z")),
            ..Default::default()
        };
        assert!(!o.wants(&v[0]) && o.wants(&v[1]));
        let o = LogOptions {
            stdout: true,
            ..Default::default()
        };
        assert!(o.wants(&v[0]) && !o.wants(&v[1]));
    }
}
