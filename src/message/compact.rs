//! Reading a message that is already in its compact encoding, the one
//! [`Message::to_json_bytes`] writes and every daemon sends: fields in
//! order, no whitespace. The hub takes such a text field by field, without
//! a general JSON parse, and keeps the text itself as the stored encoding.
//! Any other text (another order, whitespace, an escape, a missing field,
//! anything invalid) is left to [`super::Draft`], which explains what is wrong.

use serde_json::value::RawValue;
use uuid::Uuid;

use super::payload::has_loose_whitespace;
use super::time::parse_created_at;
use super::{validate_host_id, validate_type, Message};

impl Message {
    /// The valid message `text` is the compact encoding of, or `None`.
    /// `text` must already be known to be one JSON value (the hub's body
    /// split checks that), so that the payload ends where the text does.
    pub fn from_compact(text: &str) -> Option<Message> {
        let rest = text.strip_prefix(r#"{"id":""#)?;
        let (id_text, rest) = rest.split_at_checked(36)?;
        let id = Uuid::try_parse(id_text).ok()?;
        let mut lower = Uuid::encode_buffer();
        if id.hyphenated().encode_lower(&mut lower) != id_text {
            return None;
        }
        let rest = rest.strip_prefix(r#"","type":""#)?;
        let (kind, rest) = quoted(rest)?;
        let rest = rest.strip_prefix(r#","source":""#)?;
        let (source, rest) = quoted(rest)?;
        let (target, rest) = match rest.strip_prefix(r#","target":null"#) {
            Some(rest) => (None, rest),
            None => {
                let (t, rest) = quoted(rest.strip_prefix(r#","target":""#)?)?;
                (Some(t), rest)
            }
        };
        let rest = rest.strip_prefix(r#","priority":""#)?;
        let (priority, rest) = quoted(rest)?;
        let rest = rest.strip_prefix(r#","created_at":""#)?;
        let (created_at, rest) = quoted(rest)?;
        let payload = rest.strip_prefix(r#","payload":"#)?.strip_suffix('}')?;
        // Exactly one value: `{...,"payload":1,"extra":2}` is not.
        let payload: &RawValue = serde_json::from_str(payload).ok()?;
        if has_loose_whitespace(payload.get()) {
            return None;
        }
        validate_type(kind).ok()?;
        validate_host_id("source", source).ok()?;
        if let Some(t) = target {
            validate_host_id("target", t).ok()?;
        }
        parse_created_at(created_at).ok()?;
        Some(Message {
            id,
            kind: kind.to_string(),
            source: source.to_string(),
            target: target.map(str::to_string),
            priority: priority.parse().ok()?,
            created_at: created_at.to_string(),
            payload: payload.to_owned(),
        })
    }
}

/// A string's text up to its closing quote, and what follows the quote.
/// An escape makes it `None`: no valid name, id or time has one.
fn quoted(s: &str) -> Option<(&str, &str)> {
    let end = s.bytes().position(|b| b == b'"' || b == b'\\')?;
    (s.as_bytes()[end] == b'"').then(|| (&s[..end], &s[end + 1..]))
}
