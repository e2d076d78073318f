//! `mesync hosts` and `mesync watch`: look at the hub without changing
//! anything; and how the command line finds the hub the running daemon uses.

use std::io::Write;

use futures::StreamExt;
use reqwest_eventsource::{retry::Never, Event};

use super::table;
use crate::api::SSE_EVENT;
use crate::client::HubClient;
use crate::config::Settings;
use crate::spool::Spool;

/// Points `settings` at the hub of the daemon running on this base dir, if
/// one runs and `server_url` was not set: in another shell, the command line
/// then talks to the same hub as the daemon.
pub fn find_daemon_hub(settings: &mut Settings) {
    let Some(spool) = Spool::open_existing(&settings.base_dir) else {
        return;
    };
    if let Some(url) = spool.daemon_hub() {
        settings.use_daemon_hub(url, spool.daemon_hub_file());
    }
}

pub async fn hosts(settings: &Settings) -> anyhow::Result<()> {
    let client = HubClient::new(&settings.client())?;
    let rows: Vec<[String; 5]> = client
        .hosts()
        .await?
        .into_iter()
        .map(|h| {
            [
                h.id,
                h.registered_at.unwrap_or_else(|| "never".to_string()),
                h.last_seen.unwrap_or_else(|| "never".to_string()),
                h.streams.to_string(),
                h.pending.to_string(),
            ]
        })
        .collect();
    let header = ["HOST", "REGISTERED", "LAST SEEN", "STREAMS", "PENDING"];
    table::write(&mut std::io::stdout().lock(), header, &rows)?;
    Ok(())
}

/// Prints each message of this host's stream as one JSON line. Watching never
/// acks, so the daemon still receives everything.
pub async fn watch(settings: &Settings) -> anyhow::Result<()> {
    let client = HubClient::new(&settings.client())?;
    let mut stream = client.watch(&settings.host_id)?;
    stream.set_retry_policy(Box::new(Never));
    eprintln!(
        "watching {} at {} (Ctrl-C to stop)",
        settings.host_id, settings.server_url
    );
    let mut out = std::io::stdout();
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            event = stream.next() => match event {
                Some(Ok(Event::Message(m))) if m.event == SSE_EVENT => writeln!(out, "{}", m.data)?,
                Some(Ok(_)) => {}
                Some(Err(e)) => anyhow::bail!("stream from {} ended: {e}", settings.server_url),
                None => return Ok(()),
            },
        }
    }
}
