//! One send pass over outbox/: read, complete, order, post in batches, route.
//!
//! Promises: a file leaves outbox/ only after the hub answered for it —
//! accepted or duplicate to sent/, rejected to failed/ with the hub's reason —
//! so a hub that is down or failing leaves every file where it is. A foreign
//! file with missing fields is completed and rewritten atomically before it is
//! first sent, so a retry after a crash re-sends the same id and the hub's
//! de-duplication recognises it. Within a pass, high priority goes before
//! normal before low, then oldest first.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Result;
use jiff::Timestamp;
use serde_json::value::{to_raw_value, RawValue};
use tokio_util::sync::CancellationToken;

use crate::api::{ItemStatus, MAX_BATCH, MAX_BODY_BYTES};
use crate::client::{ClientError, HubClient};
use crate::message::{check_size, Draft, Fill, Priority};
use crate::spool::{read_entry, Entry, Queue, Spool};

/// An unparseable file may still be being written by a careless program;
/// it goes to failed/ only when it still fails this long after first seen.
pub const PARSE_GRACE: Duration = Duration::from_secs(2);
/// Most files one pass reads, and most bytes it holds, so a huge outbox
/// is sent in several passes instead of being read into memory at once.
const PASS_FILES: usize = 10_000;
const PASS_BYTES: usize = 64 * 1024 * 1024;
/// Room for the brackets and commas of a batch body.
const BODY_BUDGET: usize = MAX_BODY_BYTES - 64 * 1024;

/// A file ready to send.
struct Ready {
    name: String,
    priority: Priority,
    created: Timestamp,
    encoded: Box<RawValue>,
}

/// What reading outbox/ found.
#[derive(Default)]
struct Scan {
    ready: Vec<Ready>,
    /// Files that do not parse (yet), with the reason.
    unparseable: Vec<(String, String)>,
    /// Files that can never be sent as they are, with the reason.
    refused: Vec<(String, String)>,
    /// More files are waiting than one pass reads.
    more: bool,
}

/// How a pass ended.
#[derive(Debug, Default)]
pub struct PassReport {
    pub sent: usize,
    pub failed: usize,
    /// Another pass should follow at once.
    pub more: bool,
    /// When an unparseable file is due for its final check.
    pub recheck_at: Option<Instant>,
    /// Set when the hub could not be reached or failed; files stayed in outbox/.
    pub hub_error: Option<ClientError>,
}

pub struct OutboxSender {
    spool: Spool,
    client: HubClient,
    host: String,
    max_bytes: u64,
    first_failed: HashMap<String, Instant>,
}

impl OutboxSender {
    pub fn new(spool: Spool, client: HubClient, host: String, max_bytes: u64) -> OutboxSender {
        OutboxSender {
            spool,
            client,
            host,
            max_bytes,
            first_failed: HashMap::new(),
        }
    }

    /// Sends what outbox/ holds now; stops between batches when `cancel` fires.
    pub async fn pass(&mut self, cancel: &CancellationToken) -> Result<PassReport> {
        let (spool, host, max) = (self.spool.clone(), self.host.clone(), self.max_bytes);
        let scan = tokio::task::spawn_blocking(move || scan(&spool, &host, max)).await??;
        let mut report = PassReport {
            more: scan.more,
            ..PassReport::default()
        };
        let mut to_fail = scan.refused;
        to_fail.extend(self.due_unparseable(scan.unparseable, &mut report));

        let mut ready = scan.ready;
        ready.sort_by(|a, b| {
            (a.priority, a.created, &a.name).cmp(&(b.priority, b.created, &b.name))
        });
        let mut to_sent = Vec::new();
        for batch in batches(ready) {
            if cancel.is_cancelled() {
                report.more = false;
                break;
            }
            let encoded: Vec<&RawValue> = batch.iter().map(|r| &*r.encoded).collect();
            match self.client.post_encoded(&encoded).await {
                Ok(results) if results.len() == batch.len() => {
                    for (r, item) in batch.into_iter().zip(results) {
                        match item.status {
                            ItemStatus::Accepted | ItemStatus::Duplicate => to_sent.push(r.name),
                            ItemStatus::Rejected => {
                                let why = item.error.unwrap_or_else(|| "no reason given".into());
                                to_fail.push((r.name, format!("rejected by the hub: {why}")));
                            }
                        }
                    }
                }
                Ok(results) => {
                    report.hub_error = Some(ClientError::Transient(format!(
                        "hub answered {} results for {} messages",
                        results.len(),
                        batch.len()
                    )));
                    break;
                }
                Err(e) => {
                    report.hub_error = Some(e);
                    break;
                }
            }
        }
        if report.hub_error.is_some() {
            report.more = false;
        }
        report.sent = to_sent.len();
        report.failed = to_fail.len();
        let spool = self.spool.clone();
        tokio::task::spawn_blocking(move || route(&spool, to_sent, to_fail)).await??;
        Ok(report)
    }

