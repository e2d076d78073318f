//! Footprint rows: an idle daemon's CPU and memory, and the release binary.

use std::time::{Duration, Instant};

use crate::common::{Hub, Proc};
use crate::report::{Figure, Row, Spread, Unit};
use crate::Plan;

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

/// Idle daemons, one per run, all at once on one hub (so the spread costs
/// no extra time): each connected with the default 5 s tick, its CPU
/// measured over `plan.idle` after start-up settled.
pub fn idle_daemon(plan: &Plan) -> Vec<Row> {
    let hub = Hub::start();
    let machines: Vec<_> = (0..plan.runs)
        .map(|i| hub.machine(&format!("bench-idle-{i}")))
        .collect();
    let daemons: Vec<Proc> = machines
        .iter()
        .map(|m| {
            let mut cmd = m.cmd();
            cmd.env("MESYNC_POLL_INTERVAL", "5").arg("start");
            Proc::spawn(&format!("daemon-{}", m.host), cmd)
        })
        .collect();
    for m in &machines {
        hub.wait_streaming(&m.host);
    }
    crate::progress("idle daemons", 0, 1);
    // Let start-up work settle before measuring.
    std::thread::sleep(Duration::from_secs(2));
    let before: Vec<u64> = daemons
        .iter()
        .map(|d| cpu_ticks(d.pid()).unwrap_or(0))
        .collect();
    let start = Instant::now();
    std::thread::sleep(plan.idle);
    let secs = start.elapsed().as_secs_f64();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let (mut cpu, mut rss) = (Spread::new(Unit::Percent), Spread::new(Unit::Mb));
    for (d, before) in daemons.iter().zip(before) {
        let ticks = cpu_ticks(d.pid()).unwrap_or(0).saturating_sub(before);
        cpu.push(ticks as f64 / hz / secs * 100.0);
        rss.push(rss_kib(d.pid()).unwrap_or(0) as f64 / 1024.0);
    }
    let cpu_met = cpu.median().map(|c| c < 0.5);
    let rss_met = rss.median().map(|r| r <= 15.0);
    vec![
        Row::alone(
            &format!("idle daemon CPU, connected, default 5 s tick ({secs:.0} s)"),
            "~0 %",
            Figure::Spread(cpu),
            cpu_met,
        ),
        Row::alone("idle daemon RSS", "<= 15 MB", Figure::Spread(rss), rss_met),
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
    vec![Row::alone(
        "release binary",
        "one file, only libc dynamically",
        Figure::Text(format!(
            "{:.1} MB; ldd: {}",
            size as f64 / 1e6,
            libs.join(", ")
        )),
        Some(only_libc),
    )]
}
