//! The signals of the long-running commands (`serve`, `start`): SIGINT and
//! SIGTERM stop, SIGHUP reloads and never stops.
//!
//! A reload reads the settings again (config.toml and the environment, with
//! the same command-line flags) and applies those that can change while the
//! process runs, in [`Reload::apply`]: the log filter, and the hub's tokens file. Settings that
//! do not parse are refused with one warning and the running ones kept.
//! A setting that becomes reloadable is one more line in `apply` (and, if
//! it needs a handle into the running hub or daemon, one more field).

use std::sync::Arc;

use anyhow::Context;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::logging::LogFilter;
use crate::config::{Overrides, Settings};
use crate::sd_notify;

/// What SIGHUP reloads, and how to read the settings again.
pub struct Reload {
    overrides: Overrides,
    log: LogFilter,
    /// The hub's cue to re-read its tokens file.
    reread: Option<Arc<Notify>>,
}

impl Reload {
    pub fn new(overrides: Overrides, log: LogFilter) -> Reload {
        Reload {
            overrides,
            log,
            reread: None,
        }
    }

    /// Also notify `reread` on SIGHUP (the hub re-reads its tokens file).
    pub fn rereading(mut self, reread: Arc<Notify>) -> Reload {
        self.reread = Some(reread);
        self
    }

    /// Reads the settings again and applies what can change at run time.
    async fn reload(&self) {
        tracing::info!("SIGHUP: reloading the settings");
        let overrides = self.overrides.clone();
        let loaded = tokio::task::spawn_blocking(move || Settings::load(&overrides)).await;
        match loaded {
            Ok(Ok(settings)) => self.apply(&settings),
            Ok(Err(e)) => {
                tracing::warn!("reload refused, running on with the settings in use: {e}")
            }
            Err(e) => tracing::warn!("reload failed: {e}"),
        }
        sd_notify::status("running (settings reloaded)");
    }

    /// The settings that take effect without a restart.
    fn apply(&self, settings: &Settings) {
        self.log.set(&settings.log_filter);
        if let Some(reread) = &self.reread {
            reread.notify_one();
        }
    }
}

/// Handles the signals until the returned token is cancelled: the first
/// SIGINT or SIGTERM cancels it (and tells the service manager that the
/// process is stopping); each SIGHUP runs `reload`. The handlers are in
/// place when this returns, so no early signal kills the process
/// unannounced.
pub fn handle(reload: Reload) -> anyhow::Result<CancellationToken> {
    let mut interrupt = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut hangup = signal(SignalKind::hangup()).context("listening for SIGHUP")?;
    let stop = CancellationToken::new();
    let cancel = stop.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = hangup.recv() => reload.reload().await,
                _ = interrupt.recv() => break,
                _ = terminate.recv() => break,
            }
        }
        tracing::info!("stopping");
        sd_notify::stopping();
        cancel.cancel();
    });
    Ok(stop)
}
