//! The message: its fields, the rules each field must follow, and its file name.
//!
//! Every message that mesync writes, sends, stores or delivers passes through
//! [`Draft::complete`] or [`Message::parse`], so a `type` or host id that could
//! become a path (`..`, `/`, a leading dot) never reaches the file system.
//! Errors name the field and say what is wrong with it. The payload travels
//! as the sender wrote it ([`payload`]); `created_at` is strict RFC 3339 ([`time`]).

mod compact;
mod payload;
mod time;

pub use payload::compact_payload;
pub use time::now_rfc3339;
use time::parse_created_at;

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::{to_raw_value, RawValue};
use serde_json::Value;
use uuid::Uuid;

/// Default for `max_message_bytes`: 1 MiB.
pub const DEFAULT_MAX_MESSAGE_BYTES: u64 = 1024 * 1024;

/// A complete, valid message, as it travels between machines.
#[derive(Debug, Clone, Serialize)]
pub struct Message {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub kind: String,
    pub source: String,
    pub target: Option<String>,
    pub priority: Priority,
    pub created_at: String,
    /// Exactly the sender's JSON (numbers, key order), without whitespace.
    pub payload: Box<RawValue>,
}

impl PartialEq for Message {
    fn eq(&self, other: &Message) -> bool {
        (&self.id, &self.kind, &self.source, &self.target)
            == (&other.id, &other.kind, &other.source, &other.target)
            && self.priority == other.priority
            && self.created_at == other.created_at
            && self.payload.get() == other.payload.get()
    }
}

impl<'de> Deserialize<'de> for Message {
    /// Decoding always validates: a `Message` value is valid by construction.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Draft::deserialize(d)?
            .complete(None)
            .map_err(serde::de::Error::custom)
    }
}

/// Send order within one pass: high before normal before low.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    High,
    #[default]
    Normal,
    Low,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::High => "high",
            Priority::Normal => "normal",
            Priority::Low => "low",
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Priority {
    type Err = FieldError;
    fn from_str(s: &str) -> Result<Self, FieldError> {
        match s {
            "high" => Ok(Priority::High),
            "normal" => Ok(Priority::Normal),
            "low" => Ok(Priority::Low),
            _ => Err(FieldError::new(
                "priority",
                format!("must be high, normal or low, not {s:?}"),
            )),
        }
    }
}

/// What is wrong with which field of a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {reason}")]
pub struct FieldError {
    pub field: &'static str,
    pub reason: String,
}

impl FieldError {
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        FieldError {
            field,
            reason: reason.into(),
        }
    }
}

/// Why a piece of JSON is not a message.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error("not valid JSON: {0}")]
    Json(serde_json::Error),
    #[error("not a message: {0}")]
    Shape(serde_json::Error),
    #[error(transparent)]
    Field(#[from] FieldError),
    #[error("message is {size} bytes, over the limit of {limit} bytes (max_message_bytes)")]
    TooLarge { size: usize, limit: u64 },
}

/// A message as written by someone else: every field but `type` may be missing.
/// Unknown fields are refused so that a misspelt `priorty` is not silently dropped.
/// Its strings borrow from the JSON text where they can (no escapes in them).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Draft<'a> {
    #[serde(borrow)]
    pub id: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "type")]
    pub kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub source: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub target: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub priority: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub created_at: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "present")]
    pub payload: Option<Box<RawValue>>,
}

/// Keeps an explicit `"payload": null` as `Some(null)` rather than "missing".
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Box<RawValue>>, D::Error> {
    Box::<RawValue>::deserialize(d).map(Some)
}

/// Values used for fields a draft leaves out.
pub struct Fill<'a> {
    pub source: &'a str,
}

impl Draft<'_> {
    /// Parses a draft from JSON text, naming the offending field on error.
    pub fn from_json(text: &[u8]) -> Result<Draft<'_>, MessageError> {
        if text.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            // Still tell bad JSON from JSON that is not an object.
            serde_json::from_slice::<serde::de::IgnoredAny>(text).map_err(MessageError::Json)?;
            return Err(FieldError::new("message", "must be a JSON object").into());
        }
        serde_json::from_slice(text).map_err(|e| match e.classify() {
            serde_json::error::Category::Data => MessageError::Shape(e),
            _ => MessageError::Json(e),
        })
    }

    /// Validates every field, filling in missing ones from `fill` when given.
    /// Without `fill`, `id`, `source` and `created_at` are required.
    pub fn complete(self, fill: Option<&Fill>) -> Result<Message, FieldError> {
        let required = |field: &'static str| FieldError::new(field, "is required");
        let kind = self.kind.ok_or_else(|| required("type"))?;
        validate_type(&kind)?;
        let id = match &self.id {
            Some(s) => parse_id(s)?,
            None if fill.is_some() => Uuid::now_v7(),
            None => return Err(required("id")),
        };
        let source = match (self.source, fill) {
            (Some(s), _) => s.into_owned(),
            (None, Some(f)) => f.source.to_string(),
            (None, None) => return Err(required("source")),
        };
        validate_host_id("source", &source)?;
        if let Some(t) = &self.target {
            validate_host_id("target", t)?;
        }
        let priority = match self.priority {
            Some(p) => p.parse()?,
            None => Priority::Normal,
        };
        let created_at = match self.created_at {
            Some(c) => {
                parse_created_at(&c)?;
                c.into_owned()
            }
            None if fill.is_some() => now_rfc3339(),
            None => return Err(required("created_at")),
        };
        Ok(Message {
            id,
            kind: kind.into_owned(),
            source,
            target: self.target.map(Cow::into_owned),
            priority,
            created_at,
            payload: match self.payload {
                Some(p) => compact_payload(p),
                None => empty_payload(),
            },
        })
    }
}

