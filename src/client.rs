//! The one hub client, shared by the daemon and the command line.
//!
//! It knows the hub's URL, the token and the timeouts, and sorts every failure
//! into [`ClientError::Transient`] (retry later: hub down, timeout, 5xx) or
//! [`ClientError::Rejected`] (the hub refused the request: do not retry as is).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, RequestBuilder, StatusCode};
use reqwest_eventsource::EventSource;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::api::{
    AckRequest, AckResponse, ErrorBody, Health, HostInfo, HostsResponse, ItemResult, PollResponse,
    PostResponse,
};
use crate::config::ClientConfig;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Worth retrying: the hub is unreachable, slow, or failed on its side.
    #[error("hub unreachable or failing: {0}")]
    Transient(String),
    /// The hub refused the request itself (4xx).
    #[error("hub refused the request ({status}): {message}")]
    Rejected { status: u16, message: String },
}

impl ClientError {
    pub fn is_transient(&self) -> bool {
        matches!(self, ClientError::Transient(_))
    }
}

/// What a client tells when it moves to another hub.
type OnMove = Arc<dyn Fn(&[String]) + Send + Sync>;

#[derive(Clone)]
pub struct HubClient {
    http: reqwest::Client,
    /// For SSE streams only: gives up on a stream that stays silent (not even
    /// a keepalive comment) for a few keepalive periods, so a connection that
    /// died without a word (hub host gone, NAT timeout) is noticed and replaced.
    stream_http: reqwest::Client,
    /// The hubs of `server_url`, tried in this order.
    bases: Arc<[String]>,
    /// The one in use: the next after one that stopped answering.
    current: Arc<AtomicUsize>,
    /// Told the hubs, the one in use first, after each move.
    on_move: Option<OnMove>,
    token: Option<String>,
    timeout: Duration,
}

impl std::fmt::Debug for HubClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubClient")
            .field("server", &self.server_url())
            .finish_non_exhaustive()
    }
}

impl HubClient {
    pub fn new(cfg: &ClientConfig) -> anyhow::Result<HubClient> {
        Self::build(
            &cfg.server_url,
            cfg.token.clone(),
            cfg.http_timeout,
            cfg.keepalive,
            extra_root(cfg.ca_file.as_deref())?,
        )
    }

    pub fn with(
        server_url: &str,
        token: Option<String>,
        timeout: Duration,
    ) -> anyhow::Result<HubClient> {
        Self::build(server_url, token, timeout, DEFAULT_KEEPALIVE, None)
    }

