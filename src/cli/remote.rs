//! `mesync hosts` and `mesync watch`: look at the hub without changing anything.

use futures::StreamExt;
use reqwest_eventsource::{retry::Never, Event};

use crate::api::SSE_EVENT;
use crate::client::HubClient;
use crate::config::Settings;

pub async fn hosts(settings: &Settings) -> anyhow::Result<()> {
    let client = HubClient::new(settings)?;
    let hosts = client.hosts().await?;
    let mut table =
        vec![["HOST", "REGISTERED", "LAST SEEN", "STREAMS", "PENDING"].map(String::from)];
    for h in hosts {
        table.push([
            h.id,
            h.registered_at,
            h.last_seen,
            h.streams.to_string(),
            h.pending.to_string(),
        ]);
    }
    let widths: Vec<usize> = (0..5)
        .map(|c| table.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    for row in table {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", cells.join("  ").trim_end());
    }
    Ok(())
}

/// Prints each message of this host's stream as one JSON line. Watching never
/// acks, so the daemon still receives everything.
pub async fn watch(settings: &Settings) -> anyhow::Result<()> {
    let client = HubClient::new(settings)?;
    let mut stream = client.stream(&settings.host_id, None)?;
    stream.set_retry_policy(Box::new(Never));
    eprintln!(
        "watching {} at {} (Ctrl-C to stop)",
        settings.host_id, settings.server_url
    );
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            event = stream.next() => match event {
                Some(Ok(Event::Message(m))) if m.event == SSE_EVENT => println!("{}", m.data),
                Some(Ok(_)) => {}
                Some(Err(e)) => anyhow::bail!("stream from {} ended: {e}", settings.server_url),
                None => return Ok(()),
            },
        }
    }
}
