//! Helpers for the hub's own tests: building messages, posting them, and
//! reading an SSE stream line by line with deadlines.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::Hub;

/// A complete message from `source` (to `target`, or broadcast) with a fresh id.
pub fn message(source: &str, target: Option<&str>, kind: &str) -> Value {
    json!({
        "id": uuid::Uuid::now_v7().to_string(),
        "type": kind,
        "source": source,
        "target": target,
        "priority": "normal",
        "created_at": "2026-11-24T10:30:00.123456+00:00",
        "payload": {"n": 1},
    })
}

pub fn id_of(m: &Value) -> String {
    m["id"].as_str().unwrap().to_string()
}

/// Posts a message or a batch; returns the `results` (asserting 200, or
/// 422 for a single message that was rejected).
pub fn post(hub: &Hub, body: &Value) -> Vec<Value> {
    let resp = hub.post("/v1/messages").json(body).send().unwrap();
    let status = resp.status();
    let v: Value = resp.json().unwrap();
    let results = v["results"].as_array().unwrap().clone();
    let lone_rejected = !body.is_array() && results[0]["status"] == "rejected";
    assert_eq!(status, if lone_rejected { 422 } else { 200 }, "{v}");
    results
}

/// Posts one message and asserts it was accepted.
pub fn send(hub: &Hub, m: &Value) {
    let r = post(hub, m);
    assert_eq!(r[0]["status"], "accepted", "{r:?}");
}

/// Long-polls `host` (registering it): `(seq, message)` pairs.
pub fn poll(hub: &Hub, host: &str, query: &str) -> Vec<(u64, Value)> {
    let resp = hub
        .get(&format!("/v1/hosts/{host}/messages?{query}"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().unwrap();
    v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["seq"].as_u64().unwrap(), e["message"].clone()))
        .collect()
}

pub fn ack(hub: &Hub, host: &str, ids: &[String]) -> u64 {
    let resp = hub
        .post(&format!("/v1/hosts/{host}/ack"))
        .json(&json!({"ids": ids}))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json::<Value>().unwrap()["acked"].as_u64().unwrap()
}

/// `GET /v1/hosts` as (id -> host object).
pub fn hosts(hub: &Hub) -> Vec<Value> {
    let v: Value = hub.get("/v1/hosts").send().unwrap().json().unwrap();
    v["hosts"].as_array().unwrap().clone()
}

/// Each host's id and pending count, as `GET /v1/hosts` lists them.
pub fn pending_by_host(hub: &Hub) -> Vec<(String, u64)> {
    hosts(hub)
        .iter()
        .map(|h| {
            (
                h["id"].as_str().unwrap().to_string(),
                h["pending"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// What a hub must keep of each host across restarts and hubs: id,
/// registration time and pending count (last_seen lives in memory only).
pub fn fleet(hub: &Hub) -> Vec<(Value, Value, Value)> {
    hosts(hub)
        .into_iter()
        .map(|h| {
            (
                h["id"].clone(),
                h["registered_at"].clone(),
                h["pending"].clone(),
            )
        })
        .collect()
}

pub fn host_info(hub: &Hub, id: &str) -> Option<Value> {
    hub.host(id)
}

/// Asserts a JSON error answer with this status; returns the sentence.
pub fn expect_error(resp: reqwest::blocking::Response, status: u16) -> String {
    assert_eq!(resp.status(), status);
    let v: Value = resp.json().expect("error body is JSON");
    let e = v["error"].as_str().expect("error is a string").to_string();
    assert!(!e.is_empty());
    e
}

/// One SSE event.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub id: Option<u64>,
    pub event: Option<String>,
    pub data: String,
}

impl SseEvent {
    pub fn message(&self) -> Value {
        serde_json::from_str(&self.data).unwrap()
    }
}

/// An open SSE response, read line by line.
pub struct Sse {
    pub resp_headers: reqwest::header::HeaderMap,
    reader: BufReader<reqwest::blocking::Response>,
    partial: Vec<u8>,
    pub comments: Vec<String>,
}

impl Sse {
    /// Opens `path` (with the hub's token unless `path` carries its own).
    pub fn open(hub: &Hub, path: &str, headers: &[(&str, &str)]) -> Sse {
        let client = reqwest::blocking::Client::builder()
            // Per read: the hub sends a keepalive at least this often in tests.
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let mut req = client.get(format!("{}{path}", hub.url));
        if let (Some(t), false) = (&hub.token, path.contains("token=")) {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().unwrap();
        assert_eq!(resp.status(), 200, "opening {path}");
        Sse {
            resp_headers: resp.headers().clone(),
            reader: BufReader::new(resp),
            partial: Vec::new(),
            comments: Vec::new(),
        }
    }

    /// The next line (without its newline), or None at the deadline or end.
    fn line(&mut self, deadline: Instant) -> Option<String> {
        loop {
            match self.reader.read_until(b'\n', &mut self.partial) {
                Ok(0) => return None,
                Ok(_) if self.partial.ends_with(b"\n") => {
                    let line = String::from_utf8_lossy(&self.partial)
                        .trim_end()
                        .to_string();
                    self.partial.clear();
                    return Some(line);
                }
                Ok(_) => {}
                Err(_) if Instant::now() < deadline => {}
                Err(_) => return None,
            }
            if Instant::now() >= deadline {
                return None;
            }
        }
    }

    /// The next event (comments are collected, not returned).
    pub fn next_event(&mut self, timeout: Duration) -> Option<SseEvent> {
        let deadline = Instant::now() + timeout;
        let mut ev = SseEvent {
            id: None,
            event: None,
            data: String::new(),
        };
        let mut any = false;
        loop {
            let line = self.line(deadline)?;
            if line.is_empty() {
                if any {
                    return Some(ev);
                }
                continue;
            }
            if let Some(c) = line.strip_prefix(':') {
                self.comments.push(c.trim().to_string());
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((&line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            any = true;
            match field {
                "id" => ev.id = value.parse().ok(),
                "event" => ev.event = Some(value.to_string()),
                "data" => ev.data.push_str(value),
                _ => {}
            }
        }
    }

    /// The next `n` events, panicking if they do not come in time.
    pub fn events(&mut self, n: usize) -> Vec<SseEvent> {
        (0..n)
            .map(|i| {
                self.next_event(crate::common::DEADLINE)
                    .unwrap_or_else(|| panic!("event {} of {n} did not come", i + 1))
            })
            .collect()
    }

    /// Waits until a comment line with this text was seen.
    pub fn wait_comment(&mut self, text: &str) {
        let deadline = Instant::now() + crate::common::DEADLINE;
        while !self.comments.iter().any(|c| c == text) {
            assert!(
                self.line(deadline).is_some_and(|l| {
                    if let Some(c) = l.strip_prefix(':') {
                        self.comments.push(c.trim().to_string());
                    }
                    true
                }),
                "no {text:?} comment came"
            );
        }
    }
}

/// Sends a request with its path exactly as given (no client-side
/// normalization of `..` or `%2e%2e`); returns the status and body.
pub fn raw_request(hub: &Hub, method: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", hub.port)).unwrap();
    conn.set_read_timeout(Some(crate::common::DEADLINE))
        .unwrap();
    let auth = hub
        .token
        .as_ref()
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    conn.write_all(req.as_bytes()).unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    let status = answer[9..12].parse().unwrap();
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// The hub's segment files, oldest first.
pub fn segments(hub: &Hub) -> Vec<std::path::PathBuf> {
    let mut found: Vec<_> = std::fs::read_dir(hub.data_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    found.sort();
    found
}
