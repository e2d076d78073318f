//! Footprint rows: an idle daemon's CPU and memory, and the release binary.

use std::time::{Duration, Instant};

use crate::common::Hub;
use crate::{Plan, Row};

/// Resident set size of a process, in KiB, from /proc.
pub fn rss_kib(pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// User plus system CPU time of a process, in clock ticks.
fn cpu_ticks(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which may contain spaces, closed by ')'.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

pub fn idle_daemon(plan: &Plan) -> Vec<Row> {
    let hub = Hub::start();
    let m = hub.machine("bench-idle");
    // The default tick (5 s), as an idle machine would run it.
    let mut cmd = m.cmd();
    cmd.env("MESYNC_POLL_INTERVAL", "5").arg("start");
    let daemon = crate::common::Proc::spawn("daemon-idle", cmd);
    let pid = daemon.pid();
    hub.wait_streaming(&m.host);
    // Let start-up work settle before measuring.
    std::thread::sleep(Duration::from_secs(2));
    let before = cpu_ticks(pid).unwrap_or(0);
    let start = Instant::now();
    std::thread::sleep(plan.idle);
    let ticks = cpu_ticks(pid).unwrap_or(0) - before;
    let secs = start.elapsed().as_secs_f64();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let cpu = ticks as f64 / hz / secs * 100.0;
    let rss = rss_kib(pid).unwrap_or(0);
    vec![
        Row {
            what: "idle daemon CPU",
            target: "~0 %",
            measured: format!("{cpu:.2} % over {secs:.0} s ({ticks} ticks)"),
            met: Some(cpu < 0.5),
        },
        Row {
            what: "idle daemon RSS",
            target: "<= 20 MB",
            measured: format!("{:.1} MB", rss as f64 / 1024.0),
            met: Some(rss <= 20 * 1024),
        },
    ]
}

pub fn binary() -> Vec<Row> {
    let path = crate::common::bin();
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let ldd = std::process::Command::new("ldd")
        .arg(path)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_else(|e| format!("ldd failed: {e}"));
    let libs: Vec<String> = ldd
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(|l| l.to_string())
        .collect();
    // The loader and the vDSO are not libraries the binary chose.
    let chosen: Vec<&String> = libs
        .iter()
        .filter(|l| !l.starts_with("linux-vdso") && !l.contains("ld-linux"))
        .collect();
    // libm is part of glibc; anything else (libgcc_s, libssl) is not libc.
    let only_libc = chosen
        .iter()
        .all(|l| l.starts_with("libc.so") || l.starts_with("libm.so"));
    vec![Row {
        what: "release binary",
        target: "one file, only libc dynamically",
        measured: format!("{:.1} MB; ldd: {}", size as f64 / 1e6, libs.join(", ")),
        met: Some(only_libc),
    }]
}
