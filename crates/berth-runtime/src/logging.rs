//! Logging for the runtime binary: runc's `--log`, `--log-format text|json` and `--debug`.
//!
//! Without `--log`, only the final one-line error reaches stderr (libcontainer logs every
//! failure at several levels; repeating those to a user's terminal would bury the message),
//! and the warnings the runtime spec requires: a failing poststart or poststop hook "MUST log
//! a warning" and changes nothing else, so without one the failure would go unseen. They are
//! the warnings of libcontainer's `hooks` module (berth patch 11).
//! With `--log FILE`, warnings and errors (or everything, with `--debug`) go to the file.
//!
//! The JSON format is runc's, one object per line: `{"level":"error","msg":"...","time":"..."}`.
//! containerd (go-runc) reads that file back after a failure and reports the last `msg`, so the
//! field names matter; tracing-subscriber's own JSON layout uses others.

use std::fmt;
use std::path::Path;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Log record format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// runc's JSON lines.
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
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(format!(
                "{HOOK_WARNINGS}=warn"
            )))
            .event_format(Warning)
            .with_writer(std::io::stderr)
            .init();
        return Ok(());
    }
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_target(false)
        .with_ansi(false);
    let writer: Box<dyn Fn() -> Box<dyn std::io::Write> + Send + Sync> = match log {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("open log file {}: {e}", path.display()))?;
            Box::new(move || {
                Box::new(file.try_clone().expect("dup log fd")) as Box<dyn std::io::Write>
            })
        }
        None => Box::new(|| Box::new(std::io::stderr()) as Box<dyn std::io::Write>),
    };
    match format {
        LogFormat::Json => builder.event_format(RuncJson).with_writer(writer).init(),
        LogFormat::Text => builder.with_writer(writer).init(),
    }
    Ok(())
}

/// The target of the warnings that reach stderr even without `--log`: failing poststart and
/// poststop hooks.
const HOOK_WARNINGS: &str = "libcontainer::hooks";

/// Formats a warning for a user's terminal: `berth-runtime: warning: <message>`.
struct Warning;

impl<S, N> FormatEvent<S, N> for Warning
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        writeln!(writer, "berth-runtime: warning: {}", fields.message)
    }
}

/// Formats events as runc does with `--log-format json`.
pub struct RuncJson;

impl<S, N> FormatEvent<S, N> for RuncJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let level = match *event.metadata().level() {
            Level::ERROR => "error",
            Level::WARN => "warning",
            Level::INFO => "info",
            Level::DEBUG => "debug",
            Level::TRACE => "trace",
        };
        let mut record = serde_json::Map::new();
        record.insert("level".into(), level.into());
        record.insert("msg".into(), fields.message.into());
        record.insert(
            "time".into(),
            chrono::Utc::now()
                .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
                .into(),
        );
        for (k, v) in fields.rest {
            record.insert(k, v.into());
        }
        writeln!(writer, "{}", serde_json::Value::Object(record))
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    rest: Vec<(String, String)>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.rest
                .push((field.name().to_string(), format!("{value:?}")));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.rest
                .push((field.name().to_string(), value.to_string()));
        }
    }
}
