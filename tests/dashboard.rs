//! The dashboard at `GET /` in a real headless Chromium against a real hub:
//! it shows hosts, counters and messages as they pass, never turns message
//! data into markup, and with a token it asks once while every data
//! endpoint stays closed to anyone without it.

#[path = "common/browser.rs"]
mod browser;
mod common;
#[path = "common/hub_tools.rs"]
mod hub_tools;

use browser::{Browser, Page};
use common::{Hub, Machine};
use serde_json::{json, Value};

const TOKEN: &str = "dash-s3cret";

/// True once the feed's EventSource is open, so a message accepted from
/// now on reaches the page.
const FEED_LIVE: &str = "document.getElementById('status').textContent === 'live'";

#[test]
#[cfg_attr(
    not(browser_tests),
    ignore = "needs Chromium (apt-get install chromium, then touch build.rs)"
)]
fn dashboard_shows_hosts_counters_and_messages_as_they_pass() {
    let browser = Browser::launch();
    let hub = Hub::start();
    // machine-2 holds its stream open, so it is registered and connected.
    let _machine_2 = hub.get("/v1/hosts/machine-2/stream").send().unwrap();
    let page = browser.open(&format!("{}/", hub.url));
    page.wait_for("the live feed", FEED_LIVE);

    let sender = hub.machine("machine-1");
    let hostile = "<img src=x onerror=document.title='owned'>";
    let payload = json!({"job": "web", "note": hostile}).to_string();
    let id = sender.send("build.done", &["--payload", &payload, "--priority", "high"]);
    send_outbox(&hub, &sender);

    page.wait_for_text(&id);
    let text = page.text();
    assert!(text.contains("build.done"), "{text}");
    assert!(text.contains("machine-1 \u{2192} all"), "{text}");
    assert!(text.contains(hostile), "payload not shown as text: {text}");
    assert_eq!(
        page.eval("document.querySelectorAll('img').length"),
        Ok(json!(0))
    );
    assert_eq!(page.eval("document.title"), Ok(json!("mesync hub")));

    // The broadcast is queued for machine-2; the sender was registered by posting.
    wait_for_host(&page, "machine-2", "connected", "1");
    wait_for_host(&page, "machine-1", "offline", "0");
    page.wait_for(
        "accepted = 1",
        "document.querySelector('[data-key=accepted] .value').textContent === '1'",
    );

    // A mistyped target: listed with its queue, never seen, never registered.
    hub_tools::send(
        &hub,
        &hub_tools::message("machine-1", Some("machine-3"), "t"),
    );
    page.wait_for(
        "machine-3 never seen, never registered",
        "[...document.querySelectorAll('#hosts tbody tr')].some(r => \
         r.cells[0].textContent === 'machine-3' && r.cells[3].textContent === 'never' && \
         r.cells[4].textContent === 'never')",
    );
}

#[test]
#[cfg_attr(
    not(browser_tests),
    ignore = "needs Chromium (apt-get install chromium, then touch build.rs)"
)]
fn dashboard_starts_with_the_last_messages_and_charts_each_second() {
    let hub = Hub::start();
    let sender = hub.machine("machine-1");
    let ids: Vec<String> = (0..3)
        .map(|i| sender.send("before.page", &["--payload", &format!("{{\"n\":{i}}}")]))
        .collect();
    send_outbox(&hub, &sender);
    // The chart has a second that counted them.
    common::wait_until("a counted second", common::DEADLINE, || {
        let a: Value = hub.get("/v1/activity").send().unwrap().json().unwrap();
        a["per_second"]["accepted"]
            .as_array()
            .is_some_and(|s| s.iter().any(|n| n.as_u64() > Some(0)))
    });

    let browser = Browser::launch();
    let page = browser.open(&format!("{}/", hub.url));
    page.wait_for("the live feed", FEED_LIVE);
    for id in &ids {
        page.wait_for_text(id);
    }
    // Newest first, as live messages are.
    let order = page
        .eval("[...document.querySelectorAll('#feed .id')].map(e => e.textContent)")
        .unwrap();
    let newest_first: Vec<&str> = ids.iter().rev().map(String::as_str).collect();
    assert_eq!(order, json!(newest_first));
    page.wait_for(
        "the chart",
        "document.getElementById('chart-accepted').getAttribute('points').split(' ').length > 1 \
         && !document.getElementById('chart-max').textContent.includes('peak 0/')",
    );
    page.wait_for(
        "a rate on every message counter",
        "[...document.querySelectorAll('.counter')].filter(c => c.dataset.key !== 'open_streams') \
         .every(c => /\\/s$/.test(c.querySelector('.rate').textContent))",
    );
}

