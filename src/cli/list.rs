//! `mesync list`: the messages of one queue, as an aligned table or JSON lines.

use serde_json::json;

use super::{ListArgs, ListQueue};
use crate::config::Settings;
use crate::message::{Draft, Fill, Message};
use crate::spool::{Queue, Spool};

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
    if args.json {
        for (name, parsed) in rows {
            let line = match parsed {
                Ok(m) => String::from_utf8_lossy(&m.to_json_bytes()).into_owned(),
                Err(e) => json!({"file": name, "error": e}).to_string(),
            };
            println!("{line}");
        }
        return Ok(());
    }
    print_table(rows);
    Ok(())
}

fn print_table(rows: Vec<(String, Result<Message, String>)>) {
    let header = ["TIME", "ID", "TYPE", "SOURCE -> TARGET", "PRIORITY"].map(String::from);
    let mut table = vec![header];
    for (name, parsed) in rows {
        table.push(match parsed {
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
        });
    }
    let widths: Vec<usize> = (0..5)
        .map(|c| {
            table
                .iter()
                .map(|r| r[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in table {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
}
