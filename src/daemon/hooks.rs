//! Hooks: `hooks/<type>` runs once for each received message of that type.
//!
//! A hook is started directly (no shell), with the message JSON on stdin and
//! its id, type, source and inbox path in `MESYNC_*` variables; no message data
//! ever reaches a command line. At most `hook_concurrency` hooks run at once,
//! each is killed after `hook_timeout`, and its exit status and stderr are
//! logged. A failing hook is not re-run. Receiving never waits for hooks: the
//! receiver hands jobs to [`Hooks::submit`], which never blocks. Each hook
//! runs in its own process group; one still running at a timeout or when
//! the daemon stops is killed with the whole group, so nothing it started
//! outlives it (what a hook that finished left in the background is its own).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::pending::Mark;
use crate::message::{validate_type, Message};

/// How long running hooks may finish after a shutdown request before they are killed.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// Most stderr bytes of one hook that are kept, and reach the log.
const STDERR_LOG_BYTES: usize = 2048;

/// One message whose hook should run.
#[derive(Debug)]
pub struct HookJob {
    pub hook: PathBuf,
    pub message: Message,
    pub json: Vec<u8>,
    pub inbox_file: PathBuf,
    /// The mark that this hook is owed, cleared once it has started.
    pub pending: Option<Mark>,
}

/// The inbox writer's handle to the hook runner.
#[derive(Debug, Clone)]
pub struct Hooks {
    // Unbounded on purpose: receiving must never wait for hooks.
    // A job exists only for a received message that has a hook, and holds that
    // message, so the queue grows only while hooks run slower than messages of
    // hooked types arrive; each of those messages is also a file in inbox/.
    tx: mpsc::UnboundedSender<HookJob>,
}

impl Hooks {
    /// Starts the runner; it stops when `cancel` fires (running hooks get a short
    /// grace, then are killed) or, after every `Hooks` is dropped, once all queued
    /// hooks have run (`--once`).
    pub fn start(
        concurrency: usize,
        timeout: Duration,
        cancel: CancellationToken,
    ) -> (Hooks, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(dispatch(rx, concurrency.max(1), timeout, cancel));
        (Hooks { tx }, task)
    }

    pub fn submit(&self, job: HookJob) {
        if self.tx.send(job).is_err() {
            tracing::warn!("hook runner stopped; a hook was not run");
        }
    }
}

/// The hook for `kind` in `hooks_dir` if there is one that may run.
/// Blocks on the disk (one `stat`): call it from `spawn_blocking`.
pub fn find(hooks_dir: &Path, kind: &str) -> Option<PathBuf> {
    // `kind` passed the type rule when the message was parsed; check again
    // here, where it becomes a path, so that nothing outside hooks/ can run.
    validate_type(kind).ok()?;
    let path = hooks_dir.join(kind);
    if path.parent() != Some(hooks_dir) || path.file_name()? != kind {
        return None;
    }
    let meta = std::fs::metadata(&path).ok()?;
    if !meta.is_file() {
        tracing::warn!(hook = %path.display(), "hook is not a regular file; not run");
        return None;
    }
    if meta.permissions().mode() & 0o111 == 0 {
        tracing::warn!(hook = %path.display(), "hook is not executable (chmod +x); not run");
        return None;
    }
    Some(path)
}

async fn dispatch(
    mut rx: mpsc::UnboundedReceiver<HookJob>,
    concurrency: usize,
    timeout: Duration,
    cancel: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(concurrency));
    let mut running = JoinSet::new();
    loop {
        let job = tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            job = rx.recv() => match job {
                Some(job) => job,
                None => break,
            },
        };
        let permit = tokio::select! {
            _ = cancel.cancelled() => break,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        running.spawn(async move {
            run_one(job, timeout).await;
            drop(permit);
        });
        while running.try_join_next().is_some() {}
    }
    rx.close();
    let mut skipped = 0usize;
    while rx.try_recv().is_ok() {
        skipped += 1;
    }
    if skipped > 0 {
        tracing::info!(
            skipped,
            "shutting down: hooks not started yet run at the next start"
        );
    }
    let grace = if cancel.is_cancelled() {
        SHUTDOWN_GRACE
    } else {
        timeout + SHUTDOWN_GRACE
    };
    let all_done = async { while running.join_next().await.is_some() {} };
    if tokio::time::timeout(grace, all_done).await.is_err() {
        tracing::warn!("killing hooks still running at shutdown");
        running.abort_all();
        while running.join_next().await.is_some() {}
    }
}

