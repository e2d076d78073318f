//! The chaos run's helpers: a loopback TCP proxy that can cut every
//! connection at once, a consumer that takes files out of an inbox the way a
//! program would (counting each arrival, so a second delivery shows), and a
//! small seeded random number generator.

use std::collections::HashMap;
use std::io;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Forwards 127.0.0.1:<port> to the hub's port; [`Proxy::cut`] closes every
/// connection open through it, both ways, as a network failure would.
pub struct Proxy {
    port: u16,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    pub fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let conns = open.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                // The hub may be down for a moment: the client sees a closed connection.
                let Ok(hub) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let _ = (client.set_nodelay(true), hub.set_nodelay(true));
                if let Ok(pair) = forward(&client, &hub) {
                    let mut open = conns.lock().unwrap();
                    open.retain(|s| s.peer_addr().is_ok());
                    open.extend(pair);
                }
            }
        });
        Proxy { port, open }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn cut(&self) {
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

/// Copies both ways on two threads; returns handles to cut the pair.
fn forward(client: &TcpStream, hub: &TcpStream) -> io::Result<[TcpStream; 2]> {
    for (from, to) in [(client, hub), (hub, client)] {
        let (mut from, mut to) = (from.try_clone()?, to.try_clone()?);
        std::thread::spawn(move || {
            let _ = io::copy(&mut from, &mut to);
            let _ = to.shutdown(Shutdown::Both);
            let _ = from.shutdown(Shutdown::Both);
        });
    }
    Ok([client.try_clone()?, hub.try_clone()?])
}

/// Takes every message file out of `inbox/` every 50 ms and counts each id.
pub struct Consumer {
    seen: Arc<Mutex<HashMap<String, usize>>>,
    stop: Arc<AtomicBool>,
}

impl Consumer {
    pub fn start(base: &Path) -> Consumer {
        let inbox: PathBuf = base.join("inbox");
        let seen: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (counts, done) = (seen.clone(), stop.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                take_all(&inbox, &counts);
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        Consumer { seen, stop }
    }

    /// How often each id has arrived so far.
    pub fn counts(&self) -> HashMap<String, usize> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn take_all(inbox: &Path, counts: &Mutex<HashMap<String, usize>>) {
    let Ok(entries) = std::fs::read_dir(inbox) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".json") || name.starts_with('.') {
            continue;
        }
        let Some(id) = mesync::message::id_from_file_name(&name) else {
            continue;
        };
        if std::fs::remove_file(entry.path()).is_ok() {
            *counts.lock().unwrap().entry(id.to_string()).or_default() += 1;
        }
    }
}

/// xorshift64*: enough randomness to pick faults, repeatable from a seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n.max(1)
    }
}
