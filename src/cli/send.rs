//! `mesync send`: build a message and write it atomically into `outbox/`.
//!
//! Works with no daemon and no hub running: the daemon picks the file up later.
//! Every check happens before anything is written, so bad input writes nothing.

use std::io::{Read, Write};

use anyhow::Context;
use serde_json::Value;

use super::{SendArgs, UsageError};
use crate::config::Settings;
use crate::message::{Message, Priority};
use crate::spool::{Queue, Spool};

pub fn run(settings: &Settings, args: SendArgs) -> anyhow::Result<()> {
    let payload = read_payload(&args)?;
    let priority: Priority = args
        .priority
        .parse()
        .map_err(|e| UsageError(format!("{e}")))?;
    let message = Message::new(
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
    Ok(())
}

fn read_payload(args: &SendArgs) -> anyhow::Result<Value> {
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
        (None, None) => return Ok(Value::Object(Default::default())),
    };
    serde_json::from_str(&text)
        .map_err(|e| UsageError(format!("{origin} is not valid JSON: {e}")).into())
}
