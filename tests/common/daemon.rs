//! Harness additions for the daemon tests: clusters of daemons around one
//! hub, hooks that record what they got, and messages written straight into
//! an outbox the way a foreign program would.

use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mesync::message::{Message, Priority};
use mesync::spool::{Queue, Spool};

use super::{wait_until, Hub, Machine, Proc};

/// A hub and one running daemon per machine. Fields drop in order: the
/// daemons stop before the hub and before their base dirs are removed.
pub struct Cluster {
    pub daemons: Vec<Proc>,
    pub hub: Hub,
    pub machines: Vec<Machine>,
}

impl Cluster {
    /// A hub with `env` and a daemon for each host id, all registered at the hub.
    pub fn start(hosts: &[&str], env: &[(&str, &str)]) -> Cluster {
        let hub = Hub::start_with(env);
        let machines: Vec<Machine> = hosts.iter().map(|h| hub.machine(h)).collect();
        let daemons = machines.iter().map(|m| m.start_daemon()).collect();
        let cluster = Cluster {
            hub,
            machines,
            daemons,
        };
        for h in hosts {
            cluster.wait_streaming(h);
        }
        cluster
    }

    pub fn m(&self, i: usize) -> &Machine {
        &self.machines[i]
    }

    /// Waits until `host` has an open stream at the hub (so broadcasts reach it).
    pub fn wait_streaming(&self, host: &str) {
        self.hub.wait_streaming(host);
    }

    pub fn restart_daemon(&mut self, i: usize) {
        self.daemons[i] = self.machines[i].start_daemon();
        let host = self.machines[i].host.clone();
        self.wait_streaming(&host);
    }
}

/// Starts `mesync start` for `m` with extra environment variables.
pub fn start_daemon_with(m: &Machine, env: &[(&str, &str)]) -> Proc {
    let mut cmd = m.cmd();
    cmd.envs(env.iter().copied()).arg("start");
    Proc::spawn(&format!("daemon-{}", m.host), cmd)
}

/// `GET /v1/hosts` entry for `host`, if registered.
pub fn host_info(hub: &Hub, host: &str) -> Option<serde_json::Value> {
    hub.host(host)
}

/// Installs `hooks/<kind>` on `m`: a shell script that appends
/// `<id> <type> <source> <inbox file>` to `<base>/hook-<kind>.log` and saves
/// its stdin as `<base>/hook-stdin/<id>`.
pub fn record_hook(m: &Machine, kind: &str) -> PathBuf {
    let log = m.base.join(format!("hook-{kind}.log"));
    let stdin_dir = m.base.join("hook-stdin");
    std::fs::create_dir_all(&stdin_dir).unwrap();
    let body = format!(
        "cat > {dir}/$MESYNC_MESSAGE_ID\necho \"$MESYNC_MESSAGE_ID $MESYNC_MESSAGE_TYPE $MESYNC_SOURCE $MESYNC_INBOX_FILE\" >> {log}\n",
        dir = stdin_dir.display(),
        log = log.display()
    );
    install_script(&m.base.join("hooks").join(kind), &body);
    log
}

pub fn install_script(path: &Path, body: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Lines of a file, or none if it does not exist.
pub fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .map(|t| t.lines().map(String::from).collect())
        .unwrap_or_default()
}

/// Writes `n` messages from `m` into its outbox/, atomically, returning their ids.
pub fn fill_outbox(m: &Machine, kind: &str, target: Option<&str>, n: usize) -> Vec<String> {
    fill_outbox_at(&m.base, &m.host, kind, target, n)
}

/// [`fill_outbox`] for the base dir `base` of host `host`.
pub fn fill_outbox_at(
    base: &Path,
    host: &str,
    kind: &str,
    target: Option<&str>,
    n: usize,
) -> Vec<String> {
    let spool = Spool::open(base).unwrap();
    let files: Vec<(String, Vec<u8>)> = (0..n)
        .map(|i| {
            let payload = serde_json::json!({ "n": i });
            let msg = Message::new(kind, host, target, Priority::Normal, payload).unwrap();
            (msg.file_name(), msg.to_json_bytes())
        })
        .collect();
    spool.write_batch(Queue::Outbox, &files).unwrap();
    files
        .iter()
        .map(|(name, _)| {
            mesync::message::id_from_file_name(name)
                .unwrap()
                .to_string()
        })
        .collect()
}

/// Ids of the messages in `m`'s inbox/.
pub fn inbox_ids(m: &Machine) -> HashSet<String> {
    m.messages("inbox")
        .iter()
        .filter_map(|v| v["id"].as_str().map(String::from))
        .collect()
}

/// The ids in `m`'s received-ids ledger, one per line; each id must appear once.
pub fn ledger_ids(m: &Machine) -> Vec<String> {
    lines(&m.base.join("received.log"))
        .iter()
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect()
}

/// Waits until `m`'s inbox holds every id of `ids`.
pub fn wait_inbox_has(m: &Machine, ids: &[String], timeout: Duration) {
    wait_until(
        &format!("{} inbox holding {} ids", m.host, ids.len()),
        timeout,
        || {
            let have = inbox_ids(m);
            ids.iter().all(|id| have.contains(id))
        },
    );
}

/// Asserts every id landed in `m`'s inbox exactly once: one file each, one
/// ledger entry each (a second write would have added a second entry).
pub fn assert_exactly_once(m: &Machine, ids: &[String]) {
    let have = inbox_ids(m);
    assert_eq!(
        m.files("inbox").len(),
        ids.len(),
        "{}: inbox file count",
        m.host
    );
    assert!(
        ids.iter().all(|id| have.contains(id)),
        "{}: ids missing",
        m.host
    );
    // A file appears in inbox/ only after its ledger entry, so this holds
    // at once; the wait only guards a reader that looks mid-append.
    wait_until(
        &format!("{}: ledger entries", m.host),
        super::DEADLINE,
        || ledger_ids(m).len() >= ids.len(),
    );
    let ledger = ledger_ids(m);
    let unique: HashSet<&String> = ledger.iter().collect();
    assert_eq!(
        ledger.len(),
        unique.len(),
        "{}: an id was written twice",
        m.host
    );
    assert_eq!(ledger.len(), ids.len(), "{}: ledger entries", m.host);
}

/// A message as JSON text for posting straight to the hub.
pub fn message_json(kind: &str, source: &str, target: Option<&str>) -> serde_json::Value {
    let msg = Message::new(
        kind,
        source,
        target,
        Priority::Normal,
        serde_json::json!({"k": 1}),
    )
    .unwrap();
    serde_json::from_slice(&msg.to_json_bytes()).unwrap()
}

/// Posts `body` to `POST /v1/messages`, returning the status and the JSON answer.
pub fn post(hub: &Hub, body: &serde_json::Value) -> (u16, serde_json::Value) {
    let resp = hub.post("/v1/messages").json(body).send().unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(serde_json::Value::Null))
}
