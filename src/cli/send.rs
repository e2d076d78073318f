//! `mesync send`: build a message and write it atomically into `outbox/`.
//!
//! Works with no daemon and no hub running: the daemon picks the file up later.
//! Every check happens before anything is written, so bad input writes nothing.
//! For a `--target` the hub does not know (a typo waits there until
//! `retention`), a warning says so; the message is queued all the same, and
//! a hub that does not answer at once costs no warning and no wait.

use std::io::{Read, Write};
use std::time::Duration;

use anyhow::Context;
use serde_json::value::RawValue;

use super::{SendArgs, UsageError};
use crate::client::HubClient;
use crate::config::Settings;
use crate::message::{Message, Priority};
use crate::spool::{Queue, Spool};

/// How long `send` waits for the hub to say whether it knows the target.
const TARGET_CHECK_TIMEOUT: Duration = Duration::from_millis(500);

pub async fn run(settings: &Settings, args: SendArgs) -> anyhow::Result<()> {
    let payload = read_payload(&args)?;
    let priority: Priority = args
        .priority
        .parse()
        .map_err(|e| UsageError(format!("{e}")))?;
    let message = Message::with_payload(
        &args.kind,
        &settings.host_id,
        args.target.as_deref(),
        priority,
        payload,
    )
    .map_err(|e| UsageError(e.to_string()))?;
    let bytes = message
        .encode(settings.max_message_bytes)
        .map_err(|e| UsageError(e.to_string()))?;
    let spool = Spool::open(&settings.base_dir)?;
    spool.write(Queue::Outbox, &message.file_name(), &bytes)?;
    writeln!(std::io::stdout(), "{}", message.id)?;
    if let Some(target) = &message.target {
        warn_if_unknown(settings, target).await;
    }
    Ok(())
}

/// Warns on stderr when the hub answers and has never seen `target`.
async fn warn_if_unknown(settings: &Settings, target: &str) {
    let Ok(client) = HubClient::with(
        &settings.server_url,
        settings.token.clone(),
        TARGET_CHECK_TIMEOUT,
    ) else {
        return;
    };
    let Ok(hosts) = client.hosts().await else {
        return;
    };
    if !hosts.iter().any(|h| h.id == target) {
        eprintln!(
            "warning: the hub at {} knows no host {target:?}; the message waits for {target} to connect (`mesync hosts` lists the known ones)",
            settings.server_url
        );
    }
}

fn read_payload(args: &SendArgs) -> anyhow::Result<Box<RawValue>> {
    let (text, origin) = match (&args.payload, &args.payload_file) {
        (Some(p), _) if p == "-" => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("reading the payload from stdin")?;
            (s, "payload from stdin".to_string())
        }
        (Some(p), _) => (p.clone(), "--payload".to_string()),
        (None, Some(path)) => {
            let s = std::fs::read_to_string(path).map_err(|e| {
                UsageError(format!("cannot read payload file {}: {e}", path.display()))
            })?;
            (s, format!("payload file {}", path.display()))
        }
        (None, None) => return Ok(RawValue::from_string("{}".to_string())?),
    };
    serde_json::from_str(&text)
        .map_err(|e| UsageError(format!("{origin} is not valid JSON: {e}")).into())
}
