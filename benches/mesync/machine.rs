//! The machine the figures come from: CPU model, cores, memory, the file
//! system every row writes to, and the load average before and after, so a
//! figure can be read beside what else the machine was doing.

use std::path::Path;

/// One line naming the CPU, its cores, the memory and the temp dir's disk.
pub fn describe() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = field(&cpuinfo, "model name").unwrap_or("unknown CPU");
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = field(&meminfo, "MemTotal")
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kib| kib.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    let tmp = std::env::temp_dir();
    format!(
        "{model}, {cores} cores, {mem_gib:.1} GiB RAM; every row writes under {} ({})",
        tmp.display(),
        mount_of(&tmp)
    )
}

/// `/proc/loadavg`: the 1, 5 and 15 minute load averages and the run queue.
pub fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|e| format!("unknown ({e})"))
}

/// The value of the first `key: value` line of a /proc file.
fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim())
}

/// The device, file system type and options of the mount holding `path`.
fn mount_of(path: &Path) -> String {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let best = mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 4 && path.starts_with(f[1])).then_some(f)
        })
        .max_by_key(|f| f[1].len());
    match best {
        Some(f) => format!("{} {} on {}, {}", f[2], f[0], f[1], f[3]),
        None => "unknown file system".to_string(),
    }
}

/// Thousands of sockets need more descriptors than the usual soft limit;
/// processes started afterwards (hubs, redis-server) inherit the raised one.
pub fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// The soft limit on open files, after [`raise_fd_limit`].
pub fn fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a plain syscall on a local struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        lim.rlim_cur
    } else {
        0
    }
}

/// Flushes what the previous step left for the disk (the temp dirs it
/// deleted, which this file system discards at commit time, and its dirty
/// pages), so that the next step, mesync's or a reference's, does not pay
/// for it.
pub fn settle_disk() {
    // SAFETY: sync(2) has no preconditions and cannot fail.
    unsafe { libc::sync() };
}
