//! Settings: command-line flag > environment variable > `config.toml` > default.
//!
//! This is the one place that reads settings. Every resolved value remembers
//! where it came from so `mesync status` can show it, and every bad value is
//! an error that names the key, its source and what was expected.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::message::{validate_host_id, DEFAULT_MAX_MESSAGE_BYTES};

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Flag,
    Env(&'static str),
    File(PathBuf),
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag => f.write_str("flag"),
            Source::Env(var) => write!(f, "env {var}"),
            Source::File(path) => write!(f, "file {}", path.display()),
            Source::Default => f.write_str("default"),
        }
    }
}

/// A setting that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("setting `{key}` from {origin}: expected {expected}, got {got}")]
    Invalid {
        key: &'static str,
        origin: Source,
        expected: String,
        got: String,
    },
    #[error("unknown setting `{key}` in {}; known settings: {}", .file.display(), KEYS.iter().map(|k| k.name).collect::<Vec<_>>().join(", "))]
    Unknown { key: String, file: PathBuf },
    #[error("cannot read {}: {reason}", .file.display())]
    File { file: PathBuf, reason: String },
    #[error("{0}")]
    Other(String),
}

#[derive(Clone, Copy)]
enum Kind {
    Text,
    Url,
    HostId,
    Secret,
    Addr,
    Path,
    Seconds,
    Count,
    Bytes,
}

impl Kind {
    fn expected(self) -> &'static str {
        match self {
            Kind::Text | Kind::Secret | Kind::Path => "a string",
            Kind::Url => "an http:// or https:// URL",
            Kind::HostId => {
                "a host id (1-64 of A-Z a-z 0-9 . _ -, starting with a letter or digit)"
            }
            Kind::Addr => "an address such as 0.0.0.0:8080",
            Kind::Seconds => "a whole number of seconds (at least 1)",
            Kind::Count => "a whole number (at least 1)",
            Kind::Bytes => "a whole number of bytes from 1 to 15728640 (15 MiB: a message must fit in one request)",
        }
    }
}

struct Key {
    name: &'static str,
    env: &'static str,
    kind: Kind,
}

const KEYS: &[Key] = &[
    key("server_url", "MESYNC_SERVER_URL", Kind::Url),
    key("host_id", "MESYNC_HOST_ID", Kind::HostId),
    key("poll_interval", "MESYNC_POLL_INTERVAL", Kind::Seconds),
    key("sent_ttl", "MESYNC_SENT_TTL", Kind::Seconds),
    key("http_timeout", "MESYNC_HTTP_TIMEOUT", Kind::Seconds),
    key("token", "MESYNC_TOKEN", Kind::Secret),
    key("bind", "MESYNC_BIND", Kind::Addr),
    key("data_dir", "MESYNC_DATA_DIR", Kind::Path),
    key("hook_timeout", "MESYNC_HOOK_TIMEOUT", Kind::Seconds),
    key("hook_concurrency", "MESYNC_HOOK_CONCURRENCY", Kind::Count),
    key("keepalive", "MESYNC_KEEPALIVE", Kind::Seconds),
    key("retention", "MESYNC_RETENTION", Kind::Seconds),
    key("dedupe_window", "MESYNC_DEDUPE_WINDOW", Kind::Seconds),
    key("max_message_bytes", "MESYNC_MAX_MESSAGE_BYTES", Kind::Bytes),
];

const fn key(name: &'static str, env: &'static str, kind: Kind) -> Key {
    Key { name, env, kind }
}

pub const BASE_DIR_ENV: &str = "MESYNC_BASE_DIR";

/// Largest `max_message_bytes`: one message must fit in a request body
/// (16 MiB) with room to spare, or a daemon could never send it.
const MAX_MESSAGE_BYTES_LIMIT: u64 = 15 * 1024 * 1024;

/// Values given on the command line, by setting name (`bind`, `data_dir`, ...).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub base_dir: Option<PathBuf>,
    pub values: BTreeMap<&'static str, String>,
}

impl Overrides {
    pub fn set(&mut self, key: &'static str, value: Option<String>) {
        if let Some(v) = value {
            self.values.insert(key, v);
        }
    }
}

