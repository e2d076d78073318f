//! Running as a service: the notify protocol (on a socket of the test's
//! own, no systemd needed), SIGHUP reloading without stopping, log formats
//! and colour, and hooks killed with their process group at stop.

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::Path;

use common::daemon::{install_script, start_daemon_with};
use common::{mesync_cmd, signal, wait_until, Hub, Proc, DEADLINE};

/// A notify socket like systemd's, in `dir`.
struct NotifySocket {
    sock: UnixDatagram,
    path: std::path::PathBuf,
}

impl NotifySocket {
    fn new(dir: &Path) -> NotifySocket {
        let path = dir.join("notify.sock");
        let sock = UnixDatagram::bind(&path).expect("bind the notify socket");
        sock.set_read_timeout(Some(DEADLINE)).unwrap();
        NotifySocket { sock, path }
    }

    /// Waits for a datagram holding `line`; returns the whole datagram.
    fn expect(&self, line: &str) -> String {
        let mut buf = [0u8; 4096];
        loop {
            let n = self
                .sock
                .recv(&mut buf)
                .unwrap_or_else(|e| panic!("no {line} on the notify socket: {e}"));
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            if text.lines().any(|l| l == line) {
                return text;
            }
        }
    }
}

/// `mesync serve` on a port of the system's choice, with `env`.
fn serve(base: &Path, env: &[(&str, &str)]) -> Proc {
    let mut cmd = mesync_cmd(base);
    cmd.env("MESYNC_HOST_ID", "hub")
        .args(["serve", "--bind", "127.0.0.1:0"])
        .envs(env.iter().copied());
    Proc::spawn("hub", cmd)
}

#[test]
fn hub_and_daemon_report_ready_and_stopping_on_the_notify_socket() {
    let tmp = tempfile::tempdir().unwrap();
    let notify = NotifySocket::new(tmp.path());
    let socket = notify.path.to_str().unwrap();

    let mut hub = serve(&tmp.path().join("hub"), &[("NOTIFY_SOCKET", socket)]);
    let addr = hub.hub_addr().expect("the hub binds");
    let ready = notify.expect("READY=1");
    assert!(
        ready.contains(&format!("STATUS=hub listening on {addr}")),
        "{ready}"
    );
    assert!(ready.contains(&format!("MAINPID={}", hub.pid())), "{ready}");

    let m = common::Machine::new("m1", &format!("http://{addr}"));
    let mut daemon = start_daemon_with(&m, &[("NOTIFY_SOCKET", socket)]);
    let ready = notify.expect("READY=1");
    assert!(
        ready.contains(&format!("MAINPID={}", daemon.pid())),
        "{ready}"
    );

    assert!(daemon.terminate().success(), "{}", daemon.log());
    notify.expect("STOPPING=1");
    assert!(hub.terminate().success(), "{}", hub.log());
    notify.expect("STOPPING=1");
}

#[test]
fn sighup_reloads_the_log_filter_from_config_toml_and_never_stops() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("hub");
    std::fs::create_dir_all(&base).unwrap();
    std::fs::write(base.join("config.toml"), "log_filter = \"info\"\n").unwrap();
    let mut cmd = mesync_cmd(&base);
    // The variable would win over config.toml, and a process's own
    // environment cannot change: the file is what a reload reads.
    cmd.env_remove("RUST_LOG")
        .env("MESYNC_HOST_ID", "hub")
        .args(["serve", "--bind", "127.0.0.1:0"]);
    let mut hub = Proc::spawn("hub", cmd);
    let addr = hub.hub_addr().expect("the hub binds");
    let health = format!("http://{addr}/healthz");

    signal(hub.pid(), "HUP");
    wait_until("the reload", DEADLINE, || {
        hub.log().contains("log filter unchanged")
    });
    assert!(hub.is_running(), "SIGHUP stopped the hub: {}", hub.log());

    std::fs::write(base.join("config.toml"), "log_filter = \"debug\"\n").unwrap();
    signal(hub.pid(), "HUP");
    wait_until("the new filter", DEADLINE, || {
        hub.log().contains("log filter changed")
    });
    // A debug line now shows up: the hub logs an opened stream at debug.
    let stream = format!("http://{addr}/v1/hosts/probe/stream");
    let client = reqwest::blocking::Client::new();
    wait_until("a debug line", DEADLINE, || {
        let _ = client.get(&stream).timeout(DEADLINE).send();
        hub.log().contains("stream opened")
    });

    std::fs::write(base.join("config.toml"), "log_filter = 12\n").unwrap();
    signal(hub.pid(), "HUP");
    wait_until("the refused reload", DEADLINE, || {
        hub.log().contains("reload refused")
    });
    assert!(reqwest::blocking::get(&health).is_ok_and(|r| r.status().is_success()));
    assert!(hub.terminate().success(), "{}", hub.log());
}

