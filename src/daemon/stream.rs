//! The hub reader: one SSE stream of this host's messages, resumed with
//! `Last-Event-ID` after a drop, and the paged long-poll while it is down.
//!
//! Events are read in batches: after the first one, everything the stream
//! already holds is taken without waiting. Reading goes on while the inbox
//! writer works; what arrived meanwhile is handed over as the next batch the
//! moment the writer is free. The cursor (last sequence number) moves past a
//! batch when it is handed over: the writer writes every batch it takes, or
//! the daemon stops and the next start reads the hub's whole backlog again.

use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use reqwest_eventsource::{retry::Never, Event, EventSource};
use tokio::sync::Notify;
use tokio::time::{interval_at, sleep_until, Instant, Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::backoff::Backoff;
use super::handoff::{InboxInput, Turn};
use super::poll;
use crate::api::SSE_EVENT;
use crate::client::HubClient;
use crate::message::Message;

/// Most events read ahead of the writer.
const MAX_UNREAD: usize = 2000;
/// Pages one long-poll fallback may take before the loop checks the stream again.
const MAX_POLL_PAGES: usize = 10;

pub struct HubReader {
    client: HubClient,
    host: String,
    inbox: InboxInput,
    /// The last sequence number handed to the writer; `None` until one was.
    cursor: Option<u64>,
    backoff: Backoff,
    /// The safety-net tick: writer upkeep, and the long-poll while no stream is open.
    tick: Interval,
    /// Woken when the hub answers again, so the sender retries at once.
    hub_back: Arc<Notify>,
    /// An outage is logged once per kind (unreachable, or refusing our
    /// credential), not at every reconnect attempt.
    warned_down: Option<Outage>,
}

/// What kind of outage was last logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outage {
    Down,
    Refused,
}

/// How a refused credential reads in the log: what to set.
const REFUSED: &str = "the hub refuses our credential";

/// Why a stream session ended.
enum End {
    /// The daemon is stopping, or the writer is gone.
    Stop,
    /// The stream failed or ended, for this reason.
    Dropped(String),
}

/// Events read from the stream and not yet handed to the writer.
#[derive(Default)]
struct Unread {
    opened: bool,
    messages: Vec<Message>,
    last_seq: Option<u64>,
}

impl HubReader {
    pub fn new(
        client: HubClient,
        host: String,
        inbox: InboxInput,
        poll_interval: Duration,
        hub_back: Arc<Notify>,
    ) -> HubReader {
        // The first tick waits a full interval: the stream is being opened meanwhile.
        let mut tick = interval_at(Instant::now() + poll_interval, poll_interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        HubReader {
            client,
            host,
            inbox,
            cursor: None,
            backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(5)),
            tick,
            hub_back,
            warned_down: None,
        }
    }

    /// Receives until `cancel` fires or the writer is gone. What was read but
    /// not handed over is dropped unacked: the hub keeps it.
    pub async fn run(mut self, cancel: CancellationToken) {
        loop {
            let used = self.client.in_use();
            let end = self.session(&cancel).await;
            if matches!(end, End::Dropped(_)) {
                // With several hubs, the next one gets the next try; the
                // stream resumes there after the last sequence number.
                self.client.failed(used);
            }
            match end {
                End::Stop => return,
                End::Dropped(why) => {
                    let kind = match why.starts_with(REFUSED) {
                        true => Outage::Refused,
                        false => Outage::Down,
                    };
                    let server = self.client.server_url();
                    if self.warned_down == Some(kind) {
                        tracing::debug!("stream still down: {why}");
                    } else if kind == Outage::Refused {
                        tracing::warn!(%server, host = %self.host, "{why}; retrying with backoff");
                    } else {
                        tracing::warn!(%server, "stream from the hub is down ({why}); reconnecting with backoff, long-polling meanwhile");
                    }
                    self.warned_down = Some(kind);
                }
            }
            let until = Instant::now() + self.backoff.next_delay();
            loop {
                tokio::select! {
                    biased;
                    _ = cancel.cancelled() => return,
                    _ = sleep_until(until) => break,
                    _ = self.tick.tick() => {
                        if !self.on_tick(true).await {
                            return;
                        }
                    }
                }
            }
        }
    }

