//! Several hubs on one NATS JetStream cluster (3 nodes on loopback): a
//! message accepted by one hub reaches a stream open on another, an id is
//! a duplicate on every hub, every hub shows the same fleet, sequence
//! numbers only grow across hubs and restarts, and a hub whose cluster lost
//! its quorum answers 503, never `accepted`.

mod common;
#[path = "common/hub_tools.rs"]
mod hub_tools;

use std::time::Duration;

use common::nats::Cluster;
use common::{wait_until, Hub, DEADLINE};
use hub_tools::*;
use serde_json::{json, Value};

#[test]
fn hubs_on_one_cluster_serve_one_fleet() {
    let nats = Cluster::start(3);
    let one = Hub::start_on(&nats.store_url(), &[]);
    let mut two = Hub::start_on(&nats.store_url(), &[]);

    // A stream open on hub 2 gets what hub 1 accepted, pushed.
    poll(&one, "b", "");
    let mut sse = Sse::open(&two, "/v1/hosts/b/stream", &[]);
    let (m1, m2) = (message("a", None, "t"), message("a", Some("b"), "t"));
    send(&one, &m1);
    send(&one, &m2);
    let got = sse.events(2);
    assert_eq!(got[0].message(), m1);
    assert_eq!(got[1].message(), m2);
    let first = got[0].id.unwrap();
    assert!(got[1].id.unwrap() > first);

    // The same id posted to the other hub is a duplicate.
    assert_eq!(post(&two, &m1)[0]["status"], "duplicate");

    // Acked through hub 2, gone on hub 1 too; one view of the fleet.
    assert_eq!(ack(&two, "b", &[id_of(&m1)]), 1);
    wait_until("both hubs to show the same fleet", DEADLINE, || {
        fleet(&one) == fleet(&two)
    });
    assert_eq!(poll(&one, "b", ""), [(got[1].id.unwrap(), m2.clone())]);

    // Resume by Last-Event-ID on the other hub.
    let mut resumed = Sse::open(
        &one,
        "/v1/hosts/b/stream",
        &[("Last-Event-ID", &first.to_string())],
    );
    assert_eq!(resumed.events(1)[0].message(), m2);

    // Sequence numbers keep growing across a hub's kill -9 and restart.
    two.proc.kill9();
    two.restart(&[]);
    let m3 = message("a", Some("b"), "t");
    send(&two, &m3);
    let seqs: Vec<u64> = poll(&one, "b", "").iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs.len(), 2);
    assert!(seqs[1] > got[1].id.unwrap(), "{seqs:?}");
}

#[test]
fn a_hub_without_quorum_answers_503_and_a_hub_waits_for_nats() {
    let mut nats = Cluster::start(3);
    let hub = Hub::start_on(&nats.store_url(), &[]);
    send(&hub, &message("a", None, "t"));
    nats.kill9(1);
    nats.kill9(2);
    let resp = hub
        .post("/v1/messages")
        .timeout(Duration::from_secs(30))
        .json(&message("a", None, "t"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 503, "{:?}", resp.text());

    // A hub started while its cluster is down waits and says so.
    nats.kill9(0);
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = common::mesync_cmd(tmp.path());
    cmd.env("MESYNC_HOST_ID", "hub")
        .env("MESYNC_STORE", nats.store_url())
        .args(["serve", "--bind", "127.0.0.1:0"]);
    let mut waiting = common::Proc::spawn("hub-waiting", cmd);
    wait_until("the hub to say it waits for NATS", DEADLINE, || {
        waiting.log().contains("waiting for NATS")
    });
    assert!(waiting.is_running());
    for i in 0..3 {
        nats.restart(i);
    }
    let addr = waiting.hub_addr().expect("the hub listens");
    let resp = reqwest::blocking::Client::builder()
        .timeout(DEADLINE)
        .build()
        .unwrap()
        .post(format!("http://{addr}/v1/messages"))
        .json(&message("a", None, "t"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().unwrap();
    assert_eq!(v["results"][0]["status"], json!("accepted"));
}
