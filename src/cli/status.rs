//! `mesync status`: every resolved setting with its source, the daemon lock,
//! whether the hub answers, and the depth of each queue.
//!
//! An unreachable hub is reported, not an error: status exits 0 whenever the
//! settings are valid.

use std::io::Write;

use crate::client::{ClientError, HubClient};
use crate::config::Settings;
use crate::spool::{Queue, Spool};

pub async fn run(settings: &Settings) -> anyhow::Result<()> {
    // Asked first: the answer is printed between local facts.
    let hub = hub_line(settings).await;
    let mut out = std::io::stdout().lock();
    writeln!(out, "settings:")?;
    let width = settings.origins.iter().map(|o| o.key.len()).max();
    let vwidth = settings
        .origins
        .iter()
        .map(|o| o.shown.chars().count())
        .max();
    let (width, vwidth) = (width.unwrap_or(0), vwidth.unwrap_or(0));
    for o in &settings.origins {
        let (key, value, source) = (o.key, &o.shown, &o.source);
        writeln!(out, "  {key:<width$}  {value:<vwidth$}  ({source})")?;
    }

    // Status only looks: it does not create the base dir.
    let exists = settings.base_dir.is_dir();
    let spool = Spool::open_existing(&settings.base_dir);
    writeln!(out)?;
    match spool.as_ref().and_then(|s| s.daemon_holder()) {
        Some(pid) => {
            writeln!(out, "daemon:  running (pid {pid})")?;
            // The daemon names the hub it uses first (it moves on when one
            // of several stops answering).
            if let Some(hubs) = spool.as_ref().and_then(|s| s.daemon_hub()) {
                let in_use = hubs.split(',').next().unwrap_or_default();
                writeln!(out, "  using the hub at {in_use}")?;
            }
        }
        None => writeln!(out, "daemon:  not running")?,
    }
    writeln!(out, "hub:     {hub}")?;

    writeln!(out)?;
    writeln!(out, "queues:")?;
    for q in Queue::ALL {
        let depth = match &spool {
            Some(s) if exists => s
                .list(q)
                .map(|l| l.len().to_string())
                .unwrap_or_else(|e| format!("unreadable: {e:#}")),
            _ => "0 (base dir not created yet)".to_string(),
        };
        writeln!(out, "  {:<7} {depth}", q.name())?;
    }
    Ok(())
}

async fn hub_line(settings: &Settings) -> String {
    match HubClient::new(&settings.client()) {
        Ok(client) => match client.health().await {
            Ok(h) => match client.check_access(&settings.host_id).await {
                Ok(()) => format!(
                    "reachable at {} (version {})",
                    client.server_url(),
                    h.version
                ),
                Err(ClientError::Rejected { status: 401, .. }) => format!(
                    "hub reachable at {}, but it refuses our token \
                     (set token, MESYNC_TOKEN or token_file to a credential it accepts)",
                    client.server_url()
                ),
                Err(ClientError::Rejected {
                    status: 403,
                    message,
                }) => {
                    format!(
                        "hub reachable at {}, but our credential may not read this host's queue: {message}",
                        client.server_url()
                    )
                }
                Err(e) => format!(
                    "reachable at {} (version {}), but: {e}",
                    client.server_url(),
                    h.version
                ),
            },
            Err(e) => format!("not reachable at {}: {e}", settings.server_url),
        },
        Err(e) => format!("cannot build a client: {e:#}"),
    }
}
