//! Logs, to stderr: text for people or JSON lines for log shippers
//! (`log_format`), filtered by `log_filter` (`RUST_LOG`).
//!
//! Text carries colour only when stderr is a terminal and `NO_COLOR` is not
//! set. A JSON line is one object: `time`, `level`, `target`, `message` and
//! `fields` (the event's other fields), built with serde so it always
//! escapes correctly. The filter can be replaced while the process runs
//! ([`LogFilter::set`], which SIGHUP uses); the format is fixed at start.

use std::fmt;
use std::io::IsTerminal;

use serde::Serialize;
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

use crate::config::kinds::LogFormat;

/// The handle that replaces the log filter of the running process.
#[derive(Clone)]
pub struct LogFilter {
    handle: reload::Handle<EnvFilter, Registry>,
    current: std::sync::Arc<std::sync::Mutex<String>>,
}

impl LogFilter {
    /// Applies `filter` from now on; says so when it changed.
    pub fn set(&self, filter: &str) {
        let Ok(mut current) = self.current.lock() else {
            return;
        };
        if *current == filter {
            tracing::info!(log_filter = filter, "log filter unchanged");
            return;
        }
        match self.handle.reload(new_filter(filter)) {
            Ok(()) => {
                tracing::info!(log_filter = filter, was = %*current, "log filter changed");
                *current = filter.to_string();
            }
            Err(e) => tracing::warn!("cannot change the log filter: {e}"),
        }
    }
}

/// Installs the process's logger. `filter` was checked when the settings
/// were read; should it still not parse, everything at info is logged.
pub fn init(format: LogFormat, filter: &str) -> LogFilter {
    let (filter_layer, handle) = reload::Layer::new(new_filter(filter));
    let (text, json) = match format {
        LogFormat::Text => {
            let layer = tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(colour_wanted());
            (Some(layer), None)
        }
        LogFormat::Json => {
            let layer = tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .event_format(JsonLines);
            (None, Some(layer))
        }
    };
    // A second init (only possible in-process, e.g. from a test) keeps the first.
    let _ = tracing_subscriber::registry()
        .with(filter_layer)
        .with(text)
        .with(json)
        .try_init();
    LogFilter {
        handle,
        current: std::sync::Arc::new(std::sync::Mutex::new(filter.to_string())),
    }
}

fn new_filter(filter: &str) -> EnvFilter {
    EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Colour only for a person at a terminal who did not ask for none
/// (<https://no-color.org>: any non-empty `NO_COLOR`).
fn colour_wanted() -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    !no_color && std::io::stderr().is_terminal()
}

/// One log line of `log_format = "json"`.
#[derive(Serialize)]
struct Line<'a> {
    time: String,
    level: &'a str,
    target: &'a str,
    message: String,
    fields: Map<String, Value>,
}

/// The formatter of JSON lines.
struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
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
        let meta = event.metadata();
        let mut fields = Fields::default();
        event.record(&mut fields);
        let line = Line {
            time: format!("{:.6}", jiff::Timestamp::now()),
            level: meta.level().as_str(),
            target: meta.target(),
            message: fields.message,
            fields: fields.others,
        };
        let text = serde_json::to_string(&line).map_err(|_| fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

/// An event's fields: its message apart, the others as JSON values.
#[derive(Default)]
struct Fields {
    message: String,
    others: Map<String, Value>,
}

impl Fields {
    fn put(&mut self, field: &Field, value: Value) {
        if field.name() == "message" {
            self.message = match value {
                Value::String(s) => s,
                other => other.to_string(),
            };
        } else {
            self.others.insert(field.name().to_string(), value);
        }
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, Value::String(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::String(value.to_string()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }
}
