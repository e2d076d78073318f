//! Files mesync creates are for its user only (0600), whatever the mode of
//! the directory they land in, and a base or data dir open to other local
//! users is warned about.

mod common;
#[path = "common/hub_tools.rs"]
mod hub_tools;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{wait_until, Hub, DEADLINE};
use hub_tools::*;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn open_dir(path: &Path) {
    std::fs::create_dir_all(path).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn files_are_0600_in_directories_open_to_others_and_those_are_warned_about() {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().join("hub");
    open_dir(&data_dir);
    let hub = Hub::start_with(&[("MESYNC_DATA_DIR", data_dir.to_str().unwrap())]);
    let m = hub.machine("m1");
    open_dir(&m.base);
    let daemon = m.start_daemon();
    hub.wait_streaming("m1");
    send(&hub, &message("a", Some("m1"), "secret.event"));
    wait_until("the message in inbox/", DEADLINE, || {
        m.files("inbox").len() == 1
    });
    for name in m.files("inbox") {
        assert_eq!(mode(&m.dir("inbox").join(&name)), 0o600, "inbox/{name}");
    }
    let mut checked = 0;
    for entry in std::fs::read_dir(&data_dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            assert_eq!(mode(&path), 0o600, "{}", path.display());
            checked += 1;
        }
    }
    assert!(checked >= 2, "a segment and the lock");
    assert!(
        daemon.log().contains("open to other local users"),
        "{}",
        daemon.log()
    );
    assert!(
        hub.proc.log().contains("open to other local users"),
        "{}",
        hub.proc.log()
    );
}
