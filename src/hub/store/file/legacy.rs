//! Converting a data dir written in the first segment format, where each
//! host kept its own queue of `(host, seq)` entries and a broadcast listed
//! every host it reached. At start, segments without the `log` line are read
//! with the old rules and replaced by one segment in the current format:
//! every host's cursor, then every message still queued for someone (with
//! the hosts it is queued for) or still inside the dedupe window (for
//! nobody), oldest first. Nothing queued is lost and no id leaves the window.
//!
//! Sequence numbers never go backwards for any host: the converted messages
//! are numbered after the highest number the old files ever issued to any
//! host, so a daemon resuming with an old `Last-Event-ID` gets its whole
//! backlog again (its ledger drops what it already has) and never skips one.
//! The new segment is written under a temp name and renamed into place
//! before the old ones are deleted; a crash in between leaves old segments
//! before a converted one, and those are then deleted at the next start.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::value::RawValue;
use uuid::Uuid;

use super::records::{self, HostCursor, LogStart, MsgRecord, Record, FORMAT};
use super::segments::{read_lines, replace_file, segment_path};
use crate::message::validate_host_id;
use crate::spool::sync_dir;

/// Whether a segment's first line is in the current format.
fn is_current(path: &Path) -> Result<bool> {
    let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(bytes.starts_with(b"{\"op\":\"log\""))
}

/// Converts first-format segments in `found` (sorted by id) if there are
/// any; returns the segments to replay. `window_start` is the oldest
/// acceptance time (Unix ms) still inside the dedupe window.
pub fn convert_if_needed(
    dir: &Path,
    found: Vec<(u64, PathBuf)>,
    window_start: i64,
) -> Result<Vec<(u64, PathBuf)>> {
    let mut old = Vec::new();
    let mut current = Vec::new();
    for (id, path) in found {
        if is_current(&path)? {
            current.push((id, path));
        } else if current.is_empty() {
            old.push((id, path));
        } else {
            anyhow::bail!(
                "{} is in the old segment format but comes after a converted segment; move it out of {} to start",
                path.display(),
                dir.display()
            );
        }
    }
    if old.is_empty() {
        return Ok(current);
    }
    if current.is_empty() {
        let next_id = old.last().map_or(1, |(id, _)| id + 1);
        let path = segment_path(dir, next_id);
        let (content, summary) = convert(&old, window_start)?;
        replace_file(&path, &content)?;
        sync_dir(dir)?;
        tracing::info!(segments = old.len(), file = %path.display(), %summary,
            "converted the hub data dir to the current format");
        current.push((next_id, path));
    }
    for (_, path) in &old {
        fs::remove_file(path).with_context(|| format!("deleting {}", path.display()))?;
    }
    sync_dir(dir)?;
    Ok(current)
}

/// A line of the first format: every field any record had.
#[derive(Deserialize)]
struct Line<'a> {
    op: String,
    host: Option<String>,
    #[serde(default)]
    registered_at: Option<Timestamp>,
    #[serde(default)]
    last_seen: Option<Timestamp>,
    last_seq: Option<u64>,
    id: Option<Uuid>,
    t: Option<i64>,
    to: Option<Vec<(String, u64)>>,
    #[serde(borrow)]
    msg: Option<&'a RawValue>,
    ids: Option<Vec<Uuid>>,
}

#[derive(Default)]
struct OldHost {
    registered_at: Option<Timestamp>,
    last_seq: u64,
    last_seen: Option<Timestamp>,
    /// The host's queue: seq -> message id.
    queue: BTreeMap<u64, Uuid>,
}

struct OldMsg {
    t: i64,
    /// Order of first appearance, to keep arrival order among equal times.
    order: usize,
    json: Box<RawValue>,
}

#[derive(Default)]
struct OldState {
    hosts: BTreeMap<String, OldHost>,
    msgs: HashMap<Uuid, OldMsg>,
}

impl OldState {
    fn apply(&mut self, l: Line<'_>) -> Result<(), String> {
        let host = |h: &Option<String>| -> Result<String, String> {
            let h = h.clone().ok_or("record without host")?;
            validate_host_id("host", &h).map_err(|e| e.to_string())?;
            Ok(h)
        };
        match l.op.as_str() {
            "host" => {
                let h = self.hosts.entry(host(&l.host)?).or_default();
                h.registered_at = l.registered_at;
                h.last_seq = h.last_seq.max(l.last_seq.unwrap_or(0));
                h.last_seen = h.last_seen.max(l.last_seen);
            }
            "drop" => {
                let h = self.hosts.entry(host(&l.host)?).or_default();
                h.registered_at = None;
                h.queue.clear();
                h.last_seq = h.last_seq.max(l.last_seq.unwrap_or(0));
            }
            "msg" => {
                let (Some(id), Some(t), Some(to), Some(msg)) = (l.id, l.t, l.to, l.msg) else {
                    return Err("msg record without id, t, to or msg".to_string());
                };
                let order = self.msgs.len();
                self.msgs.entry(id).or_insert_with(|| OldMsg {
                    t,
                    order,
                    json: msg.to_owned(),
                });
                for (name, seq) in to {
                    validate_host_id("to", &name).map_err(|e| e.to_string())?;
                    let h = self.hosts.entry(name).or_default();
                    h.last_seq = h.last_seq.max(seq);
                    h.queue.insert(seq, id);
                }
            }
            "ack" => {
                let ids: HashSet<Uuid> = l.ids.unwrap_or_default().into_iter().collect();
                if let Some(h) = self.hosts.get_mut(&host(&l.host)?) {
                    h.queue.retain(|_, id| !ids.contains(id));
                }
            }
            other => return Err(format!("unknown op {other:?}")),
        }
        Ok(())
    }
}

