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

use futures::future::BoxFuture;
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
    /// `None` only while a write holds it (see [`Writing`]).
    inbox: Option<Inbox>,
    poll_interval: Duration,
    /// Woken when the hub answers again, so the sender retries at once.
    hub_back: Arc<Notify>,
    /// An outage is logged once, not at every reconnect attempt.
    warned_down: bool,
}

/// Why a stream session ended.
enum End {
    Cancelled,
    /// The stream failed or ended, for this reason.
    Dropped(String),
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
            inbox: Some(inbox),
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
                End::Dropped(why) if self.warned_down => {
                    tracing::debug!("stream still down: {why}");
                }
                End::Dropped(why) => {
                    tracing::warn!(server = %self.client.server_url(), "stream from the hub is down ({why}); reconnecting with backoff, long-polling meanwhile");
                    self.warned_down = true;
                }
            }
            let until = Instant::now() + backoff.next_delay();
            loop {
                tokio::select! {
                    biased;
                    _ = cancel.cancelled() => return,
                    _ = sleep_until(until) => break,
                    _ = tick.tick() => {
                        self.tick().await;
                        self.poll_once(&mut cursor).await;
                    }
                }
            }
        }
    }

    /// One SSE connection, from opening to its end. Reading goes on while a
    /// batch is being written, so the next batch is whatever arrived meanwhile:
    /// one message alone is written at once, a burst in large batches.
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
                return End::Dropped(format!("{e:#}"));
            }
        };
        es.set_retry_policy(Box::new(Never));
        let mut open = false;
        let mut unread = Batch::default();
        let mut broken: Option<String> = None;
        let mut writing: Option<Writing> = None;
        loop {
            if writing.is_none() {
                if cancel.is_cancelled() {
                    // What was read but not written is not acked: the hub keeps it.
                    return End::Cancelled;
                }
                if !unread.messages.is_empty() {
                    writing = self.start_write(std::mem::take(&mut unread));
                } else if let Some(why) = broken.take() {
                    return End::Dropped(why);
                }
            }
            let reading = broken.is_none() && unread.messages.len() < MAX_EVENTS;
            tokio::select! {
                biased;
                _ = cancel.cancelled(), if writing.is_none() => return End::Cancelled,
                done = finished(&mut writing), if writing.is_some() => {
                    let (inbox, result) = done;
                    self.inbox = Some(inbox);
                    let last = writing.take().and_then(|w| w.last_seq);
                    if let Err(e) = result {
                        return End::Dropped(format!("cannot write to inbox/: {e:#}"));
                    }
                    if last.is_some() {
                        *cursor = last;
                    }
                }
                ev = es.next(), if reading => {
                    broken = take_events(&mut es, ev, &mut unread);
                    if std::mem::take(&mut unread.opened) {
                        open = true;
                        backoff.reset();
                        self.hub_back.notify_one();
                        self.warned_down = false;
                        tracing::info!(host = %self.host, "stream connected");
                    }
                }
                _ = tick.tick(), if writing.is_none() => {
                    self.tick().await;
                    if !open {
                        self.poll_once(cursor).await;
                    }
                }
            }
        }
    }

    /// Hands `batch` to the inbox; the write runs while the stream is read on.
    fn start_write(&mut self, batch: Batch) -> Option<Writing> {
        let mut inbox = self.inbox.take()?;
        let future = Box::pin(async move {
            let result = inbox.deliver(batch.messages).await;
            (inbox, result)
        });
        Some(Writing {
            future,
            last_seq: batch.last_seq,
        })
    }

    async fn tick(&mut self) {
        if let Some(inbox) = self.inbox.as_mut() {
            inbox.tick().await;
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
            let Some(inbox) = self.inbox.as_mut() else {
                return;
            };
            if let Err(e) = inbox.deliver(messages).await {
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

/// A write of one batch into the inbox, in progress. It owns the inbox
/// meanwhile and gives it back when done.
struct Writing {
    future: BoxFuture<'static, (Inbox, anyhow::Result<()>)>,
    last_seq: Option<u64>,
}

/// The end of the write in progress; never, if there is none.
async fn finished(writing: &mut Option<Writing>) -> (Inbox, anyhow::Result<()>) {
    match writing {
        Some(w) => (&mut w.future).await,
        None => std::future::pending().await,
    }
}

/// Events read from the stream and not yet written.
#[derive(Default)]
struct Batch {
    opened: bool,
    messages: Vec<Message>,
    last_seq: Option<u64>,
}

/// Adds `first` and whatever else the stream has ready right now to `batch`.
/// Returns why the stream broke, if it did.
fn take_events(
    es: &mut EventSource,
    first: Option<Result<Event, reqwest_eventsource::Error>>,
    batch: &mut Batch,
) -> Option<String> {
    let mut next = first;
    loop {
        match next {
            None => return Some("closed".into()),
            Some(Err(e)) => return Some(e.to_string()),
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
            return None;
        }
        match es.next().now_or_never() {
            Some(ev) => next = ev,
            None => return None,
        }
    }
}
