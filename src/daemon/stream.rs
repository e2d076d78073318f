//! The hub connection of the receiving side: one SSE stream, resumed with
//! `Last-Event-ID` after a drop, and the long-poll while the stream is down.
//!
//! Events are taken in batches: after the first one, everything the stream
//! already holds is drained without waiting, so a burst costs one inbox write
//! pass, one ledger fsync and one ack per batch rather than per message. The
//! cursor (last sequence number) only advances past messages that
//! [`Inbox::deliver`] made durable, so a reconnect never skips one.

use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use reqwest_eventsource::{retry::Never, Event, EventSource};
use tokio::sync::Notify;
use tokio::time::{interval_at, sleep_until, Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::backoff::Backoff;
use super::inbox::Inbox;
use crate::api::{MAX_POLL_LIMIT, SSE_EVENT};
use crate::client::HubClient;
use crate::message::Message;

/// Most events taken into one batch.
const MAX_EVENTS: usize = 2000;
/// Pages one long-poll fallback may take before the loop checks the stream again.
const MAX_POLL_PAGES: usize = 10;

pub struct Receiver {
    client: HubClient,
    host: String,
    inbox: Inbox,
    poll_interval: Duration,
    /// Woken when the hub answers again, so the sender retries at once.
    hub_back: Arc<Notify>,
    /// An outage is logged once, not at every reconnect attempt.
    warned_down: bool,
}

/// Why a stream session ended.
enum End {
    Cancelled,
    Dropped,
}

impl Receiver {
    pub fn new(
        client: HubClient,
        host: String,
        inbox: Inbox,
        poll_interval: Duration,
        hub_back: Arc<Notify>,
    ) -> Receiver {
        Receiver {
            client,
            host,
            inbox,
            poll_interval,
            hub_back,
            warned_down: false,
        }
    }

    /// Receives until `cancel` fires; the batch in hand is finished first.
    pub async fn run(mut self, cancel: CancellationToken) {
        let mut cursor: Option<u64> = None;
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        // The first tick waits a full interval: the stream is being opened meanwhile.
        let mut tick = interval_at(Instant::now() + self.poll_interval, self.poll_interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            match self
                .session(&mut cursor, &mut tick, &mut backoff, &cancel)
                .await
            {
                End::Cancelled => return,
                End::Dropped => {}
            }
            if !self.warned_down {
                tracing::warn!(server = %self.client.server_url(), "stream from the hub is down; reconnecting with backoff, long-polling meanwhile");
                self.warned_down = true;
            }
            let until = Instant::now() + backoff.next_delay();
            loop {
                tokio::select! {
                    biased;
                    _ = cancel.cancelled() => return,
                    _ = sleep_until(until) => break,
                    _ = tick.tick() => {
                        self.inbox.tick().await;
                        self.poll_once(&mut cursor).await;
                    }
                }
            }
        }
    }

    /// One SSE connection, from opening to its end.
    async fn session(
        &mut self,
        cursor: &mut Option<u64>,
        tick: &mut tokio::time::Interval,
        backoff: &mut Backoff,
        cancel: &CancellationToken,
    ) -> End {
        let mut es = match self.client.stream(&self.host, *cursor) {
            Ok(es) => es,
            Err(e) => {
                tracing::warn!("{e:#}");
                return End::Dropped;
            }
        };
        es.set_retry_policy(Box::new(Never));
        let mut open = false;
        loop {
            let first = tokio::select! {
                biased;
                _ = cancel.cancelled() => return End::Cancelled,
                ev = es.next() => ev,
                _ = tick.tick() => {
                    self.inbox.tick().await;
                    if !open {
                        self.poll_once(cursor).await;
                    }
                    continue;
                }
            };
            let (batch, broken) = drain(&mut es, first);
            if batch.opened {
                open = true;
                backoff.reset();
                self.hub_back.notify_one();
                self.warned_down = false;
                tracing::info!(host = %self.host, "stream connected");
            }
            if !batch.messages.is_empty() {
                let last = batch.last_seq;
                if let Err(e) = self.inbox.deliver(batch.messages).await {
                    tracing::warn!("cannot write to inbox/, will retry: {e:#}");
                    return End::Dropped;
                }
                if last.is_some() {
                    *cursor = last;
                }
            }
            if let Some(why) = broken {
                if open {
                    tracing::warn!("stream from the hub ended: {why}");
                }
                return End::Dropped;
            }
        }
    }

    /// The long-poll fallback: what the hub holds after `cursor`, without waiting.
    async fn poll_once(&mut self, cursor: &mut Option<u64>) {
        for _ in 0..MAX_POLL_PAGES {
            let after = cursor.unwrap_or(0);
            let page = match self
                .client
                .poll(&self.host, after, MAX_POLL_LIMIT, Duration::ZERO)
                .await
            {
                Ok(p) => p.messages,
                Err(e) => {
                    tracing::debug!("long-poll failed: {e}");
                    return;
                }
            };
            self.hub_back.notify_one();
            let full = page.len() >= MAX_POLL_LIMIT;
            let last = page.iter().map(|s| s.seq).max();
            let messages = page.into_iter().map(|s| s.message).collect();
            if let Err(e) = self.inbox.deliver(messages).await {
                tracing::warn!("cannot write to inbox/, will retry: {e:#}");
                return;
            }
            if last.is_some() {
                *cursor = last;
            }
            if !full {
                return;
            }
        }
    }
}

/// Events taken from the stream in one go.
#[derive(Default)]
struct Batch {
    opened: bool,
    messages: Vec<Message>,
    last_seq: Option<u64>,
}

/// Takes `first` and whatever else the stream has ready right now. Returns the
/// batch and, if the stream broke, why.
fn drain(
    es: &mut EventSource,
    first: Option<Result<Event, reqwest_eventsource::Error>>,
) -> (Batch, Option<String>) {
    let mut batch = Batch::default();
    let mut next = first;
    loop {
        match next {
            None => return (batch, Some("closed".into())),
            Some(Err(e)) => return (batch, Some(e.to_string())),
            Some(Ok(Event::Open)) => batch.opened = true,
            Some(Ok(Event::Message(m))) if m.event == SSE_EVENT => {
                match Message::parse(m.data.as_bytes()) {
                    Ok(msg) => batch.messages.push(msg),
                    Err(e) => {
                        tracing::warn!(seq = %m.id, "hub sent an invalid message, skipped: {e}")
                    }
                }
                if let Ok(seq) = m.id.parse::<u64>() {
                    batch.last_seq = Some(seq);
                }
            }
            Some(Ok(Event::Message(_))) => {}
        }
        if batch.messages.len() >= MAX_EVENTS {
            return (batch, None);
        }
        match es.next().now_or_never() {
            Some(ev) => next = ev,
            None => return (batch, None),
        }
    }
}