/// Runs one hook to completion or timeout, and logs how it went.
async fn run_one(mut job: HookJob, timeout: Duration) {
    let id = job.message.id;
    let mut cmd = tokio::process::Command::new(&job.hook);
    cmd.env("MESYNC_MESSAGE_ID", id.to_string())
        .env("MESYNC_MESSAGE_TYPE", &job.message.kind)
        .env("MESYNC_SOURCE", &job.message.source)
        .env("MESYNC_INBOX_FILE", &job.inbox_file)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        // Meant for the daemon alone: a hook must not speak for the service.
        .env_remove(crate::sd_notify::NOTIFY_SOCKET)
        // Its own process group, so that a timeout kills what it started too.
        .process_group(0)
        .kill_on_drop(true);
    if let Some(mark) = job.pending.as_ref().and_then(|m| m.c_path()) {
        // The hook's own process clears its mark, between fork and exec: a
        // daemon killed before the fork leaves the mark (the hook runs after
        // the restart), one killed after it leaves a hook that runs on in its
        // own process group with its mark gone, so it is never run twice.
        // SAFETY: unlink(2) is async-signal-safe and the path was allocated
        // before the fork; nothing else runs in the child.
        unsafe {
            cmd.pre_exec(move || {
                libc::unlink(mark.as_ptr());
                Ok(())
            });
        }
    }
    let mut spawned = cmd.spawn();
    // "Text file busy": a hook just written, whose write descriptor another
    // thread's fork still holds for an instant. It passes; try again.
    for attempt in 1..=5 {
        match &spawned {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                tokio::time::sleep(Duration::from_millis(10 * attempt)).await;
                spawned = cmd.spawn();
            }
            _ => break,
        }
    }
    if let Some(mark) = job.pending.take() {
        // Gone already if the hook started; this clears it when it could not.
        let _ = tokio::task::spawn_blocking(move || mark.clear()).await;
    }
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(%id, hook = %job.hook.display(), "cannot start hook: {e}");
            return;
        }
    };
    let mut group = Group(child.id());
    let stdin = child.stdin.take();
    let stderr = child.stderr.take();
    let json = std::mem::take(&mut job.json);
    // One deadline for the whole run: a hook that never reads its stdin, or
    // never closes its stderr, is killed at hook_timeout like a slow one.
    let run = async {
        let write = async {
            if let Some(mut stdin) = stdin {
                // A hook may exit without reading stdin; that is not an error.
                let _ = stdin.write_all(&json).await;
            }
        };
        let ((), kept) = tokio::join!(write, stderr_tail(stderr, STDERR_LOG_BYTES));
        (child.wait().await, kept)
    };
    let waited = tokio::time::timeout(timeout, run).await;
    if waited.is_ok() {
        group.0 = None;
    }
    match waited {
        Ok((Ok(status), stderr)) => log_exit(&job, status, &stderr),
        Ok((Err(e), _)) => tracing::warn!(%id, hook = %job.hook.display(), "hook failed: {e}"),
        Err(_) => {
            drop(group);
            tracing::warn!(%id, hook = %job.hook.display(), timeout_s = timeout.as_secs(),
                "hook killed after hook_timeout; not re-run");
        }
    }
}

/// Reads a hook's stderr to its end and keeps only its last `max` bytes, so
/// a hook writing without bound costs the daemon no more than that.
async fn stderr_tail(stderr: Option<tokio::process::ChildStderr>, max: usize) -> Vec<u8> {
    let Some(mut stderr) = stderr else {
        return Vec::new();
    };
    let mut kept = Vec::with_capacity(max.min(8192));
    let mut chunk = vec![0u8; 8192];
    loop {
        match stderr.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                kept.extend_from_slice(&chunk[..n]);
                if kept.len() > 2 * max {
                    kept.drain(..kept.len() - max);
                }
            }
        }
    }
    if kept.len() > max {
        kept.drain(..kept.len() - max);
    }
    kept
}

/// The process group of a running hook (its leader's pid), killed whole when
/// this is dropped: at a timeout, or when shutdown aborts the task that runs
/// the hook. Cleared once the hook has exited by itself.
struct Group(Option<u32>);

