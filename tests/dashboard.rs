//! The dashboard at `GET /` in a real headless Chromium against a real hub:
//! it shows hosts, counters and messages as they pass, never turns message
//! data into markup, and with a token it asks once while every data
//! endpoint stays closed to anyone without it.

#[path = "common/browser.rs"]
mod browser;
mod common;

use browser::{Browser, Page};
use common::{Hub, Machine};
use serde_json::{json, Value};

const TOKEN: &str = "dash-s3cret";

/// True once the feed's EventSource is open, so a message accepted from
/// now on reaches the page.
const FEED_LIVE: &str = "document.getElementById('status').textContent === 'live'";

#[test]
fn dashboard_shows_hosts_counters_and_messages_as_they_pass() {
    let Some(browser) = Browser::launch() else {
        return;
    };
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
}

#[test]
fn dashboard_with_a_token_asks_once_and_nothing_leaks_without_it() {
    let Some(browser) = Browser::launch() else {
        return;
    };
    let hub = Hub::start_with(&[("MESYNC_TOKEN", TOKEN)]);
    only_the_page_is_open(&hub);

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
