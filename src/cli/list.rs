//! `mesync list`: the messages of one queue, as an aligned table or JSON lines.

use std::io::Write;

use serde::Serialize;

use super::{table, ListArgs, ListQueue};
use crate::config::Settings;
use crate::message::{Draft, Fill, Message};
use crate::spool::{Queue, Spool};

/// The JSON line of a file that is not a readable message.
#[derive(Serialize)]
struct Unreadable<'a> {
    file: &'a str,
    error: &'a str,
}

pub fn run(settings: &Settings, args: ListArgs) -> anyhow::Result<()> {
    let queue = match args.queue {
        ListQueue::Outbox => Queue::Outbox,
        ListQueue::Inbox => Queue::Inbox,
        ListQueue::Sent => Queue::Sent,
        ListQueue::Failed => Queue::Failed,
    };
    let spool = Spool::open(&settings.base_dir)?;
    let fill = Fill {
        source: &settings.host_id,
    };
    let mut rows = Vec::new();
    for name in spool.list(queue)? {
        // A file may be consumed between listing and reading; skip it then.
        let Ok(bytes) = spool.read(queue, &name) else {
            continue;
        };
        // Outbox files may be foreign drafts; show them as they will be sent.
        let parsed = Draft::from_json(&bytes)
            .map_err(|e| e.to_string())
            .and_then(|d| d.complete(Some(&fill)).map_err(|e| e.to_string()));
        rows.push((name, parsed));
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        for (name, parsed) in rows {
            match parsed {
                Ok(m) => out.write_all(&m.to_json_bytes())?,
                Err(e) => serde_json::to_writer(
                    &mut out,
                    &Unreadable {
                        file: &name,
                        error: &e,
                    },
                )?,
            }
            out.write_all(b"\n")?;
        }
        return Ok(());
    }
    let cells: Vec<[String; 5]> = rows.into_iter().map(|(n, p)| cells(n, p)).collect();
    let header = ["TIME", "ID", "TYPE", "SOURCE -> TARGET", "PRIORITY"];
    table::write(&mut out, header, &cells)?;
    Ok(())
}

fn cells(name: String, parsed: Result<Message, String>) -> [String; 5] {
    match parsed {
        Ok(m) => [
            m.created().strftime("%Y-%m-%d %H:%M:%S").to_string(),
            m.id.to_string(),
            m.kind.clone(),
            format!("{} -> {}", m.source, m.target.as_deref().unwrap_or("*")),
            m.priority.to_string(),
        ],
        Err(e) => [
            "?".into(),
            name,
            format!("(unreadable: {e})"),
            String::new(),
            String::new(),
        ],
    }
}
