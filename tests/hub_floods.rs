//! Floods against a real `mesync serve`, made for real but small: idle and
//! slow connections, stalled bodies, oversized items and streams that are
//! never read. Each test starts a hub with low limits and checks that it
//! sheds the flood and keeps answering `/healthz`.

mod common;
#[path = "common/hub_tools.rs"]
mod hub_tools;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{wait_for, wait_until, Hub, DEADLINE};
use hub_tools::*;
use serde_json::{json, Value};

/// `/healthz` answers on a fresh connection.
fn healthy(hub: &Hub) -> bool {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    client
        .get(format!("{}/healthz", hub.url))
        .send()
        .is_ok_and(|r| r.status() == 200)
}

/// The hub process's open sockets.
fn sockets(hub: &Hub) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", hub.proc.pid()))
        .map(|rd| {
            rd.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .filter(|l| l.to_string_lossy().starts_with("socket:"))
                .count()
        })
        .unwrap_or(0)
}

fn connect(hub: &Hub) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", hub.port)).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s
}

/// Reads until the hub closes the connection; what it sent before.
fn read_to_close(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the hub did not close the connection: {e}"),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn idle_connections_beyond_the_limit_make_room_for_real_requests() {
    // A long header timeout: only the connection limit saves the hub here.
    let hub = Hub::start_with(&[
        ("MESYNC_MAX_CONNECTIONS", "40"),
        ("MESYNC_HEADER_TIMEOUT", "600"),
    ]);
    let idle: Vec<TcpStream> = (0..300).map(|_| connect(&hub)).collect();
    wait_until("the hub to hold its limit of connections", DEADLINE, || {
        sockets(&hub) >= 40
    });
    for _ in 0..5 {
        assert!(healthy(&hub), "healthz during an idle flood");
    }
    // The listener, the limit, one accepted connection waiting for room and
    // evicted ones that are closing.
    assert!(sockets(&hub) <= 40 + 5, "{} sockets", sockets(&hub));
    drop(idle);
}

#[test]
fn slow_and_idle_connections_are_closed_after_the_header_timeout() {
    let hub = Hub::start_with(&[("MESYNC_HEADER_TIMEOUT", "1")]);
    let mut slow: Vec<TcpStream> = (0..50).map(|_| connect(&hub)).collect();
    for s in &mut slow {
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
    }
    // Still trickling a header line, a byte at a time, as slowloris does.
    for s in &mut slow {
        let _ = s.write_all(b"X");
    }
    for s in &mut slow {
        let got = read_to_close(s);
        assert!(!got.contains("200 OK"), "{got}");
    }
    // A kept-alive connection that goes quiet after a request is closed too.
    let mut kept = connect(&hub);
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert!(read_to_close(&mut kept).contains("200 OK"));
    assert!(healthy(&hub));
}

#[test]
fn stalled_bodies_time_out_and_cannot_take_more_than_the_body_memory() {
    let hub = Hub::start_with(&[
        ("MESYNC_BODY_TIMEOUT", "4"),
        ("MESYNC_MAX_BODY_MEMORY", "1"),
    ]);
    // The budget is one largest body (16 MiB): one stalled request takes
    // it until its body times out, the other waits a second for room and
    // is turned away.
    let stall = |hub: &Hub| {
        let mut s = connect(hub);
        let head = format!(
            "POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n[",
            16 * 1024 * 1024
        );
        s.write_all(head.as_bytes()).unwrap();
        s
    };
    let mut first = stall(&hub);
    let mut second = stall(&hub);
    assert!(healthy(&hub), "healthz while bodies stall");
    let answers = [read_to_close(&mut first), read_to_close(&mut second)];
    assert!(
        answers.iter().any(|a| a.starts_with("HTTP/1.1 408")),
        "{answers:?}"
    );
    assert!(
        answers
            .iter()
            .any(|a| a.starts_with("HTTP/1.1 503") && a.contains("max_body_memory")),
        "{answers:?}"
    );
    // The budget is free again.
    send(&hub, &message("a", None, "after.stall"));
}