/// The converted segment's bytes, and a summary for the log.
fn convert(old: &[(u64, PathBuf)], window_start: i64) -> Result<(Vec<u8>, String)> {
    let mut state = OldState::default();
    for (id, path) in old {
        let read = read_lines(*id, path, true)?;
        for (n, (line, _, _)) in read.iter().enumerate() {
            let parsed = serde_json::from_slice::<Line>(line).map_err(|e| e.to_string());
            if let Err(e) = parsed.and_then(|l| state.apply(l)) {
                tracing::warn!(file = %path.display(), line = n + 1, error = %e, "skipping a line that is not a hub record");
            }
        }
    }
    // Which hosts still have each message queued.
    let mut queued: HashMap<Uuid, Vec<&str>> = HashMap::new();
    for (name, h) in &state.hosts {
        for id in h.queue.values() {
            queued.entry(*id).or_default().push(name);
        }
    }
    let mut keep: Vec<(&Uuid, &OldMsg)> = state
        .msgs
        .iter()
        .filter(|(id, m)| queued.contains_key(*id) || m.t >= window_start)
        .collect();
    keep.sort_by_key(|(_, m)| (m.t, m.order));
    let first = state.hosts.values().map(|h| h.last_seq).max().unwrap_or(0) + 1;
    let head = first + keep.len() as u64 - 1;
    let mut buf = Vec::new();
    let mut recs = vec![Record::Log(LogStart {
        format: FORMAT,
        next_seq: head + 1,
        compacted: false,
    })];
    recs.extend(state.hosts.iter().map(|(name, h)| {
        Record::Host(HostCursor {
            host: name.as_str().into(),
            registered_at: h.registered_at,
            after: h.registered_at.map(|_| head),
            floor: first - 1,
            acked: Vec::new(),
            last_seen: h.last_seen,
        })
    }));
    for rec in &recs {
        records::encode(rec, &mut buf)?;
    }
    for (seq, (id, m)) in (first..).zip(&keep) {
        let to = queued.get(*id).map_or_else(Vec::new, |hosts| {
            hosts.iter().map(|h| Cow::Borrowed(*h)).collect()
        });
        let rec = Record::Msg(MsgRecord {
            seq,
            id: **id,
            t: m.t,
            from: source_of(&m.json),
            to: Some(to),
            msg: &m.json,
        });
        records::encode(&rec, &mut buf)?;
    }
    let pending: usize = state.hosts.values().map(|h| h.queue.len()).sum();
    let summary = format!(
        "{} hosts, {} messages, {} queue entries, numbered from {first}",
        state.hosts.len(),
        keep.len(),
        pending
    );
    Ok((buf, summary))
}

/// The message's `source` (the hub validated it when it was accepted).
fn source_of(json: &RawValue) -> Cow<'_, str> {
    #[derive(Deserialize)]
    struct Source<'a> {
        #[serde(borrow)]
        source: Cow<'a, str>,
    }
    match serde_json::from_str::<Source>(json.get()) {
        Ok(s) if validate_host_id("source", &s.source).is_ok() => s.source,
        _ => Cow::Borrowed("unknown"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy_fixture(dir: &Path) -> Vec<(u64, PathBuf)> {
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/hub-data-v1");
        (1..=2)
            .map(|id| {
                let to = segment_path(dir, id);
                fs::copy(segment_path(&fixture, id), &to).unwrap();
                (id, to)
            })
            .collect()
    }

    #[test]
    fn old_segments_a_crash_left_beside_a_converted_one_are_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let old = copy_fixture(tmp.path());
        let converted = convert_if_needed(tmp.path(), old, i64::MIN).unwrap();
        assert_eq!(converted.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [3]);
        let text = fs::read_to_string(&converted[0].1).unwrap();
        assert!(
            text.starts_with(r#"{"op":"log","format":2,"next_seq":12,"crc":"#),
            "{text}"
        );
        // As if the hub died after the rename, before deleting the old ones.
        let mut found = copy_fixture(tmp.path());
        found.extend(converted.clone());
        assert_eq!(
            convert_if_needed(tmp.path(), found, i64::MIN).unwrap(),
            converted
        );
        assert!(!segment_path(tmp.path(), 1).exists() && !segment_path(tmp.path(), 2).exists());
        assert_eq!(fs::read_to_string(&converted[0].1).unwrap(), text);
    }
}