    /// Unparseable files whose grace ran out; remembers when the others are due.
    fn due_unparseable(
        &mut self,
        unparseable: Vec<(String, String)>,
        report: &mut PassReport,
    ) -> Vec<(String, String)> {
        let now = Instant::now();
        let mut still = HashMap::new();
        let mut due = Vec::new();
        for (name, why) in unparseable {
            let first = self.first_failed.get(&name).copied().unwrap_or(now);
            if now.duration_since(first) >= PARSE_GRACE {
                due.push((name, why));
            } else {
                let at = first + PARSE_GRACE;
                report.recheck_at = Some(report.recheck_at.map_or(at, |t| t.min(at)));
                still.insert(name, first);
            }
        }
        // Files that were fixed, removed or failed are forgotten.
        self.first_failed = still;
        due
    }
}

/// Splits `ready` into POST bodies of at most MAX_BATCH messages and BODY_BUDGET bytes.
fn batches(ready: Vec<Ready>) -> Vec<Vec<Ready>> {
    let mut out: Vec<Vec<Ready>> = Vec::new();
    let mut bytes = 0;
    for r in ready {
        let size = r.encoded.get().len() + 1;
        let full = out
            .last()
            .is_none_or(|b| b.len() >= MAX_BATCH || bytes + size > BODY_BUDGET);
        if full {
            out.push(Vec::new());
            bytes = 0;
        }
        bytes += size;
        if let Some(b) = out.last_mut() {
            b.push(r);
        }
    }
    out
}

/// Reads outbox/ (blocking). Completes foreign files and rewrites them atomically.
fn scan(spool: &Spool, host: &str, max_bytes: u64) -> Result<Scan> {
    let names = spool.list(Queue::Outbox)?;
    let mut out = Scan {
        more: names.len() > PASS_FILES,
        ..Scan::default()
    };
    let mut held = 0usize;
    for name in names.into_iter().take(PASS_FILES) {
        if held > PASS_BYTES {
            out.more = true;
            break;
        }
        // Whatever the entry is, it is refused on its own and never blocks the others.
        let bytes = match read_entry(&spool.path(Queue::Outbox, &name), max_bytes) {
            Entry::Bytes(b) => b,
            // Taken away meanwhile (e.g. `mesync flush`): nothing to send.
            Entry::Gone => continue,
            Entry::Refused(why) => {
                out.refused.push((name, why));
                continue;
            }
        };
        match prepare(spool, host, max_bytes, &name, &bytes) {
            Ok(r) => {
                held += r.encoded.get().len();
                out.ready.push(r);
            }
            Err(Bad::Unparseable(why)) => out.unparseable.push((name, why)),
            Err(Bad::Refused(why)) => out.refused.push((name, why)),
        }
    }
    Ok(out)
}

enum Bad {
    Unparseable(String),
    Refused(String),
}

fn prepare(
    spool: &Spool,
    host: &str,
    max_bytes: u64,
    name: &str,
    bytes: &[u8],
) -> Result<Ready, Bad> {
    let draft = Draft::from_json(bytes).map_err(|e| Bad::Unparseable(e.to_string()))?;
    let incomplete = draft.id.is_none() || draft.source.is_none() || draft.created_at.is_none();
    let msg = draft
        .complete(Some(&Fill { source: host }))
        .map_err(|e| Bad::Unparseable(e.to_string()))?;
    let encoded = to_raw_value(&msg).map_err(|e| Bad::Unparseable(e.to_string()))?;
    check_size(encoded.get().len(), max_bytes).map_err(|e| Bad::Refused(e.to_string()))?;
    if incomplete {
        // The filled-in id must be the one every later attempt sends.
        spool
            .write(Queue::Outbox, name, encoded.get().as_bytes())
            .map_err(|e| Bad::Unparseable(format!("cannot complete the file: {e:#}")))?;
    }
    Ok(Ready {
        name: name.to_string(),
        priority: msg.priority,
        created: msg.created(),
        encoded,
    })
}