    fn build(
        server_url: &str,
        token: Option<String>,
        timeout: Duration,
        keepalive: Duration,
        root: Option<reqwest::Certificate>,
    ) -> anyhow::Result<HubClient> {
        // No client-wide timeout: it would cut SSE streams. Each request sets its own.
        let mut http = reqwest::Client::builder()
            .connect_timeout(timeout)
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(60));
        if let Some(root) = &root {
            http = http.add_root_certificate(root.clone());
        }
        Ok(HubClient {
            http: http.build()?,
            stream_http: stream_client(timeout, keepalive, root)?,
            bases: server_url
                .split(',')
                .map(|u| u.trim().trim_end_matches('/').to_string())
                .filter(|u| !u.is_empty())
                .collect(),
            current: Arc::default(),
            on_move: None,
            token,
            timeout,
        })
    }

    /// The hub in use.
    pub fn server_url(&self) -> &str {
        self.bases
            .get(self.current.load(Ordering::Relaxed))
            .map_or("", String::as_str)
    }

    /// Every hub of `server_url`, the one in use first.
    pub fn hubs(&self) -> Vec<String> {
        let at = self.current.load(Ordering::Relaxed);
        let n = self.bases.len();
        (0..n).map(|i| self.bases[(at + i) % n].clone()).collect()
    }

    /// Calls `f` with [`HubClient::hubs`] after each move to another hub.
    pub fn on_move(&mut self, f: impl Fn(&[String]) + Send + Sync + 'static) {
        self.on_move = Some(Arc::new(f));
    }

    /// The hub at `used` failed (refused, timed out, 5xx): with several
    /// hubs, move to the next one, unless another caller moved already.
    pub fn failed(&self, used: usize) {
        let n = self.bases.len();
        if n < 2 {
            return;
        }
        let next = (used + 1) % n;
        if self
            .current
            .compare_exchange(used, next, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            tracing::warn!(from = %self.bases[used], to = %self.bases[next], "the hub is not answering; moving to the next one");
            if let Some(f) = &self.on_move {
                f(&self.hubs());
            }
        }
    }

    /// The index of the hub in use, to pass to [`HubClient::failed`].
    pub fn in_use(&self) -> usize {
        self.current.load(Ordering::Relaxed)
    }

    fn request(&self, method: Method, path: &str) -> (RequestBuilder, usize) {
        let used = self.in_use();
        let base = self.bases.get(used).map_or("", String::as_str);
        let req = self.http.request(method, format!("{base}{path}"));
        let req = match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        (req, used)
    }

    async fn send<T: DeserializeOwned>(
        &self,
        (req, used): (RequestBuilder, usize),
        timeout: Duration,
    ) -> Result<T, ClientError> {
        let answer = send(req.timeout(timeout)).await;
        if matches!(answer, Err(ClientError::Transient(_))) {
            self.failed(used);
        }
        answer
    }

    /// Posts already encoded messages as one batch (a JSON array of them,
    /// each copied as it is: `RawValue` is not parsed again).
    pub async fn post_encoded(
        &self,
        encoded: &[&RawValue],
    ) -> Result<Vec<ItemResult>, ClientError> {
        let (req, used) = self.request(Method::POST, "/v1/messages");
        let resp: PostResponse = self.send((req.json(encoded), used), self.timeout).await?;
        Ok(resp.results)
    }

    /// Long-poll for this host's unacked messages after `after`.
    pub async fn poll(
        &self,
        host: &str,
        after: u64,
        limit: usize,
        wait: Duration,
    ) -> Result<PollResponse, ClientError> {
        let query = [
            ("after", after),
            ("limit", limit as u64),
            ("wait", wait.as_secs()),
        ];
        let (req, used) = self.request(Method::GET, &format!("/v1/hosts/{host}/messages"));
        self.send((req.query(&query), used), self.timeout + wait)
            .await
    }

    pub async fn ack(&self, host: &str, ids: &[Uuid]) -> Result<usize, ClientError> {
        let (req, used) = self.request(Method::POST, &format!("/v1/hosts/{host}/ack"));
        let req = (req.json(&AckRequest { ids: ids.to_vec() }), used);
        let resp: AckResponse = self.send(req, self.timeout).await?;
        Ok(resp.acked)
    }

    pub async fn hosts(&self) -> Result<Vec<HostInfo>, ClientError> {
        let req = self.request(Method::GET, "/v1/hosts");
        let resp: HostsResponse = self.send(req, self.timeout).await?;
        Ok(resp.hosts)
    }

    /// Looks at `host`'s queue as a watcher (registering nothing): whether
    /// the hub accepts our credential for it (`/healthz` needs none).
    pub async fn check_access(&self, host: &str) -> Result<(), ClientError> {
        let path = format!("/v1/hosts/{host}/messages?watch=true&limit=1");
        let _: serde_json::Value = self
            .send(self.request(Method::GET, &path), self.timeout)
            .await?;
        Ok(())
    }

    pub async fn health(&self) -> Result<Health, ClientError> {
        let req = self.request(Method::GET, "/healthz");
        self.send(req, self.timeout).await
    }

    /// An SSE stream of `host`'s messages, resuming after `last_event_id`.
    /// The caller sets the retry policy; reqwest-eventsource resends the last
    /// seen id as `Last-Event-ID` on every reconnect.
    pub fn stream(&self, host: &str, last_event_id: Option<u64>) -> anyhow::Result<EventSource> {
        self.open_stream(
            format!("{}/v1/hosts/{host}/stream", self.server_url()),
            last_event_id,
        )
    }

    /// `host`'s stream as a watcher: it neither registers the host nor acks.
    pub fn watch(&self, host: &str) -> anyhow::Result<EventSource> {
        self.open_stream(
            format!("{}/v1/hosts/{host}/stream?watch=true", self.server_url()),
            None,
        )
    }

    fn open_stream(&self, url: String, last_event_id: Option<u64>) -> anyhow::Result<EventSource> {
        let mut req = self.stream_http.get(url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id.to_string());
        }
        EventSource::new(req).map_err(|e| anyhow::anyhow!("cannot open stream: {e}"))
    }
}

const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(15);

/// The client for streams: like the main one, plus a read timeout of three
/// keepalive periods (at least 10 s). If the hub's keepalive is longer than
/// ours, a quiet stream is merely reopened (resuming after the last event).
fn stream_client(
    timeout: Duration,
    keepalive: Duration,
    root: Option<reqwest::Certificate>,
) -> anyhow::Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .connect_timeout(timeout)
        .tcp_nodelay(true)
        .read_timeout((keepalive * 3).max(Duration::from_secs(10)));
    if let Some(root) = root {
        b = b.add_root_certificate(root);
    }
    Ok(b.build()?)
}

/// The `ca_file` root, trusted beside the system's (a hub with a
/// certificate of its own CA).
fn extra_root(ca_file: Option<&std::path::Path>) -> anyhow::Result<Option<reqwest::Certificate>> {
    use anyhow::Context;
    let Some(path) = ca_file else {
        return Ok(None);
    };
    let pem =
        std::fs::read(path).with_context(|| format!("reading {} (ca_file)", path.display()))?;
    let cert = reqwest::Certificate::from_pem(&pem)
        .with_context(|| format!("{} is not a PEM certificate (ca_file)", path.display()))?;
    Ok(Some(cert))
}

async fn send<T: DeserializeOwned>(req: RequestBuilder) -> Result<T, ClientError> {
    let resp = req
        .send()
        .await
        .map_err(|e| ClientError::Transient(describe(&e)))?;
    let status = resp.status();
    if status.is_success() {
        return resp
            .json::<T>()
            .await
            .map_err(|e| ClientError::Transient(format!("unreadable answer: {e}")));
    }
    let text = resp.text().await.unwrap_or_default();
    let message = serde_json::from_str::<ErrorBody>(&text)
        .map(|b| b.error)
        .unwrap_or(text);
    if status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
    {
        Err(ClientError::Transient(format!("{status}: {message}")))
    } else {
        Err(ClientError::Rejected {
            status: status.as_u16(),
            message,
        })
    }
}

/// A reqwest error as one sentence, including its cause (e.g. "connection refused").
fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
