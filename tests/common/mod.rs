//! The process harness of the integration tests: start the real `mesync`
//! binary as hubs, daemons and CLI calls, each with its own temp base dir and
//! a loopback port, kill them on drop, and wait for conditions with deadlines.
#![allow(dead_code)]

pub mod daemon;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const DEADLINE: Duration = Duration::from_secs(20);

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_mesync")
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

/// Waits until `cond` holds, panicking with `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    let mut pause = Duration::from_millis(5);
    while !cond() {
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// A child process killed (SIGKILL) when dropped.
pub struct Proc {
    pub child: Child,
    pub name: String,
}

impl Proc {
    pub fn spawn(name: &str, mut cmd: Command) -> Proc {
        // A counter keeps two processes of one test binary from sharing a log.
        static SPAWNED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = SPAWNED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log =
            std::env::temp_dir().join(format!("mesync-test-{}-{n}-{name}.log", std::process::id()));
        let stderr = std::fs::File::create(&log)
            .map(Stdio::from)
            .unwrap_or(Stdio::null());
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn mesync");
        Proc {
            child,
            name: name.to_string(),
        }
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

/// A running hub on a loopback port with its own data dir.
pub struct Hub {
    pub proc: Proc,
    pub url: String,
    pub port: u16,
    pub base: PathBuf,
    pub token: Option<String>,
    _tmp: tempfile::TempDir,
}

impl Hub {
    pub fn start() -> Hub {
        Self::start_with(&[])
    }

    /// Starts a hub with extra environment variables (e.g. `MESYNC_TOKEN`).
    pub fn start_with(env: &[(&str, &str)]) -> Hub {
        let tmp = tempfile::tempdir().expect("temp dir");
        let base = tmp.path().join("hubbase");
        let port = free_port();
        let token = env
            .iter()
            .find(|(k, _)| *k == "MESYNC_TOKEN")
            .map(|(_, v)| v.to_string());
        let proc = spawn_hub(&base, port, env);
        let hub = Hub {
            proc,
            url: format!("http://127.0.0.1:{port}"),
            port,
            base,
            token,
            _tmp: tmp,
        };
        hub.wait_healthy();
        hub
    }

    pub fn data_dir(&self) -> PathBuf {
        self.base.join("hub")
    }

    /// Restarts on the same port and data dir (after `kill9` or `terminate`).
    pub fn restart(&mut self, env: &[(&str, &str)]) {
        self.proc = spawn_hub(&self.base, self.port, env);
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

    pub fn post(&self, path: &str) -> reqwest::blocking::RequestBuilder {
        self.with_token(self.http().post(format!("{}{path}", self.url)))
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

fn spawn_hub(base: &Path, port: u16, env: &[(&str, &str)]) -> Proc {
    let mut cmd = mesync_cmd(base);
    cmd.env("MESYNC_HOST_ID", "hub")
        .env("MESYNC_BIND", format!("127.0.0.1:{port}"))
        .arg("serve");
    for (k, v) in env {
        cmd.env(k, v);
    }
    Proc::spawn(&format!("hub-{port}"), cmd)
}