/// Every setting, resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    pub base_dir: PathBuf,
    pub server_url: String,
    pub host_id: String,
    pub poll_interval: Duration,
    pub sent_ttl: Duration,
    pub http_timeout: Duration,
    pub token: Option<String>,
    pub bind: SocketAddr,
    pub data_dir: PathBuf,
    pub hook_timeout: Duration,
    pub hook_concurrency: usize,
    pub keepalive: Duration,
    pub retention: Duration,
    pub dedupe_window: Duration,
    pub max_message_bytes: u64,
    /// `(key, shown value, source)` for each setting, in table order.
    pub origins: Vec<(&'static str, String, Source)>,
}

impl Settings {
    /// Resolves every setting from the real environment.
    pub fn load(overrides: &Overrides) -> Result<Settings, ConfigError> {
        Self::resolve(overrides, |var| std::env::var(var).ok())
    }

    /// Resolves every setting with `env` standing in for the environment.
    pub fn resolve(
        overrides: &Overrides,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Settings, ConfigError> {
        let env = |var: &str| env(var).filter(|v| !v.is_empty());
        let (base_dir, base_source) = match (&overrides.base_dir, env(BASE_DIR_ENV)) {
            (Some(dir), _) => (dir.clone(), Source::Flag),
            (None, Some(dir)) => (PathBuf::from(dir), Source::Env(BASE_DIR_ENV)),
            (None, None) => {
                let home = env("HOME").ok_or_else(|| {
                    ConfigError::Other(format!("HOME is not set; set {BASE_DIR_ENV} instead"))
                })?;
                (Path::new(&home).join(".daemon"), Source::Default)
            }
        };
        let file_path = base_dir.join("config.toml");
        let file = read_file(&file_path)?;

        let mut raw: BTreeMap<&'static str, (String, Source)> = BTreeMap::new();
        for k in KEYS {
            let found = if let Some(v) = overrides.values.get(k.name) {
                Some((v.clone(), Source::Flag))
            } else if let Some(v) = env(k.env) {
                Some((v, Source::Env(k.env)))
            } else if let Some(v) = file.get(k.name) {
                Some((
                    toml_scalar(k, v, &file_path)?,
                    Source::File(file_path.clone()),
                ))
            } else {
                None
            };
            if let Some(found) = found {
                raw.insert(k.name, found);
            }
        }
        build(base_dir, base_source, raw)
    }

    /// The config file this base dir would read.
    pub fn config_file(&self) -> PathBuf {
        self.base_dir.join("config.toml")
    }
}

fn read_file(path: &Path) -> Result<toml::Table, ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(toml::Table::new()),
        Err(e) => {
            return Err(ConfigError::File {
                file: path.to_path_buf(),
                reason: e.to_string(),
            })
        }
    };
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigError::File {
            file: path.to_path_buf(),
            reason: e.message().to_string(),
        })?;
    if let Some(bad) = table
        .keys()
        .find(|k| !KEYS.iter().any(|key| key.name == *k))
    {
        return Err(ConfigError::Unknown {
            key: bad.clone(),
            file: path.to_path_buf(),
        });
    }
    Ok(table)
}

/// A TOML value as text, refusing the wrong TOML type (a number where a
/// string is expected, a string where seconds are expected).
fn toml_scalar(k: &Key, v: &toml::Value, file: &Path) -> Result<String, ConfigError> {
    let numeric = matches!(k.kind, Kind::Seconds | Kind::Count | Kind::Bytes);
    match v {
        toml::Value::Integer(i) if numeric => Ok(i.to_string()),
        toml::Value::String(s) if !numeric => Ok(s.clone()),
        other => Err(ConfigError::Invalid {
            key: k.name,
            origin: Source::File(file.to_path_buf()),
            expected: k.kind.expected().to_string(),
            got: format!("{} {}", other.type_str(), other),
        }),
    }
}

