//! The local cluster of `just e2e`: a hub and three daemons (machine-1..3),
//! each with its own base dir, on loopback. A broadcast and a targeted message
//! are sent with the CLI; the test shows where each landed and that the hooks
//! ran, then stops every process (also on failure: the harness kills them on
//! drop, and on Ctrl-C they die with the test process).
//!
//! `cargo test --test e2e -- --nocapture` (`just e2e`) prints the walk-through:
//! what is sent, by whom, and in the end one table of what reached each
//! inbox and how many hooks ran there.

mod common;

use common::daemon::*;
use common::{Machine, DEADLINE};

const HOSTS: [&str; 3] = ["machine-1", "machine-2", "machine-3"];

/// Prints, for each machine, what reached its inbox and how many hooks ran.
/// The `cluster.marker` messages only prove an absence (see [`settle`]):
/// they are left out.
fn show(c: &Cluster) {
    println!("\n== where each message landed");
    for m in &c.machines {
        let inbox: Vec<String> = m
            .messages("inbox")
            .iter()
            .filter(|v| v["type"] != "cluster.marker")
            .map(|v| {
                format!(
                    "{} from {}",
                    v["type"].as_str().unwrap_or("?"),
                    v["source"].as_str().unwrap_or("?")
                )
            })
            .collect();
        let hooks = lines(&m.base.join("hook-cluster.hello.log")).len()
            + lines(&m.base.join("hook-cluster.direct.log")).len();
        let inbox = if inbox.is_empty() {
            "nothing".to_string()
        } else {
            inbox.join(", ")
        };
        println!("  {:<10} inbox: {inbox}; hooks run: {hooks}", m.host);
    }
}

/// Waits for a marker sent after `earlier` from the same sender to `m`: the
/// hub keeps per-host order, so once the marker is in, anything `earlier`
/// meant for `m` would be in too. This proves an absence without sleeping.
fn settle(from: &Machine, to: &Machine) {
    let marker = from.send("cluster.marker", &["--target", &to.host]);
    wait_inbox_has(to, &[marker], DEADLINE);
}

fn types_in(m: &Machine) -> Vec<String> {
    m.messages("inbox")
        .iter()
        .filter_map(|v| v["type"].as_str().map(String::from))
        .filter(|t| t != "cluster.marker")
        .collect()
}

#[test]
fn local_cluster_delivers_broadcast_and_targeted_messages_and_runs_hooks() {
    let c = Cluster::start(&HOSTS, &[]);
    println!(
        "a hub at {} and three daemons ({}), each with its own base dir;",
        c.hub.url,
        HOSTS.join(", ")
    );
    println!("each daemon has a hook for cluster.hello and cluster.direct that records its runs");
    for m in &c.machines {
        record_hook(m, "cluster.hello");
        record_hook(m, "cluster.direct");
    }
    let (m1, m2, m3) = (c.m(0), c.m(1), c.m(2));

    let hello = m1.send("cluster.hello", &["--payload", r#"{"from":"machine-1"}"#]);
    println!("machine-1 sends cluster.hello to every other host (a broadcast): {hello}");
    wait_inbox_has(m2, std::slice::from_ref(&hello), DEADLINE);
    wait_inbox_has(m3, std::slice::from_ref(&hello), DEADLINE);

    let direct = m2.send(
        "cluster.direct",
        &["--target", "machine-3", "--priority", "high"],
    );
    println!("machine-2 sends cluster.direct to machine-3 only: {direct}");
    wait_inbox_has(m3, std::slice::from_ref(&direct), DEADLINE);

    // Prove what did not arrive: markers sent after both messages.
    println!("machine-3 sends a cluster.marker to machine-1 and machine-2: once it is there,");
    println!("anything the hub accepted before it for them would be there too: what is missing never comes");
    settle(m3, m1);
    settle(m3, m2);

    assert!(types_in(m1).is_empty(), "machine-1 got {:?}", types_in(m1));
    assert_eq!(types_in(m2), ["cluster.hello"]);
    let mut t3 = types_in(m3);
    t3.sort();
    assert_eq!(t3, ["cluster.direct", "cluster.hello"]);

    // Each receiver's hook ran once per message, and never on the sender.
    for (m, kind, runs) in [
        (m2, "cluster.hello", 1),
        (m3, "cluster.hello", 1),
        (m3, "cluster.direct", 1),
        (m1, "cluster.hello", 0),
        (m2, "cluster.direct", 0),
    ] {
        let log = m.base.join(format!("hook-{kind}.log"));
        if runs > 0 {
            common::wait_until(&format!("{kind} hook on {}", m.host), DEADLINE, || {
                lines(&log).len() == runs
            });
        }
        assert_eq!(lines(&log).len(), runs, "{kind} hook on {}", m.host);
    }
    show(&c);
    println!(
        "  (machine-1 sent the broadcast, so it gets no copy; only machine-3 got cluster.direct)"
    );
    println!("\nstopping the hub and the three daemons");
}
