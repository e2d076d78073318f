//! Who may do what at a hub with credentials: host, read and admin
//! credentials made by `mesync token`, their reload while the hub runs,
//! watching without registering, and `max_hosts`.

mod common;
#[path = "common/hub_tools.rs"]
mod hub_tools;

use std::path::Path;
use std::process::Command;

use common::{signal, wait_until, Hub, DEADLINE};
use hub_tools::*;
use serde_json::{json, Value};

/// Runs `mesync token ...` on this tokens file; its stdout.
fn token(file: &Path, args: &[&str]) -> String {
    let out = Command::new(common::bin())
        .arg("token")
        .args(args)
        .env("MESYNC_TOKENS_FILE", file)
        .env("MESYNC_BASE_DIR", file.parent().unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The status of a request with `secret` as bearer credential.
fn status(hub: &Hub, method: &str, path: &str, secret: &str, body: Option<Value>) -> u16 {
    let url = format!("{}{path}", hub.url);
    let http = hub.http();
    let req = match method {
        "GET" => http.get(url),
        "DELETE" => http.delete(url),
        _ => http.post(url).json(&body.unwrap_or(json!({}))),
    };
    req.bearer_auth(secret).send().unwrap().status().as_u16()
}

#[test]
fn each_credential_does_only_what_its_role_allows() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens.toml");
    let web = token(&file, &["add", "--host", "web-1", "--label", "web one"]);
    let reader = token(&file, &["add", "--role", "read"]);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        !text.contains(&web) && !text.contains(&reader),
        "secrets stored: {text}"
    );
    let listed = token(&file, &["list"]);
    assert!(listed.contains("web-1") && listed.contains("web one") && !listed.contains(&web));
    let hub = Hub::start_with(&[
        ("MESYNC_TOKEN", "admin-secret"),
        ("MESYNC_TOKENS_FILE", file.to_str().unwrap()),
    ]);
    // A host credential posts only as its host; a left-out source is its host.
    let own = status(
        &hub,
        "POST",
        "/v1/messages",
        &web,
        Some(message("web-1", None, "t")),
    );
    assert_eq!(own, 200);
    let resp = hub
        .http()
        .post(format!("{}/v1/messages", hub.url))
        .bearer_auth(&web)
        .json(&json!([message("build-server", None, "t"), {"type": "no.source"}]))
        .send()
        .unwrap();
    let v: Value = resp.json().unwrap();
    assert_eq!(v["results"][0]["status"], "rejected");
    let error = v["results"][0]["error"].as_str().unwrap();
    assert!(
        error.contains("build-server") && error.contains("web-1"),
        "{error}"
    );
    assert_eq!(v["results"][1]["status"], "accepted");
    // Its own queue only, and nothing of the operator's.
    assert_eq!(
        status(&hub, "GET", "/v1/hosts/web-1/messages", &web, None),
        200
    );
    assert_eq!(
        status(&hub, "GET", "/v1/hosts/web-2/messages", &web, None),
        403
    );
    let ack = Some(json!({"ids": []}));
    assert_eq!(status(&hub, "POST", "/v1/hosts/web-2/ack", &web, ack), 403);
    assert_eq!(status(&hub, "DELETE", "/v1/hosts/web-1", &web, None), 403);
    assert_eq!(status(&hub, "GET", "/metrics", &web, None), 403);
    assert_eq!(status(&hub, "GET", "/v1/hosts", &web, None), 200);
    // A read credential looks at any queue without registering it.
    assert_eq!(
        status(&hub, "GET", "/v1/hosts/web-2/messages", &reader, None),
        200
    );
    assert!(hub.host("web-2").is_none(), "a reader registered web-2");
    assert_eq!(status(&hub, "GET", "/metrics", &reader, None), 200);
    let post = Some(message("web-1", None, "t"));
    assert_eq!(status(&hub, "POST", "/v1/messages", &reader, post), 403);
    assert_eq!(
        status(&hub, "DELETE", "/v1/hosts/web-1", &reader, None),
        403
    );
    assert_eq!(status(&hub, "GET", "/v1/hosts", "guess", None), 401);
    // Revoked while the hub runs: refused within the reload period.
    let id = token(&file, &["list"])
        .lines()
        .find(|l| l.contains("read"))
        .and_then(|l| l.split_whitespace().next().map(String::from))
        .unwrap();
    token(&file, &["remove", &id]);
    wait_until("the removed credential to be refused", DEADLINE, || {
        status(&hub, "GET", "/v1/hosts", &reader, None) == 401
    });
    // Added, then SIGHUP: accepted.
    let admin2 = token(&file, &["add", "--role", "admin"]);
    signal(hub.proc.pid(), "HUP");
    wait_until("the new credential to be accepted", DEADLINE, || {
        status(&hub, "DELETE", "/v1/hosts/web-1", &admin2, None) == 204
    });
    assert_eq!(status(&hub, "GET", "/v1/hosts", "admin-secret", None), 200);
}

