//! The README's shell examples run as written: every ```sh block, in
//! order, against `mesync start --with-hub` in a fresh home directory.
//!
//! A block is left out only when the line before it says why
//! (`<!-- not run by tests/readme.rs: ... -->`): it builds, installs, needs
//! several machines, or is the long-running command this test starts
//! itself. That one listens on a free port instead of 8080, so the blocks
//! run with `127.0.0.1:8080` replaced by the address it got.

mod common;

use std::path::Path;
use std::process::Command;

use common::{wait_until, Proc, DEADLINE};

const SKIP: &str = "<!-- not run by tests/readme.rs:";

/// The ```sh blocks of `markdown` that are meant to run.
fn runnable_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut lines = markdown.lines();
    let mut previous = "";
    while let Some(line) = lines.next() {
        if line == "```sh" {
            let body: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
            if !previous.starts_with(SKIP) {
                blocks.push(body.join("\n"));
            }
        }
        if !line.trim().is_empty() {
            previous = line;
        }
    }
    blocks
}

/// A command with nothing of the test's environment but `PATH` (with the
/// freshly built `mesync` first) and `HOME`.
fn shell_env(cmd: &mut Command, home: &Path) {
    let bin_dir = Path::new(common::bin()).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    cmd.env_clear()
        .env("PATH", path)
        .env("HOME", home)
        .env("RUST_LOG", "info")
        .current_dir(env!("CARGO_MANIFEST_DIR"));
}

#[test]
fn the_readme_examples_run_as_written() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let blocks = runnable_blocks(&readme);
    assert!(
        blocks.len() >= 4,
        "found only {} runnable blocks",
        blocks.len()
    );
    for tool in ["jq", "curl"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            found,
            "the README's examples need {tool}: install it (apt-get install {tool})"
        );
    }

    let home = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(common::bin());
    shell_env(&mut cmd, home.path());
    cmd.args(["start", "--with-hub", "--bind", "127.0.0.1:0"]);
    let mut daemon = Proc::spawn("readme-daemon", cmd);
    let addr = daemon.hub_addr().expect("the hub binds").to_string();
    let health = format!("http://{addr}/healthz");
    wait_until("the hub to answer", DEADLINE, || {
        reqwest::blocking::get(&health).is_ok_and(|r| r.status().is_success())
    });

    for block in &blocks {
        let script = block.replace("127.0.0.1:8080", &addr);
        let mut cmd = Command::new("sh");
        shell_env(&mut cmd, home.path());
        let out = cmd.args(["-e", "-c", &script]).output().unwrap();
        assert!(
            out.status.success(),
            "this README example failed ({}):\n{block}\n--- stdout\n{}--- stderr\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
    }

    // The walkthrough did what it says: the hook ran for the message sent
    // over the hub and for the one given by hand.
    let log = home.path().join("hello.log");
    wait_until(
        "the hello.world hook to log both messages",
        DEADLINE,
        || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            text.contains("says: hi") && text.contains("me says: by hand")
        },
    );
    assert!(daemon.terminate().success(), "{}", daemon.log());
}
