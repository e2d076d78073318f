//! A loopback TCP proxy between the daemons and the hub that cuts
//! connections at random: the daemons' streams, posts and acks break
//! mid-flight, as a flaky network would break them.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

/// Both ends of each open connection, by connection number.
type Open = Arc<Mutex<HashMap<u64, (TcpStream, TcpStream)>>>;

pub struct Proxy {
    pub addr: SocketAddr,
    open: Open,
    pub cuts: AtomicUsize,
}

impl Proxy {
    /// Listens on a loopback port the system chooses and forwards every
    /// connection to `127.0.0.1:upstream_port` (the hub, also after it restarts).
    pub fn start(upstream_port: u16) -> Arc<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let proxy = Arc::new(Proxy {
            addr: listener.local_addr().expect("proxy address"),
            open: Arc::default(),
            cuts: AtomicUsize::new(0),
        });
        let open = proxy.open.clone();
        // Runs until the test process exits: a proxy lives as long as its run.
        thread::spawn(move || {
            let next = AtomicU64::new(0);
            for client in listener.incoming().flatten() {
                let Ok(upstream) = TcpStream::connect(("127.0.0.1", upstream_port)) else {
                    continue;
                };
                let n = next.fetch_add(1, Ordering::Relaxed);
                forward(n, client, upstream, &open);
            }
        });
        proxy
    }

    /// Cuts the open connection picked by `pick` (any number; taken modulo).
    pub fn cut_one(&self, pick: u64) {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.is_empty() {
            return;
        }
        let mut keys: Vec<&u64> = open.keys().collect();
        keys.sort();
        let key = *keys[(pick % keys.len() as u64) as usize];
        if let Some((a, b)) = open.get(&key) {
            let _ = a.shutdown(Shutdown::Both);
            let _ = b.shutdown(Shutdown::Both);
            self.cuts.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn forward(n: u64, client: TcpStream, upstream: TcpStream, open: &Open) {
    let (Ok(c2), Ok(u2), Ok(c3), Ok(u3)) = (
        client.try_clone(),
        upstream.try_clone(),
        client.try_clone(),
        upstream.try_clone(),
    ) else {
        return;
    };
    open.lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(n, (c3, u3));
    let open_a = open.clone();
    thread::spawn(move || {
        pipe(client, upstream);
        open_a.lock().unwrap_or_else(|e| e.into_inner()).remove(&n);
    });
    thread::spawn(move || pipe(u2, c2));
}

/// Copies `from` to `to` until either ends, then ends both.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}
