//! The hub's SSE endpoints against a real `mesync serve`: backlog replay,
//! live push, resuming with Last-Event-ID or `since`, keepalives, the
//! hub-wide feed, and that watching never acks.

use crate::common::{wait_until, Hub, DEADLINE};
use crate::hub_tools::*;
use serde_json::json;

/// Keepalives every second, so stream reads never sit idle long in tests.
fn hub() -> Hub {
    Hub::start_with(&[("MESYNC_KEEPALIVE", "1")])
}

#[test]
fn stream_replays_the_backlog_then_pushes_live_messages() {
    let hub = hub();
    poll(&hub, "b", "");
    let backlog: Vec<_> = (0..3).map(|_| message("a", None, "t")).collect();
    post(&hub, &json!(backlog));
    let mut s = Sse::open(&hub, "/v1/hosts/b/stream", &[]);
    assert_eq!(s.resp_headers["cache-control"], "no-cache");
    assert_eq!(s.resp_headers["x-accel-buffering"], "no");
    let first = s.events(3);
    for (i, ev) in first.iter().enumerate() {
        assert_eq!(ev.event.as_deref(), Some("message"));
        assert_eq!(ev.id, Some(i as u64 + 1));
        assert_eq!(ev.message(), backlog[i]);
        assert!(!ev.data.contains('\n'));
    }
    let live = message("a", Some("b"), "t");
    send(&hub, &live);
    let ev = &s.events(1)[0];
    assert_eq!((ev.id, ev.message()), (Some(4), live));
    s.wait_comment("keepalive");
    // Watching acks nothing.
    assert_eq!(poll(&hub, "b", "").len(), 4);
}

#[test]
fn stream_resumes_after_last_event_id_or_since() {
    let hub = hub();
    poll(&hub, "b", "");
    let sent: Vec<_> = (0..4).map(|_| message("a", None, "t")).collect();
    post(&hub, &json!(sent));
    let mut by_header = Sse::open(&hub, "/v1/hosts/b/stream", &[("Last-Event-ID", "2")]);
    let got: Vec<_> = by_header.events(2).iter().map(|e| e.id.unwrap()).collect();
    assert_eq!(got, [3, 4]);
    let mut by_query = Sse::open(&hub, "/v1/hosts/b/stream?since=3", &[]);
    assert_eq!(by_query.events(1)[0].id, Some(4));
    // Nothing else was pending: the next event is the next message.
    let next = message("a", None, "t");
    send(&hub, &next);
    assert_eq!(by_query.events(1)[0].message(), next);
    assert_eq!(by_header.events(1)[0].id, Some(5));
}

#[test]
fn cursor_beyond_the_last_sequence_replays_the_whole_backlog() {
    let hub = hub();
    poll(&hub, "b", "");
    post(
        &hub,
        &json!([message("a", None, "t"), message("a", None, "t")]),
    );
    let mut s = Sse::open(&hub, "/v1/hosts/b/stream", &[("Last-Event-ID", "1000")]);
    let ids: Vec<_> = s.events(2).iter().map(|e| e.id.unwrap()).collect();
    assert_eq!(ids, [1, 2]);
}

#[test]
fn acked_messages_are_skipped_on_reconnect_and_streams_are_counted() {
    let hub = hub();
    let mut s = Sse::open(&hub, "/v1/hosts/b/stream", &[]);
    // The stream registered the host: a broadcast reaches it.
    let (m1, m2) = (message("a", None, "t"), message("a", None, "t"));
    post(&hub, &json!([m1, m2]));
    assert_eq!(s.events(2)[1].message(), m2);
    assert_eq!(host_info(&hub, "b").unwrap()["streams"], 1);
    ack(&hub, "b", &[id_of(&m1)]);
    drop(s);
    wait_until("the closed stream to be uncounted", DEADLINE, || {
        host_info(&hub, "b").unwrap()["streams"] == 0
    });
    let mut again = Sse::open(&hub, "/v1/hosts/b/stream", &[]);
    let ev = &again.events(1)[0];
    assert_eq!((ev.id, ev.message()), (Some(2), m2));
}

#[test]
fn many_messages_in_a_burst_arrive_in_order_on_a_stream() {
    let hub = hub();
    let mut s = Sse::open(&hub, "/v1/hosts/b/stream", &[]);
    let batches: Vec<Vec<_>> = (0..5)
        .map(|_| (0..200).map(|_| message("a", None, "t")).collect())
        .collect();
    for b in &batches {
        post(&hub, &json!(b));
    }
    let got = s.events(1000);
    let ids: Vec<u64> = got.iter().map(|e| e.id.unwrap()).collect();
    assert_eq!(ids, (1..=1000).collect::<Vec<u64>>());
    let want: Vec<_> = batches.concat();
    assert!(got.iter().zip(&want).all(|(e, m)| e.message() == *m));
}

#[test]
fn hub_feed_shows_every_accepted_message() {
    let hub = Hub::start_with(&[("MESYNC_KEEPALIVE", "1"), ("MESYNC_TOKEN", "t0k")]);
    let mut feed = Sse::open(&hub, "/v1/stream?token=t0k", &[]);
    let m = message("a", Some("z"), "t");
    send(&hub, &m);
    let ev = &feed.events(1)[0];
    assert_eq!(ev.event.as_deref(), Some("message"));
    assert_eq!(ev.message(), m);
}

#[test]
fn deleting_a_host_ends_its_stream() {
    let hub = hub();
    let mut s = Sse::open(&hub, "/v1/hosts/b/stream", &[]);
    wait_until("the stream to register b", DEADLINE, || {
        host_info(&hub, "b").is_some()
    });
    assert_eq!(hub.delete("/v1/hosts/b").send().unwrap().status(), 204);
    assert!(s.next_event(DEADLINE).is_none());
    wait_until("b's stream to be uncounted", DEADLINE, || {
        let text = hub.get("/metrics").send().unwrap().text().unwrap();
        text.contains("mesync_open_streams 0")
    });
}
