//! The inbox writer's promises, on a real base dir.

use super::*;
use crate::message::Priority;

/// A writer thread on `spool` and the acks it sends.
fn start(spool: &Spool) -> (InboxInput, mpsc::Receiver<Vec<Uuid>>, CancellationToken) {
    let (tx, rx) = mpsc::channel(16);
    let (hooks, _task) = Hooks::start(1, Duration::from_secs(5), CancellationToken::new());
    let week = Duration::from_secs(7 * 86_400);
    let writer =
        InboxWriter::open(spool.clone(), week, tx, hooks, CancellationToken::new()).unwrap();
    let (input, gone) = writer.spawn().unwrap();
    (input, rx, gone)
}

#[tokio::test]
async fn a_message_is_written_once_even_after_its_file_is_deleted() {
    let tmp = tempfile::tempdir().unwrap();
    let spool = Spool::open(tmp.path()).unwrap();
    let msg = Message::new("t", "m1", None, Priority::Normal, serde_json::json!({})).unwrap();

    let (input, mut acks, gone) = start(&spool);
    input.deliver(vec![msg.clone(), msg.clone()]).await.unwrap();
    assert_eq!(acks.recv().await.unwrap(), vec![msg.id, msg.id]);
    assert_eq!(spool.list(Queue::Inbox).unwrap(), vec![msg.file_name()]);
    drop(input);
    gone.cancelled().await;

    spool.remove(Queue::Inbox, &msg.file_name()).unwrap();
    let (input, mut acks, _gone) = start(&spool);
    input.deliver(vec![msg.clone()]).await.unwrap();
    // Still acked: the hub re-sent it because an earlier ack was lost.
    assert_eq!(acks.recv().await.unwrap(), vec![msg.id]);
    assert!(spool.list(Queue::Inbox).unwrap().is_empty());
}

#[tokio::test]
async fn a_batch_that_cannot_be_written_is_retried_and_acked_only_once_written() {
    let tmp = tempfile::tempdir().unwrap();
    let spool = Spool::open(tmp.path()).unwrap();
    let inbox = spool.dir(Queue::Inbox);
    // inbox/ replaced by a file: no file can be renamed into it.
    std::fs::remove_dir(&inbox).unwrap();
    std::fs::write(&inbox, b"").unwrap();
    let msg = Message::new("t", "m1", None, Priority::Normal, serde_json::json!({})).unwrap();

    let (input, mut acks, _gone) = start(&spool);
    input.deliver(vec![msg.clone()]).await.unwrap();
    // The writer keeps the batch (the next turn waits) and acks nothing.
    let next = tokio::time::timeout(Duration::from_millis(300), input.turn()).await;
    assert!(
        next.is_err(),
        "the writer let go of a batch it could not write"
    );
    assert!(acks.try_recv().is_err());

    std::fs::remove_file(&inbox).unwrap();
    std::fs::create_dir(&inbox).unwrap();
    assert_eq!(acks.recv().await.unwrap(), vec![msg.id]);
    assert_eq!(spool.list(Queue::Inbox).unwrap(), vec![msg.file_name()]);
}

