//! redis-server with `appendfsync always` as the reference a user would
//! pick instead of mesync: started by the benchmark on a loopback port with
//! its own temp dir (on the same disk as mesync's), stopped by pid on drop.
//! Installed from Debian's packages when missing. Every failure is a
//! sentence for the row's cell; none stops the run.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::resp::{Conn, Reply};

/// A running redis-server; killed when dropped.
pub struct Redis {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port that was free a moment ago.
fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free loopback port for redis-server: {e}"))
}

impl Redis {
    /// Starts a fresh server. redis-server cannot listen on port 0, so a
    /// port free a moment ago is tried; if another process took it
    /// meanwhile, redis exits at once and the next port is tried.
    pub fn start() -> Result<Redis, String> {
        let bin = binary()?;
        let mut last = String::new();
        for _ in 0..3 {
            let dir = tempfile::tempdir().map_err(|e| format!("no temp dir for redis: {e}"))?;
            let port = free_port()?;
            let child = spawn(&bin, dir.path(), port)?;
            let mut redis = Redis { child, port, dir };
            match redis.wait_ready() {
                Ok(()) => return Ok(redis),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    pub fn connect(&self) -> Result<Conn, String> {
        Conn::connect(self.port).map_err(|e| format!("cannot connect to redis-server: {e}"))
    }

    /// Waits until this server answers, and checks it is ours (its `dir` is
    /// our temp dir), not another one that holds the port.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let ours = self.dir.path().canonicalize().unwrap_or_default();
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "redis-server exited ({status}): {}",
                    self.log_tail()
                ));
            }
            if let Ok(mut conn) = Conn::connect(self.port) {
                let dir = conn.call(&[b"CONFIG", b"GET", b"dir"]);
                return match dir.as_ref().ok().and_then(|r| r.bulk_at(&[1])) {
                    Some(d) if Path::new(&*String::from_utf8_lossy(d)) == ours => Ok(()),
                    _ => Err(format!(
                        "port {} answers, but not as our redis-server",
                        self.port
                    )),
                };
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!(
            "redis-server did not answer within 10 s: {}",
            self.log_tail()
        ))
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default();
        log.lines().last().unwrap_or("no log").trim().to_string()
    }
}

fn spawn(bin: &Path, dir: &Path, port: u16) -> Result<Child, String> {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(bin);
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .arg("--dir")
        .arg(dir)
        .arg("--logfile")
        .arg(dir.join("redis.log"))
        // Durable like mesync: every write is fsynced before it is answered.
        .args(["--appendonly", "yes", "--appendfsync", "always"])
        .args(["--save", "", "--daemonize", "no", "--protected-mode", "yes"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: prctl is async-signal-safe and touches no memory of ours.
    unsafe {
        cmd.pre_exec(|| {
            // If the benchmark dies, redis-server goes with it.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    cmd.spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))
}

/// redis-server's path, installing Debian's package once if it is missing.
fn binary() -> Result<PathBuf, String> {
    static FOUND: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            if let Some(p) = find("redis-server") {
                return Ok(p);
            }
            install()?;
            find("redis-server").ok_or_else(|| "redis-server is still missing after apt-get".into())
        })
        .clone()
}

fn find(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/bin", "/usr/sbin"])
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file());
    found
}

/// `apt-get install -y redis-server`, through sudo when not root.
fn install() -> Result<(), String> {
    eprintln!("redis-server is missing: installing Debian's package redis-server");
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let apt = |args: &[&str]| -> Result<(), String> {
        let mut cmd = if root {
            Command::new("apt-get")
        } else {
            let mut c = Command::new("sudo");
            c.arg("apt-get");
            c
        };
        let status = cmd
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .map_err(|e| format!("cannot run apt-get: {e}"))?;
        match status.success() {
            true => Ok(()),
            false => Err(format!("apt-get {} failed ({status})", args.join(" "))),
        }
    };
    apt(&["update"])?;
    apt(&["install", "-y", "redis-server"])
}

/// Lone messages through redis: XADD on one connection while another waits
/// in XREADGROUP BLOCK; the time runs from sending the XADD until the reader
/// holds the entry (redis answers both only after the fsync). The reader
/// then XACKs it before the next sample, as mesync's receiver acks.
pub struct LoneMessages {
    producer: Conn,
    consumer: Conn,
}

fn latency_error(e: std::io::Error) -> String {
    format!("redis latency: {e}")
}

impl LoneMessages {
    pub fn open(redis: &Redis) -> Result<LoneMessages, String> {
        let (producer, mut consumer) = (redis.connect()?, redis.connect()?);
        consumer
            .call(&[b"XGROUP", b"CREATE", b"lat", b"g", b"$", b"MKSTREAM"])
            .map_err(latency_error)?;
        Ok(LoneMessages { producer, consumer })
    }

    /// One message of `value`, timed.
    pub fn sample(&mut self, value: &[u8]) -> Result<Duration, String> {
        let (producer, consumer) = (&mut self.producer, &mut self.consumer);
        consumer
            .send_command(&[
                b"XREADGROUP",
                b"GROUP",
                b"g",
                b"c",
                b"COUNT",
                b"1",
                b"BLOCK",
                b"10000",
                b"STREAMS",
                b"lat",
                b">",
            ])
            .map_err(latency_error)?;
        let start = Instant::now();
        producer
            .send_command(&[b"XADD", b"lat", b"*", b"m", value])
            .map_err(latency_error)?;
        let got = consumer.read().map_err(latency_error)?;
        let took = start.elapsed();
        producer.read().map_err(latency_error)?;
        // [[stream, [[id, [field, value]]]]]
        let id = got
            .bulk_at(&[0, 1, 0, 0])
            .ok_or_else(|| format!("redis latency: no entry within 10 s ({got:?})"))?;
        match consumer
            .call(&[b"XACK", b"lat", b"g", id])
            .map_err(latency_error)?
        {
            Reply::Int(1) => Ok(took),
            other => Err(format!("redis latency: XACK answered {other:?}")),
        }
    }
}

/// XADDs of `values`, in pipelined batches of `batch` over `connections`
/// connections; returns how many redis acknowledged and how long it took.
pub fn ingest(
    redis: &Redis,
    values: &[Vec<u8>],
    batch: usize,
    connections: usize,
) -> Result<(usize, Duration), String> {
    // Encoded before the clock starts, as mesync's bodies are.
    let mut per_conn: Vec<Vec<(Vec<u8>, usize)>> = vec![Vec::new(); connections];
    for (i, chunk) in values.chunks(batch).enumerate() {
        let mut out = Vec::new();
        for v in chunk {
            crate::resp::encode(&mut out, &[b"XADD", b"ingest", b"*", b"m", v]);
        }
        per_conn[i % connections].push((out, chunk.len()));
    }
    let conns = (0..connections)
        .map(|_| redis.connect())
        .collect::<Result<Vec<_>, _>>()?;
    let start = Instant::now();
    let acked = std::thread::scope(|scope| {
        let handles: Vec<_> = conns
            .into_iter()
            .zip(&per_conn)
            .map(|(mut conn, bodies)| {
                scope.spawn(move || -> std::io::Result<usize> {
                    let mut acked = 0;
                    for (body, count) in bodies {
                        conn.send(body)?;
                        for _ in 0..*count {
                            if matches!(conn.read()?, Reply::Bulk(_)) {
                                acked += 1;
                            }
                        }
                    }
                    Ok(acked)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(std::io::Error::other("panicked")))
            })
            .sum::<std::io::Result<usize>>()
    });
    let acked = acked.map_err(|e| format!("redis ingest: {e}"))?;
    Ok((acked, start.elapsed()))
}
