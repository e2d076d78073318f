//! Who is calling, and what they may do.
//!
//! A hub with neither `token` nor `tokens_file` is open: every request may do
//! everything. Otherwise each request (but `/healthz` and the dashboard page)
//! presents a credential, and it becomes an [`Access`]: `token` is the admin
//! credential, `tokens_file` holds host, read and admin ones by digest
//! (`crate::tokens`). The route policy is [`Access::allows`]; what depends on
//! the body (a host credential posts only as its host) is checked by the
//! handler. Credentials are compared by SHA-256 digest in constant time and
//! never logged. The tokens file is re-read when it changes (looked at every
//! second) and on SIGHUP.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use axum::http::Method;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::error::ApiError;
use crate::tokens::{digest, same_digest, Role, TokensFile};

/// What the caller of a request may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// No credentials are configured: everything.
    Open,
    Admin,
    Read,
    /// A host credential, for this host id.
    Host(String),
}

impl Access {
    /// Whether the route may be used at all with this access (403 if not).
    pub fn allows(&self, method: &Method, path: &str) -> Result<(), ApiError> {
        let parts: Vec<&str> = path.split('/').collect();
        let refuse = |why: String| Err(ApiError::Forbidden(why));
        match self {
            Access::Open | Access::Admin => Ok(()),
            Access::Read if method == Method::GET => Ok(()),
            Access::Read => refuse(format!(
                "a read credential may only GET; {method} {path} needs a host or admin credential"
            )),
            Access::Host(own) => match (method, parts.as_slice()) {
                (&Method::POST, ["", "v1", "messages"]) | (&Method::GET, ["", "v1", "hosts"]) => {
                    Ok(())
                }
                (&Method::GET, ["", "v1", "hosts", h, "stream" | "messages"])
                | (&Method::POST, ["", "v1", "hosts", h, "ack"]) => {
                    if h == own {
                        Ok(())
                    } else {
                        refuse(format!(
                            "this credential is for host {own}; it cannot use the queue of {h}"
                        ))
                    }
                }
                _ => refuse(format!(
                    "a host credential (host {own}) cannot use {method} {path}; \
                     use a read or admin credential"
                )),
            },
        }
    }

    /// Whether reading a host's queue with this access registers the host.
    pub fn registers(&self) -> bool {
        !matches!(self, Access::Read)
    }

    /// The only `source` this access may post as, if it is limited to one.
    pub fn only_source(&self) -> Option<&str> {
        match self {
            Access::Host(h) => Some(h),
            _ => None,
        }
    }
}

/// The credentials the hub accepts, reloaded at run time.
pub struct Credentials {
    /// Digest of the `token` setting (the admin credential).
    admin: Option<String>,
    file: Option<PathBuf>,
    loaded: RwLock<Loaded>,
}

#[derive(Default)]
struct Loaded {
    entries: Vec<(String, Access)>,
    /// The file's modification time and length when read.
    stamp: Option<(SystemTime, u64)>,
}

impl Credentials {
    /// Reads the tokens file once; a file that does not parse stops the start.
    pub fn new(token: Option<&str>, file: Option<PathBuf>) -> anyhow::Result<Credentials> {
        let creds = Credentials {
            admin: token.map(digest),
            file,
            loaded: RwLock::new(Loaded::default()),
        };
        if let Some(path) = &creds.file {
            let file = TokensFile::load(path)?;
            creds.install(file, stamp_of(path));
        }
        Ok(creds)
    }

    pub fn is_open(&self) -> bool {
        self.admin.is_none() && self.file.is_none()
    }

    /// The access of a presented credential; 401 for none or an unknown one.
    pub fn identify(&self, presented: Option<&str>) -> Result<Access, ApiError> {
        if self.is_open() {
            return Ok(Access::Open);
        }
        let given = digest(presented.ok_or(ApiError::Unauthorized)?);
        // Every entry is compared, so the time taken does not say which matched.
        let mut found = None;
        if self
            .admin
            .as_deref()
            .is_some_and(|a| same_digest(a, &given))
        {
            found = Some(Access::Admin);
        }
        let loaded = self.loaded.read().unwrap_or_else(|e| e.into_inner());
        for (d, access) in &loaded.entries {
            if same_digest(d, &given) && found.is_none() {
                found = Some(access.clone());
            }
        }
        found.ok_or(ApiError::Unauthorized)
    }

    fn install(&self, file: TokensFile, stamp: Option<(SystemTime, u64)>) {
        let entries = file
            .tokens
            .into_iter()
            .map(|t| {
                let access = match (t.role, t.host) {
                    (Role::Host, Some(h)) => Access::Host(h),
                    (Role::Read, _) => Access::Read,
                    _ => Access::Admin,
                };
                (t.sha256.to_ascii_lowercase(), access)
            })
            .collect();
        *self.loaded.write().unwrap_or_else(|e| e.into_inner()) = Loaded { entries, stamp };
    }

    /// Re-reads the tokens file if it changed (or `force`); a file that does
    /// not parse is refused with a warning and the credentials in use kept.
    fn reload(&self, force: bool) {
        let Some(path) = &self.file else { return };
        let stamp = stamp_of(path);
        let same = self
            .loaded
            .read()
            .map(|l| l.stamp == stamp)
            .unwrap_or(false);
        if same && !force {
            return;
        }
        match TokensFile::load(path) {
            Ok(file) => {
                let n = file.tokens.len();
                self.install(file, stamp);
                tracing::info!(file = %path.display(), credentials = n, "tokens file loaded");
            }
            Err(e) => tracing::warn!("tokens file refused, keeping the credentials in use: {e:#}"),
        }
    }

    /// Reloads the file when it changes (checked every second) or when
    /// `hup` is notified, until `stop`.
    pub async fn follow(self: Arc<Self>, hup: Arc<Notify>, stop: CancellationToken) {
        if self.file.is_none() {
            return;
        }
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            let force = tokio::select! {
                _ = tick.tick() => false,
                () = hup.notified() => true,
                () = stop.cancelled() => return,
            };
            let me = self.clone();
            let _ = tokio::task::spawn_blocking(move || me.reload(force)).await;
        }
    }
}

fn stamp_of(path: &std::path::Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

#[cfg(test)]
mod tests {
    use super::Access;
    use axum::http::Method;

    #[test]
    fn a_host_credential_reaches_only_its_own_queue() {
        let h = Access::Host("web-1".into());
        assert!(h.allows(&Method::POST, "/v1/messages").is_ok());
        assert!(h.allows(&Method::GET, "/v1/hosts").is_ok());
        assert!(h.allows(&Method::GET, "/v1/hosts/web-1/stream").is_ok());
        assert!(h.allows(&Method::POST, "/v1/hosts/web-1/ack").is_ok());
        assert!(h.allows(&Method::GET, "/v1/hosts/web-2/messages").is_err());
        assert!(h.allows(&Method::POST, "/v1/hosts/web-2/ack").is_err());
        assert!(h.allows(&Method::DELETE, "/v1/hosts/web-1").is_err());
        assert!(h.allows(&Method::GET, "/metrics").is_err());
        let r = Access::Read;
        assert!(r.allows(&Method::GET, "/v1/hosts/web-2/stream").is_ok());
        assert!(r.allows(&Method::POST, "/v1/messages").is_err());
        assert!(r.allows(&Method::DELETE, "/v1/hosts/a").is_err());
    }
}
