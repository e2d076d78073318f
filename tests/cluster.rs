//! The walk-through of `just cluster`: 3 NATS nodes, 2 hubs on them and 3
//! daemons on loopback, each daemon listing the hubs in its own order. A
//! broadcast and a targeted message are sent with the CLI; the test shows
//! where each landed and which hub each machine uses. Then messages flow
//! while a hub and a NATS node are killed, and it shows delivery went on.
//!
//! `cargo test --test cluster -- --nocapture` (`just cluster`) prints it.

mod common;

use common::daemon::*;
use common::nats::Cluster as Nats;
use common::{wait_until, Hub, Machine, Proc, DEADLINE};

const HOSTS: [&str; 3] = ["machine-1", "machine-2", "machine-3"];

/// The hub `m`'s daemon uses, as `mesync status` says.
fn hub_in_use(m: &Machine) -> String {
    let out = m.run(&["status"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.trim().strip_prefix("using the hub at ").map(String::from))
        .unwrap_or_else(|| "?".into())
}

fn show(machines: &[Machine], hubs: &[(&str, &str)]) {
    for m in machines {
        let used = hub_in_use(m);
        let name = hubs
            .iter()
            .find(|(_, url)| *url == used)
            .map_or(used.as_str(), |(n, _)| n);
        let mut kinds: Vec<String> = m
            .messages("inbox")
            .iter()
            .filter_map(|v| v["type"].as_str().map(String::from))
            .collect();
        let flow = kinds.iter().filter(|k| *k == "cluster.flow").count();
        kinds.retain(|k| k != "cluster.flow");
        println!(
            "  {:<10} via {name:<6} inbox: {}{}",
            m.host,
            if kinds.is_empty() {
                "-".into()
            } else {
                kinds.join(", ")
            },
            if flow > 0 {
                format!(" + {flow} cluster.flow")
            } else {
                String::new()
            }
        );
    }
}

#[test]
fn cluster_of_two_hubs_on_nats_keeps_delivering() {
    let mut nats = Nats::start(3);
    println!("\n== 3 NATS nodes: {}", nats.store_url());
    let mut one = Hub::start_on(&nats.store_url(), &[]);
    let two = Hub::start_on(&nats.store_url(), &[]);
    let (a, b) = (one.url.clone(), two.url.clone());
    println!("== hub-1 at {a}, hub-2 at {b}");
    let orders = [format!("{a},{b}"), format!("{b},{a}"), format!("{a},{b}")];
    let machines: Vec<Machine> = HOSTS
        .iter()
        .zip(&orders)
        .map(|(h, urls)| Machine::new(h, urls))
        .collect();
    let _daemons: Vec<Proc> = machines
        .iter()
        .map(|m| start_daemon_with(m, &[("MESYNC_HTTP_TIMEOUT", "2")]))
        .collect();
    for m in &machines {
        wait_until(&format!("{} streaming", m.host), DEADLINE, || {
            [&one, &two].iter().any(|h| {
                h.host(&m.host)
                    .is_some_and(|i| i["streams"].as_u64() >= Some(1))
            })
        });
    }
    let hubs = [("hub-1", a.as_str()), ("hub-2", b.as_str())];

    println!(
        "\n== machine-1 broadcasts cluster.hello; machine-3 sends cluster.direct to machine-2"
    );
    let hello = machines[0].send("cluster.hello", &[]);
    let direct = machines[2].send("cluster.direct", &["--target", "machine-2"]);
    wait_inbox_has(&machines[1], &[hello.clone(), direct], DEADLINE);
    wait_inbox_has(&machines[2], &[hello], DEADLINE);
    show(&machines, &hubs);

    println!(
        "\n== machine-1 sends 300 broadcasts; hub-1 and then NATS node n1 are killed meanwhile"
    );
    let ids = fill_outbox(&machines[0], "cluster.flow", None, 300);
    wait_until("the flow under way", DEADLINE, || {
        machines[1].files("inbox").len() >= 30
    });
    one.proc.kill9();
    println!(
        "  hub-1 killed (machine-2 had {} files)",
        machines[1].files("inbox").len()
    );
    wait_until("more of the flow", DEADLINE, || {
        machines[2].files("inbox").len() >= 100
    });
    nats.kill9(0);
    println!(
        "  NATS n1 killed (machine-3 had {} files)",
        machines[2].files("inbox").len()
    );
    for m in &machines[1..] {
        wait_inbox_has(m, &ids, std::time::Duration::from_secs(60));
    }
    println!("\n== every cluster.flow message arrived, once each");
    show(&machines, &hubs);
    for m in &machines[1..] {
        let got = m
            .messages("inbox")
            .iter()
            .filter(|v| v["type"] == "cluster.flow")
            .count();
        assert_eq!(got, ids.len(), "{}", m.host);
    }
    nats.restart(0);
    one.restart(&[]);
    println!("\n== hub-1 and n1 are back; every process stops at the end");
}
