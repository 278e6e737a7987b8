//! What the whole process used while a measurement ran: CPU time in user space and in the
//! kernel, and the peak of its resident memory, from `getrusage`. A latency says how long the
//! user waited; these say how much of the machine it took and where (kernel time is page
//! faults and socket copies), which is what tells two runs on a machine of changing speed apart.

use serde::{Deserialize, Serialize};

/// The process's CPU time so far and its peak resident memory (one `getrusage(RUSAGE_SELF)`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Snapshot {
    user: f64,
    system: f64,
    peak_rss_bytes: u64,
}

/// What the process used between two [`Snapshot`]s, over `wall` seconds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProcessUsage {
    /// Seconds of CPU in user space, every thread of the process.
    pub cpu_user_seconds: f64,
    /// Seconds of CPU in the kernel on the process's behalf (system calls, page faults).
    pub cpu_system_seconds: f64,
    /// Seconds of wall-clock time between the snapshots.
    pub wall_seconds: f64,
    /// The process's peak resident memory, from its start to the second snapshot.
    pub peak_rss_bytes: u64,
}

impl Snapshot {
    /// The calling process's usage now, or `None` where `getrusage` is not available.
    pub fn now() -> Option<Self> {
        #[cfg(unix)]
        {
            // SAFETY: `getrusage` only writes the `rusage` it is given, which is plain data
            // (every bit pattern valid) and lives until the call returns.
            let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
            if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
                return None;
            }
            let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
            // Linux and the BSDs count ru_maxrss in KiB, macOS in bytes.
            let unit = if cfg!(target_os = "macos") { 1 } else { 1024 };
            Some(Snapshot {
                user: secs(ru.ru_utime),
                system: secs(ru.ru_stime),
                peak_rss_bytes: (ru.ru_maxrss.max(0) as u64).saturating_mul(unit),
            })
        }
        #[cfg(not(unix))]
        None
    }

    /// What was used from `self` to `later`, `wall` seconds apart.
    pub fn until(&self, later: &Snapshot, wall: f64) -> ProcessUsage {
        ProcessUsage {
            cpu_user_seconds: (later.user - self.user).max(0.0),
            cpu_system_seconds: (later.system - self.system).max(0.0),
            wall_seconds: wall,
            peak_rss_bytes: later.peak_rss_bytes,
        }
    }
}

impl ProcessUsage {
    /// CPU seconds, user and kernel.
    pub fn cpu_seconds(&self) -> f64 {
        self.cpu_user_seconds + self.cpu_system_seconds
    }

    /// Cores kept busy on average: CPU seconds per wall-clock second (0 for no wall time).
    pub fn cores_busy(&self) -> f64 {
        if self.wall_seconds > 0.0 {
            self.cpu_seconds() / self.wall_seconds
        } else {
            0.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_loop_shows_as_user_time_and_memory_as_peak_rss() {
        let before = Snapshot::now();
        // Not a unix: nothing to measure, and `now` says so rather than inventing figures.
        assert_eq!(before.is_some(), cfg!(unix));
        let Some(before) = before else { return };
        let t = std::time::Instant::now();
        // 64 MB touched: the peak resident memory must cover it.
        let mut v = vec![1u8; 64 << 20];
        let mut x = 0u64;
        while t.elapsed().as_secs_f64() < 0.2 {
            for b in v.iter_mut().step_by(4096) {
                *b = b.wrapping_add(1);
                x = x.wrapping_add(u64::from(*b));
            }
        }
        std::hint::black_box((x, &v));
        let u = before.until(&Snapshot::now().unwrap(), t.elapsed().as_secs_f64());
        assert!(u.cpu_user_seconds > 0.05, "{u:?}");
        assert!(u.peak_rss_bytes >= 64 << 20, "{u:?}");
        assert!(u.cpu_seconds() >= u.cpu_user_seconds);
        // One thread spun for the whole interval: about one core busy.
        assert!(u.cores_busy() > 0.2, "{u:?}");
    }

    #[test]
    fn usage_between_snapshots_is_their_difference() {
        let a = Snapshot {
            user: 1.0,
            system: 0.5,
            peak_rss_bytes: 10,
        };
        let b = Snapshot {
            user: 1.75,
            system: 1.0,
            peak_rss_bytes: 30,
        };
        let u = a.until(&b, 0.5);
        assert_eq!(u.cpu_user_seconds, 0.75);
        assert_eq!(u.cpu_system_seconds, 0.5);
        assert_eq!(u.cpu_seconds(), 1.25);
        assert_eq!(u.cores_busy(), 2.5);
        assert_eq!(u.peak_rss_bytes, 30);
        assert_eq!(a.until(&b, 0.0).cores_busy(), 0.0);
    }
}