impl Message {
    /// A new message from this host, stamped now with a fresh v7 id.
    pub fn new(
        kind: &str,
        source: &str,
        target: Option<&str>,
        priority: Priority,
        payload: Value,
    ) -> Result<Message, FieldError> {
        // Serializing a Value cannot fail.
        let payload = to_raw_value(&payload).unwrap_or_else(|_| empty_payload());
        Message::with_payload(kind, source, target, priority, payload)
    }

    /// Like [`Message::new`], with the payload exactly as written.
    pub fn with_payload(
        kind: &str,
        source: &str,
        target: Option<&str>,
        priority: Priority,
        payload: Box<RawValue>,
    ) -> Result<Message, FieldError> {
        validate_type(kind)?;
        validate_host_id("source", source)?;
        if let Some(t) = target {
            validate_host_id("target", t)?;
        }
        Ok(Message {
            id: Uuid::now_v7(),
            kind: kind.to_string(),
            source: source.to_string(),
            target: target.map(str::to_string),
            priority,
            created_at: now_rfc3339(),
            payload: compact_payload(payload),
        })
    }

    /// Parses a complete message (every required field present).
    pub fn parse(text: &[u8]) -> Result<Message, MessageError> {
        Ok(Draft::from_json(text)?.complete(None)?)
    }

    /// The compact JSON encoding, checked against the size limit.
    pub fn encode(&self, limit: u64) -> Result<Vec<u8>, MessageError> {
        let bytes = self.to_json_bytes();
        check_size(bytes.len(), limit)?;
        Ok(bytes)
    }

    /// The compact JSON encoding (one line).
    pub fn to_json_bytes(&self) -> Vec<u8> {
        // Serializing a struct of strings and a Value cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// When the message was created, as an instant.
    pub fn created(&self) -> Timestamp {
        // `created_at` was validated on construction.
        parse_created_at(&self.created_at).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    /// `YYYYMMDDTHHmmss_<uuid>.json`, in UTC, so that `ls` sorts by time.
    pub fn file_name(&self) -> String {
        file_name(self.created(), &self.id)
    }
}

/// The file name of a message created at `ts` with id `id`.
pub fn file_name(ts: Timestamp, id: &Uuid) -> String {
    format!("{}_{}.json", ts.strftime("%Y%m%dT%H%M%S"), id)
}

/// The id part of a file name written by [`file_name`], if it has one.
pub fn id_from_file_name(name: &str) -> Option<Uuid> {
    let stem = name.strip_suffix(".json")?;
    let (_, id) = stem.rsplit_once('_')?;
    Uuid::parse_str(id).ok()
}

/// `{}`, the payload of a message that has none.
fn empty_payload() -> Box<RawValue> {
    RawValue::from_string("{}".to_string()).unwrap_or_else(|_| unreachable!("{{}} is JSON"))
}

pub fn check_size(size: usize, limit: u64) -> Result<(), MessageError> {
    if size as u64 > limit {
        return Err(MessageError::TooLarge { size, limit });
    }
    Ok(())
}

fn parse_id(s: &str) -> Result<Uuid, FieldError> {
    Uuid::parse_str(s).map_err(|_| FieldError::new("id", format!("{s:?} is not a UUID")))
}

/// The `type` rule: 1–128 of `[A-Za-z0-9._-]`, first alphanumeric. It names a
/// hook file, so anything that could climb out of `hooks/` is refused.
pub fn validate_type(s: &str) -> Result<(), FieldError> {
    validate_name("type", s, 128)
}

/// The host-id rule: 1–64 of `[A-Za-z0-9._-]`, first alphanumeric.
pub fn validate_host_id(field: &'static str, s: &str) -> Result<(), FieldError> {
    validate_name(field, s, 64)
}

fn validate_name(field: &'static str, s: &str, max: usize) -> Result<(), FieldError> {
    let bytes = s.as_bytes();
    let first_ok = bytes.first().is_some_and(u8::is_ascii_alphanumeric);
    let all_ok = bytes
        .iter()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'));
    if s.len() > max || !first_ok || !all_ok {
        // The text is built only for a name that fails: this runs for every
        // message the hub takes.
        return Err(FieldError::new(
            field,
            format!("{s:?} must be 1-{max} characters of A-Z a-z 0-9 . _ - starting with a letter or digit"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;
