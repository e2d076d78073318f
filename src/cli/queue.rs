//! `mesync retry` and `mesync flush`: move or delete whole files between queues.

use std::io::Write;

use super::{FlushArgs, FlushQueue, RetryArgs, UsageError};
use crate::config::Settings;
use crate::message::id_from_file_name;
use crate::spool::{Queue, Spool};

/// Moves failed messages back to `outbox/`, dropping their `.error` notes.
pub fn retry(settings: &Settings, args: RetryArgs) -> anyhow::Result<()> {
    let spool = Spool::open(&settings.base_dir)?;
    let failed = spool.list(Queue::Failed)?;
    let chosen: Vec<&String> = if args.ids.is_empty() {
        failed.iter().collect()
    } else {
        let mut chosen = Vec::new();
        for want in &args.ids {
            let found = failed.iter().find(|name| {
                *name == want || id_from_file_name(name).is_some_and(|id| id.to_string() == *want)
            });
            match found {
                Some(name) => chosen.push(name),
                None => return Err(UsageError(format!("no message {want:?} in failed/")).into()),
            }
        }
        chosen
    };
    for name in &chosen {
        spool.move_to(Queue::Failed, name, Queue::Outbox)?;
        spool.remove(Queue::Failed, &format!("{name}.error"))?;
    }
    writeln!(std::io::stdout(), "re-queued {} message(s)", chosen.len())?;
    Ok(())
}

/// Deletes every message file (and `.error` note) in the queue.
pub fn flush(settings: &Settings, args: FlushArgs) -> anyhow::Result<()> {
    let queue = match args.queue {
        FlushQueue::Sent => Queue::Sent,
        FlushQueue::Failed => Queue::Failed,
        FlushQueue::Inbox => Queue::Inbox,
    };
    let spool = Spool::open(&settings.base_dir)?;
    let names = spool.list(queue)?;
    for name in &names {
        spool.remove(queue, name)?;
    }
    writeln!(
        std::io::stdout(),
        "removed {} message(s) from {queue}/",
        names.len()
    )?;
    Ok(())
}