#[test]
fn sighup_never_stops_the_daemon() {
    let hub = Hub::start();
    let m = hub.machine("m1");
    let mut daemon = m.start_daemon();
    hub.wait_streaming("m1");
    signal(daemon.pid(), "HUP");
    wait_until("the reload", DEADLINE, || {
        daemon.log().contains("SIGHUP: reloading")
    });
    let id = m.send("after.hup", &["--target", "m1"]);
    wait_until("the daemon to go on working", DEADLINE, || {
        m.messages("inbox").iter().any(|v| v["id"] == id.as_str())
    });
    assert!(daemon.terminate().success(), "{}", daemon.log());
}

#[test]
fn json_logs_are_one_object_per_line() {
    let tmp = tempfile::tempdir().unwrap();
    let mut hub = serve(tmp.path(), &[("MESYNC_LOG_FORMAT", "json")]);
    let addr = hub.hub_addr().expect("the hub binds");
    wait_until("the hub's log line", DEADLINE, || {
        hub.log().contains("hub listening")
    });
    assert!(hub.terminate().success());
    let log = hub.log();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let listening = lines
        .iter()
        .find(|v| v["message"] == "hub listening")
        .unwrap_or_else(|| panic!("no 'hub listening' in {log}"));
    assert_eq!(listening["level"], "INFO");
    assert_eq!(listening["fields"]["addr"], addr.to_string());
    assert!(listening["target"].as_str().unwrap().starts_with("mesync"));
    let time = listening["time"].as_str().unwrap();
    assert!(time.parse::<jiff::Timestamp>().is_ok(), "{time}");
    assert!(
        lines.iter().any(|v| v["level"] == "WARN"),
        "the open-hub warning"
    );
}

/// Runs `mesync serve` with stderr on a terminal; what it wrote there
/// once it is listening.
fn log_on_a_terminal(env: &[(&str, &str)]) -> String {
    use std::io::Read;
    use std::os::fd::FromRawFd;
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty fills two fds; null name, termios and size are allowed.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty");
    // SAFETY: both fds were just opened and are owned here alone.
    let (mut master, slave) = unsafe {
        (
            std::fs::File::from_raw_fd(master),
            std::fs::File::from_raw_fd(slave),
        )
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = mesync_cmd(tmp.path());
    cmd.env("MESYNC_HOST_ID", "hub")
        .args(["serve", "--bind", "127.0.0.1:0"])
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(slave);
    let mut child = cmd.spawn().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let reader = {
        let seen = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = master.read(&mut buf) {
                if n == 0 {
                    break;
                }
                seen.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        })
    };
    let text = || String::from_utf8_lossy(&seen.lock().unwrap()).to_string();
    wait_until("the hub's log on the terminal", DEADLINE, || {
        text().contains("hub listening")
    });
    let _ = child.kill();
    let _ = child.wait();
    drop(cmd);
    drop(reader);
    text()
}

