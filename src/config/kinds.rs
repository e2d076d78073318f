//! The kinds of value a setting holds: how each is parsed from text (a flag,
//! a variable or a TOML value), what TOML type may hold it, and the sentence
//! that says what was expected when a value does not fit.
//!
//! Each kind is a type, so a key of the settings table names one and the
//! resolved field gets its Rust type from it: a key cannot end up with a kind
//! that has no parser, and nothing falls back to plain text.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::message::validate_host_id;

/// The TOML types a kind accepts in `config.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Toml {
    String,
    Integer,
    /// Durations: `90` (seconds) as well as `"90s"`.
    IntegerOrString,
}

/// One kind of setting value.
pub trait Kind {
    /// The type of the resolved field.
    type Value: std::fmt::Debug + Clone;
    /// Completes "expected ...": what a valid value looks like.
    const EXPECTED: &'static str;
    /// The placeholder in `--help` (`--bind <ADDR>`).
    const VALUE_NAME: &'static str;
    const TOML: Toml;
    /// Shown as `(set)` or `(none)`, never as its text.
    const SECRET: bool = false;
    /// The value of `text`, or `None` when it does not fit this kind.
    fn parse(text: &str) -> Option<Self::Value>;
}

/// An `http://` or `https://` URL.
pub struct Url;

impl Kind for Url {
    type Value = String;
    const EXPECTED: &'static str =
        "an http:// or https:// URL, or several separated by commas (hubs to fail over between)";
    const VALUE_NAME: &'static str = "URL";
    const TOML: Toml = Toml::String;
    fn parse(text: &str) -> Option<String> {
        let one = |u: &str| {
            let u = u.trim();
            (u.starts_with("http://") || u.starts_with("https://"))
                && reqwest::Url::parse(u).is_ok()
        };
        text.split(',').all(one).then(|| text.to_string())
    }
}

/// A host id, by the same rule as a message's `source`.
pub struct HostId;

impl Kind for HostId {
    type Value = String;
    const EXPECTED: &'static str =
        "a host id (1-64 of A-Z a-z 0-9 . _ -, starting with a letter or digit)";
    const VALUE_NAME: &'static str = "HOST";
    const TOML: Toml = Toml::String;
    fn parse(text: &str) -> Option<String> {
        validate_host_id("host_id", text)
            .ok()
            .map(|()| text.to_string())
    }
}

/// A credential; empty means none.
pub struct Secret;

impl Kind for Secret {
    type Value = Option<String>;
    const EXPECTED: &'static str = "a string";
    const VALUE_NAME: &'static str = "SECRET";
    const TOML: Toml = Toml::String;
    const SECRET: bool = true;
    fn parse(text: &str) -> Option<Option<String>> {
        Some((!text.is_empty()).then(|| text.to_string()))
    }
}

/// A socket address to listen on; port 0 picks a free one.
pub struct Addr;

impl Kind for Addr {
    type Value = SocketAddr;
    const EXPECTED: &'static str = "an address such as 0.0.0.0:8080";
    const VALUE_NAME: &'static str = "ADDR";
    const TOML: Toml = Toml::String;
    fn parse(text: &str) -> Option<SocketAddr> {
        text.parse().ok()
    }
}

/// A directory path.
pub struct Dir;

impl Kind for Dir {
    type Value = PathBuf;
    const EXPECTED: &'static str = "a directory path";
    const VALUE_NAME: &'static str = "DIR";
    const TOML: Toml = Toml::String;
    fn parse(text: &str) -> Option<PathBuf> {
        (!text.is_empty()).then(|| PathBuf::from(text))
    }
}

/// A duration of at least one second: whole seconds, or a number with a unit.
pub struct Duration;

impl Kind for Duration {
    type Value = std::time::Duration;
    const EXPECTED: &'static str =
        "a duration: whole seconds or a number with a unit (90s, 15m, 24h, 7d), at least 1s";
    const VALUE_NAME: &'static str = "DURATION";
    const TOML: Toml = Toml::IntegerOrString;
    fn parse(text: &str) -> Option<std::time::Duration> {
        let text = text.trim();
        let digits = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(digits);
        let scale: u64 = match unit {
            "" | "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return None,
        };
        let secs = number.parse::<u64>().ok()?.checked_mul(scale)?;
        (secs >= 1).then(|| std::time::Duration::from_secs(secs))
    }
}

/// A whole number of at least 1.
pub struct Count;

impl Kind for Count {
    type Value = usize;
    const EXPECTED: &'static str = "a whole number (at least 1)";
    const VALUE_NAME: &'static str = "N";
    const TOML: Toml = Toml::Integer;
    fn parse(text: &str) -> Option<usize> {
        text.trim().parse().ok().filter(|n| *n >= 1)
    }
}

/// A file path; empty means none.
pub struct FilePath;

impl Kind for FilePath {
    type Value = Option<PathBuf>;
    const EXPECTED: &'static str = "a file path";
    const VALUE_NAME: &'static str = "FILE";
    const TOML: Toml = Toml::String;
    fn parse(text: &str) -> Option<Option<PathBuf>> {
        Some((!text.is_empty()).then(|| PathBuf::from(text)))
    }
}

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// For people: one line of text per event.
    Text,
    /// For log shippers: one JSON object per line.
    Json,
}

