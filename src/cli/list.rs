//! `mesync list`: the messages of one queue, as an aligned table or JSON lines.
//!
//! Listing only looks: it creates neither the base dir nor a queue (a
//! missing one is empty). A draft in `outbox/` (a file another program
//! wrote, without `id` or `created_at`) is shown as it will be sent, with
//! what the daemon has not assigned yet marked so: no id is made up.

use std::io::Write;

use serde::Serialize;
use serde_json::value::RawValue;
use uuid::Uuid;

use super::{table, ListArgs, ListQueue};
use crate::config::Settings;
use crate::message::{Draft, Fill, Message, Priority};
use crate::spool::{Queue, Spool};

/// The ID cell of a draft whose id the daemon assigns when it sends it.
const NOT_ASSIGNED: &str = "(not assigned yet)";

/// The JSON line of a file that is not a readable message.
#[derive(Serialize)]
struct Unreadable<'a> {
    file: &'a str,
    error: &'a str,
}

/// A readable file: the message as it will be sent, and which of its
/// fields exist only once the daemon sends it.
struct Listed {
    message: Message,
    has_id: bool,
    has_time: bool,
}

pub fn run(settings: &Settings, args: ListArgs) -> anyhow::Result<()> {
    let queue = match args.queue {
        ListQueue::Outbox => Queue::Outbox,
        ListQueue::Inbox => Queue::Inbox,
        ListQueue::Sent => Queue::Sent,
        ListQueue::Failed => Queue::Failed,
    };
    let fill = Fill {
        source: &settings.host_id,
    };
    let mut rows = Vec::new();
    if let Some(spool) = Spool::open_existing(&settings.base_dir) {
        for name in names(&spool, queue)? {
            // A file may be consumed between listing and reading; skip it then.
            let Ok(bytes) = spool.read(queue, &name) else {
                continue;
            };
            rows.push((name, read(&bytes, &fill)));
        }
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        for (name, parsed) in rows {
            match parsed {
                Ok(listed) => serde_json::to_writer(&mut out, &json(&listed))?,
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

/// The message files of `queue`; none when the queue does not exist yet.
fn names(spool: &Spool, queue: Queue) -> anyhow::Result<Vec<String>> {
    if !spool.dir(queue).is_dir() {
        return Ok(Vec::new());
    }
    spool.list(queue)
}

/// Outbox files may be foreign drafts; read every file as one.
fn read(bytes: &[u8], fill: &Fill) -> Result<Listed, String> {
    let draft = Draft::from_json(bytes).map_err(|e| e.to_string())?;
    let (has_id, has_time) = (draft.id.is_some(), draft.created_at.is_some());
    let message = draft.complete(Some(fill)).map_err(|e| e.to_string())?;
    Ok(Listed {
        message,
        has_id,
        has_time,
    })
}

/// The JSON line of a message: `id` and `created_at` are `null` until the
/// daemon assigns them.
#[derive(Serialize)]
struct Line<'a> {
    id: Option<&'a Uuid>,
    #[serde(rename = "type")]
    kind: &'a str,
    source: &'a str,
    target: Option<&'a str>,
    priority: Priority,
    created_at: Option<&'a str>,
    payload: &'a RawValue,
}

fn json(listed: &Listed) -> Line<'_> {
    let m = &listed.message;
    Line {
        id: listed.has_id.then_some(&m.id),
        kind: &m.kind,
        source: &m.source,
        target: m.target.as_deref(),
        priority: m.priority,
        created_at: listed.has_time.then_some(m.created_at.as_str()),
        payload: &m.payload,
    }
}

fn cells(name: String, parsed: Result<Listed, String>) -> [String; 5] {
    match parsed {
        Ok(Listed {
            message: m,
            has_id,
            has_time,
        }) => [
            if has_time {
                m.created().strftime("%Y-%m-%d %H:%M:%S").to_string()
            } else {
                "-".to_string()
            },
            if has_id {
                m.id.to_string()
            } else {
                NOT_ASSIGNED.to_string()
            },
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
