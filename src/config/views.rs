//! What each role needs from the settings, and nothing more: the hub gets a
//! [`HubConfig`], the daemon a [`DaemonConfig`], every hub client a
//! [`ClientConfig`]. Reading a view tells what a role depends on.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::kinds::StoreKind;
use super::{Settings, Source};

/// The hub's settings (`mesync serve`, and the hub of `start --with-hub`).
#[derive(Debug, Clone)]
pub struct HubConfig {
    pub bind: SocketAddr,
    pub data_dir: PathBuf,
    pub token: Option<String>,
    pub keepalive: Duration,
    pub retention: Duration,
    pub dedupe_window: Duration,
    pub max_message_bytes: u64,
    /// `serve --repair` (or `start --with-hub --repair`): start despite a
    /// missing or damaged segment.
    pub repair: bool,
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub max_body_memory: usize,
    pub stall_timeout: Duration,
    pub allowed_origins: Vec<String>,
    pub tokens_file: Option<PathBuf>,
    pub max_hosts: usize,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Notified when SIGHUP asks to re-read files (the tokens file).
    pub reread: std::sync::Arc<tokio::sync::Notify>,
    pub store: StoreKind,
    pub store_replicas: usize,
}

/// How to reach the hub: shared by the daemon and the command line.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub server_url: String,
    pub token: Option<String>,
    pub http_timeout: Duration,
    /// An extra trusted root for HTTPS.
    pub ca_file: Option<PathBuf>,
    /// The hub's keepalive period: a stream silent for much longer is dead.
    pub keepalive: Duration,
}

/// The daemon's settings (`mesync start`).
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub base_dir: PathBuf,
    pub host_id: String,
    pub client: ClientConfig,
    /// No `server_url` was given: `--with-hub` then points the daemon at the
    /// address its own hub bound.
    pub server_url_is_default: bool,
    pub poll_interval: Duration,
    pub sent_ttl: Duration,
    pub hook_timeout: Duration,
    pub hook_concurrency: usize,
    /// The hub's retention: how long the received-ids ledger must remember.
    pub retention: Duration,
    pub max_message_bytes: u64,
}

impl Settings {
    pub fn hub(&self) -> HubConfig {
        HubConfig {
            bind: self.bind,
            data_dir: self.data_dir.clone(),
            token: self.token.clone(),
            keepalive: self.keepalive,
            retention: self.retention,
            dedupe_window: self.dedupe_window,
            max_message_bytes: self.max_message_bytes,
            repair: false,
            max_connections: self.max_connections,
            header_timeout: self.header_timeout,
            body_timeout: self.body_timeout,
            max_body_memory: self.max_body_memory,
            stall_timeout: self.stall_timeout,
            allowed_origins: self.allowed_origins.clone(),
            tokens_file: self.tokens_file.clone(),
            max_hosts: self.max_hosts,
            tls_cert: self.tls_cert.clone(),
            tls_key: self.tls_key.clone(),
            reread: std::sync::Arc::default(),
            store: self.store.clone(),
            store_replicas: self.store_replicas,
        }
    }

    pub fn client(&self) -> ClientConfig {
        ClientConfig {
            server_url: self.server_url.clone(),
            token: self.token.clone(),
            http_timeout: self.http_timeout,
            ca_file: self.ca_file.clone(),
            keepalive: self.keepalive,
        }
    }

    pub fn daemon(&self) -> DaemonConfig {
        DaemonConfig {
            base_dir: self.base_dir.clone(),
            host_id: self.host_id.clone(),
            client: self.client(),
            server_url_is_default: self.source_of("server_url") == Some(&Source::Default),
            poll_interval: self.poll_interval,
            sent_ttl: self.sent_ttl,
            hook_timeout: self.hook_timeout,
            hook_concurrency: self.hook_concurrency,
            retention: self.retention,
            max_message_bytes: self.max_message_bytes,
        }
    }
}
