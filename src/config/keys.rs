//! The settings table: every key defined once, with its kind, variable,
//! default, flag and help text.
//!
//! From this one table come the `Settings` struct (one typed field per key),
//! the `KEYS` list that config.toml, the environment, `mesync status`, the
//! command-line flags and `--help` are all built from, and the resolution of
//! each key. Adding a setting is one entry here plus the code that uses it
//! (and, for the hub or the daemon, a field in its view in `views.rs`).

use std::path::PathBuf;

use super::kinds::{self, Kind, Toml};
use super::{ConfigError, Origin, Sources};

/// Where a key's default comes from.
#[derive(Debug, Clone, Copy)]
pub enum DefaultValue {
    /// This text, parsed like any value given by the user.
    Text(&'static str),
    /// The system hostname.
    Hostname,
    /// `<base dir>/hub`.
    HubDir,
    /// No value: the feature is off.
    Unset,
}

impl DefaultValue {
    /// How `--help` and docs/settings.md show it.
    pub fn shown(self) -> &'static str {
        match self {
            DefaultValue::Text(t) => t,
            DefaultValue::Hostname => "the system hostname",
            DefaultValue::HubDir => "<base dir>/hub",
            DefaultValue::Unset => "none",
        }
    }
}

/// Which commands take a key as a `--flag`.
#[derive(Debug, Clone, Copy)]
pub enum Flag {
    /// Environment and config.toml only (a secret must not show in `ps`).
    None,
    /// Every command.
    Global,
    /// These subcommands.
    On(&'static [&'static str]),
}

const HUB: Flag = Flag::On(&["serve", "start"]);
const DAEMON: Flag = Flag::On(&["start"]);
const CLIENT: Flag = Flag::On(&["start", "status", "hosts", "watch"]);
const SERVICE: Flag = Flag::On(&["serve", "start"]);
const MESSAGES: Flag = Flag::On(&["serve", "start", "send", "check"]);

/// One key of the table, without its type: what the file, the environment,
/// the flags and the help need to know.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// The name in config.toml; the flag is the same with `-` for `_`.
    pub name: &'static str,
    pub env: &'static str,
    pub default: DefaultValue,
    pub flag: Flag,
    pub help: &'static str,
    pub expected: &'static str,
    pub value_name: &'static str,
    pub toml: Toml,
    pub secret: bool,
}

impl Key {
    pub fn flag_name(&self) -> String {
        self.name.replace('_', "-")
    }
}

macro_rules! key {
    ($name:ident, $kind:ty, $env:literal, $default:expr, $flag:expr, $($help:literal)+) => {
        Key {
            name: stringify!($name),
            env: $env,
            default: $default,
            flag: $flag,
            help: concat!($($help),+),
            expected: <$kind as Kind>::EXPECTED,
            value_name: <$kind as Kind>::VALUE_NAME,
            toml: <$kind as Kind>::TOML,
            secret: <$kind as Kind>::SECRET,
        }
    };
}

