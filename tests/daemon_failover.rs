//! Daemons that list several hubs on one NATS JetStream cluster: a hub
//! killed mid-burst and a NATS node killed mid-burst lose nothing and
//! double nothing; each daemon moves to the next hub it lists and resumes
//! its stream there, and `mesync status` names the hub in use.

mod common;

use std::time::Duration;

use common::daemon::*;
use common::nats::Cluster as Nats;
use common::{wait_until, Hub, Machine, Proc, DEADLINE};

const LONG: Duration = Duration::from_secs(60);

/// Whether `host` holds a stream open on one of the hubs.
fn streaming(hubs: &[&Hub], host: &str) -> bool {
    hubs.iter().any(|h| {
        h.host(host)
            .is_some_and(|i| i["streams"].as_u64() >= Some(1))
    })
}

#[test]
fn a_hub_and_a_nats_node_killed_mid_burst_lose_and_double_nothing() {
    let mut nats = Nats::start(3);
    let store = nats.store_url();
    let mut one = Hub::start_on(&store, &[]);
    let two = Hub::start_on(&store, &[]);
    let (a, b) = (one.url.clone(), two.url.clone());
    // Each daemon lists the hubs in its own order.
    let orders = [format!("{a},{b}"), format!("{b},{a}"), format!("{a},{b}")];
    let machines: Vec<Machine> = ["m1", "m2", "m3"]
        .iter()
        .zip(&orders)
        .map(|(h, urls)| Machine::new(h, urls))
        .collect();
    let hooks: Vec<_> = machines[1..]
        .iter()
        .map(|m| record_hook(m, "burst"))
        .collect();
    let _daemons: Vec<Proc> = machines
        .iter()
        .map(|m| start_daemon_with(m, &[("MESYNC_HTTP_TIMEOUT", "2")]))
        .collect();
    for m in &machines {
        wait_until(&format!("{} streaming", m.host), DEADLINE, || {
            streaming(&[&one, &two], &m.host)
        });
    }

    let ids = fill_outbox(&machines[0], "burst", None, 1000);
    wait_until("the burst under way", DEADLINE, || {
        machines[1].files("inbox").len() >= 10
    });
    one.proc.kill9();
    eprintln!(
        "hub 1 killed with {} of 1000 in m2's inbox",
        machines[1].files("inbox").len()
    );
    wait_until("m1 to move to hub 2", DEADLINE, || {
        let out = machines[0].run(&["status"]);
        String::from_utf8_lossy(&out.stdout).contains(&format!("using the hub at {b}"))
    });
    wait_until("more of the burst", DEADLINE, || {
        machines[2].files("inbox").len() >= 300
    });
    nats.kill9(0);
    eprintln!(
        "NATS node 1 killed with {} of 1000 in m3's inbox",
        machines[2].files("inbox").len()
    );
    nats.restart(0);
    one.restart(&[]);

    for m in &machines[1..] {
        wait_inbox_has(m, &ids, LONG);
    }
    wait_until("m1's outbox drained", DEADLINE, || {
        machines[0].files("outbox").is_empty()
    });
    for (m, hook) in machines[1..].iter().zip(&hooks) {
        wait_until(&format!("{}: acks settle", m.host), LONG, || {
            two.host(&m.host).is_some_and(|h| h["pending"] == 0)
        });
        assert_exactly_once(m, &ids);
        wait_until(&format!("{}: every hook ran", m.host), LONG, || {
            lines(hook).len() >= ids.len()
        });
        let mut ran: Vec<String> = lines(hook)
            .iter()
            .filter_map(|l| l.split(' ').next().map(String::from))
            .collect();
        ran.sort();
        let total = ran.len();
        ran.dedup();
        assert_eq!(
            (total, ran.len()),
            (ids.len(), ids.len()),
            "{}: hooks",
            m.host
        );
    }
}