#[test]
fn activity_keeps_the_last_50_accepted_messages_in_order() {
    let hub = Hub::start();
    let messages: Vec<Value> = (0..55)
        .map(|i| {
            json!({"id": uuid_v7(), "type": "t", "source": "machine-1", "target": null,
                   "priority": "normal", "created_at": "2026-11-24T10:30:00.123456+00:00",
                   "payload": {"n": i}})
        })
        .collect();
    let resp = hub.post("/v1/messages").json(&messages).send().unwrap();
    assert_eq!(resp.status(), 200);
    let recent = common::wait_for("50 recent messages", common::DEADLINE, || {
        let a: Value = hub.get("/v1/activity").send().ok()?.json().ok()?;
        let recent = a["recent"].as_array()?.clone();
        (recent.len() == 50 && recent[49]["payload"]["n"] == 54).then_some(recent)
    });
    let ns: Vec<u64> = recent
        .iter()
        .map(|m| m["payload"]["n"].as_u64().unwrap())
        .collect();
    assert_eq!(ns, (5..55).collect::<Vec<u64>>());
    let a: Value = hub
        .get("/v1/activity?recent=false")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(a["recent"], json!([]));
    assert!(a["per_second"]["accepted"].is_array());
    assert!(a["per_second"]["delivered"].is_array());
}

fn uuid_v7() -> String {
    mesync::message::Message::new("t", "machine-1", None, Default::default(), json!({}))
        .unwrap()
        .id
        .to_string()
}

#[test]
fn with_a_token_only_the_page_is_served_without_it() {
    let hub = Hub::start_with(&[("MESYNC_TOKEN", TOKEN)]);
    only_the_page_is_open(&hub);
}

#[test]
#[cfg_attr(
    not(browser_tests),
    ignore = "needs Chromium (apt-get install chromium, then touch build.rs)"
)]
fn dashboard_with_a_token_asks_once_and_nothing_leaks_without_it() {
    let hub = Hub::start_with(&[("MESYNC_TOKEN", TOKEN)]);
    only_the_page_is_open(&hub);
    let browser = Browser::launch();

    let page = browser.open(&format!("{}/", hub.url));
    page.wait_for("the token form", "!document.getElementById('login').hidden");
    assert!(
        !page.text().contains("Hosts"),
        "data shown before the token"
    );
    submit_token(&page, "not-the-token");
    page.wait_for_text("The hub refused that token");
    page.wait_for("the form again", "!document.getElementById('login').hidden");
    submit_token(&page, TOKEN);
    page.wait_for("the live feed", FEED_LIVE);

    let sender = hub.machine("machine-1");
    let id = sender.send("deploy.start", &[]);
    send_outbox(&hub, &sender);
    page.wait_for_text(&id);
    wait_for_host(&page, "machine-1", "offline", "0");

    // Asked once: a reload of the tab keeps the token.
    page.eval("window.beforeReload = true").unwrap();
    page.reload();
    page.wait_for(
        "the reloaded page, live without asking",
        &format!("!window.beforeReload && {FEED_LIVE}"),
    );

    // A link with the token in its fragment opens a new tab directly and
    // takes the token off the address.
    let tab = browser.open(&format!("{}/#token={TOKEN}", hub.url));
    tab.wait_for("the live feed", FEED_LIVE);
    assert_eq!(tab.eval("location.hash"), Ok(json!("")));
}

/// Without the token, `GET /` answers the page (which holds no data) and
/// every data endpoint answers 401.
fn only_the_page_is_open(hub: &Hub) {
    let open = reqwest::blocking::Client::new();
    let get = |path: &str| open.get(format!("{}{path}", hub.url)).send().unwrap();
    let page = get("/");
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(page.headers().contains_key("content-security-policy"));
    assert!(page.text().unwrap().contains("<title>mesync hub</title>"));
    for path in [
        "/v1/hosts",
        "/metrics",
        "/v1/stream",
        "/v1/stream?token=wrong",
        "/v1/activity",
        "/v1/hosts/machine-1/stream",
        "/v1/hosts/machine-1/messages",
        "/?token=wrong",
    ] {
        let status = get(path).status();
        let expected = if path.starts_with("/?") { 200 } else { 401 };
        assert_eq!(status, expected, "GET {path}");
    }
    let post = open
        .post(format!("{}/v1/messages", hub.url))
        .body("{}")
        .send()
        .unwrap();
    assert_eq!(post.status(), 401);
}

fn submit_token(page: &Page, token: &str) {
    let js = format!(
        "document.getElementById('token').value = {}; \
         document.getElementById('login').requestSubmit(); true",
        json!(token)
    );
    page.eval(&js).unwrap();
}

/// Waits for the host's row to show `state` and `pending`.
fn wait_for_host(page: &Page, host: &str, state: &str, pending: &str) {
    let js = format!(
        "[...document.querySelectorAll('#hosts tbody tr')].some(r => \
         r.cells[0].textContent === {} && r.cells[1].textContent === {} && \
         r.cells[2].textContent === {})",
        json!(host),
        json!(state),
        json!(pending)
    );
    page.wait_for(&format!("{host} {state} with {pending} pending"), &js);
}