#[test]
fn watching_never_registers_and_unregistered_targets_are_listed() {
    let hub = Hub::start();
    let get = |path: &str| hub.get(path).send().unwrap().status().as_u16();
    assert_eq!(get("/v1/hosts/ghost/messages?watch=true"), 200);
    // The answer's head comes after the handler decided about registering.
    let sse = hub.get("/v1/hosts/ghost/stream?watch=true").send().unwrap();
    assert_eq!(sse.status(), 200);
    assert!(hub.host("ghost").is_none(), "watching registered ghost");
    drop(sse);
    send(&hub, &message("a", Some("typo-host"), "t"));
    let typo = hub.host("typo-host").expect("a queued-for host is listed");
    assert_eq!(typo["registered_at"], Value::Null);
    assert_eq!(typo["pending"], 1);
}

#[test]
fn registrations_beyond_max_hosts_are_refused_naming_the_limit() {
    let hub = Hub::start_with(&[("MESYNC_MAX_HOSTS", "3")]);
    for h in ["a", "b", "c"] {
        assert_eq!(
            hub.get(&format!("/v1/hosts/{h}/messages"))
                .send()
                .unwrap()
                .status(),
            200
        );
    }
    let refused = hub.get("/v1/hosts/d/messages").send().unwrap();
    let e = expect_error(refused, 429);
    assert!(e.contains("3") && e.contains("max_hosts"), "{e}");
    let post = hub
        .post("/v1/messages")
        .json(&message("e", None, "t"))
        .send()
        .unwrap();
    expect_error(post, 429);
    // Registered hosts go on as before.
    assert_eq!(
        hub.get("/v1/hosts/a/messages").send().unwrap().status(),
        200
    );
    assert!(hub.host("d").is_none() && hub.host("e").is_none());
}

/// How many requests the hub timed on a route.
fn requests_on(hub: &Hub, route: &str) -> u64 {
    let text = hub.get("/metrics").send().unwrap().text().unwrap();
    let key = format!("mesync_request_duration_seconds_count{{route=\"{route}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&key)?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_refused_daemon_says_so_once_and_status_names_it() {
    let hub = Hub::start_with(&[("MESYNC_TOKEN", "right")]);
    let m = hub.machine("m1");
    let mut cmd = m.cmd();
    cmd.env("MESYNC_TOKEN", "wrong").arg("start");
    let daemon = common::Proc::spawn("daemon-refused", cmd);
    wait_until("several refused stream attempts", DEADLINE, || {
        requests_on(&hub, "/v1/hosts/{host}/stream") >= 4
    });
    let log = daemon.log();
    assert_eq!(log.matches("refuses our credential").count(), 1, "{log}");
    assert!(log.contains("MESYNC_TOKEN"), "{log}");
    let status = m
        .cmd()
        .env("MESYNC_TOKEN", "wrong")
        .arg("status")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("reachable") && text.contains("refuses our token"),
        "{text}"
    );
}
