//! `mesync serve` and `mesync start`: the long-running roles.
//!
//! Both stop on SIGINT or SIGTERM and reload on SIGHUP ([`signals`]). The
//! hub (of `serve`, or of `start --with-hub`) is bound here, and its address
//! printed as the first line of output, `hub listening on <addr>`, so that
//! with `--bind 127.0.0.1:0` a script (or a test) learns the port the system
//! chose. A bound hub is ready for the service manager: connections made
//! while it replays its files wait in the listen queue.

use std::io::Write;
use std::net::SocketAddr;

use anyhow::Context;
use tokio::net::TcpListener;

use super::signals::{self, Reload};
use super::{ServeArgs, StartArgs};
use crate::config::{HubConfig, Settings};
use crate::daemon::WithHub;
use crate::sd_notify;

pub async fn serve(settings: &Settings, args: ServeArgs, reload: Reload) -> anyhow::Result<()> {
    let cfg = HubConfig {
        repair: args.repair,
        ..settings.hub()
    };
    let stop = signals::handle(reload.rereading(cfg.reread.clone()))?;
    let (listener, addr) = bind_hub(&cfg)?;
    sd_notify::ready(&format!("hub listening on {addr}"));
    let result = crate::hub::serve(listener, cfg, stop.clone()).await;
    stop.cancel();
    result
}

/// The daemon tells the service manager itself when it is running.
pub async fn start(settings: &Settings, args: StartArgs, reload: Reload) -> anyhow::Result<()> {
    let cfg = HubConfig {
        repair: args.repair,
        ..settings.hub()
    };
    let reload = match args.with_hub {
        true => reload.rereading(cfg.reread.clone()),
        false => reload,
    };
    let stop = signals::handle(reload)?;
    let with_hub = if args.with_hub {
        let (listener, _) = bind_hub(&cfg)?;
        Some(WithHub { listener, cfg })
    } else {
        None
    };
    let result = crate::daemon::run(settings.daemon(), with_hub, args.once, stop.clone()).await;
    stop.cancel();
    result
}

/// Binds the hub's address and says which one it got.
fn bind_hub(cfg: &HubConfig) -> anyhow::Result<(TcpListener, SocketAddr)> {
    let listener = crate::hub::listen(cfg.bind)
        .with_context(|| format!("cannot listen on {} (bind)", cfg.bind))?;
    let addr = listener.local_addr().context("reading the hub's address")?;
    // Nobody may be reading stdout (a service); the hub runs on regardless.
    let _ = writeln!(std::io::stdout(), "hub listening on {addr}");
    Ok((listener, addr))
}
