//! Settings: command-line flag > environment variable > `config.toml` > default.
//!
//! This is the one place that reads settings. Every key is defined once, in
//! the table of [`keys`]; the flags, the variables, the file, `--help` and
//! `mesync status` all come from it. Every resolved value remembers where it
//! came from, and every bad value is an error that names the key, its source
//! (flag, variable, or file and line) and what was expected. The hub and the
//! daemon each get their own view ([`HubConfig`], [`DaemonConfig`]), not the
//! whole [`Settings`].

mod file;
pub mod keys;
pub mod kinds;
mod views;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

pub use keys::{Key, Settings, KEYS};
pub use views::{ClientConfig, DaemonConfig, HubConfig};

use file::ConfigFile;
use kinds::Kind;

pub const BASE_DIR_ENV: &str = "MESYNC_BASE_DIR";
const CONFIG_FILE: &str = "config.toml";

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Flag,
    Env(&'static str),
    File {
        path: PathBuf,
        line: usize,
    },
    Default,
    /// The hub named by the daemon running on this base dir (its `daemon.hub`).
    RunningDaemon(PathBuf),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag => f.write_str("flag"),
            Source::Env(var) => write!(f, "env {var}"),
            Source::File { path, line } => write!(f, "file {}:{line}", path.display()),
            Source::Default => f.write_str("default"),
            Source::RunningDaemon(path) => write!(f, "running daemon, {}", path.display()),
        }
    }
}

/// One resolved setting as `mesync status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub key: &'static str,
    /// The value as given; `(set)` or `(none)` for a secret.
    pub shown: String,
    pub source: Source,
}

/// A setting that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("setting `{key}` from {origin}: expected {expected}, got {got}")]
    Invalid {
        key: &'static str,
        origin: Source,
        expected: &'static str,
        got: String,
    },
    #[error("unknown setting `{key}` in {at}; known settings: {}", known_keys())]
    Unknown { key: String, at: Source },
    #[error("{} is not valid TOML: line {line}, column {column}: {reason}", .file.display())]
    Syntax {
        file: PathBuf,
        line: usize,
        column: usize,
        reason: String,
    },
    #[error("cannot read {}: {reason}", .file.display())]
    File { file: PathBuf, reason: String },
    #[error("{0}")]
    Other(String),
}

fn known_keys() -> String {
    KEYS.iter().map(|k| k.name).collect::<Vec<_>>().join(", ")
}

/// Values given on the command line: the base dir and settings by key name.
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
        // An empty variable counts as unset, as shells make it easy to leave one so.
        let env = move |var: &str| env(var).filter(|v| !v.is_empty());
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
        let file = ConfigFile::read(&base_dir.join(CONFIG_FILE))?;
        let sources = Sources {
            flags: overrides,
            env: &env,
            file,
            base_dir,
            base_source,
        };
        let mut settings = Settings::from_sources(&sources)?;
        settings.read_token_file()?;
        Ok(settings)
    }

    /// With `token_file` set, `token` is that file's content (without the
    /// trailing newline an editor adds). Setting both is refused: which one
    /// wins would be a guess.
    fn read_token_file(&mut self) -> Result<(), ConfigError> {
        let Some(path) = self.token_file.clone() else {
            return Ok(());
        };
        if self.token.is_some() {
            let from = |key| {
                self.source_of(key)
                    .map(|s| s.to_string())
                    .unwrap_or_default()
            };
            return Err(ConfigError::Other(format!(
                "both token ({}) and token_file ({}) are set; keep one",
                from("token"),
                from("token_file")
            )));
        }
        let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::File {
            file: path.clone(),
            reason: format!("{e} (token_file)"),
        })?;
        let token = text.trim_end_matches(['\n', '\r']);
        if token.is_empty() {
            return Err(ConfigError::Other(format!(
                "token_file {} is empty",
                path.display()
            )));
        }
        self.token = Some(token.to_string());
        if let Some(o) = self.origins.iter_mut().find(|o| o.key == "token") {
            o.shown = "(set)".to_string();
            o.source = Source::File { path, line: 1 };
        }
        Ok(())
    }

    /// Talks to `url`, the hub of the daemon running on this base dir, when
    /// `server_url` was not set (the daemon may have chosen it itself, as
    /// `start --with-hub` does).
    pub fn use_daemon_hub(&mut self, url: String, file: PathBuf) {
        if self.source_of("server_url") != Some(&Source::Default) {
            return;
        }
        if let Some(o) = self.origins.iter_mut().find(|o| o.key == "server_url") {
            o.shown = url.clone();
            o.source = Source::RunningDaemon(file);
        }
        self.server_url = url;
    }

    /// The config file this base dir reads.
    pub fn config_file(&self) -> PathBuf {
        self.base_dir.join(CONFIG_FILE)
    }

    /// Where the value of `key` came from.
    pub fn source_of(&self, key: &str) -> Option<&Source> {
        self.origins
            .iter()
            .find(|o| o.key == key)
            .map(|o| &o.source)
    }
}

/// Everything a value can come from, in order of precedence.
pub(crate) struct Sources<'a> {
    flags: &'a Overrides,
    env: &'a dyn Fn(&str) -> Option<String>,
    file: ConfigFile,
    base_dir: PathBuf,
    base_source: Source,
}

impl Sources<'_> {
    fn base_dir(&self) -> &Path {
        &self.base_dir
    }

    fn base_dir_origin(&self) -> Origin {
        Origin {
            key: "base_dir",
            shown: self.base_dir.display().to_string(),
            source: self.base_source.clone(),
        }
    }

    /// The value of `key` from the first source that has one, parsed as `K`;
    /// records its origin.
    fn value<K: Kind>(
        &self,
        key: &Key,
        origins: &mut Vec<Origin>,
    ) -> Result<K::Value, ConfigError> {
        let (text, source) = self.text(key)?;
        let Some(value) = K::parse(&text) else {
            return Err(self.refused(key, text, source));
        };
        let shown = match (K::SECRET, text.is_empty()) {
            (true, true) => "(none)".to_string(),
            (true, false) => "(set)".to_string(),
            (false, _) => text,
        };
        origins.push(Origin {
            key: key.name,
            shown,
            source,
        });
        Ok(value)
    }

    fn text(&self, key: &Key) -> Result<(String, Source), ConfigError> {
        if let Some(v) = self.flags.values.get(key.name) {
            return Ok((v.clone(), Source::Flag));
        }
        if let Some(v) = (self.env)(key.env) {
            return Ok((v, Source::Env(key.env)));
        }
        if let Some(found) = self.file.get(key)? {
            return Ok(found);
        }
        let text = match key.default {
            keys::DefaultValue::Text(t) => t.to_string(),
            keys::DefaultValue::Hostname => system_hostname().unwrap_or_default(),
            keys::DefaultValue::HubDir => self.base_dir.join("hub").display().to_string(),
            keys::DefaultValue::Unset => String::new(),
        };
        Ok((text, Source::Default))
    }

    fn refused(&self, key: &Key, text: String, source: Source) -> ConfigError {
        if source == Source::Default {
            // Only a default taken from the machine (its hostname) can fail.
            return ConfigError::Other(format!(
                "{name} defaults to {text:?} ({}), which is not {}; set {name} in config.toml or {}",
                key.default.shown(),
                key.expected,
                key.env,
                name = key.name,
            ));
        }
        let got = if key.secret {
            "a value that does not fit".to_string()
        } else {
            format!("{text:?}")
        };
        ConfigError::Invalid {
            key: key.name,
            origin: source,
            expected: key.expected,
            got,
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
mod properties;
#[cfg(test)]
mod tests;
