//! A manager's CPU and memory from /proc, sampled every second while a phase runs.

use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// CPU time of `pid` in clock ticks (utime + stime), if it runs.
fn cpu_ticks(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// Resident memory of `pid` in KiB.
fn rss_kib(pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[allow(unsafe_code)]
fn ticks_per_s() -> f64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// What a probe saw.
#[derive(Debug, Default)]
pub struct Seen {
    cpu_avg: f64,
    cpu_peak: f64,
    rss_peak_mib: f64,
    rss_end_mib: f64,
}

impl std::fmt::Display for Seen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "leader_cpu_avg_pct={:.0} leader_cpu_peak_pct={:.0} leader_rss_peak_mib={:.0} leader_rss_end_mib={:.0}",
            self.cpu_avg, self.cpu_peak, self.rss_peak_mib, self.rss_end_mib
        )
    }
}

/// A sampler running in the background until [`Probe::stop`].
pub struct Probe {
    stop: oneshot::Sender<()>,
    done: tokio::task::JoinHandle<Seen>,
}

impl Probe {
    /// Starts sampling `pid`.
    pub fn start(pid: i32) -> Probe {
        let (stop, mut stopped) = oneshot::channel();
        let done = tokio::spawn(async move {
            let hz = ticks_per_s();
            let t0 = Instant::now();
            let c0 = cpu_ticks(pid).unwrap_or(0);
            let (mut last_t, mut last_c) = (t0, c0);
            let mut seen = Seen::default();
            let mut rss_peak = rss_kib(pid).unwrap_or(0);
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = &mut stopped => break,
                }
                let (now, c) = (Instant::now(), cpu_ticks(pid).unwrap_or(last_c));
                let dt = now.duration_since(last_t).as_secs_f64();
                if dt > 0.0 {
                    let pct = (c.saturating_sub(last_c)) as f64 / hz / dt * 100.0;
                    seen.cpu_peak = seen.cpu_peak.max(pct);
                }
                (last_t, last_c) = (now, c);
                rss_peak = rss_peak.max(rss_kib(pid).unwrap_or(0));
            }
            let c = cpu_ticks(pid).unwrap_or(last_c);
            let dt = t0.elapsed().as_secs_f64();
            if dt > 0.0 {
                seen.cpu_avg = c.saturating_sub(c0) as f64 / hz / dt * 100.0;
            }
            let rss = rss_kib(pid).unwrap_or(0);
            seen.rss_peak_mib = rss_peak.max(rss) as f64 / 1024.0;
            seen.rss_end_mib = rss as f64 / 1024.0;
            seen
        });
        Probe { stop, done }
    }

    /// Stops sampling; what was seen.
    pub async fn stop(self) -> Seen {
        let _ = self.stop.send(());
        self.done.await.unwrap_or_default()
    }
}

/// kill -9 `pid` (a manager the script started).
#[allow(unsafe_code)]
pub fn kill9(pid: i32) -> anyhow::Result<()> {
    if pid <= 1 {
        anyhow::bail!("refusing to signal pid {pid}");
    }
    // SAFETY: kill(2) has no memory-safety preconditions; the pid is one the script started.
    if unsafe { libc::kill(pid, libc::SIGKILL) } != 0 {
        anyhow::bail!("kill -9 {pid}: {}", std::io::Error::last_os_error());
    }
    Ok(())
}
