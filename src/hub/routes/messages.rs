//! `POST /v1/messages`: one message or a batch. Each item is validated here
//! (on the request's own task, so parsing spreads over cores), then the
//! valid ones go to the store, which dedupes, stores and fans them out.
//! The answer comes only once the accepted ones are durable, in input order.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::value::RawValue;
use uuid::Uuid;

use super::body;
use crate::api::{ItemResult, ItemStatus, PostResponse, MAX_BATCH};
use crate::hub::error::ApiError;
use crate::hub::metrics::add;
use crate::hub::store::Incoming;
use crate::hub::Hub;
use crate::message::{check_size, Draft, MessageError};

pub async fn post(
    State(hub): State<Arc<Hub>>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<PostResponse>, ApiError> {
    let raw = body(raw)?;
    let items = split_items(&raw)?;
    let limit = hub.limits.max_message_bytes;
    let mut results: Vec<Option<ItemResult>> = Vec::with_capacity(items.len());
    let mut valid = Vec::with_capacity(items.len());
    let mut slots = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match check_item(item.get(), limit) {
            Ok(incoming) => {
                slots.push(i);
                valid.push(incoming);
                results.push(None);
            }
            Err(rejected) => results.push(Some(rejected)),
        }
    }
    let rejected = results.iter().filter(|r| r.is_some()).count();
    add(&hub.metrics.rejected, rejected as u64);
    let ids: Vec<Uuid> = valid.iter().map(|m| m.id).collect();
    let statuses = if valid.is_empty() {
        Vec::new()
    } else {
        hub.store.append(valid).await?
    };
    let accepted = statuses
        .iter()
        .filter(|s| **s == ItemStatus::Accepted)
        .count();
    add(&hub.metrics.accepted, accepted as u64);
    add(&hub.metrics.duplicate, (statuses.len() - accepted) as u64);
    for ((slot, id), status) in slots.into_iter().zip(ids).zip(statuses) {
        results[slot] = Some(ItemResult {
            id: Some(id),
            status,
            error: None,
        });
    }
    Ok(Json(PostResponse {
        results: results.into_iter().flatten().collect(),
    }))
}

/// The items of the body: the elements of an array, or the one value.
fn split_items(raw: &[u8]) -> Result<Vec<&RawValue>, ApiError> {
    let not_json = |e: serde_json::Error| {
        ApiError::BadRequest(format!(
            "request body is not valid JSON ({e}); send a message object or an array of them"
        ))
    };
    let first = raw.iter().find(|b| !b.is_ascii_whitespace());
    let items = if first == Some(&b'[') {
        serde_json::from_slice::<Vec<&RawValue>>(raw).map_err(not_json)?
    } else {
        vec![serde_json::from_slice::<&RawValue>(raw).map_err(not_json)?]
    };
    if items.len() > MAX_BATCH {
        return Err(ApiError::TooLarge(format!(
            "a batch holds at most {MAX_BATCH} messages, this one has {}; split it",
            items.len()
        )));
    }
    Ok(items)
}

/// A valid, encoded message, or the `rejected` result that says why not.
fn check_item(text: &str, limit: u64) -> Result<Incoming, ItemResult> {
    let rejected = |id: Option<Uuid>, error: String| ItemResult {
        id,
        status: ItemStatus::Rejected,
        error: Some(error),
    };
    if !text.starts_with('{') {
        return Err(rejected(None, "message: must be a JSON object".to_string()));
    }
    let draft: Draft = serde_json::from_str(text)
        .map_err(|e| rejected(loose_id(text), MessageError::Shape(e).to_string()))?;
    let id = draft.id.as_deref().and_then(|s| Uuid::parse_str(s).ok());
    let msg = draft
        .complete(None)
        .map_err(|e| rejected(id, e.to_string()))?;
    // The canonical one-line encoding: what is stored and delivered.
    let json = serde_json::value::to_raw_value(&msg).map_err(|e| rejected(id, e.to_string()))?;
    check_size(json.get().len(), limit).map_err(|e| rejected(id, e.to_string()))?;
    Ok(Incoming {
        id: msg.id,
        source: msg.source,
        target: msg.target,
        json,
    })
}

/// The item's `id`, if it has a usable one, even when the rest is wrong.
fn loose_id(text: &str) -> Option<Uuid> {
    #[derive(Deserialize)]
    struct IdOnly {
        id: Option<serde_json::Value>,
    }
    let v: IdOnly = serde_json::from_str(text).ok()?;
    Uuid::parse_str(v.id?.as_str()?).ok()
}
