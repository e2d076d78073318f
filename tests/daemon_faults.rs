//! Crashes and outages lose nothing and double nothing.

mod common;

use std::time::Duration;

use common::daemon::*;
use common::{wait_until, DEADLINE};

const LONG: Duration = Duration::from_secs(40);

#[test]
fn hub_down_while_sending_then_up_delivers_all_once() {
    let mut c = Cluster::start(&["m1", "m2"], &[]);
    c.hub.proc.kill9();
    let ids = fill_outbox(c.m(0), "t", Some("m2"), 50);
    let _ = c.m(0).send("t", &["--target", "m2"]);
    wait_until("m1 tried and kept its files", DEADLINE, || {
        c.m(0).files("outbox").len() == 51
    });
    c.hub.restart(&[]);
    let mut ids = ids;
    ids.extend(
        c.m(0)
            .messages("outbox")
            .iter()
            .filter_map(|v| v["id"].as_str().map(String::from)),
    );
    ids.sort();
    ids.dedup();
    wait_inbox_has(c.m(1), &ids, LONG);
    wait_until("m1 outbox drained", DEADLINE, || {
        c.m(0).files("outbox").is_empty()
    });
    assert_exactly_once(c.m(1), &ids);
}

#[test]
fn kill_hub_mid_burst_loses_nothing() {
    let mut c = Cluster::start(&["m1", "m2", "m3"], &[]);
    let ids = fill_outbox(c.m(0), "burst", None, 1000);
    wait_mid_burst(c.m(1));
    c.hub.proc.kill9();
    eprintln!(
        "hub killed with {} of 1000 in m2's inbox",
        c.m(1).files("inbox").len()
    );
    c.hub.restart(&[]);
    for i in [1, 2] {
        wait_inbox_has(c.m(i), &ids, LONG);
    }
    wait_until("m1 outbox drained", DEADLINE, || {
        c.m(0).files("outbox").is_empty()
    });
    for i in [1, 2] {
        assert_acked_exactly_once(&c, i, &ids);
    }
}

#[test]
fn kill_receiving_daemon_mid_burst_loses_nothing() {
    let mut c = Cluster::start(&["m1", "m2", "m3"], &[]);
    let ids = fill_outbox(c.m(0), "burst", None, 1000);
    wait_mid_burst(c.m(1));
    c.daemons[1].kill9();
    eprintln!(
        "m2 killed with {} of 1000 in its inbox",
        c.m(1).files("inbox").len()
    );
    c.restart_daemon(1);
    for i in [1, 2] {
        wait_inbox_has(c.m(i), &ids, LONG);
        assert_acked_exactly_once(&c, i, &ids);
    }
}

#[test]
fn kill_9_of_hub_and_daemons_amid_traffic_both_ways_loses_and_doubles_nothing() {
    let mut c = Cluster::start(&["m1", "m2", "m3"], &[]);
    // Every machine broadcasts and targets its neighbour, in waves, while
    // the hub and two daemons are killed and restarted.
    let mut sent: Vec<Vec<String>> = vec![Vec::new(); 3];
    let mut expected: Vec<Vec<String>> = vec![Vec::new(); 3];
    for wave in 0..4 {
        for (from, mine) in sent.iter_mut().enumerate() {
            let next = (from + 1) % 3;
            let all = fill_outbox(c.m(from), "wave", None, 100);
            let one = fill_outbox(c.m(from), "wave", Some(&c.m(next).host), 50);
            for to in (0..3).filter(|&to| to != from) {
                expected[to].extend(all.iter().cloned());
            }
            expected[next].extend(one.iter().cloned());
            mine.extend(all.into_iter().chain(one));
        }
        match wave {
            0 => {
                c.hub.proc.kill9();
                c.hub.restart(&[]);
            }
            1 => {
                c.daemons[1].kill9();
                c.restart_daemon(1);
            }
            2 => {
                c.hub.proc.kill9();
                c.daemons[2].kill9();
                c.hub.restart(&[]);
                c.restart_daemon(2);
            }
            _ => {}
        }
    }
    for (i, ids) in expected.iter().enumerate() {
        wait_inbox_has(c.m(i), ids, LONG);
    }
    for (i, ids) in expected.iter().enumerate() {
        wait_until("outbox drained", DEADLINE, || {
            c.m(i).files("outbox").is_empty()
        });
        assert_eq!(c.m(i).files("sent").len(), sent[i].len());
        assert_acked_exactly_once(&c, i, ids);
    }
}

/// Waits until the first files of the burst reached `m`'s inbox (the rest is in flight).
fn wait_mid_burst(m: &common::Machine) {
    wait_until("burst under way", DEADLINE, || m.files("inbox").len() >= 10);
}

/// Waits until the hub holds nothing unacked for machine `i`, then checks
/// that each of `ids` is in its inbox exactly once.
fn assert_acked_exactly_once(c: &Cluster, i: usize, ids: &[String]) {
    wait_until("acks settle", DEADLINE, || {
        host_info(&c.hub, &c.m(i).host).is_some_and(|h| h["pending"] == 0)
    });
    assert_exactly_once(c.m(i), ids);
}