#[tokio::test]
async fn a_hook_marked_before_a_crash_runs_once_and_its_redelivery_is_not_rewritten() {
    let tmp = tempfile::tempdir().unwrap();
    let spool = Spool::open(tmp.path()).unwrap();
    let out = tmp.path().join("ran");
    let hook = spool.hooks_dir().join("t");
    std::fs::write(&hook, format!("#!/bin/sh\necho x >> {}\n", out.display())).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let msg = Message::new("t", "m1", None, Priority::Normal, serde_json::json!({})).unwrap();
    // A crash after the inbox file and its mark, before the ledger entry
    // (the order of earlier versions, whose base dirs may still hold it).
    let name = msg.file_name();
    spool
        .write(Queue::Inbox, &name, &msg.to_json_bytes())
        .unwrap();
    let file = spool.path(Queue::Inbox, &name);
    pending::record(&spool, &[(file.as_path(), name.as_str())]).unwrap();

    let (input, mut acks, _gone) = start(&spool);
    spool.remove(Queue::Inbox, &name).unwrap();
    input.deliver(vec![msg.clone()]).await.unwrap();
    assert_eq!(acks.recv().await.unwrap(), vec![msg.id]);
    // The ledger knew it: the consumed file is not written again.
    assert!(spool.list(Queue::Inbox).unwrap().is_empty());
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(&out).unwrap_or_default() != "x\n" {
        assert!(Instant::now() < deadline, "the owed hook did not run once");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The hook's process removed its mark before it ran.
    let marks = std::fs::read_dir(tmp.path().join(".hooks-pending")).unwrap();
    assert_eq!(marks.count(), 0);
}

/// Installs `hooks/t` appending a line to `<base>/ran`; returns that path.
fn counting_hook(spool: &Spool) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let out = spool.base().join("ran");
    let hook = spool.hooks_dir().join("t");
    std::fs::write(&hook, format!("#!/bin/sh\necho x >> {}\n", out.display())).unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    out
}

/// Waits (yielding to the runtime, which runs the hooks) for one line in `out`.
async fn wait_ran_once(out: &std::path::Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ran = std::fs::read_to_string(out).unwrap_or_default();
        if ran == "x\n" {
            return;
        }
        assert!(Instant::now() < deadline, "not one hook run: {ran:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Stages `msg` and marks its hook owed, as the writer does before its
/// commit; returns the inbox file name.
fn stage_and_mark(spool: &Spool, msg: &Message) -> String {
    let name = msg.file_name();
    let staged = spool.stage(&[(name.clone(), msg.to_json_bytes())]).unwrap();
    let (path, _) = staged.paths().next().unwrap();
    pending::record(spool, &[(path.as_path(), name.as_str())]).unwrap();
    name
}

#[tokio::test]
async fn a_crash_before_the_commit_leaves_nothing_and_the_redelivery_is_written_once() {
    let tmp = tempfile::tempdir().unwrap();
    let spool = Spool::open(tmp.path()).unwrap();
    let out = counting_hook(&spool);
    let msg = Message::new("t", "m1", None, Priority::Normal, serde_json::json!({})).unwrap();
    // Staged and marked, then the crash: no ledger entry.
    let name = stage_and_mark(&spool, &msg);

    let (input, mut acks, _gone) = start(&spool);
    assert!(
        spool.staged_leftovers().is_empty(),
        "an uncommitted file stayed"
    );
    assert!(spool.list(Queue::Inbox).unwrap().is_empty());
    input.deliver(vec![msg.clone()]).await.unwrap();
    assert_eq!(acks.recv().await.unwrap(), vec![msg.id]);
    assert_eq!(spool.list(Queue::Inbox).unwrap(), vec![name]);
    wait_ran_once(&out).await;
}

#[tokio::test]
async fn a_crash_after_the_commit_is_finished_at_start_and_not_written_again() {
    let tmp = tempfile::tempdir().unwrap();
    let spool = Spool::open(tmp.path()).unwrap();
    let out = counting_hook(&spool);
    let msg = Message::new("t", "m1", None, Priority::Normal, serde_json::json!({})).unwrap();
    // Staged, marked and recorded in the ledger, then the crash before the move.
    let name = stage_and_mark(&spool, &msg);
    let (mut ledger, _) = LedgerFile::open(spool.base(), Duration::from_secs(86_400)).unwrap();
    ledger.append(&[msg.id], ledger::unix_now()).unwrap();
    drop(ledger);

    let (input, mut acks, _gone) = start(&spool);
    assert_eq!(spool.list(Queue::Inbox).unwrap(), vec![name.clone()]);
    // A program consumes it; the hub's re-delivery is acked, not rewritten.
    spool.remove(Queue::Inbox, &name).unwrap();
    input.deliver(vec![msg.clone()]).await.unwrap();
    assert_eq!(acks.recv().await.unwrap(), vec![msg.id]);
    assert!(spool.list(Queue::Inbox).unwrap().is_empty());
    wait_ran_once(&out).await;
}
