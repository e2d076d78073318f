//! The queues and the atomic-write helper on a real directory.

use super::*;
use std::os::unix::fs::PermissionsExt;

#[test]
fn open_creates_base_0700_and_queues() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    let spool = Spool::open(&base).unwrap();
    let mode = fs::metadata(&base).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    for q in Queue::ALL {
        assert!(spool.dir(q).is_dir());
    }
    assert!(spool.hooks_dir().is_dir());
}

#[test]
fn write_leaves_no_temp_file_and_list_skips_hidden() {
    let tmp = tempfile::tempdir().unwrap();
    let spool = Spool::open(tmp.path()).unwrap();
    spool.write(Queue::Outbox, "b.json", b"{}").unwrap();
    spool.write(Queue::Outbox, "a.json", b"{}").unwrap();
    fs::write(spool.path(Queue::Outbox, ".c.json"), b"{").unwrap();
    fs::write(spool.path(Queue::Outbox, "d.json.tmp"), b"{").unwrap();
    assert_eq!(spool.list(Queue::Outbox).unwrap(), vec!["a.json", "b.json"]);
    assert_eq!(fs::read_dir(tmp.path().join(TMP_DIR)).unwrap().count(), 0);
}

#[test]
fn fail_writes_error_sibling_and_remove_drops_it() {
    let tmp = tempfile::tempdir().unwrap();
    let spool = Spool::open(tmp.path()).unwrap();
    spool.write(Queue::Outbox, "a.json", b"x").unwrap();
    spool.fail(Queue::Outbox, "a.json", "type: bad").unwrap();
    assert!(spool.list(Queue::Outbox).unwrap().is_empty());
    let err = fs::read_to_string(spool.path(Queue::Failed, "a.json.error")).unwrap();
    assert!(err.contains("type: bad"));
    spool.remove(Queue::Failed, "a.json").unwrap();
    assert_eq!(fs::read_dir(spool.dir(Queue::Failed)).unwrap().count(), 0);
}

#[test]
fn a_failed_write_batch_leaves_no_temp_file() {
    let tmp = tempfile::tempdir().unwrap();
    let spool = Spool::open(tmp.path()).unwrap();
    fs::remove_dir(spool.dir(Queue::Inbox)).unwrap();
    let files: Vec<_> = (0..3).map(|i| (format!("{i}.json"), vec![b'1'])).collect();
    assert!(spool.write_batch(Queue::Inbox, &files).is_err());
    assert_eq!(fs::read_dir(tmp.path().join(TMP_DIR)).unwrap().count(), 0);
}

#[test]
fn temp_files_of_dead_writers_are_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let spool = Spool::open(tmp.path()).unwrap();
    let dir = tmp.path().join(TMP_DIR);
    let mine = dir.join(format!("{}.0.a.json", std::process::id()));
    fs::write(&mine, b"{").unwrap();
    fs::write(dir.join("2147483646.0.b.json"), b"{").unwrap();
    fs::write(dir.join("junk"), b"{").unwrap();
    assert_eq!(spool.remove_crash_leftovers(), 2);
    assert!(mine.exists(), "a live writer keeps its file");
}

#[test]
fn write_batch_makes_all_files_visible() {
    let tmp = tempfile::tempdir().unwrap();
    let spool = Spool::open(tmp.path()).unwrap();
    let files: Vec<_> = (0..5).map(|i| (format!("{i}.json"), vec![b'1'])).collect();
    spool.write_batch(Queue::Inbox, &files).unwrap();
    assert_eq!(spool.list(Queue::Inbox).unwrap().len(), 5);
    let many: Vec<_> = (0..300)
        .map(|i| (format!("m{i:03}.json"), vec![b'2']))
        .collect();
    spool.write_batch(Queue::Inbox, &many).unwrap();
    assert_eq!(spool.list(Queue::Inbox).unwrap().len(), 305);
    assert_eq!(fs::read_dir(tmp.path().join(TMP_DIR)).unwrap().count(), 0);
    let names: Vec<String> = many.iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(
        spool
            .archive_batch(Queue::Inbox, &names, Queue::Sent)
            .unwrap(),
        300
    );
    assert_eq!(spool.list(Queue::Sent).unwrap().len(), 300);
}
