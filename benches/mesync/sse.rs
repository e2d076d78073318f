//! Concurrent SSE hosts on one hub: connections held, time for one broadcast
//! to reach all of them, and the hub's RSS while it holds them.
//!
//! The clients are raw TCP connections (a request line and a reader) so that
//! thousands of them cost the benchmark little next to the hub.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use crate::common::Hub;
use crate::footprint::rss_kib;
use crate::{ms, percentile, Plan, Row};

pub fn run(plan: &Plan) -> Vec<Row> {
    raise_fd_limit();
    let hub = Hub::start();
    let n = plan.sse_hosts;
    let port = hub.port;
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (held, mut arrivals) = rt.block_on(async move {
        let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<bool>(n.max(1));
        let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<Instant>(n.max(1));
        let opening = Arc::new(Semaphore::new(256));
        for i in 0..n {
            let (ready_tx, done_tx, opening) = (ready_tx.clone(), done_tx.clone(), opening.clone());
            tokio::spawn(async move {
                let permit = opening.acquire_owned().await;
                let stream = open_stream(port, &format!("sse-{i}")).await;
                drop(permit);
                let Some(mut stream) = stream else {
                    let _ = ready_tx.send(false).await;
                    return;
                };
                let _ = ready_tx.send(true).await;
                if wait_for(&mut stream, b"bench.broadcast", Duration::from_secs(60)).await {
                    let _ = done_tx.send(Instant::now()).await;
                }
            });
        }
        drop((ready_tx, done_tx));
        let mut held = 0;
        for _ in 0..n {
            match tokio::time::timeout(Duration::from_secs(60), ready_rx.recv()).await {
                Ok(Some(true)) => held += 1,
                Ok(Some(false)) => {}
                _ => break,
            }
        }
        // Every stream is registered once the hub counts it as open.
        let url = format!("http://127.0.0.1:{port}/v1/hosts");
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let open = open_streams(&url).await;
            if open >= held {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let start = Instant::now();
        let body = serde_json::json!({"type": "bench.broadcast", "source": "sse-sender",
            "id": uuid::Uuid::now_v7(), "created_at": mesync::message::now_rfc3339(), "payload": {}});
        reqwest::Client::new()
            .post(format!("http://127.0.0.1:{port}/v1/messages"))
            .json(&body)
            .send()
            .await
            .expect("post broadcast");
        let mut arrivals = Vec::with_capacity(held);
        while arrivals.len() < held {
            match tokio::time::timeout(Duration::from_secs(30), done_rx.recv()).await {
                Ok(Some(at)) => arrivals.push(at - start),
                _ => break,
            }
        }
        (held, arrivals)
    });
    let rss = rss_kib(hub.proc.pid()).unwrap_or(0);
    arrivals.sort();
    let all = arrivals.last().copied().unwrap_or_default();
    let reached = arrivals.len();
    vec![
        Row {
            what: "concurrent SSE hosts on one hub",
            target: ">= 5,000",
            measured: format!("{held} held open"),
            met: Some(held >= 5_000),
        },
        Row {
            what: "one broadcast reaching every SSE host",
            target: "<= 1 s",
            measured: format!(
                "{reached} of {held} reached; all in {}, p50 {}",
                ms(all),
                ms(percentile(&arrivals, 50.0))
            ),
            met: Some(reached == held && all <= Duration::from_secs(1)),
        },
        Row {
            what: "hub RSS holding those streams",
            target: "<= 200 MB",
            measured: format!("{:.1} MB", rss as f64 / 1024.0),
            met: Some(rss <= 200 * 1024),
        },
    ]
}

async fn open_stream(port: u16, host: &str) -> Option<TcpStream> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    let req = format!(
        "GET /v1/hosts/{host}/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.ok()?;
    // The status line arrives with the headers, before any event.
    wait_for(&mut s, b"200 OK", Duration::from_secs(30))
        .await
        .then_some(s)
}

/// Reads until `needle` shows up, the stream ends, or `limit` passes.
async fn wait_for(s: &mut TcpStream, needle: &[u8], limit: Duration) -> bool {
    let mut seen: Vec<u8> = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {
                seen.extend_from_slice(&buf[..n]);
                if seen.windows(needle.len()).any(|w| w == needle) {
                    return true;
                }
                // Keep only a tail long enough to match across reads.
                if seen.len() > 8192 {
                    seen.drain(..seen.len() - needle.len());
                }
            }
            _ => return false,
        }
    }
}

async fn open_streams(url: &str) -> usize {
    let Ok(resp) = reqwest::get(url).await else {
        return 0;
    };
    let Ok(v) = resp.json::<serde_json::Value>().await else {
        return 0;
    };
    v["hosts"]
        .as_array()
        .map(|h| {
            h.iter()
                .filter(|x| x["streams"].as_u64().unwrap_or(0) > 0)
                .count()
        })
        .unwrap_or(0)
}

/// Thousands of sockets need more descriptors than the usual soft limit; the
/// hub started afterwards inherits the raised limit.
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
