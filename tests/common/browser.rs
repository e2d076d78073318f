//! Headless Chromium for the dashboard tests, driven over the DevTools
//! protocol on a pipe (`--remote-debugging-pipe`: the browser reads commands
//! from fd 3 and writes answers to fd 4, each a JSON text ended by a NUL
//! byte), so no WebSocket client is needed. Every wait has a deadline, and
//! the browser is killed when the `Browser` is dropped or the test dies.
#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::DEADLINE;

/// Longest wait for one DevTools answer (generous: a loaded 2-core machine
/// takes seconds to start a browser and open a tab).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(40);

/// One browser at a time per test binary: several Chromiums starting
/// together on a small machine starve each other past any deadline.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub struct Browser {
    child: Child,
    to_browser: RefCell<File>,
    from_browser: Receiver<Value>,
    next_id: Cell<u64>,
    _profile: tempfile::TempDir,
    // Dropped after the browser is killed (fields drop after `drop`).
    _turn: std::sync::MutexGuard<'static, ()>,
}

impl Browser {
    /// Starts headless Chromium, found when the tests were built (see
    /// build.rs: tests that need it are ignored where it is missing, except
    /// under CI, where they run and fail here).
    pub fn launch() -> Browser {
        let Some(exe) = option_env!("MESYNC_CHROMIUM") else {
            panic!("chromium is not installed (CI needs it for the browser tests; .ci/run installs it with apt-get install chromium, then touch build.rs)");
        };
        // A test that failed with the browser held poisons the lock; the
        // next one may still run.
        let turn = ONE_AT_A_TIME
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let profile = tempfile::tempdir().expect("temp dir");
        let (cmd_read, cmd_write) = pipe();
        let (answer_read, answer_write) = pipe();
        let log =
            std::env::temp_dir().join(format!("mesync-test-{}-chromium.log", std::process::id()));
        let mut cmd = Command::new(exe);
        cmd.args(FLAGS)
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(log).map(Stdio::from).unwrap_or(Stdio::null()));
        let (theirs_in, theirs_out) = (cmd_read.as_raw_fd(), answer_write.as_raw_fd());
        // SAFETY: between fork and exec only async-signal-safe calls
        // (fcntl, dup2, prctl) are made.
        unsafe {
            cmd.pre_exec(move || {
                // Lift both ends above 4 first, so placing one on 3 or 4
                // cannot close the other.
                let a = libc::fcntl(theirs_in, libc::F_DUPFD_CLOEXEC, 10);
                let b = libc::fcntl(theirs_out, libc::F_DUPFD_CLOEXEC, 10);
                if a < 0 || b < 0 || libc::dup2(a, 3) < 0 || libc::dup2(b, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The browser must not outlive a test that panics or is killed.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn chromium");
        drop((cmd_read, answer_write));
        let (tx, rx) = mpsc::channel();
        // The reader ends at EOF, when the browser exits; the channel holds
        // at most the few answers and events of one test step.
        std::thread::spawn(move || {
            let mut answers = BufReader::new(File::from(answer_read));
            let mut buf = Vec::new();
            while answers.read_until(0, &mut buf).is_ok_and(|n| n > 0) {
                buf.pop();
                if let Ok(v) = serde_json::from_slice::<Value>(&buf) {
                    if tx.send(v).is_err() {
                        break;
                    }
                }
                buf.clear();
            }
        });
        Browser {
            child,
            to_browser: RefCell::new(File::from(cmd_write)),
            from_browser: rx,
            next_id: Cell::new(1),
            _profile: profile,
            _turn: turn,
        }
    }

    /// Sends one DevTools command and returns its `result`.
    pub fn call(
        &self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, String> {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let mut cmd = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            cmd["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&cmd).expect("encode command");
        bytes.push(0);
        self.to_browser
            .borrow_mut()
            .write_all(&bytes)
            .map_err(|e| format!("chromium is gone: {e}"))?;
        let deadline = Instant::now() + ANSWER_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let msg = self
                .from_browser
                .recv_timeout(left)
                .map_err(|e| format!("no answer to {method}: {e}"))?;
            if msg["id"] == json!(id) {
                return match msg.get("error") {
                    Some(err) => Err(format!("{method} failed: {err}")),
                    None => Ok(msg["result"].clone()),
                };
            }
        }
    }

    /// Opens `url` in a new tab.
    pub fn open(&self, url: &str) -> Page<'_> {
        let target = self
            .call(None, "Target.createTarget", json!({"url": url}))
            .expect("create a tab");
        let attached = self
            .call(
                None,
                "Target.attachToTarget",
                json!({"targetId": target["targetId"], "flatten": true}),
            )
            .expect("attach to the tab");
        Page {
            browser: self,
            session: attached["sessionId"]
                .as_str()
                .expect("session id")
                .to_string(),
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Headless, quiet, and unable to reach anything but loopback.
const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--window-size=1280,900",
    "--remote-debugging-pipe",
];

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills both fds on success; each is then owned once.
    unsafe {
        assert_eq!(libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC), 0, "pipe2");
        (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]))
    }
}

/// One tab.
pub struct Page<'b> {
    browser: &'b Browser,
    session: String,
}

impl Page<'_> {
    pub fn call(&self, method: &str, params: Value) -> Result<Value, String> {
        self.browser.call(Some(&self.session), method, params)
    }

    /// Evaluates a JavaScript expression and returns its value (awaiting a
    /// promise); `Err` while the page is loading or when it throws.
    pub fn eval(&self, js: &str) -> Result<Value, String> {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": js, "returnByValue": true, "awaitPromise": true}),
        )?;
        match r.get("exceptionDetails") {
            Some(e) => Err(format!("{js} threw: {e}")),
            None => Ok(r["result"]["value"].clone()),
        }
    }

    /// The page's visible text.
    pub fn text(&self) -> String {
        self.eval("document.body ? document.body.innerText : ''")
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default()
    }

    /// Waits until the JavaScript expression `js` is true; on timeout the
    /// panic shows `what` and the page's text.
    pub fn wait_for(&self, what: &str, js: &str) {
        let start = Instant::now();
        let mut pause = Duration::from_millis(20);
        while self.eval(js) != Ok(Value::Bool(true)) {
            assert!(
                start.elapsed() < DEADLINE,
                "timed out after {DEADLINE:?} waiting for {what}; the page shows:\n{}",
                self.text()
            );
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }

    /// Waits until the visible text contains `needle`.
    pub fn wait_for_text(&self, needle: &str) {
        let js = format!("document.body.innerText.includes({})", json!(needle));
        self.wait_for(&format!("{needle:?} on the page"), &js);
    }

    pub fn reload(&self) {
        self.call("Page.reload", json!({})).expect("reload");
    }

    /// A PNG of a `width` x `height` viewport.
    pub fn screenshot(&self, width: u32, height: u32) -> Vec<u8> {
        let size =
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false});
        self.call("Emulation.setDeviceMetricsOverride", size)
            .expect("set the viewport");
        let r = self
            .call("Page.captureScreenshot", json!({"format": "png"}))
            .expect("screenshot");
        base64_decode(r["data"].as_str().expect("screenshot data"))
    }
}

/// Standard base64 (the only place it is needed is a screenshot).
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let digits: Vec<u8> = text.bytes().filter(|c| *c != b'=').map(value).collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, d)| n | (u32::from(*d) << (18 - 6 * i)));
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}
