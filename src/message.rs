//! The message: its fields, the rules each field must follow, and its file name.
//!
//! Every message that mesync writes, sends, stores or delivers passes through
//! [`Draft::complete`] or [`Message::parse`], so a `type` or host id that could
//! become a path (`..`, `/`, a leading dot) never reaches the file system.
//! Errors name the field and say what is wrong with it.

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// Default for `max_message_bytes`: 1 MiB.
pub const DEFAULT_MAX_MESSAGE_BYTES: u64 = 1024 * 1024;

/// A complete, valid message, as it travels between machines.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub kind: String,
    pub source: String,
    pub target: Option<String>,
    pub priority: Priority,
    pub created_at: String,
    pub payload: Value,
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
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Draft {
    pub id: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub source: Option<String>,
    pub target: Option<String>,
    pub priority: Option<String>,
    pub created_at: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub payload: Option<Value>,
}

/// Keeps an explicit `"payload": null` as `Some(Null)` rather than "missing".
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// Values used for fields a draft leaves out.
pub struct Fill<'a> {
    pub source: &'a str,
}

impl Draft {
    /// Parses a draft from JSON text, naming the offending field on error.
    pub fn from_json(text: &[u8]) -> Result<Draft, MessageError> {
        let value: Value = serde_json::from_slice(text).map_err(MessageError::Json)?;
        Self::from_value(value)
    }

    pub fn from_value(value: Value) -> Result<Draft, MessageError> {
        if !value.is_object() {
            return Err(FieldError::new("message", "must be a JSON object").into());
        }
        serde_json::from_value(value).map_err(MessageError::Shape)
    }

