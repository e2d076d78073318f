//! The long-poll, paged: what the hub holds for this host after a cursor,
//! fetched without waiting and handed to the inbox writer page by page.
//!
//! The running daemon uses it while its stream is down, `--once` for its
//! whole pull; both page through here and nowhere else.

use std::time::Duration;

use super::handoff::{InboxInput, WriterGone};
use crate::api::MAX_POLL_LIMIT;
use crate::client::{ClientError, HubClient};

/// Why a pull stopped early.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("cannot receive: {0}")]
    Hub(#[from] ClientError),
    #[error(transparent)]
    Writer(#[from] WriterGone),
}

/// How far a pull got.
#[derive(Debug)]
pub struct Pulled {
    /// The sequence number of the last message handed to the writer; the
    /// cursor given in if there was none.
    pub cursor: Option<u64>,
    /// Pages the hub answered (the hub is reachable when this is not 0).
    pub pages: usize,
    pub error: Option<PullError>,
}

/// Pulls up to `max_pages` pages after `cursor` (everything the hub holds
/// when it is `None`) into `inbox`; stops at the first page that is not full.
pub async fn pull(
    client: &HubClient,
    host: &str,
    cursor: Option<u64>,
    max_pages: usize,
    inbox: &InboxInput,
) -> Pulled {
    let mut pulled = Pulled {
        cursor,
        pages: 0,
        error: None,
    };
    for _ in 0..max_pages {
        let after = pulled.cursor.unwrap_or(0);
        let page = match client
            .poll(host, after, MAX_POLL_LIMIT, Duration::ZERO)
            .await
        {
            Ok(p) => p.messages,
            Err(e) => {
                pulled.error = Some(e.into());
                break;
            }
        };
        pulled.pages += 1;
        let full = page.len() >= MAX_POLL_LIMIT;
        let Some(last) = page.iter().map(|s| s.seq).max() else {
            break;
        };
        let batch = page.into_iter().map(|s| s.message).collect();
        if let Err(e) = inbox.deliver(batch).await {
            pulled.error = Some(e.into());
            break;
        }
        pulled.cursor = Some(last);
        if !full {
            break;
        }
    }
    pulled
}