macro_rules! table {
    ($(
        $(#[doc = $help:literal])+
        $name:ident: $kind:ty, $env:literal, default $default:expr, flag $flag:expr;
    )+) => {
        /// Every setting, resolved and typed.
        #[derive(Debug, Clone)]
        pub struct Settings {
            /// Where config.toml, the queues and the hooks live.
            pub base_dir: PathBuf,
            $(
                $(#[doc = $help])+
                pub $name: <$kind as Kind>::Value,
            )+
            /// Each value as shown to people, with its source: the base dir
            /// first, then the keys in table order.
            pub origins: Vec<Origin>,
        }

        /// The keys, in table order.
        pub const KEYS: &[Key] = &[$(key!($name, $kind, $env, $default, $flag, $($help)+)),+];

        impl Settings {
            pub(super) fn from_sources(sources: &Sources) -> Result<Settings, ConfigError> {
                let mut origins = vec![sources.base_dir_origin()];
                $(
                    let $name = sources.value::<$kind>(
                        &key!($name, $kind, $env, $default, $flag, $($help)+),
                        &mut origins,
                    )?;
                )+
                Ok(Settings {
                    base_dir: sources.base_dir().to_path_buf(),
                    $($name,)+
                    origins,
                })
            }
        }
    };
}

table! {
    /// The hub the daemon and the command line talk to
    server_url: kinds::Url, "MESYNC_SERVER_URL",
        default DefaultValue::Text("http://localhost:8080"), flag Flag::Global;
    /// This machine's host id: where targeted messages go
    host_id: kinds::HostId, "MESYNC_HOST_ID",
        default DefaultValue::Hostname, flag Flag::Global;
    /// How often the daemon rescans outbox/ and cleans sent/ (a safety net beside inotify)
    poll_interval: kinds::Duration, "MESYNC_POLL_INTERVAL",
        default DefaultValue::Text("5"), flag DAEMON;
    /// How long sent messages stay in sent/
    sent_ttl: kinds::Duration, "MESYNC_SENT_TTL",
        default DefaultValue::Text("86400"), flag DAEMON;
    /// How long one HTTP request to the hub may take
    http_timeout: kinds::Duration, "MESYNC_HTTP_TIMEOUT",
        default DefaultValue::Text("10"), flag CLIENT;
    /// The bearer token the hub requires and the daemon presents (the hub warns at start when it has none)
    token: kinds::Secret, "MESYNC_TOKEN",
        default DefaultValue::Unset, flag Flag::None;
    /// A file holding the token (for systemd's LoadCredential); set this or token, not both
    token_file: kinds::FilePath, "MESYNC_TOKEN_FILE",
        default DefaultValue::Unset, flag Flag::None;
    /// Where the hub listens (port 0: any free port, printed at start)
    bind: kinds::Addr, "MESYNC_BIND",
        default DefaultValue::Text("0.0.0.0:8080"), flag HUB;
    /// Where the hub keeps its files
    data_dir: kinds::Dir, "MESYNC_DATA_DIR",
        default DefaultValue::HubDir, flag HUB;
    /// How long a hook may run before it is killed
    hook_timeout: kinds::Duration, "MESYNC_HOOK_TIMEOUT",
        default DefaultValue::Text("60"), flag DAEMON;
    /// How many hooks may run at once
    hook_concurrency: kinds::Count, "MESYNC_HOOK_CONCURRENCY",
        default DefaultValue::Text("4"), flag DAEMON;
    /// How often the hub sends an idle stream a keepalive comment; a daemon reopens a stream silent for 3 times its own value (keep both sides equal)
    keepalive: kinds::Duration, "MESYNC_KEEPALIVE",
        default DefaultValue::Text("15"), flag HUB;
    /// How long the hub keeps a host's unacked messages (and the daemon remembers received ids)
    retention: kinds::Duration, "MESYNC_RETENTION",
        default DefaultValue::Text("604800"), flag HUB;
    /// How long the hub remembers message ids to drop duplicates
    dedupe_window: kinds::Duration, "MESYNC_DEDUPE_WINDOW",
        default DefaultValue::Text("86400"), flag HUB;
    /// The largest encoded message, in bytes (at most 15 MiB, so that one always fits in a request)
    max_message_bytes: kinds::MessageBytes, "MESYNC_MAX_MESSAGE_BYTES",
        default DefaultValue::Text("1048576"), flag MESSAGES;
    /// Which log lines are written (a level, or directives such as info,mesync::daemon=debug); SIGHUP re-reads it from config.toml
    log_filter: kinds::Filter, "RUST_LOG",
        default DefaultValue::Text("info"), flag SERVICE;
    /// How log lines look: text for people, json for log shippers (one object per line)
    log_format: kinds::Format, "MESYNC_LOG_FORMAT",
        default DefaultValue::Text("text"), flag SERVICE;
    /// How many connections the hub holds open at once (kept below the open-files limit); when full, the oldest connection that has not sent a request yet is closed to make room
    max_connections: kinds::Count, "MESYNC_MAX_CONNECTIONS",
        default DefaultValue::Text("10000"), flag HUB;
    /// How long a client may take to send a request's head; also how long an idle kept-alive connection stays open
    header_timeout: kinds::Duration, "MESYNC_HEADER_TIMEOUT",
        default DefaultValue::Text("10"), flag HUB;
    /// How long a client may take to send a request's body
    body_timeout: kinds::Duration, "MESYNC_BODY_TIMEOUT",
        default DefaultValue::Text("30"), flag HUB;
    /// How many bytes of request bodies the hub holds in memory at once, over all requests (more waits, then gets 503)
    max_body_memory: kinds::Count, "MESYNC_MAX_BODY_MEMORY",
        default DefaultValue::Text("67108864"), flag HUB;
    /// How long a client may leave unread what the hub sends before the hub closes the connection (a daemon resumes where it was)
    stall_timeout: kinds::Duration, "MESYNC_STALL_TIMEOUT",
        default DefaultValue::Text("60"), flag HUB;
    /// Web origins besides the hub's own whose pages may call the hub, comma-separated (e.g. https://ops.example.com)
    allowed_origins: kinds::Origins, "MESYNC_ALLOWED_ORIGINS",
        default DefaultValue::Unset, flag HUB;
    /// The hub's credentials file: host, read and admin credentials by digest (mesync token add|list|remove); re-read on change and on SIGHUP
    tokens_file: kinds::FilePath, "MESYNC_TOKENS_FILE",
        default DefaultValue::Unset, flag Flag::None;
    /// How many hosts may register at the hub (beyond: 429)
    max_hosts: kinds::Count, "MESYNC_MAX_HOSTS",
        default DefaultValue::Text("10000"), flag HUB;
    /// The hub's certificate chain (PEM); with tls_key, the hub serves HTTPS
    tls_cert: kinds::FilePath, "MESYNC_TLS_CERT",
        default DefaultValue::Unset, flag HUB;
    /// The private key of tls_cert (PEM)
    tls_key: kinds::FilePath, "MESYNC_TLS_KEY",
        default DefaultValue::Unset, flag HUB;
    /// An extra trusted root (PEM) for an https:// server_url, beside the system's
    ca_file: kinds::FilePath, "MESYNC_CA_FILE",
        default DefaultValue::Unset, flag CLIENT;
    /// Where the hub keeps messages: file (its own files under data_dir) or NATS JetStream servers, nats://a:4222,nats://b:4222 (several hubs can share one cluster)
    store: kinds::Store, "MESYNC_STORE",
        default DefaultValue::Text("file"), flag HUB;
    /// How many copies JetStream keeps of the hub's streams and buckets (capped at the cluster's size)
    store_replicas: kinds::Count, "MESYNC_STORE_REPLICAS",
        default DefaultValue::Text("3"), flag HUB;
}

/// The key called `name`, if there is one.
pub fn find(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.name == name)
}