fn build(
    base_dir: PathBuf,
    base_source: Source,
    mut raw: BTreeMap<&'static str, (String, Source)>,
) -> Result<Settings, ConfigError> {
    let mut origins = vec![("base_dir", base_dir.display().to_string(), base_source)];
    let default_data_dir = base_dir.join("hub").display().to_string();
    let defaults: [(&str, String); 14] = [
        ("server_url", "http://localhost:8080".into()),
        ("host_id", system_hostname().unwrap_or_default()),
        ("poll_interval", "5".into()),
        ("sent_ttl", "86400".into()),
        ("http_timeout", "10".into()),
        ("token", String::new()),
        ("bind", "0.0.0.0:8080".into()),
        ("data_dir", default_data_dir),
        ("hook_timeout", "60".into()),
        ("hook_concurrency", "4".into()),
        ("keepalive", "15".into()),
        ("retention", "604800".into()),
        ("dedupe_window", "86400".into()),
        ("max_message_bytes", DEFAULT_MAX_MESSAGE_BYTES.to_string()),
    ];
    let mut value = |name: &'static str| -> (String, Source) {
        raw.remove(name).unwrap_or_else(|| {
            let d = defaults
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, d)| d.clone());
            (d.unwrap_or_default(), Source::Default)
        })
    };
    let mut shown = Vec::new();
    let mut get = |name: &'static str| -> Raw {
        // Every name passed here is in KEYS; Text is a harmless fallback.
        let kind = KEYS
            .iter()
            .find(|k| k.name == name)
            .map_or(Kind::Text, |k| k.kind);
        let (value, source) = value(name);
        let display = match kind {
            Kind::Secret if value.is_empty() => "(none)".to_string(),
            Kind::Secret => "(set)".to_string(),
            _ => value.clone(),
        };
        shown.push((name, display, source.clone()));
        Raw {
            key: name,
            value,
            source,
            kind,
        }
    };
    let s = Settings {
        server_url: get("server_url").text()?,
        host_id: get("host_id").text()?,
        poll_interval: get("poll_interval").seconds()?,
        sent_ttl: get("sent_ttl").seconds()?,
        http_timeout: get("http_timeout").seconds()?,
        token: Some(get("token").text()?).filter(|t| !t.is_empty()),
        bind: get("bind").addr()?,
        data_dir: PathBuf::from(get("data_dir").text()?),
        hook_timeout: get("hook_timeout").seconds()?,
        hook_concurrency: get("hook_concurrency").number()? as usize,
        keepalive: get("keepalive").seconds()?,
        retention: get("retention").seconds()?,
        dedupe_window: get("dedupe_window").seconds()?,
        max_message_bytes: get("max_message_bytes").number()?,
        base_dir,
        origins: Vec::new(),
    };
    origins.extend(shown);
    Ok(Settings { origins, ..s })
}

/// One setting's text before it is checked against its kind.
struct Raw {
    key: &'static str,
    value: String,
    source: Source,
    kind: Kind,
}

impl Raw {
    fn invalid(self) -> ConfigError {
        ConfigError::Invalid {
            key: self.key,
            expected: self.kind.expected().to_string(),
            got: format!("{:?}", self.value),
            origin: self.source,
        }
    }

    fn text(self) -> Result<String, ConfigError> {
        let ok = match self.kind {
            Kind::Url => {
                (self.value.starts_with("http://") || self.value.starts_with("https://"))
                    && reqwest::Url::parse(&self.value).is_ok()
            }
            Kind::HostId => validate_host_id("host_id", &self.value).is_ok(),
            _ => true,
        };
        if ok {
            return Ok(self.value);
        }
        if matches!(self.kind, Kind::HostId) && self.source == Source::Default {
            return Err(ConfigError::Other(format!(
                "this machine's hostname {:?} is not a valid host id; set host_id in config.toml or MESYNC_HOST_ID",
                self.value
            )));
        }
        Err(self.invalid())
    }

    fn number(self) -> Result<u64, ConfigError> {
        let max = match self.kind {
            Kind::Bytes => MAX_MESSAGE_BYTES_LIMIT,
            _ => u64::MAX,
        };
        match self.value.trim().parse::<u64>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(self.invalid()),
        }
    }

    fn seconds(self) -> Result<Duration, ConfigError> {
        self.number().map(Duration::from_secs)
    }

    fn addr(self) -> Result<SocketAddr, ConfigError> {
        match self.value.parse() {
            Ok(a) => Ok(a),
            Err(_) => Err(self.invalid()),
        }
    }
}

/// The system hostname, as `gethostname(2)` reports it.
pub fn system_hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: buf is valid for buf.len() bytes; gethostname NUL-terminates on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8(buf[..end].to_vec()).ok()
}

#[cfg(test)]
mod tests;