#[test]
fn text_logs_are_coloured_only_on_a_terminal_without_no_color() {
    const ESC: &str = "\x1b[";
    assert!(
        log_on_a_terminal(&[]).contains(ESC),
        "a terminal gets colour"
    );
    let plain = log_on_a_terminal(&[("NO_COLOR", "1")]);
    assert!(!plain.contains(ESC), "NO_COLOR: {plain:?}");

    let tmp = tempfile::tempdir().unwrap();
    let mut hub = serve(tmp.path(), &[]);
    hub.hub_addr().expect("the hub binds");
    // The log line comes once the store is open, a moment after the bind.
    wait_until("the hub's log line", DEADLINE, || {
        hub.log().contains("hub listening")
    });
    assert!(hub.terminate().success());
    let log = hub.log();
    assert!(
        log.contains("hub listening") && !log.contains(ESC),
        "{log:?}"
    );
}

/// Whether `pid` is gone (or a zombie nobody reaped yet: it runs no more).
fn is_gone(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

#[test]
fn a_hook_running_at_stop_is_killed_with_its_whole_process_group() {
    let hub = Hub::start();
    let m = hub.machine("m1");
    // The hook starts a background child, then waits far longer than the
    // daemon's shutdown grace; both pids are written down first.
    let pids = m.base.join("hook.pids");
    install_script(
        &m.base.join("hooks").join("slow.job"),
        &format!(
            "sleep 301 &\necho $! > {p}.tmp\necho $$ >> {p}.tmp\nmv {p}.tmp {p}\nsleep 300\n",
            p = pids.display()
        ),
    );
    let mut daemon = m.start_daemon();
    hub.wait_streaming("m1");
    m.send("slow.job", &["--target", "m1"]);
    let pids: Vec<String> = common::wait_for("the hook to start", DEADLINE, || {
        let text = std::fs::read_to_string(&pids).ok()?;
        Some(text.lines().map(String::from).collect())
    });
    assert_eq!(pids.len(), 2);
    assert!(pids.iter().all(|p| !is_gone(p)), "the hook runs");
    assert!(daemon.terminate().success(), "{}", daemon.log());
    wait_until("the hook and its child to be killed", DEADLINE, || {
        pids.iter().all(|p| is_gone(p))
    });
}

#[test]
fn the_units_notify_read_the_token_as_a_credential_and_are_hardened() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib");
    for unit in ["mesync-hub.service", "mesync.service"] {
        let path = root.join(unit);
        let text = std::fs::read_to_string(&path).unwrap();
        for line in [
            "Type=notify",
            "ExecReload=/bin/kill -HUP $MAINPID",
            "Environment=MESYNC_TOKEN_FILE=%d/token",
            "Documentation=https://github.com/mesync/mesync/blob/main/docs/service.md",
        ] {
            assert!(text.lines().any(|l| l == line), "{unit} lacks {line}");
        }
        assert!(text.contains("LoadCredential=token:"), "{unit}");
        assert!(
            !text.contains("Environment=MESYNC_TOKEN="),
            "{unit}: a token in the environment"
        );
        // systemd's own rating, where systemd-analyze is installed: an
        // exposure of at most 2.0 (the threshold counts tenths).
        let rated = std::process::Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--threshold=20"])
            .arg(&path)
            .output();
        match rated {
            Ok(out) => assert!(
                out.status.success(),
                "{unit} is rated above 2.0:\n{}",
                String::from_utf8_lossy(&out.stdout)
            ),
            Err(e) => eprintln!("systemd-analyze not run ({e}); {unit} not rated"),
        }
    }
}

#[test]
fn the_hub_reads_its_token_from_token_file() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("token");
    std::fs::write(&file, "from-a-file\n").unwrap();
    let mut hub = serve(
        &tmp.path().join("hub"),
        &[("MESYNC_TOKEN_FILE", file.to_str().unwrap())],
    );
    let addr = hub.hub_addr().expect("the hub binds");
    let hosts = format!("http://{addr}/v1/hosts");
    let client = reqwest::blocking::Client::new();
    let status = |token: Option<&str>| {
        let req = client.get(&hosts);
        let req = match token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        req.send().unwrap().status().as_u16()
    };
    assert_eq!(status(None), 401);
    assert_eq!(status(Some("from-a-file")), 200);
    assert!(hub.terminate().success());
}
