//! The lines of the hub's segment files: one JSON object per line, named by
//! `op`, so `cat` and `jq` read them and the replay rebuilds state from them.
//!
//! ```text
//! {"op":"host","host":"machine-2","registered_at":"2026-11-24T10:30:00Z","last_seq":12}
//! {"op":"msg","id":"0193…","t":1795602600123,"to":[["machine-2",13],["machine-3",4]],"msg":{…}}
//! {"op":"ack","host":"machine-2","ids":["0193…"]}
//! {"op":"drop","host":"machine-2","last_seq":13}
//! ```
//!
//! `host` registers a host (or, with `registered_at: null`, records that a
//! host is known but not registered) and raises its sequence floor; `msg`
//! stores a message once with every (host, seq) queue entry it creates; `ack`
//! removes entries by id; `drop` deregisters a host and clears its queue.
//! `t` is the acceptance time in Unix milliseconds (`jq '.t/1000|todate'`).

use std::io::Write;

use jiff::Timestamp;
use serde::Deserialize;
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::message::validate_host_id;

pub fn host(
    buf: &mut Vec<u8>,
    id: &str,
    registered_at: Option<Timestamp>,
    last_seq: u64,
    last_seen: Option<Timestamp>,
) {
    let at = match registered_at {
        Some(ts) => format!("\"{ts}\""),
        None => "null".to_string(),
    };
    let seen = match last_seen {
        Some(ts) => format!(r#","last_seen":"{ts}""#),
        None => String::new(),
    };
    // Host ids are validated to [A-Za-z0-9._-]: nothing to escape.
    let _ = writeln!(
        buf,
        r#"{{"op":"host","host":"{id}","registered_at":{at},"last_seq":{last_seq}{seen}}}"#
    );
}

pub fn drop(buf: &mut Vec<u8>, id: &str, last_seq: u64) {
    let _ = writeln!(
        buf,
        r#"{{"op":"drop","host":"{id}","last_seq":{last_seq}}}"#
    );
}

/// A message record: `json` is the message's compact one-line encoding,
/// copied as is (never re-serialized).
pub fn msg<'a>(
    buf: &mut Vec<u8>,
    id: &Uuid,
    accepted_ms: i64,
    to: impl IntoIterator<Item = (&'a str, u64)>,
    json: &str,
) {
    let _ = write!(buf, r#"{{"op":"msg","id":"{id}","t":{accepted_ms},"to":["#);
    for (i, (host, seq)) in to.into_iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        let _ = write!(buf, r#"["{host}",{seq}]"#);
    }
    buf.extend_from_slice(b"],\"msg\":");
    buf.extend_from_slice(json.as_bytes());
    buf.extend_from_slice(b"}\n");
}

pub fn ack(buf: &mut Vec<u8>, host: &str, ids: &[Uuid]) {
    let _ = write!(buf, r#"{{"op":"ack","host":"{host}","ids":["#);
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        let _ = write!(buf, "\"{id}\"");
    }
    buf.extend_from_slice(b"]}\n");
}

/// One decoded line.
#[derive(Debug)]
pub enum Record<'a> {
    Host {
        host: String,
        registered_at: Option<Timestamp>,
        last_seq: u64,
        /// Written at segment starts and clean shutdowns (absent in older files).
        last_seen: Option<Timestamp>,
    },
    Drop {
        host: String,
        last_seq: u64,
    },
    Msg {
        id: Uuid,
        accepted_ms: i64,
        to: Vec<(String, u64)>,
        json: &'a str,
    },
    Ack {
        host: String,
        ids: Vec<Uuid>,
    },
}

/// Every field any record has; a flat struct because serde cannot keep a
/// borrowed `RawValue` inside an internally tagged enum.
#[derive(Deserialize)]
struct Line<'a> {
    op: String,
    host: Option<String>,
    #[serde(default)]
    registered_at: Option<String>,
    #[serde(default)]
    last_seen: Option<String>,
    last_seq: Option<u64>,
    id: Option<Uuid>,
    t: Option<i64>,
    to: Option<Vec<(String, u64)>>,
    #[serde(borrow)]
    msg: Option<&'a RawValue>,
    ids: Option<Vec<Uuid>>,
}

/// Decodes one line, saying what is wrong with it if it cannot be used.
pub fn decode(line: &[u8]) -> Result<Record<'_>, String> {
    let l: Line = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    let missing = |field: &str| format!("{} record without {field}", l.op);
    let host = || -> Result<String, String> {
        let h = l.host.clone().ok_or_else(|| missing("host"))?;
        validate_host_id("host", &h).map_err(|e| e.to_string())?;
        Ok(h)
    };
    match l.op.as_str() {
        "host" => {
            let time = |t: &Option<String>| -> Result<Option<Timestamp>, String> {
                t.as_deref()
                    .map(|s| s.parse::<Timestamp>().map_err(|e| e.to_string()))
                    .transpose()
            };
            Ok(Record::Host {
                host: host()?,
                registered_at: time(&l.registered_at)?,
                last_seq: l.last_seq.ok_or_else(|| missing("last_seq"))?,
                last_seen: time(&l.last_seen)?,
            })
        }
        "drop" => Ok(Record::Drop {
            host: host()?,
            last_seq: l.last_seq.ok_or_else(|| missing("last_seq"))?,
        }),
        "msg" => {
            let to = l.to.clone().ok_or_else(|| missing("to"))?;
            for (h, _) in &to {
                validate_host_id("to", h).map_err(|e| e.to_string())?;
            }
            Ok(Record::Msg {
                id: l.id.ok_or_else(|| missing("id"))?,
                accepted_ms: l.t.ok_or_else(|| missing("t"))?,
                to,
                json: l.msg.ok_or_else(|| missing("msg"))?.get(),
            })
        }
        "ack" => Ok(Record::Ack {
            host: host()?,
            ids: l.ids.clone().ok_or_else(|| missing("ids"))?,
        }),
        other => Err(format!("unknown op {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let id = Uuid::now_v7();
        let mut buf = Vec::new();
        let seen = Timestamp::from_second(60).unwrap();
        host(&mut buf, "a", Some(Timestamp::UNIX_EPOCH), 3, Some(seen));
        host(&mut buf, "b", None, 0, None);
        msg(&mut buf, &id, 5, [("a", 4), ("b", 1)], r#"{"x":1}"#);
        ack(&mut buf, "a", &[id]);
        drop(&mut buf, "b", 1);
        let lines: Vec<&[u8]> = buf
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(lines.len(), 5);
        for l in &lines {
            serde_json::from_slice::<serde_json::Value>(l).unwrap();
        }
        match decode(lines[2]).unwrap() {
            Record::Msg {
                id: got,
                accepted_ms,
                to,
                json,
            } => {
                assert_eq!(got, id);
                assert_eq!(accepted_ms, 5);
                assert_eq!(to, vec![("a".to_string(), 4), ("b".to_string(), 1)]);
                assert_eq!(json, r#"{"x":1}"#);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decode(lines[1]).unwrap(),
            Record::Host {
                registered_at: None,
                last_seen: None,
                ..
            }
        ));
        assert!(matches!(
            decode(lines[0]).unwrap(),
            Record::Host { last_seen: Some(t), last_seq: 3, .. } if t == seen
        ));
        assert!(decode(br#"{"op":"ack","host":"../x","ids":[]}"#).is_err());
    }
}