#[test]
fn an_oversized_item_is_refused_by_its_length_alone() {
    let hub = Hub::start_with(&[("MESYNC_MAX_MESSAGE_BYTES", "1048576")]);
    let mut big = message("a", None, "big");
    big["payload"] = json!({"blob": "x".repeat(3 * 1024 * 1024)});
    let resp = hub.post("/v1/messages").json(&big).send().unwrap();
    assert_eq!(resp.status(), 422);
    let v: Value = resp.json().unwrap();
    let error = v["results"][0]["error"].as_str().unwrap();
    assert!(error.contains("1048576"), "{error}");
}

#[test]
fn a_stream_that_is_never_read_is_closed_and_resumes_by_last_event_id() {
    let hub = Hub::start_with(&[("MESYNC_STALL_TIMEOUT", "1")]);
    let mut s = connect(&hub);
    s.write_all(b"GET /v1/hosts/sink/stream HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    wait_until("the stream to open", DEADLINE, || {
        hub.host("sink").is_some_and(|h| h["streams"] == 1)
    });
    // 16 MB for a reader that takes nothing: more than the socket buffers.
    let mut ids = Vec::new();
    for _ in 0..4 {
        let batch: Vec<Value> = (0..40)
            .map(|_| {
                let mut m = message("a", Some("sink"), "bulk");
                m["payload"] = json!({"blob": "y".repeat(100 * 1024)});
                ids.push(id_of(&m));
                m
            })
            .collect();
        post(&hub, &json!(batch));
    }
    wait_until("the hub to drop the stalled stream", DEADLINE, || {
        hub.host("sink").is_some_and(|h| h["streams"] == 0)
    });
    drop(s);
    // Nothing was lost: a reader that reads gets every message.
    let got = wait_for("the whole backlog by long-poll", DEADLINE, || {
        let v: Value = hub
            .get("/v1/hosts/sink/messages?limit=1000")
            .send()
            .ok()?
            .json()
            .ok()?;
        let n = v["messages"].as_array()?.len();
        (n == ids.len()).then_some(n)
    });
    assert_eq!(got, 160);
    assert!(healthy(&hub));
}

#[test]
fn posts_must_be_json_and_pages_of_other_sites_are_refused() {
    let hub = Hub::start_with(&[("MESYNC_ALLOWED_ORIGINS", "https://ops.example.com")]);
    let body = message("build-server", None, "deploy.done").to_string();
    let http = hub.http();
    let url = format!("{}/v1/messages", hub.url);
    let form = http
        .post(&url)
        .header("content-type", "text/plain")
        .body(body.clone())
        .send()
        .unwrap();
    assert!(expect_error(form, 415).contains("application/json"));
    let json_post = |origin: &str| {
        http.post(&url)
            .header("content-type", "application/json")
            .header("origin", origin)
            .body(message("build-server", None, "deploy.done").to_string())
            .send()
            .unwrap()
    };
    assert!(expect_error(json_post("http://evil.example"), 403).contains("allowed_origins"));
    assert_eq!(json_post(&hub.url).status(), 200);
    assert_eq!(json_post("https://ops.example.com").status(), 200);
    // An <img> on another site: no Origin, but Sec-Fetch-Site says so.
    let img = http
        .get(format!("{}/v1/hosts/victim/messages", hub.url))
        .header("sec-fetch-site", "cross-site")
        .send()
        .unwrap();
    expect_error(img, 403);
    assert!(hub.host("victim").is_none());
}

#[test]
fn query_tokens_only_on_stream_routes_and_the_scheme_is_case_insensitive() {
    let hub = Hub::start_with(&[("MESYNC_TOKEN", "s3cret")]);
    let http = hub.http();
    send(&hub, &message("a", None, "t"));
    let delete = http
        .delete(format!("{}/v1/hosts/stream?token=s3cret", hub.url))
        .send()
        .unwrap();
    expect_error(delete, 401);
    assert!(hub.host("a").is_some());
    let lower = http
        .get(format!("{}/v1/hosts", hub.url))
        .header("authorization", "bearer s3cret")
        .send()
        .unwrap();
    assert_eq!(lower.status(), 200);
}
