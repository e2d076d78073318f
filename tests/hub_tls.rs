//! HTTPS on the hub with a certificate made at test time: the hub serves
//! only TLS, and the command line trusts it through `ca_file`.

mod common;

use std::process::Command;

use common::{mesync_cmd, spawn_hub, wait_for, DEADLINE};

#[test]
fn the_hub_serves_https_and_clients_trust_it_through_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let (cert, key) = (dir.path().join("hub.crt"), dir.path().join("hub.key"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.key_pair.serialize_pem()).unwrap();
    let env = [
        ("MESYNC_TLS_CERT", cert.to_str().unwrap()),
        ("MESYNC_TLS_KEY", key.to_str().unwrap()),
    ];
    let (hub, addr) = spawn_hub(&dir.path().join("hubbase"), "127.0.0.1:0", &env)
        .unwrap_or_else(|log| panic!("hub failed: {log}"));
    let url = format!("https://127.0.0.1:{}", addr.port());
    let root = reqwest::Certificate::from_pem(made.cert.pem().as_bytes()).unwrap();
    let https = reqwest::blocking::Client::builder()
        .add_root_certificate(root)
        .build()
        .unwrap();
    let status = wait_for("the hub to answer over HTTPS", DEADLINE, || {
        https
            .get(format!("{url}/healthz"))
            .send()
            .ok()
            .map(|r| r.status())
    });
    assert_eq!(status, 200);
    let plain = reqwest::blocking::get(format!("http://127.0.0.1:{}/healthz", addr.port()));
    assert!(plain.is_err(), "plain HTTP answered: {plain:?}");
    // The command line: refused without the root, fine with it.
    let hosts = |ca: Option<&std::path::Path>| {
        let mut cmd: Command = mesync_cmd(&dir.path().join("client"));
        cmd.args(["hosts", "--server-url", &url]);
        if let Some(ca) = ca {
            cmd.env("MESYNC_CA_FILE", ca);
        }
        cmd.output().unwrap()
    };
    let untrusted = hosts(None);
    assert!(!untrusted.status.success());
    let trusted = hosts(Some(&cert));
    assert!(
        trusted.status.success(),
        "{}",
        String::from_utf8_lossy(&trusted.stderr)
    );
    drop(hub);
}
