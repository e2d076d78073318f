//! The lines of the file store's segments: one typed [`Record`] per line,
//! written and read with serde, so `cat` and `jq` read them and escaping is
//! right by construction. Every line is a JSON object whose first field is
//! `op`:
//!
//! ```text
//! {"op":"log","format":2,"next_seq":1}
//! {"op":"host","host":"b","registered_at":"2026-11-24T10:30:00Z","after":0,"floor":3,"acked":[5]}
//! {"op":"register","host":"b","at":"2026-11-24T10:30:00Z","after":7}
//! {"op":"msg","seq":8,"id":"0193…","t":1795602600123,"from":"a","to":null,"msg":{…}}
//! {"op":"ack","host":"b","seqs":[8]}
//! {"op":"delete","host":"b","through":8}
//! {"op":"expire","through":8}
//! ```
//!
//! Each line ends in `"crc":N`, the CRC32C of the line as it would be
//! without that field (`{"op":...}`), so replay can tell a record that was
//! changed on disk from a good one while the file stays plain JSON lines
//! (`jq 'del(.crc)'` gives back the checksummed text). Lines without it,
//! written before checksums, are read as they are.
//!
//! `log` opens every segment (format 2; `next_seq` is the lowest sequence
//! number not yet issued; `"compacted":true` on a segment compaction
//! rewrote to the messages still needed). `host` states a host's whole cursor (segment
//! headers): registered since when, broadcasts after `after` are its, every
//! message up to `floor` is done for it, and `acked` are its acks above the
//! floor. `register` registers a host; `msg` stores a message once with its
//! log sequence number, its acceptance time `t` (Unix ms, `jq '.t/1000|todate'`)
//! and `to`: `null` for a broadcast (every host registered before it but the
//! sender), or the list of hosts it is for. `ack` acks sequence numbers for
//! a host, `delete` deregisters a host and drops its queue, `expire` ends
//! every message up to `through` (retention).

use std::borrow::Cow;
use std::fmt;

use jiff::Timestamp;
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::message::validate_host_id;

/// The segment format these records make; data dirs without it are converted.
pub const FORMAT: u32 = 2;

