//! `mesync status`: every resolved setting with its source, the daemon lock,
//! whether the hub answers, and the depth of each queue.
//!
//! An unreachable hub is reported, not an error: status exits 0 whenever the
//! settings are valid.

use crate::client::HubClient;
use crate::config::Settings;
use crate::spool::{Queue, Spool};

pub async fn run(settings: &Settings) -> anyhow::Result<()> {
    println!("settings:");
    let width = settings
        .origins
        .iter()
        .map(|(k, _, _)| k.len())
        .max()
        .unwrap_or(0);
    let vwidth = settings
        .origins
        .iter()
        .map(|(_, v, _)| v.len())
        .max()
        .unwrap_or(0);
    for (key, value, source) in &settings.origins {
        println!("  {key:<width$}  {value:<vwidth$}  ({source})");
    }

    // Status only looks: it does not create the base dir.
    let exists = settings.base_dir.is_dir();
    let spool = Spool::open_existing(&settings.base_dir);
    println!();
    match spool.as_ref().and_then(|s| s.daemon_holder()) {
        Some(pid) => println!("daemon:  running (pid {pid})"),
        None => println!("daemon:  not running"),
    }

    let hub = match HubClient::new(settings) {
        Ok(client) => match client.health().await {
            Ok(h) => format!(
                "reachable at {} (version {})",
                settings.server_url, h.version
            ),
            Err(e) => format!("not reachable at {}: {e}", settings.server_url),
        },
        Err(e) => format!("cannot build a client: {e:#}"),
    };
    println!("hub:     {hub}");

    println!();
    println!("queues:");
    for q in Queue::ALL {
        let depth = match &spool {
            Some(s) if exists => s
                .list(q)
                .map(|l| l.len().to_string())
                .unwrap_or_else(|e| format!("unreadable: {e:#}")),
            _ => "0 (base dir not created yet)".to_string(),
        };
        println!("  {:<7} {depth}", q.name());
    }
    Ok(())
}