impl Drop for Group {
    fn drop(&mut self) {
        if let Some(pgid) = self.0.and_then(|p| i32::try_from(p).ok()) {
            // SAFETY: plain syscall; a negative pid names the process group.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
        }
    }
}

fn log_exit(job: &HookJob, status: std::process::ExitStatus, stderr: &[u8]) {
    let id = job.message.id;
    let stderr = String::from_utf8_lossy(stderr);
    let stderr = tail(stderr.trim(), STDERR_LOG_BYTES);
    if status.success() {
        tracing::debug!(%id, hook = %job.hook.display(), stderr, "hook done");
    } else {
        tracing::warn!(%id, hook = %job.hook.display(), %status, stderr,
            "hook failed; not re-run, the message stays in inbox/");
    }
}

fn tail(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Priority;

    fn script(dir: &Path, name: &str, body: &str, mode: u32) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn find_refuses_missing_non_executable_and_escaping_types() {
        let tmp = tempfile::tempdir().unwrap();
        let hooks = tmp.path().join("hooks");
        std::fs::create_dir(&hooks).unwrap();
        script(&hooks, "ok", "true", 0o755);
        script(&hooks, "noexec", "true", 0o644);
        script(tmp.path(), "outside", "true", 0o755);
        assert_eq!(find(&hooks, "ok"), Some(hooks.join("ok")));
        assert_eq!(find(&hooks, "noexec"), None);
        assert_eq!(find(&hooks, "missing"), None);
        for bad in ["../outside", "..", ".", "/bin/true", ""] {
            assert_eq!(find(&hooks, bad), None, "{bad}");
        }
    }

    #[tokio::test]
    async fn hook_gets_stdin_and_env_and_slow_hook_is_killed() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        let body = format!(
            "cat > {0}.stdin; echo \"$MESYNC_MESSAGE_ID $MESYNC_MESSAGE_TYPE $MESYNC_SOURCE $MESYNC_INBOX_FILE\" > {0}.env",
            out.display()
        );
        let hook = script(tmp.path(), "t", &body, 0o755);
        let slow = script(tmp.path(), "slow", "sleep 30", 0o755);
        let msg = Message::new(
            "t",
            "m1",
            None,
            Priority::Normal,
            serde_json::json!({"a":1}),
        )
        .unwrap();
        let json = msg.to_json_bytes();
        let cancel = CancellationToken::new();
        let (hooks, task) = Hooks::start(2, Duration::from_millis(300), cancel);
        let job = |hook: &Path| HookJob {
            hook: hook.to_path_buf(),
            message: msg.clone(),
            json: json.clone(),
            inbox_file: PathBuf::from("/in/x.json"),
            pending: None,
        };
        hooks.submit(job(&slow));
        hooks.submit(job(&hook));
        drop(hooks);
        let started = std::time::Instant::now();
        task.await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(std::fs::read(out.with_extension("stdin")).unwrap(), json);
        let env = std::fs::read_to_string(out.with_extension("env")).unwrap();
        assert_eq!(env.trim(), format!("{} t m1 /in/x.json", msg.id));
    }

    #[tokio::test]
    async fn the_timeout_covers_a_hook_that_never_reads_its_stdin() {
        let tmp = tempfile::tempdir().unwrap();
        let deaf = script(tmp.path(), "deaf", "sleep 30", 0o755);
        let msg = Message::new("t", "m1", None, Priority::Normal, serde_json::json!({})).unwrap();
        let job = HookJob {
            hook: deaf,
            message: msg,
            // Far more than a pipe holds: writing it blocks until the hook reads.
            json: vec![b' '; 4 << 20],
            inbox_file: PathBuf::from("/in/x.json"),
            pending: None,
        };
        let started = std::time::Instant::now();
        run_one(job, Duration::from_millis(300)).await;
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[tokio::test]
    async fn only_the_end_of_a_flood_of_stderr_is_kept() {
        let mut child = tokio::process::Command::new("sh")
            .args([
                "-c",
                "head -c 20000000 /dev/zero | tr '\\0' x >&2; echo END >&2",
            ])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let kept = stderr_tail(child.stderr.take(), 100).await;
        child.wait().await.unwrap();
        assert_eq!(kept.len(), 100);
        assert!(
            kept.ends_with(b"xxEND\n"),
            "{}",
            String::from_utf8_lossy(&kept)
        );
    }
}