/// One line of a segment.
#[derive(Debug, Serialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Record<'a> {
    Log(LogStart),
    Host(HostCursor<'a>),
    Register(Registration<'a>),
    Msg(MsgRecord<'a>),
    Ack(AckRecord<'a>),
    Delete(Deletion<'a>),
    Expire(Expiry),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogStart {
    pub format: u32,
    pub next_seq: u64,
    /// A segment rewritten by compaction: only messages, whose cursors the
    /// next segment's header states.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub compacted: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostCursor<'a> {
    #[serde(borrow)]
    pub host: Cow<'a, str>,
    pub registered_at: Option<Timestamp>,
    pub after: Option<u64>,
    pub floor: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub acked: Vec<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Registration<'a> {
    #[serde(borrow)]
    pub host: Cow<'a, str>,
    pub at: Timestamp,
    pub after: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MsgRecord<'a> {
    pub seq: u64,
    pub id: Uuid,
    pub t: i64,
    #[serde(borrow)]
    pub from: Cow<'a, str>,
    #[serde(borrow)]
    pub to: Option<Vec<Cow<'a, str>>>,
    /// The message's compact one-line JSON, copied as is (never re-encoded).
    #[serde(borrow)]
    pub msg: &'a RawValue,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AckRecord<'a> {
    #[serde(borrow)]
    pub host: Cow<'a, str>,
    pub seqs: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deletion<'a> {
    #[serde(borrow)]
    pub host: Cow<'a, str>,
    pub through: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Expiry {
    pub through: u64,
}

/// Appends `rec` as one line, its checksum last.
pub fn encode(rec: &Record<'_>, buf: &mut Vec<u8>) -> serde_json::Result<()> {
    let start = buf.len();
    match rec {
        Record::Msg(m) if is_plain(m) => encode_msg(m, buf),
        _ => serde_json::to_writer(&mut *buf, rec)?,
    }
    let crc = crc32c::crc32c(&buf[start..]);
    // Every record is an object: its closing brace moves after the checksum.
    buf.pop();
    buf.push(b',');
    buf.extend_from_slice(CRC_KEY.as_bytes());
    push_decimal(buf, crc.into(), false);
    buf.extend_from_slice(b"}\n");
    Ok(())
}

const CRC_KEY: &str = "\"crc\":";

/// Appends `n` in decimal, with a minus sign when `negative`.
fn push_decimal(buf: &mut Vec<u8>, mut n: u64, negative: bool) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if negative {
        buf.push(b'-');
    }
    buf.extend_from_slice(&digits[at..]);
}

/// Whether a message record's host names pass the host-id rule, so need no
/// escaping in JSON (they always do; this only guards [`encode_msg`]).
fn is_plain(m: &MsgRecord<'_>) -> bool {
    let plain = |h: &str| validate_host_id("host", h).is_ok();
    plain(&m.from) && m.to.iter().flatten().all(|h| plain(h))
}

/// The `msg` record written directly, byte for byte what serde writes for
/// it (the hub writes one per message it takes, on its one writer thread).
fn encode_msg(m: &MsgRecord<'_>, buf: &mut Vec<u8>) {
    let mut id = Uuid::encode_buffer();
    buf.extend_from_slice(br#"{"op":"msg","seq":"#);
    push_decimal(buf, m.seq, false);
    buf.extend_from_slice(br#","id":""#);
    buf.extend_from_slice(m.id.hyphenated().encode_lower(&mut id).as_bytes());
    buf.extend_from_slice(br#"","t":"#);
    push_decimal(buf, m.t.unsigned_abs(), m.t < 0);
    buf.extend_from_slice(br#","from":""#);
    buf.extend_from_slice(m.from.as_bytes());
    buf.extend_from_slice(br#"","to":"#);
    match &m.to {
        None => buf.extend_from_slice(b"null"),
        Some(hosts) => {
            buf.push(b'[');
            for (i, h) in hosts.iter().enumerate() {
                if i > 0 {
                    buf.push(b',');
                }
                buf.push(b'"');
                buf.extend_from_slice(h.as_bytes());
                buf.push(b'"');
            }
            buf.push(b']');
        }
    }
    buf.extend_from_slice(br#","msg":"#);
    buf.extend_from_slice(m.msg.get().as_bytes());
    buf.push(b'}');
}

/// How a line's checksum compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checksum {
    Good,
    /// A line written before checksums.
    Absent,
}

/// Checks the line's trailing `"crc":N` against the rest of it.
pub fn verify(line: &[u8]) -> Result<Checksum, String> {
    let Some(body) = line.strip_suffix(b"}") else {
        return Err("not a JSON object".into());
    };
    let digits = body.iter().rev().take_while(|b| b.is_ascii_digit()).count();
    let Some(head) = body[..body.len() - digits].strip_suffix(CRC_KEY.as_bytes()) else {
        return Ok(Checksum::Absent);
    };
    let Some(head) = head.strip_suffix(b",") else {
        return Err("a \"crc\" field in the wrong place".into());
    };
    let stored: u32 = std::str::from_utf8(&body[body.len() - digits..])
        .ok()
        .and_then(|d| d.parse().ok())
        .ok_or("a \"crc\" that is not a 32-bit number")?;
    let actual = crc32c::crc32c_append(crc32c::crc32c(head), b"}");
    if actual != stored {
        return Err(format!(
            "checksum mismatch (stored {stored}, computed {actual}): the line was changed on disk"
        ));
    }
    Ok(Checksum::Good)
}

/// Decodes one line (without its newline), saying what is wrong with it if
/// it cannot be used: its checksum must match when it has one, and host ids
/// must pass the host-id rule, so a damaged or hostile file can never name
/// a path.
pub fn decode(line: &[u8]) -> Result<Record<'_>, String> {
    verify(line)?;
    // The "crc" field is read past like any unknown field.
    let rec: Record = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    let check =
        |field: &'static str, h: &str| validate_host_id(field, h).map_err(|e| e.to_string());
    match &rec {
        Record::Log(_) | Record::Expire(_) => {}
        Record::Host(c) => check("host", &c.host)?,
        Record::Register(r) => check("host", &r.host)?,
        Record::Ack(a) => check("host", &a.host)?,
        Record::Delete(d) => check("host", &d.host)?,
        Record::Msg(m) => {
            check("from", &m.from)?;
            for h in m.to.iter().flatten() {
                check("to", h)?;
            }
        }
    }
    Ok(rec)
}

/// The `op` values, read before the rest of the line.
#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum Op {
    Log,
    Host,
    Register,
    Msg,
    Ack,
    Delete,
    Expire,
}

/// Reads `op` first, then the rest of the same object as that op's fields.
/// (serde's internally tagged enums buffer the object, which a borrowed
/// `RawValue` cannot survive; reading the tag first streams instead.)
impl<'de> Deserialize<'de> for Record<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(RecordVisitor)
    }
}

struct RecordVisitor;

impl<'de> Visitor<'de> for RecordVisitor {
    type Value = Record<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a hub record: a JSON object whose first field is \"op\"")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Record<'de>, A::Error> {
        let key: Option<Cow<'de, str>> = map.next_key()?;
        if key.as_deref() != Some("op") {
            return Err(de::Error::custom(
                "the first field of a record must be \"op\"",
            ));
        }
        let op: Op = map.next_value()?;
        let rest = MapAccessDeserializer::new(map);
        Ok(match op {
            Op::Log => Record::Log(Deserialize::deserialize(rest)?),
            Op::Host => Record::Host(Deserialize::deserialize(rest)?),
            Op::Register => Record::Register(Deserialize::deserialize(rest)?),
            Op::Msg => Record::Msg(Deserialize::deserialize(rest)?),
            Op::Ack => Record::Ack(Deserialize::deserialize(rest)?),
            Op::Delete => Record::Delete(Deserialize::deserialize(rest)?),
            Op::Expire => Record::Expire(Deserialize::deserialize(rest)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(rec: &Record) -> Vec<u8> {
        let mut buf = Vec::new();
        encode(rec, &mut buf).unwrap();
        assert_eq!(buf.pop(), Some(b'\n'));
        buf
    }

    #[test]
    fn every_record_round_trips_and_starts_with_op() {
        let body =
            RawValue::from_string(r#"{"text":"quote \" and \\ and ünï"}"#.to_string()).unwrap();
        let at = Timestamp::from_second(60).unwrap();
        let recs = [
            Record::Log(LogStart {
                format: FORMAT,
                next_seq: 9,
                compacted: true,
            }),
            Record::Host(HostCursor {
                host: "b".into(),
                registered_at: Some(at),
                after: Some(2),
                floor: 3,
                acked: vec![5, 7],
                last_seen: Some(at),
            }),
            Record::Register(Registration {
                host: "b".into(),
                at,
                after: 4,
            }),
            Record::Msg(MsgRecord {
                seq: 8,
                id: Uuid::now_v7(),
                t: 5,
                from: "a".into(),
                to: Some(vec!["b".into(), "c".into()]),
                msg: &body,
            }),
            Record::Ack(AckRecord {
                host: "b".into(),
                seqs: vec![8],
            }),
            Record::Delete(Deletion {
                host: "b".into(),
                through: 8,
            }),
            Record::Expire(Expiry { through: 8 }),
        ];
        for rec in &recs {
            let bytes = line(rec);
            assert_eq!(verify(&bytes), Ok(Checksum::Good));
            assert!(
                bytes.starts_with(b"{\"op\":"),
                "{}",
                String::from_utf8_lossy(&bytes)
            );
            let back = decode(&bytes).unwrap();
            assert_eq!(line(&back), bytes);
        }
        let msg_line = line(&recs[3]);
        let Record::Msg(m) = decode(&msg_line).unwrap() else {
            panic!()
        };
        assert_eq!(m.msg.get(), body.get());
        assert!(
            matches!(m.from, Cow::Borrowed(_)),
            "host ids are borrowed, not copied"
        );
    }

    #[test]
    fn bad_lines_are_refused_with_a_reason() {
        let err = decode(br#"{"host":"b","op":"ack","seqs":[]}"#).unwrap_err();
        assert!(err.contains("first field"), "{err}");
        assert!(decode(br#"{"op":"ack","host":"../x","seqs":[]}"#).is_err());
        assert!(decode(br#"{"op":"nope"}"#).is_err());
        assert!(decode(br#"{"op":"ack","host":"b"}"#)
            .unwrap_err()
            .contains("seqs"));
    }

    #[test]
    fn a_changed_byte_fails_the_checksum_and_old_lines_still_read() {
        let rec = Record::Ack(AckRecord {
            host: "b".into(),
            seqs: vec![18],
        });
        let good = line(&rec);
        let text = String::from_utf8(good.clone()).unwrap();
        assert!(
            text.starts_with(r#"{"op":"ack","host":"b","seqs":[18],"crc":"#),
            "{text}"
        );
        let changed = text.replace("[18]", "[19]");
        let err = decode(changed.as_bytes()).unwrap_err();
        assert!(err.contains("checksum"), "{err}");
        // What jq sees without the checksum is the checksummed text.
        let stripped = text.split(",\"crc\"").next().unwrap().to_string() + "}";
        assert_eq!(verify(stripped.as_bytes()), Ok(Checksum::Absent));
        assert!(decode(stripped.as_bytes()).is_ok());
    }
}
