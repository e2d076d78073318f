//! The process harness of the integration tests: start the real `mesync`
//! binary as hubs, daemons and CLI calls, each with its own temp base dir,
//! kill them on drop, and wait for conditions with deadlines.
//!
//! A hub binds port 0 and the harness reads the port it got from the line
//! `hub listening on ADDR` it prints, so no two tests can race for a port.
#![allow(dead_code)]

pub mod daemon;
pub mod nats;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const DEADLINE: Duration = Duration::from_secs(20);

/// A hub URL where nothing listens: port 1 is privileged and unused on loopback.
pub const NO_HUB: &str = "http://127.0.0.1:1";

/// What `mesync serve` and `mesync start --with-hub` print once bound.
const LISTENING: &str = "hub listening on ";

/// The binary under test; `MESYNC_TEST_BIN` names another copy, so a long
/// run (the chaos run) is not changed under it by a rebuild.
pub fn bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        std::env::var("MESYNC_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_mesync").into())
    })
}

/// Waits until `cond` holds, panicking with `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    wait_for(what, timeout, || cond().then_some(()))
}

/// Waits until `probe` gives a value, panicking with `what` after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(value) = probe() {
            return value;
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// A child process killed (SIGKILL) when dropped. Its stdout and stderr go
/// to files in the temp dir, kept for reading during and after the test.
pub struct Proc {
    pub child: Child,
    pub name: String,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Proc {
    pub fn spawn(name: &str, mut cmd: Command) -> Proc {
        // A counter keeps two processes of one test binary from sharing a log.
        static SPAWNED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = SPAWNED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log = |ext: &str| {
            let name = format!("mesync-test-{}-{n}-{name}.{ext}", std::process::id());
            std::env::temp_dir().join(name)
        };
        let (stdout, stderr) = (log("out"), log("log"));
        let file = |path: &Path| {
            std::fs::File::create(path)
                .map(Stdio::from)
                .unwrap_or(Stdio::null())
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file(&stdout))
            .stderr(file(&stderr))
            .spawn()
            .expect("spawn mesync");
        Proc {
            child,
            name: name.to_string(),
            stdout,
            stderr,
        }
    }

    /// What the process wrote to stderr (its log) so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The rest of the first whole stdout line that starts with `prefix`;
    /// `None` if the process exits without printing one.
    pub fn wait_line(&mut self, prefix: &str) -> Option<String> {
        let what = format!("{} to print {prefix:?}", self.name);
        wait_for(&what, DEADLINE, || {
            let text = std::fs::read_to_string(&self.stdout).unwrap_or_default();
            let found = text
                .split_inclusive('\n')
                .filter(|l| l.ends_with('\n'))
                .find_map(|l| l.strip_prefix(prefix));
            match found {
                Some(rest) => Some(Some(rest.trim_end().to_string())),
                None if !self.is_running() => Some(None),
                None => None,
            }
        })
    }

    /// The address a hub in this process bound (`--bind 127.0.0.1:0`);
    /// `None` if it exited without binding.
    pub fn hub_addr(&mut self) -> Option<SocketAddr> {
        let line = self.wait_line(LISTENING)?;
        Some(line.parse().expect("an address after 'hub listening on'"))
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// `kill -9`: no chance to clean up.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for the exit status (with a deadline).
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        signal(self.pid(), "TERM");
        self.wait_exit(Duration::from_secs(10))
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if start.elapsed() > timeout {
                let _ = self.child.kill();
                panic!("{} did not exit within {timeout:?}", self.name);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Logs of a passing test go; a failing one keeps them to read.
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.stdout);
            let _ = std::fs::remove_file(&self.stderr);
        }
    }
}