/// Moves sent files to sent/ (an archive: no fsync) and refused ones to failed/.
fn route(spool: &Spool, to_sent: Vec<String>, to_fail: Vec<(String, String)>) -> Result<()> {
    // A crash before the move is on disk only brings files back to outbox/;
    // the hub then answers "duplicate" and they move again.
    let moved = spool.archive_batch(Queue::Outbox, &to_sent, Queue::Sent)?;
    tracing::debug!(moved, "archived sent files");
    for (name, why) in to_fail {
        tracing::warn!(file = %name, reason = %why, "moved to failed/");
        if let Err(e) = spool.fail(Queue::Outbox, &name, &why) {
            tracing::warn!("cannot move outbox/{name} to failed/: {e:#}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;

    fn spool() -> (tempfile::TempDir, Spool) {
        let tmp = tempfile::tempdir().unwrap();
        let spool = Spool::open(tmp.path()).unwrap();
        (tmp, spool)
    }

    #[test]
    fn foreign_file_is_completed_once_and_keeps_its_id() {
        let (_tmp, spool) = spool();
        spool
            .write(Queue::Outbox, "job.json", br#"{"type":"disk.full"}"#)
            .unwrap();
        let first = scan(&spool, "m1", 1 << 20).unwrap();
        let second = scan(&spool, "m1", 1 << 20).unwrap();
        assert_eq!(first.ready.len(), 1);
        assert_eq!(first.ready[0].encoded.get(), second.ready[0].encoded.get());
        let msg = Message::parse(&spool.read(Queue::Outbox, "job.json").unwrap()).unwrap();
        assert_eq!(msg.source, "m1");
    }

    #[test]
    fn bad_files_are_sorted_out_and_others_ignored() {
        let (_tmp, spool) = spool();
        let big = format!(r#"{{"type":"t","payload":"{}"}}"#, "x".repeat(2000));
        spool
            .write(Queue::Outbox, "big.json", big.as_bytes())
            .unwrap();
        spool.write(Queue::Outbox, "half.json", b"{\"ty").unwrap();
        spool
            .write(Queue::Outbox, "field.json", br#"{"type":"t","x":1}"#)
            .unwrap();
        spool.write(Queue::Outbox, ".hidden.json", b"{").unwrap();
        spool.write(Queue::Outbox, "note.txt", b"{").unwrap();
        let s = scan(&spool, "m1", 1000).unwrap();
        assert!(s.ready.is_empty());
        let names = |v: &[(String, String)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        assert_eq!(names(&s.refused), vec!["big.json"]);
        assert_eq!(names(&s.unparseable), vec!["field.json", "half.json"]);
        assert!(
            s.refused[0].1.contains("max_message_bytes"),
            "{}",
            s.refused[0].1
        );
    }

    #[test]
    fn passes_split_into_bounded_batches() {
        let ready = |n: usize, size: usize| {
            (0..n)
                .map(|i| Ready {
                    name: format!("{i}.json"),
                    priority: Priority::Normal,
                    created: Timestamp::UNIX_EPOCH,
                    encoded: RawValue::from_string(format!("\"{}\"", "x".repeat(size - 2)))
                        .unwrap(),
                })
                .collect::<Vec<_>>()
        };
        let sizes: Vec<usize> = batches(ready(2500, 10)).iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![1000, 1000, 500]);
        let big = batches(ready(40, 1 << 20));
        assert!(big.iter().all(|b| b.len() * (1 << 20) <= MAX_BODY_BYTES));
        assert_eq!(big.iter().map(Vec::len).sum::<usize>(), 40);
    }

    #[test]
    fn unparseable_file_is_due_only_after_the_grace() {
        let (_tmp, spool) = spool();
        let client = HubClient::with("http://127.0.0.1:9", None, Duration::from_secs(1)).unwrap();
        let mut sender = OutboxSender::new(spool, client, "m1".into(), 1 << 20);
        let mut report = PassReport::default();
        let bad = || vec![("a.json".to_string(), "not JSON".to_string())];
        assert!(sender.due_unparseable(bad(), &mut report).is_empty());
        assert!(report.recheck_at.is_some());
        let first = sender.first_failed["a.json"];
        sender
            .first_failed
            .insert("a.json".into(), first - PARSE_GRACE);
        assert_eq!(sender.due_unparseable(bad(), &mut report).len(), 1);
    }
}