/// `text` or `json`.
pub struct Format;

impl Kind for Format {
    type Value = LogFormat;
    const EXPECTED: &'static str = "text or json";
    const VALUE_NAME: &'static str = "FORMAT";
    const TOML: Toml = Toml::String;
    fn parse(text: &str) -> Option<LogFormat> {
        match text.trim() {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
    }
}

/// Which log lines are written: a level (`info`) or directives per module
/// (`info,mesync::daemon=debug`), as `RUST_LOG` takes them.
pub struct Filter;

impl Kind for Filter {
    type Value = String;
    const EXPECTED: &'static str =
        "a log filter: a level (error, warn, info, debug, trace) or directives such as info,mesync::daemon=debug";
    const VALUE_NAME: &'static str = "FILTER";
    const TOML: Toml = Toml::String;
    fn parse(text: &str) -> Option<String> {
        tracing_subscriber::EnvFilter::try_new(text)
            .ok()
            .map(|_| text.to_string())
    }
}

/// Where the hub keeps messages: its own files, or a NATS JetStream cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreKind {
    /// The embedded log under `data_dir`.
    File,
    /// NATS servers to connect to (any of them; the client learns the rest).
    Nats(Vec<String>),
}

/// `file`, or `nats://host:port` URLs separated by commas.
pub struct Store;

impl Kind for Store {
    type Value = StoreKind;
    const EXPECTED: &'static str =
        "file, or NATS server URLs separated by commas (nats://10.0.0.1:4222,nats://10.0.0.2:4222)";
    const VALUE_NAME: &'static str = "STORE";
    const TOML: Toml = Toml::String;
    fn parse(text: &str) -> Option<StoreKind> {
        let text = text.trim();
        if text == "file" {
            return Some(StoreKind::File);
        }
        let urls: Vec<String> = text.split(',').map(|u| u.trim().to_string()).collect();
        let valid = |u: &String| {
            u.strip_prefix("nats://")
                .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'))
        };
        urls.iter().all(valid).then_some(StoreKind::Nats(urls))
    }
}

/// Largest `max_message_bytes`: one message must fit in a request body
/// (16 MiB) with room to spare, or a daemon could never send it.
pub const MAX_MESSAGE_BYTES_LIMIT: u64 = 15 * 1024 * 1024;

/// The size limit of one message.
pub struct MessageBytes;

impl Kind for MessageBytes {
    type Value = u64;
    const EXPECTED: &'static str =
        "a whole number of bytes from 1 to 15728640 (15 MiB: a message must fit in one request)";
    const VALUE_NAME: &'static str = "BYTES";
    const TOML: Toml = Toml::Integer;
    fn parse(text: &str) -> Option<u64> {
        let n = text.trim().parse().ok()?;
        (1..=MAX_MESSAGE_BYTES_LIMIT).contains(&n).then_some(n)
    }
}

/// Web origins (`scheme://host[:port]`), comma-separated; empty means none.
pub struct Origins;

impl Kind for Origins {
    type Value = Vec<String>;
    const EXPECTED: &'static str =
        "web origins such as https://ops.example.com, separated by commas";
    const VALUE_NAME: &'static str = "ORIGINS";
    const TOML: Toml = Toml::String;
    fn parse(text: &str) -> Option<Vec<String>> {
        text.split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(|o| {
                let url = reqwest::Url::parse(o).ok()?;
                let plain = url.path() == "/" && url.query().is_none() && !o.ends_with('/');
                (plain && url.host().is_some()).then(|| o.to_ascii_lowercase())
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration as D;

    #[test]
    fn durations_take_seconds_or_a_unit() {
        let cases = [
            ("90", 90),
            ("90s", 90),
            ("15m", 900),
            ("24h", 86_400),
            ("7d", 604_800),
        ];
        for (text, secs) in cases {
            assert_eq!(Duration::parse(text), Some(D::from_secs(secs)), "{text}");
        }
        for bad in [
            "",
            "0",
            "0s",
            "-1",
            "1.5h",
            "5 m",
            "5w",
            "m",
            "fast",
            "99999999999999999999d",
        ] {
            assert_eq!(Duration::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn counts_bytes_and_secrets() {
        assert_eq!(Count::parse("4"), Some(4));
        assert_eq!(Count::parse("0"), None);
        assert_eq!(MessageBytes::parse("15728640"), Some(15_728_640));
        assert_eq!(MessageBytes::parse("15728641"), None);
        assert_eq!(Secret::parse(""), Some(None));
        assert_eq!(Secret::parse("x"), Some(Some("x".into())));
    }

    #[test]
    fn log_formats_and_filters() {
        assert_eq!(Format::parse("json"), Some(LogFormat::Json));
        assert_eq!(Format::parse("text"), Some(LogFormat::Text));
        assert_eq!(Format::parse("yaml"), None);
        assert!(Filter::parse("info,mesync::daemon=debug").is_some());
        assert!(Filter::parse("warn").is_some());
        assert_eq!(Filter::parse("info,=[x"), None);
    }
}
