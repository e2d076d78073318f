//! The wire types the hub and its clients both speak (the HTTP API of docs/http-api.md).
//!
//! The hub serializes these and the daemon and CLI deserialize them, so a
//! change here changes the protocol for both sides at once.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::message::Message;

/// Most messages one `POST /v1/messages` may carry.
pub const MAX_BATCH: usize = 1000;
/// Largest request body the hub reads (16 MiB).
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// Longest long-poll wait, in seconds.
pub const MAX_WAIT_SECS: u64 = 60;
/// Default and largest `limit` of a long-poll.
pub const DEFAULT_POLL_LIMIT: usize = 100;
pub const MAX_POLL_LIMIT: usize = 1000;
/// The SSE event name of a delivered message.
pub const SSE_EVENT: &str = "message";

/// What the hub did with one posted message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ItemStatus {
    Accepted,
    Duplicate,
    Rejected,
}

/// One entry of `POST /v1/messages`'s `results`, in input order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemResult {
    pub id: Option<Uuid>,
    pub status: ItemStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PostResponse {
    pub results: Vec<ItemResult>,
}

impl ItemStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemStatus::Accepted => "accepted",
            ItemStatus::Duplicate => "duplicate",
            ItemStatus::Rejected => "rejected",
        }
    }
}

impl PostResponse {
    /// The JSON answer, as serde writes it. The hub answers every post
    /// with one entry per message, so the common answer (every entry an
    /// id and a status, no error text to escape) is written directly.
    pub fn to_json(&self) -> Vec<u8> {
        if self
            .results
            .iter()
            .any(|r| r.id.is_none() || r.error.is_some())
        {
            return serde_json::to_vec(self).unwrap_or_default();
        }
        let mut out = Vec::with_capacity(16 + self.results.len() * 64);
        out.extend_from_slice(br#"{"results":["#);
        let mut id = Uuid::encode_buffer();
        for (i, r) in self.results.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(br#"{"id":""#);
            if let Some(u) = r.id {
                out.extend_from_slice(u.hyphenated().encode_lower(&mut id).as_bytes());
            }
            out.extend_from_slice(br#"","status":""#);
            out.extend_from_slice(r.status.as_str().as_bytes());
            out.extend_from_slice(br#""}"#);
        }
        out.extend_from_slice(b"]}");
        out
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AckRequest {
    pub ids: Vec<Uuid>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AckResponse {
    pub acked: usize,
}

/// A message with its per-host sequence number.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sequenced {
    pub seq: u64,
    pub message: Message,
}

/// The answer of the long-poll `GET /v1/hosts/{host}/messages`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PollResponse {
    pub messages: Vec<Sequenced>,
}

/// The long-poll answer as the hub writes it: each message's stored JSON
/// copied as is (same shape as [`PollResponse`]).
#[derive(Debug, Serialize)]
pub struct RawPollResponse<'a> {
    pub messages: Vec<RawSequenced<'a>>,
}

#[derive(Debug, Serialize)]
pub struct RawSequenced<'a> {
    pub seq: u64,
    pub message: &'a RawValue,
}

/// One host, as `GET /v1/hosts` shows it: registered, or with messages
/// queued for it that never registered (`registered_at` null: a mistyped
/// target shows here).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostInfo {
    pub id: String,
    pub registered_at: Option<String>,
    /// Null for a host the hub has never heard from.
    pub last_seen: Option<String>,
    pub streams: usize,
    pub pending: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostsResponse {
    pub hosts: Vec<HostInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
    pub version: String,
}

/// Every error answer: `{"error": "<human sentence>"}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_post_answer_is_written_as_serde_writes_it() {
        let id = Uuid::now_v7();
        let item = |status, error: Option<&str>| ItemResult {
            id: Some(id),
            status,
            error: error.map(str::to_string),
        };
        for results in [
            vec![],
            vec![item(ItemStatus::Accepted, None)],
            vec![
                item(ItemStatus::Accepted, None),
                item(ItemStatus::Duplicate, None),
            ],
            vec![item(ItemStatus::Rejected, Some("type \"x\" is bad"))],
            vec![ItemResult {
                id: None,
                status: ItemStatus::Rejected,
                error: Some("not JSON".into()),
            }],
        ] {
            let answer = PostResponse { results };
            assert_eq!(answer.to_json(), serde_json::to_vec(&answer).unwrap());
        }
    }
}