    /// One SSE connection, from opening to its end (and until what it
    /// brought is handed over).
    async fn session(&mut self, cancel: &CancellationToken) -> End {
        let mut es = match self.client.stream(&self.host, self.cursor) {
            Ok(es) => es,
            Err(e) => return End::Dropped(format!("{e:#}")),
        };
        es.set_retry_policy(Box::new(Never));
        let mut open = false;
        let mut unread = Unread::default();
        let mut broken: Option<String> = None;
        loop {
            if unread.messages.is_empty() {
                if let Some(why) = broken.take() {
                    return End::Dropped(why);
                }
            }
            let reading = broken.is_none() && unread.messages.len() < MAX_UNREAD;
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return End::Stop,
                turn = self.inbox.turn(), if !unread.messages.is_empty() => {
                    let Ok(turn) = turn else { return End::Stop };
                    if !self.hand_over(turn, std::mem::take(&mut unread)).await {
                        return End::Stop;
                    }
                }
                ev = es.next(), if reading => {
                    broken = take_events(&mut es, ev, &mut unread);
                    if std::mem::take(&mut unread.opened) {
                        open = true;
                        self.connected();
                    }
                }
                _ = self.tick.tick() => {
                    if !self.on_tick(!open).await {
                        return End::Stop;
                    }
                }
            }
        }
    }

    fn connected(&mut self) {
        self.backoff.reset();
        self.hub_back.notify_one();
        self.warned_down = None;
        tracing::info!(host = %self.host, "stream connected");
    }

    /// Hands `unread` to the writer; false if the writer is gone.
    async fn hand_over(&mut self, turn: Turn, unread: Unread) -> bool {
        if self.inbox.hand_over(turn, unread.messages).await.is_err() {
            return false;
        }
        if unread.last_seq.is_some() {
            self.cursor = unread.last_seq;
        }
        true
    }

    /// Upkeep, and the long-poll when `poll`; false if the writer is gone.
    async fn on_tick(&mut self, poll: bool) -> bool {
        self.inbox.upkeep();
        if !poll {
            return true;
        }
        let pulled = poll::pull(
            &self.client,
            &self.host,
            self.cursor,
            MAX_POLL_PAGES,
            &self.inbox,
        )
        .await;
        if pulled.pages > 0 {
            self.hub_back.notify_one();
        }
        self.cursor = pulled.cursor;
        match pulled.error {
            Some(poll::PullError::Writer(_)) => false,
            Some(e) => {
                tracing::debug!("long-poll failed: {e}");
                true
            }
            None => true,
        }
    }
}

/// Adds `first` and whatever else the stream has ready right now to `unread`.
/// Returns why the stream broke, if it did.
fn take_events(
    es: &mut EventSource,
    first: Option<Result<Event, reqwest_eventsource::Error>>,
    unread: &mut Unread,
) -> Option<String> {
    let mut next = first;
    loop {
        match next {
            None => return Some("closed".into()),
            Some(Err(e)) => return Some(stream_error(&e)),
            Some(Ok(Event::Open)) => unread.opened = true,
            Some(Ok(Event::Message(m))) if m.event == SSE_EVENT => {
                match Message::parse(m.data.as_bytes()) {
                    Ok(msg) => unread.messages.push(msg),
                    Err(e) => {
                        tracing::warn!(seq = %m.id, "hub sent an invalid message, skipped: {e}")
                    }
                }
                if let Ok(seq) = m.id.parse::<u64>() {
                    unread.last_seq = Some(seq);
                }
            }
            Some(Ok(Event::Message(_))) => {}
        }
        if unread.messages.len() >= MAX_UNREAD {
            return None;
        }
        match es.next().now_or_never() {
            Some(ev) => next = ev,
            None => return None,
        }
    }
}

/// A stream error as one sentence; a refused credential says what to set.
fn stream_error(e: &reqwest_eventsource::Error) -> String {
    use reqwest_eventsource::Error;
    match e {
        Error::InvalidStatusCode(status, _) if status.as_u16() == 401 => format!(
            "{REFUSED} (401): set token (MESYNC_TOKEN, or token_file) to a credential \
             the hub accepts for this host"
        ),
        Error::InvalidStatusCode(status, _) if status.as_u16() == 403 => format!(
            "{REFUSED} for this host's queue (403): use this host's own credential \
             (mesync token add --host HOST on the hub)"
        ),
        other => other.to_string(),
    }
}
