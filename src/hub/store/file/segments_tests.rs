//! Segment files: tearing, locking, rolling, rewriting.

use super::*;

#[test]
fn torn_last_line_is_cut_and_the_rest_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("segment-0000000001.jsonl");
    fs::write(&path, b"{\"op\":\"log\"}\n{\"op\":\"del").unwrap();
    let read = read_lines(1, &path, true).unwrap();
    assert_eq!(read.lines, [(0, 12)]);
    assert_eq!(read.seg.bytes, 13);
    assert_eq!(read.iter().next().unwrap().0, b"{\"op\":\"log\"}");
    assert_eq!(fs::metadata(&path).unwrap().len(), 13);
    fs::write(&path, b"{\"op\":\"log\"}\n{\"op\":\"del").unwrap();
    let err = read_lines(1, &path, false).err().unwrap().to_string();
    assert!(
        err.contains("segment-0000000001.jsonl") && err.contains("--repair"),
        "{err}"
    );
}

#[test]
fn second_lock_of_a_dir_is_refused_and_temp_files_go() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("segment-0000000003.jsonl.tmp"), b"x").unwrap();
    fs::write(tmp.path().join("segment-0000000002.jsonl"), b"").unwrap();
    let (_first, found) = Segments::lock(tmp.path()).unwrap();
    assert_eq!(found.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [2]);
    assert!(!tmp.path().join("segment-0000000003.jsonl.tmp").exists());
    let err = Segments::lock(tmp.path()).err().unwrap();
    assert!(err.to_string().contains("another mesync hub"), "{err}");
}

#[test]
fn append_roll_rewrite_and_read_back() {
    let tmp = tempfile::tempdir().unwrap();
    let (lock, _) = Segments::lock(tmp.path()).unwrap();
    let mut segs =
        Segments::begin(tmp.path(), lock, Vec::new(), b"h\n", Manifest::default()).unwrap();
    segs.append(b"one\ntwo\n").unwrap();
    assert_eq!(segs.active().bytes, 10);
    segs.roll(b"h\n").unwrap();
    assert_eq!(segs.active().id, 2);
    assert_eq!(
        read_at(tmp.path(), &[(1, 6, 3), (1, 2, 3)]),
        [Some(b"two".to_vec()), Some(b"one".to_vec())]
    );
    let staged = segs.stage(1, b"two\n").unwrap();
    segs.swap(1, staged).unwrap();
    assert_eq!(read_at(tmp.path(), &[(1, 0, 3)]), [Some(b"two".to_vec())]);
    assert!(segs.closed().next().unwrap().compacted);
    let staged = segs.stage(1, b"").unwrap();
    segs.swap(1, staged).unwrap();
    segs.sync().unwrap();
    assert_eq!(segs.closed().count(), 0);
    assert_eq!(read_at(tmp.path(), &[(1, 0, 3)]), [None]);
}

#[test]
fn a_roll_that_failed_halfway_does_not_block_the_next() {
    let tmp = tempfile::tempdir().unwrap();
    let (lock, _) = Segments::lock(tmp.path()).unwrap();
    let mut segs =
        Segments::begin(tmp.path(), lock, Vec::new(), b"h\n", Manifest::default()).unwrap();
    // What a full disk left of the next segment: a file, empty or torn.
    fs::write(segment_path(tmp.path(), 2), b"{\"op\":").unwrap();
    segs.roll(b"h2\n").unwrap();
    assert_eq!(segs.active().id, 2);
    assert_eq!(fs::read(segment_path(tmp.path(), 2)).unwrap(), b"h2\n");
    let listed = super::super::manifest::load(tmp.path()).unwrap().unwrap();
    assert_eq!(listed.segments, [1, 2]);
}
