//! `mesync serve` and `mesync start`: the long-running roles.
//!
//! Both stop on SIGINT or SIGTERM. The hub (of `serve`, or of
//! `start --with-hub`) is bound here, and its address printed as the first
//! line of output, `hub listening on <addr>`, so that with `--bind
//! 127.0.0.1:0` a script (or a test) learns the port the system chose.

use std::io::Write;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

use super::StartArgs;
use crate::config::{HubConfig, Settings};
use crate::daemon::WithHub;

pub async fn serve(settings: &Settings) -> anyhow::Result<()> {
    let cfg = settings.hub();
    let stop = stop_on_signal()?;
    let listener = bind_hub(&cfg)?;
    let result = crate::hub::serve(listener, cfg, stop.clone()).await;
    stop.cancel();
    result
}

pub async fn start(settings: &Settings, args: StartArgs) -> anyhow::Result<()> {
    let stop = stop_on_signal()?;
    let with_hub = if args.with_hub {
        let cfg = settings.hub();
        let listener = bind_hub(&cfg)?;
        Some(WithHub { listener, cfg })
    } else {
        None
    };
    let result = crate::daemon::run(settings.daemon(), with_hub, args.once, stop.clone()).await;
    stop.cancel();
    result
}

/// Binds the hub's address and says which one it got.
fn bind_hub(cfg: &HubConfig) -> anyhow::Result<TcpListener> {
    let listener = crate::hub::listen(cfg.bind)
        .with_context(|| format!("cannot listen on {} (bind)", cfg.bind))?;
    let addr = listener.local_addr().context("reading the hub's address")?;
    // Nobody may be reading stdout (a service); the hub runs on regardless.
    let _ = writeln!(std::io::stdout(), "hub listening on {addr}");
    Ok(listener)
}

/// A token cancelled at the first SIGINT or SIGTERM; cancel it to stop
/// listening. The handlers are in place when this returns, so no early
/// signal kills the process unannounced.
fn stop_on_signal() -> anyhow::Result<CancellationToken> {
    let mut interrupt = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let stop = CancellationToken::new();
    let cancel = stop.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        tracing::info!("stopping");
        cancel.cancel();
    });
    Ok(stop)
}