    /// Validates every field, filling in missing ones from `fill` when given.
    /// Without `fill`, `id`, `source` and `created_at` are required.
    pub fn complete(self, fill: Option<&Fill>) -> Result<Message, FieldError> {
        let required = |field: &'static str| FieldError::new(field, "is required");
        let kind = self.kind.ok_or_else(|| required("type"))?;
        validate_type(&kind)?;
        let id = match self.id {
            Some(s) => parse_id(&s)?,
            None if fill.is_some() => Uuid::now_v7(),
            None => return Err(required("id")),
        };
        let source = match (self.source, fill) {
            (Some(s), _) => s,
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
                c
            }
            None if fill.is_some() => now_rfc3339(),
            None => return Err(required("created_at")),
        };
        Ok(Message {
            id,
            kind,
            source,
            target: self.target,
            priority,
            created_at,
            payload: self
                .payload
                .unwrap_or_else(|| Value::Object(Default::default())),
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
            payload,
        })
    }

    /// Parses a complete message (every required field present).
    pub fn parse(text: &[u8]) -> Result<Message, MessageError> {
        Ok(Draft::from_json(text)?.complete(None)?)
    }

    /// Parses a complete message from an already decoded JSON value.
    pub fn from_value(value: Value) -> Result<Message, MessageError> {
        Ok(Draft::from_value(value)?.complete(None)?)
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

pub fn check_size(size: usize, limit: u64) -> Result<(), MessageError> {
    if size as u64 > limit {
        return Err(MessageError::TooLarge { size, limit });
    }
    Ok(())
}

/// Now, in UTC with microseconds: `2026-11-24T10:30:00.123456+00:00`.
pub fn now_rfc3339() -> String {
    Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.6f+00:00")
        .to_string()
}

fn parse_id(s: &str) -> Result<Uuid, FieldError> {
    Uuid::parse_str(s).map_err(|_| FieldError::new("id", format!("{s:?} is not a UUID")))
}

fn parse_created_at(s: &str) -> Result<Timestamp, FieldError> {
    s.parse::<Timestamp>().map_err(|_| {
        FieldError::new(
            "created_at",
            format!("{s:?} is not an RFC 3339 timestamp with offset (e.g. 2026-11-24T10:30:00.123456+00:00)"),
        )
    })
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
    let rule =
        format!("must be 1-{max} characters of A-Z a-z 0-9 . _ - starting with a letter or digit");
    let first_ok = s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    let all_ok = s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if s.is_empty() || s.len() > max || !first_ok || !all_ok {
        return Err(FieldError::new(field, format!("{s:?} {rule}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fill() -> Fill<'static> {
        Fill {
            source: "machine-1",
        }
    }

    #[test]
    fn type_rule_refuses_paths() {
        for bad in [
            "", "../x", "a/b", ".hidden", "-x", "_x", "a b", "é", "a\0b", "%2e%2e",
        ] {
            assert!(validate_type(bad).is_err(), "{bad:?} should be refused");
        }
        for good in ["task.event", "a", "A-1_b.c", "9"] {
            assert!(validate_type(good).is_ok(), "{good:?} should pass");
        }
        assert!(validate_type(&"a".repeat(128)).is_ok());
        assert!(validate_type(&"a".repeat(129)).is_err());
    }

    #[test]
    fn host_id_rule_is_64_chars() {
        assert!(validate_host_id("source", &"h".repeat(64)).is_ok());
        let err = validate_host_id("target", &"h".repeat(65)).unwrap_err();
        assert_eq!(err.field, "target");
        assert!(validate_host_id("source", "..").is_err());
    }

    #[test]
    fn new_message_has_v7_id_and_microsecond_utc_time() {
        let m = Message::new("task.event", "machine-1", None, Priority::Normal, json!({})).unwrap();
        assert_eq!(m.id.get_version_num(), 7);
        // 2026-11-24T10:30:00.123456+00:00
        assert_eq!(m.created_at.len(), 32, "{}", m.created_at);
        assert!(m.created_at.ends_with("+00:00"));
        let name = m.file_name();
        assert_eq!(name.len(), "YYYYMMDDTHHmmss_".len() + 36 + ".json".len());
        assert_eq!(id_from_file_name(&name), Some(m.id));
    }

    #[test]
    fn file_name_uses_utc() {
        let d = Draft::from_json(
            br#"{"id":"0193a0a4-7c1e-7d7e-9a2b-5f1d2c3b4a59","type":"t","source":"h",
                "created_at":"2026-11-24T12:30:00.5+02:00"}"#,
        )
        .unwrap();
        let m = d.complete(None).unwrap();
        assert_eq!(
            m.file_name(),
            "20261124T103000_0193a0a4-7c1e-7d7e-9a2b-5f1d2c3b4a59.json"
        );
    }

    #[test]
    fn draft_fills_missing_fields() {
        let m = Draft::from_json(br#"{"type":"disk.full"}"#)
            .unwrap()
            .complete(Some(&fill()))
            .unwrap();
        assert_eq!(m.source, "machine-1");
        assert_eq!(m.priority, Priority::Normal);
        assert_eq!(m.target, None);
        assert_eq!(m.payload, json!({}));
    }

    #[test]
    fn complete_message_needs_id_source_and_time() {
        let err =
            Message::parse(br#"{"type":"t","source":"h","created_at":"2026-11-24T10:30:00Z"}"#)
                .unwrap_err();
        assert!(err.to_string().contains("id is required"), "{err}");
    }

    #[test]
    fn unknown_field_is_refused_by_name() {
        let err = Draft::from_json(br#"{"type":"t","priorty":"high"}"#).unwrap_err();
        assert!(err.to_string().contains("priorty"), "{err}");
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases = [
            (r#"{"type":"../x"}"#, "type"),
            (r#"{"type":"t","priority":"urgent"}"#, "priority"),
            (r#"{"type":"t","target":"a/b"}"#, "target"),
            (r#"{"type":"t","source":".."}"#, "source"),
            (r#"{"type":"t","id":"nope"}"#, "id"),
            (r#"{"type":"t","created_at":"yesterday"}"#, "created_at"),
            (r#"{"payload":{}}"#, "type"),
        ];
        for (text, field) in cases {
            let err = Draft::from_json(text.as_bytes())
                .unwrap()
                .complete(Some(&fill()))
                .unwrap_err();
            assert_eq!(err.field, field, "{text}: {err}");
        }
    }

    #[test]
    fn wrong_json_type_and_non_object_are_errors() {
        assert!(Draft::from_json(br#"{"type":5}"#).is_err());
        assert!(Draft::from_json(b"[1,2]").is_err());
        assert!(Draft::from_json(b"{not json").is_err());
    }

    #[test]
    fn size_limit_is_enforced() {
        let m = Message::new("t", "h", None, Priority::Low, json!("x".repeat(2000))).unwrap();
        assert!(matches!(m.encode(1000), Err(MessageError::TooLarge { .. })));
        assert!(m.encode(DEFAULT_MAX_MESSAGE_BYTES).is_ok());
    }

    #[test]
    fn explicit_null_payload_is_kept() {
        let m = Draft::from_json(br#"{"type":"t","payload":null}"#)
            .unwrap()
            .complete(Some(&fill()))
            .unwrap();
        assert_eq!(m.payload, Value::Null);
    }

    #[test]
    fn roundtrip_keeps_field_order() {
        let m = Message::new("t", "h", Some("b"), Priority::High, json!({"k":1})).unwrap();
        let text = String::from_utf8(m.to_json_bytes()).unwrap();
        assert!(text.starts_with(r#"{"id":"#), "{text}");
        assert_eq!(Message::parse(text.as_bytes()).unwrap(), m);
    }
}