pub fn signal(pid: i32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

/// A command for the real binary with a clean, isolated environment.
pub fn mesync_cmd(base: &Path) -> Command {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(bin());
    // If the test process dies (Ctrl-C, a crash), take its children with it.
    // SAFETY: prctl is async-signal-safe and touches no memory of ours.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", base)
        .env("MESYNC_BASE_DIR", base)
        .env("RUST_LOG", "info");
    cmd
}

/// One machine: a temp base dir, a host id, and the hub it talks to.
pub struct Machine {
    pub _tmp: tempfile::TempDir,
    pub base: PathBuf,
    pub host: String,
    pub server_url: String,
}

impl Machine {
    pub fn new(host: &str, server_url: &str) -> Machine {
        let tmp = tempfile::tempdir().expect("temp dir");
        let base = tmp.path().join("base");
        Machine {
            _tmp: tmp,
            base,
            host: host.to_string(),
            server_url: server_url.to_string(),
        }
    }

    pub fn cmd(&self) -> Command {
        let mut cmd = mesync_cmd(&self.base);
        cmd.env("MESYNC_HOST_ID", &self.host)
            .env("MESYNC_SERVER_URL", &self.server_url)
            .env("MESYNC_POLL_INTERVAL", "1");
        cmd
    }

    /// Runs a CLI command to completion.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run mesync")
    }

    pub fn send(&self, kind: &str, extra: &[&str]) -> String {
        let mut args = vec!["send", kind];
        args.extend_from_slice(extra);
        let out = self.run(&args);
        assert!(
            out.status.success(),
            "send failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Starts `mesync start` for this machine.
    pub fn start_daemon(&self) -> Proc {
        let mut cmd = self.cmd();
        cmd.arg("start");
        Proc::spawn(&format!("daemon-{}", self.host), cmd)
    }

    pub fn dir(&self, queue: &str) -> PathBuf {
        self.base.join(queue)
    }

    /// Message files (`*.json`, not hidden) in a queue, sorted.
    pub fn files(&self, queue: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.dir(queue))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter_map(|e| e.file_name().to_str().map(String::from))
                    .filter(|n| n.ends_with(".json") && !n.starts_with('.'))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Parsed messages in a queue.
    pub fn messages(&self, queue: &str) -> Vec<serde_json::Value> {
        self.files(queue)
            .iter()
            .filter_map(|n| std::fs::read(self.dir(queue).join(n)).ok())
            .filter_map(|b| serde_json::from_slice(&b).ok())
            .collect()
    }
}

/// A running hub on a loopback port the system chose, with its own data dir.
pub struct Hub {
    pub proc: Proc,
    pub url: String,
    pub port: u16,
    pub base: PathBuf,
    pub token: Option<String>,
    /// With `MESYNC_TEST_STORE=nats`: the lone NATS server this hub uses.
    pub nats: Option<nats::Cluster>,
    /// The `store` setting, kept for restarts ("file" by default).
    pub store: String,
    _tmp: tempfile::TempDir,
}

impl Hub {
    pub fn start() -> Hub {
        Self::start_with(&[])
    }

    /// Starts a hub with extra environment variables (e.g. `MESYNC_TOKEN`).
    /// Under `MESYNC_TEST_STORE=nats` the hub stores in a NATS server of its own.
    pub fn start_with(env: &[(&str, &str)]) -> Hub {
        if nats::wanted() {
            let cluster = nats::Cluster::start(1);
            let mut hub = Self::start_on(&cluster.store_url(), env);
            hub.nats = Some(cluster);
            return hub;
        }
        Self::start_on("file", env)
    }

    /// Starts a hub with `store` (`file`, or NATS URLs shared with other hubs).
    pub fn start_on(store: &str, env: &[(&str, &str)]) -> Hub {
        let mut env = env.to_vec();
        env.push(("MESYNC_STORE", store));
        let env = &env[..];
        let tmp = tempfile::tempdir().expect("temp dir");
        let base = tmp.path().join("hubbase");
        let token = env
            .iter()
            .find(|(k, _)| *k == "MESYNC_TOKEN")
            .map(|(_, v)| v.to_string());
        let (proc, addr) =
            spawn_hub(&base, "127.0.0.1:0", env).unwrap_or_else(|log| panic!("hub failed: {log}"));
        let hub = Hub {
            proc,
            url: format!("http://{addr}"),
            port: addr.port(),
            base,
            token,
            nats: None,
            store: store.to_string(),
            _tmp: tmp,
        };
        hub.wait_healthy();
        hub
    }

    /// Whether this hub stores in NATS JetStream.
    pub fn on_nats(&self) -> bool {
        self.store.starts_with("nats://")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.base.join("hub")
    }

    /// Restarts on the same port and data dir (after `kill9` or `terminate`),
    /// so daemons pointed at it find it again. The port was this hub's until
    /// it died, but another socket may take it for a moment (as the local
    /// port of some connection): a hub that cannot bind is started again.
    pub fn restart(&mut self, env: &[(&str, &str)]) {
        let store = self.store.clone();
        let mut env = env.to_vec();
        env.push(("MESYNC_STORE", &store));
        let env = &env[..];
        let bind = format!("127.0.0.1:{}", self.port);
        let mut last = String::new();
        let what = format!("the hub to restart on {bind}");
        self.proc = wait_for(&what, DEADLINE, || {
            match spawn_hub(&self.base, &bind, env) {
                Ok((proc, _)) => Some(proc),
                Err(log) if log.contains("cannot listen") => {
                    last = log;
                    None
                }
                Err(log) => panic!("hub failed: {log}"),
            }
        });
        if !last.is_empty() {
            eprintln!("the port was busy for a moment: {last}");
        }
        self.wait_healthy();
    }

    pub fn wait_healthy(&self) {
        let url = format!("{}/healthz", self.url);
        wait_until("hub /healthz", DEADLINE, || {
            reqwest::blocking::get(&url).is_ok_and(|r| r.status().is_success())
        });
    }

    pub fn http(&self) -> reqwest::blocking::Client {
        reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(70))
            .build()
            .expect("http client")
    }

    pub fn get(&self, path: &str) -> reqwest::blocking::RequestBuilder {
        self.with_token(self.http().get(format!("{}{path}", self.url)))
    }

    /// A POST declared as JSON, as the hub requires.
    pub fn post(&self, path: &str) -> reqwest::blocking::RequestBuilder {
        let req = self.http().post(format!("{}{path}", self.url));
        self.with_token(req.header("content-type", "application/json"))
    }

    pub fn delete(&self, path: &str) -> reqwest::blocking::RequestBuilder {
        self.with_token(self.http().delete(format!("{}{path}", self.url)))
    }

    fn with_token(
        &self,
        req: reqwest::blocking::RequestBuilder,
    ) -> reqwest::blocking::RequestBuilder {
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// `GET /v1/hosts` entry for `host`, if registered.
    pub fn host(&self, host: &str) -> Option<serde_json::Value> {
        let body: serde_json::Value = self.get("/v1/hosts").send().ok()?.json().ok()?;
        body["hosts"]
            .as_array()?
            .iter()
            .find(|h| h["id"] == host)
            .cloned()
    }

    /// Waits until `host` holds a stream open (so broadcasts reach it).
    pub fn wait_streaming(&self, host: &str) {
        wait_until(&format!("{host} streaming"), DEADLINE, || {
            self.host(host)
                .is_some_and(|h| h["streams"].as_u64() >= Some(1))
        });
    }

    /// A machine pointed at this hub.
    pub fn machine(&self, host: &str) -> Machine {
        Machine::new(host, &self.url)
    }
}

/// Starts `mesync serve --bind <bind>`; the process and the address it
/// bound, or its log if it exited first.
pub fn spawn_hub(
    base: &Path,
    bind: &str,
    env: &[(&str, &str)],
) -> Result<(Proc, SocketAddr), String> {
    let mut cmd = mesync_cmd(base);
    cmd.env("MESYNC_HOST_ID", "hub")
        .args(["serve", "--bind", bind]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut proc = Proc::spawn("hub", cmd);
    match proc.hub_addr() {
        Some(addr) => Ok((proc, addr)),
        None => Err(proc.log()),
    }
}
