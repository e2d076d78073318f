//! `POST /v1/messages`: one message or a batch. Each item is validated here
//! (on the request's own task, so parsing spreads over cores), then the
//! valid ones go to the store, which dedupes, stores and fans them out.
//! The answer comes only once the accepted ones are durable, in input order.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::value::RawValue;
use uuid::Uuid;

use super::{Caller, JsonBody};
use crate::api::{ItemResult, ItemStatus, PostResponse, MAX_BATCH};
use crate::hub::error::ApiError;
use crate::hub::metrics::add;
use crate::hub::store::Incoming;
use crate::hub::Hub;
use crate::message::{check_size, now_rfc3339, Draft, Message, MessageError};

pub async fn post(
    State(hub): State<Arc<Hub>>,
    Caller(access): Caller,
    body: JsonBody,
) -> Result<Response, ApiError> {
    let (items, batch) = split_items(&body.bytes)?;
    let limit = hub.limits.max_message_bytes;
    let mut results: Vec<Option<ItemResult>> = Vec::with_capacity(items.len());
    let mut valid = Vec::with_capacity(items.len());
    let mut slots = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match check_item(item, limit, access.only_source()) {
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
    // Posting registers each source: all of them must fit under max_hosts.
    let mut sources: Vec<&str> = valid.iter().map(|m| m.source.as_str()).collect();
    sources.sort_unstable();
    sources.dedup();
    hub.room_for(&sources)?;
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
    let results: Vec<ItemResult> = results.into_iter().flatten().collect();
    // A lone message that was refused fails the request, so `curl -f`
    // notices; a batch always answers 200 with one result per item.
    let status = match results.first() {
        Some(r) if !batch && r.status == ItemStatus::Rejected => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::OK,
    };
    let json = [(CONTENT_TYPE, "application/json")];
    Ok((status, json, PostResponse { results }.to_json()).into_response())
}

/// The items of the body: the elements of an array, or the one value; and
/// whether it was an array. Each item is only checked to be JSON here, never
/// built as a tree, so an oversized item costs no more than its bytes.
fn split_items(raw: &[u8]) -> Result<(Vec<&RawValue>, bool), ApiError> {
    let not_json = |e: serde_json::Error| {
        ApiError::BadRequest(format!(
            "request body is not valid JSON ({e}); send a message object or an array of them"
        ))
    };
    let first = raw.iter().find(|b| !b.is_ascii_whitespace());
    let batch = first == Some(&b'[');
    let items = if batch {
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
    Ok((items, batch))
}

/// A valid, encoded message, or the `rejected` result that says why not.
/// With a host credential (`only_source`), the source is that host: filled
/// in when left out, and any other one is refused.
fn check_item(
    item: &RawValue,
    limit: u64,
    only_source: Option<&str>,
) -> Result<Incoming, ItemResult> {
    let text = item.get();
    let rejected = |id: Option<Uuid>, error: String| ItemResult {
        id,
        status: ItemStatus::Rejected,
        error: Some(error),
    };
    if !text.starts_with('{') {
        return Err(rejected(None, "message: must be a JSON object".to_string()));
    }
    // Measured as sent, before parsing: a huge item is refused for the
    // price of its length.
    check_size(text.len(), limit).map_err(|e| rejected(None, e.to_string()))?;
    // What a daemon sends: already the compact encoding, kept as it came.
    if let Some(msg) = Message::from_compact(text) {
        if only_source.is_none_or(|own| own == msg.source) {
            return Ok(Incoming {
                id: msg.id,
                source: msg.source,
                target: msg.target,
                json: item.to_owned(),
            });
        }
    }
    let mut draft: Draft = serde_json::from_str(text)
        .map_err(|e| rejected(loose_id(text), MessageError::Shape(e).to_string()))?;
    // What a hand-written message leaves out, as the daemon fills it in
    // for outbox/ files (priority and payload have defaults already).
    draft
        .id
        .get_or_insert_with(|| Uuid::now_v7().to_string().into());
    draft.created_at.get_or_insert_with(|| now_rfc3339().into());
    if let Some(own) = only_source {
        let source = draft.source.get_or_insert(own.into());
        if source != own {
            let id = draft.id.as_deref().and_then(|s| Uuid::parse_str(s).ok());
            return Err(rejected(
                id,
                format!("source {source}: this credential posts only as host {own}"),
            ));
        }
    }
    let id = draft.id.as_deref().and_then(|s| Uuid::parse_str(s).ok());
    let msg = draft
        .complete(None)
        .map_err(|e| rejected(id, e.to_string()))?;
    // The compact one-line encoding: what is stored and delivered.
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