/// Posts the machine's outbox files to the hub, as its daemon's send pass
/// does, and checks each was accepted.
fn send_outbox(hub: &Hub, m: &Machine) {
    let files = m.files("outbox");
    assert!(!files.is_empty(), "nothing in outbox/");
    for name in files {
        let body = std::fs::read(m.dir("outbox").join(&name)).unwrap();
        let resp = hub
            .post("/v1/messages")
            .header("content-type", "application/json")
            .body(body)
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200);
        let answer: Value = resp.json().unwrap();
        assert_eq!(answer["results"][0]["status"], "accepted", "{answer}");
        std::fs::remove_file(m.dir("outbox").join(&name)).unwrap();
    }
}

/// Writes `docs/dashboard.png` for the README from a hub with a few hosts
/// and messages: `cargo test --test dashboard -- --ignored`.
#[test]
#[ignore = "writes docs/dashboard.png; run by hand"]
fn readme_screenshot() {
    let browser = Browser::launch();
    let hub = Hub::start();
    let connected = ["build-01", "build-02", "web-01", "web-02", "db-primary"];
    let streams: Vec<_> = connected
        .iter()
        .map(|h| hub.get(&format!("/v1/hosts/{h}/stream")).send().unwrap())
        .collect();
    for h in ["laptop-ana", "edge-fra-1", "ci-runner-3"] {
        assert!(hub
            .get(&format!("/v1/hosts/{h}/messages"))
            .send()
            .unwrap()
            .status()
            .is_success());
    }
    let page = browser.open(&format!("{}/", hub.url));
    page.wait_for("the live feed", FEED_LIVE);
    let sample = [
        (
            "ci-runner-3",
            None,
            "build.done",
            "normal",
            json!({"job": "api", "commit": "4f2c9e1", "ok": true}),
        ),
        (
            "build-01",
            None,
            "deploy.start",
            "normal",
            json!({"service": "api", "version": "1.8.2"}),
        ),
        (
            "web-01",
            Some("db-primary"),
            "cache.flush",
            "low",
            json!({"keys": "session:*"}),
        ),
        (
            "build-01",
            None,
            "deploy.done",
            "normal",
            json!({"service": "api", "version": "1.8.2", "secs": 41}),
        ),
        (
            "db-primary",
            None,
            "backup.finished",
            "normal",
            json!({"bytes": 73400320, "file": "db-2026-11-24.zst"}),
        ),
        (
            "edge-fra-1",
            Some("laptop-ana"),
            "alert.disk",
            "high",
            json!({"mount": "/var", "used": 0.93}),
        ),
        ("web-02", None, "config.reload", "normal", json!({})),
        (
            "build-02",
            Some("web-02"),
            "task.event",
            "normal",
            json!({"step": "migrate", "state": "running"}),
        ),
    ];
    let mut accepted = 0;
    for (i, (source, target, kind, priority, payload)) in sample.iter().enumerate() {
        let created = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(40 - 5 * i as i64);
        let m = json!({
            "id": uuid::Uuid::now_v7().to_string(), "type": kind, "source": source,
            "target": target, "priority": priority, "created_at": created.to_string(),
            "payload": payload,
        });
        let answer: Value = hub
            .post("/v1/messages")
            .json(&m)
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(answer["results"][0]["status"], "accepted", "{answer}");
        accepted += 1;
        if i == 3 {
            let js = format!(
                "document.querySelector('[data-key=accepted] .value').textContent === '{accepted}'"
            );
            page.wait_for("the first messages counted", &js);
        }
    }
    // One message twice (accepted, then duplicate), then a refused one.
    let mut again = json!({
        "id": uuid::Uuid::now_v7().to_string(), "type": "task.event", "source": "web-01",
        "created_at": jiff::Timestamp::now().to_string(),
    });
    for _ in 0..2 {
        hub.post("/v1/messages").json(&again).send().unwrap();
    }
    again["type"] = json!("../etc/passwd");
    hub.post("/v1/messages").json(&again).send().unwrap();
    page.wait_for(
        "the last message counted",
        "document.querySelector('[data-key=rejected] .value').textContent === '1'",
    );
    // Connected hosts have taken and acked their messages; offline ones wait.
    for h in connected {
        let queued: Value = hub
            .get(&format!("/v1/hosts/{h}/messages"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        let ids: Vec<&Value> = queued["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| &e["message"]["id"])
            .collect();
        let acked = hub
            .post(&format!("/v1/hosts/{h}/ack"))
            .json(&json!({ "ids": ids }))
            .send();
        assert!(acked.unwrap().status().is_success());
    }
    for h in connected {
        wait_for_host(&page, h, "connected", "0");
    }
    let png = page.screenshot(1280, 900);
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/dashboard.png");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    std::fs::write(&out, png).unwrap();
    drop(streams);
}
