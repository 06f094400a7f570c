//! Logging for the runtime binary: runc's `--log`, `--log-format text|json` and `--debug`.
//!
//! Without `--log`, only the final one-line error reaches stderr (libcontainer logs every
//! failure at several levels; repeating those to a user's terminal would bury the message).
//! With `--log FILE`, warnings and errors (or everything, with `--debug`) go to the file in
//! the chosen format, which is what containerd and Docker read back.

use std::path::Path;

use tracing_subscriber::filter::LevelFilter;

/// Log record format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (`{"level":..,"msg":..,"time":..}` as runc writes it).
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("unknown log format {other:?}: use text or json")),
        }
    }
}

/// Installs the global subscriber. Returns an error message if the log file cannot be opened.
pub fn init(log: Option<&Path>, format: LogFormat, debug: bool) -> Result<(), String> {
    let level = match (log.is_some(), debug) {
        (_, true) => LevelFilter::DEBUG,
        (true, false) => LevelFilter::WARN,
        (false, false) => LevelFilter::OFF,
    };
    if level == LevelFilter::OFF {
        return Ok(());
    }
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_target(false);
    match log {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("open log file {}: {e}", path.display()))?;
            let w = std::sync::Mutex::new(file);
            match format {
                LogFormat::Json => builder.json().flatten_event(true).with_writer(w).init(),
                LogFormat::Text => builder.with_ansi(false).with_writer(w).init(),
            }
        }
        None => match format {
            LogFormat::Json => builder
                .json()
                .flatten_event(true)
                .with_writer(std::io::stderr)
                .init(),
            LogFormat::Text => builder.with_writer(std::io::stderr).init(),
        },
    }
    Ok(())
}
