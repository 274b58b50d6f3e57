//! The standard `process_*` families of this process, read from `/proc/self` at scrape time
//! (names as Prometheus' client libraries expose them).

use super::Exposition;

/// Clock ticks per second in `/proc/<pid>/stat` (`USER_HZ`: `sysconf(_SC_CLK_TCK)`, which
/// Linux fixes at 100 on every architecture it exports to user space; proc(5)).
const TICKS_PER_SECOND: f64 = 100.0;

/// Writes `process_cpu_seconds_total`, `process_resident_memory_bytes`,
/// `process_virtual_memory_bytes`, `process_open_fds`, `process_max_fds` and
/// `process_start_time_seconds`; a file that cannot be read leaves its families out.
pub fn write(e: &mut Exposition) {
    let stat = std::fs::read_to_string("/proc/self/stat").ok();
    // Fields after the command name (which may hold spaces) in `(…)`: field 3 is state.
    let fields: Vec<&str> = stat
        .as_deref()
        .and_then(|s| s.rsplit_once(')'))
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<f64>().ok());
    if let (Some(utime), Some(stime)) = (field(14), field(15)) {
        e.header(
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
            super::Kind::Counter,
        );
        e.sample(
            "process_cpu_seconds_total",
            &[],
            (utime + stime) / TICKS_PER_SECOND,
        );
    }
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        let kb = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        };
        if let Some(rss) = kb("VmRSS:") {
            e.gauge(
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                rss * 1024.0,
            );
        }
        if let Some(vm) = kb("VmSize:") {
            e.gauge(
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                vm * 1024.0,
            );
        }
    }
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        e.gauge(
            "process_open_fds",
            "Number of open file descriptors.",
            dir.count() as f64,
        );
    }
    if let Some(max) = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| max_open_files(&l))
    {
        e.gauge(
            "process_max_fds",
            "Maximum number of open file descriptors.",
            max,
        );
    }
    let btime = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse::<f64>().ok())
    });
    if let (Some(btime), Some(start)) = (btime, field(22)) {
        e.gauge(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            btime + start / TICKS_PER_SECOND,
        );
    }
}

/// The soft limit of `Max open files` in `/proc/self/limits`.
fn max_open_files(limits: &str) -> Option<f64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_own_process() {
        let mut e = super::Exposition::new();
        super::write(&mut e);
        let page = e.finish();
        for name in [
            "process_cpu_seconds_total ",
            "process_resident_memory_bytes ",
            "process_open_fds ",
            "process_start_time_seconds ",
        ] {
            assert!(page.contains(&format!("\n{name}")), "{name} in {page}");
        }
    }

    #[test]
    fn limits_line() {
        let l = "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\n";
        assert_eq!(super::max_open_files(l), Some(1024.0));
    }
}
