//! What the whole process used while a measurement ran: CPU time in user space and in the
//! kernel, and the peak of its resident memory, from `getrusage`. A latency says how long the
//! user waited; these say how much of the machine it took and where (kernel time is page
//! faults and socket copies), which is what tells two runs on a machine of changing speed apart.
//! On Linux it also reads the machine's idle and stolen time (`/proc/stat`): on a virtual
//! machine, *steal* is time the hypervisor gave this machine's CPUs to someone else, the plainest
//! sign that a slow run was the host's doing. And it reads the machine's transparent-huge-page
//! policy ([`huge_page_policy`]): on the development VM, 64 KiB folios for anonymous memory cut
//! the time of a fresh `relu-bench` by ~15 %, so a figure needs it beside it.

use serde::{Deserialize, Serialize};

/// The process's CPU time so far and its peak resident memory (one `getrusage(RUSAGE_SELF)`),
/// and where readable the whole machine's idle and stolen CPU time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Snapshot {
    user: f64,
    system: f64,
    peak_rss_bytes: u64,
    machine: Option<MachineTimes>,
    monotonic: Option<f64>,
}

/// Seconds every CPU of the machine spent idle and stolen, summed over CPUs, since boot, and
/// how many CPUs it has.
#[derive(Clone, Copy, Debug, PartialEq)]
struct MachineTimes {
    idle: f64,
    steal: f64,
    cpus: usize,
}

impl MachineTimes {
    /// The aggregate `cpu` line of `/proc/stat` (ticks of `USER_HZ`): its idle (with iowait)
    /// and steal columns in seconds, and the number of per-CPU `cpuN` lines. `None` for
    /// anything else.
    fn parse(stat: &str, ticks_per_second: f64) -> Option<Self> {
        let line = stat.lines().find(|l| l.starts_with("cpu "))?;
        let ticks: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .map(str::parse)
            .collect::<Result<_, _>>()
            .ok()?;
        // user nice system idle iowait irq softirq steal ...: steal needs 8 columns.
        if ticks.len() < 8 || ticks_per_second <= 0.0 {
            return None;
        }
        let cpus = stat
            .lines()
            .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
            .count();
        Some(MachineTimes {
            idle: (ticks[3] + ticks[4]) as f64 / ticks_per_second,
            steal: ticks[7] as f64 / ticks_per_second,
            cpus: cpus.max(1),
        })
    }

    fn now() -> Option<Self> {
        #[cfg(target_os = "linux")]
        {
            // SAFETY: sysconf only reads a configuration value.
            let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
            Self::parse(&std::fs::read_to_string("/proc/stat").ok()?, hz as f64)
        }
        #[cfg(not(target_os = "linux"))]
        None
    }
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
    /// CPU seconds the whole machine spent idle meanwhile, summed over its CPUs (Linux; at the
    /// 10 ms resolution of `/proc/stat`).
    #[serde(default)]
    pub machine_idle_seconds: Option<f64>,
    /// CPU seconds the hypervisor took from the machine meanwhile (steal), summed over its CPUs:
    /// zero on bare metal, and on a virtual machine the share of a slow run that was the host's.
    #[serde(default)]
    pub machine_steal_seconds: Option<f64>,
    /// The machine's CPUs, which the two figures above are summed over.
    #[serde(default)]
    pub machine_cpus: Option<usize>,
    /// The time of the first snapshot on the system's monotonic clock (Linux
    /// `CLOCK_MONOTONIC`, seconds since boot), which `perf record -k CLOCK_MONOTONIC` also
    /// stamps its samples with: it lines a trace of the run up with the phases measured here.
    #[serde(default)]
    pub start_monotonic_seconds: Option<f64>,
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
                machine: MachineTimes::now(),
                monotonic: monotonic_seconds(),
            })
        }
        #[cfg(not(unix))]
        None
    }

    /// What was used from `self` to `later`, `wall` seconds apart.
    pub fn until(&self, later: &Snapshot, wall: f64) -> ProcessUsage {
        let machine = self.machine.zip(later.machine);
        ProcessUsage {
            cpu_user_seconds: (later.user - self.user).max(0.0),
            cpu_system_seconds: (later.system - self.system).max(0.0),
            wall_seconds: wall,
            peak_rss_bytes: later.peak_rss_bytes,
            machine_idle_seconds: machine.map(|(a, b)| (b.idle - a.idle).max(0.0)),
            machine_steal_seconds: machine.map(|(a, b)| (b.steal - a.steal).max(0.0)),
            machine_cpus: machine.map(|(_, b)| b.cpus),
            start_monotonic_seconds: self.monotonic,
        }
    }
}

/// Seconds on Linux's `CLOCK_MONOTONIC` (since boot, not counting suspend), the clock `perf`
/// stamps samples with when recorded with `-k CLOCK_MONOTONIC`; `None` elsewhere.
fn monotonic_seconds() -> Option<f64> {
    #[cfg(target_os = "linux")]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `clock_gettime` only writes the `timespec` it is given, which lives until
        // the call returns.
        if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) } != 0 {
            return None;
        }
        Some(ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9)
    }
    #[cfg(not(target_os = "linux"))]
    None
}

impl ProcessUsage {
    /// CPU seconds, user and kernel.
    pub fn cpu_seconds(&self) -> f64 {
        self.cpu_user_seconds + self.cpu_system_seconds
    }

    /// Cores kept busy on average: CPU seconds per wall-clock second (0 for no wall time).
    pub fn cores_busy(&self) -> f64 {
        self.per_wall_second(self.cpu_seconds())
    }

    /// The machine's stolen CPU time as a share of the CPU time its CPUs had over the interval
    /// (0 to 1), where known.
    pub fn steal_share(&self) -> Option<f64> {
        self.machine_share(self.machine_steal_seconds?)
    }

    /// The machine's idle CPU time as a share of the CPU time its CPUs had, where known.
    pub fn idle_share(&self) -> Option<f64> {
        self.machine_share(self.machine_idle_seconds?)
    }

    fn machine_share(&self, seconds: f64) -> Option<f64> {
        let cpus = self.machine_cpus?.max(1) as f64;
        Some((self.per_wall_second(seconds) / cpus).min(1.0))
    }

    fn per_wall_second(&self, seconds: f64) -> f64 {
        if self.wall_seconds > 0.0 {
            seconds / self.wall_seconds
        } else {
            0.0
        }
    }
}

/// The machine's transparent-huge-page policy for anonymous memory, as Linux sets it in
/// `/sys/kernel/mm/transparent_hugepage`: the top-level mode, then each folio size whose own
/// setting is not `never`, largest first, e.g. `madvise; 2048 kB inherit, 64 kB always`. `None`
/// off Linux or where the files are missing.
pub fn huge_page_policy() -> Option<String> {
    #[cfg(target_os = "linux")]
    {
        let dir = std::path::Path::new("/sys/kernel/mm/transparent_hugepage");
        let top = std::fs::read_to_string(dir.join("enabled")).ok()?;
        let mut sizes = Vec::new();
        for entry in std::fs::read_dir(dir).ok()?.flatten() {
            let name = entry.file_name();
            let Some(kb) = name
                .to_str()
                .and_then(|n| n.strip_prefix("hugepages-")?.strip_suffix("kB"))
                .and_then(|kb| kb.parse::<u64>().ok())
            else {
                continue;
            };
            if let Ok(setting) = std::fs::read_to_string(entry.path().join("enabled")) {
                sizes.push((kb, setting));
            }
        }
        describe_huge_pages(&top, &sizes)
    }
    #[cfg(not(target_os = "linux"))]
    None
}

/// [`huge_page_policy`] from the contents of the `enabled` files: the top level's and each
/// folio size's (in KiB). `None` if the top level's has no selected mode.
fn describe_huge_pages(top: &str, sizes: &[(u64, String)]) -> Option<String> {
    // The selected mode is the one in brackets: `always [madvise] never`.
    fn selected(setting: &str) -> Option<&str> {
        setting
            .split_whitespace()
            .find_map(|t| t.strip_prefix('[')?.strip_suffix(']'))
    }
    let mut out = selected(top)?.to_string();
    let mut on: Vec<(u64, &str)> = sizes
        .iter()
        .filter_map(|(kb, s)| Some((*kb, selected(s)?)))
        .filter(|(_, mode)| *mode != "never")
        .collect();
    on.sort_by_key(|&(kb, _)| std::cmp::Reverse(kb));
    for (i, (kb, mode)) in on.iter().enumerate() {
        out.push_str(if i == 0 { "; " } else { ", " });
        out.push_str(&format!("{kb} kB {mode}"));
    }
    Some(out)
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
        // On Linux the interval has a start on the monotonic clock, before a later reading.
        assert_eq!(
            u.start_monotonic_seconds.is_some(),
            cfg!(target_os = "linux")
        );
        if let (Some(start), Some(now)) = (u.start_monotonic_seconds, monotonic_seconds()) {
            assert!(start > 0.0 && now - start >= 0.2, "{start} {now}");
        }
    }

    #[test]
    fn usage_between_snapshots_is_their_difference() {
        let a = Snapshot {
            user: 1.0,
            system: 0.5,
            peak_rss_bytes: 10,
            machine: Some(MachineTimes {
                idle: 100.0,
                steal: 3.0,
                cpus: 2,
            }),
            monotonic: Some(5000.25),
        };
        let b = Snapshot {
            user: 1.75,
            system: 1.0,
            peak_rss_bytes: 30,
            machine: Some(MachineTimes {
                idle: 100.25,
                steal: 3.1,
                cpus: 2,
            }),
            monotonic: Some(5000.75),
        };
        let u = a.until(&b, 0.5);
        assert_eq!(u.cpu_user_seconds, 0.75);
        assert_eq!(u.cpu_system_seconds, 0.5);
        assert_eq!(u.cpu_seconds(), 1.25);
        assert_eq!(u.cores_busy(), 2.5);
        assert_eq!(u.peak_rss_bytes, 30);
        // The interval starts where the first snapshot was taken.
        assert_eq!(u.start_monotonic_seconds, Some(5000.25));
        assert_eq!(a.until(&b, 0.0).cores_busy(), 0.0);
        // 0.25 s idle and 0.1 s stolen over 0.5 s of two CPUs: a quarter and a tenth.
        assert_eq!(u.machine_cpus, Some(2));
        assert!((u.idle_share().unwrap() - 0.25).abs() < 1e-9, "{u:?}");
        assert!((u.steal_share().unwrap() - 0.1).abs() < 1e-9, "{u:?}");
        let unknown = Snapshot { machine: None, ..a };
        assert_eq!(unknown.until(&b, 0.5).steal_share(), None);
    }

    #[test]
    fn proc_stat_gives_idle_with_iowait_and_steal() {
        let stat = "cpu  2338698 0 202674 8456335 7688 0 5419 6196 0 0\n\
                    cpu0 1169349 0 101337 4228167 3844 0 2709 3098 0 0\nintr 1 2 3\n";
        let t = MachineTimes::parse(stat, 100.0).unwrap();
        assert!(
            (t.idle - (8456335.0 + 7688.0) / 100.0).abs() < 1e-6,
            "{t:?}"
        );
        assert!((t.steal - 61.96).abs() < 1e-9, "{t:?}");
        // One per-CPU line in the fixture ("cpu " itself is the aggregate).
        assert_eq!(t.cpus, 1);
        // Old kernels without the steal column, garbage, and a nonsense tick rate: nothing.
        assert_eq!(MachineTimes::parse("cpu  1 2 3 4 5 6 7\n", 100.0), None);
        assert_eq!(MachineTimes::parse("cpu  a b c d e f g h\n", 100.0), None);
        assert_eq!(MachineTimes::parse("intr 1\n", 100.0), None);
        assert_eq!(MachineTimes::parse(stat, 0.0), None);
        // On Linux the live file parses.
        assert_eq!(MachineTimes::now().is_some(), cfg!(target_os = "linux"));
    }

    #[test]
    fn the_huge_page_policy_names_the_selected_modes() {
        let sizes = |v: &[(u64, &str)]| -> Vec<(u64, String)> {
            v.iter().map(|(k, s)| (*k, s.to_string())).collect()
        };
        // This VM's default: PMD-size folios follow the top level, the small ones are off.
        let default = sizes(&[
            (64, "always inherit madvise [never]\n"),
            (2048, "always [inherit] madvise never\n"),
            (16, "always inherit madvise [never]\n"),
        ]);
        assert_eq!(
            describe_huge_pages("always [madvise] never\n", &default).as_deref(),
            Some("madvise; 2048 kB inherit")
        );
        // 64 KiB folios for all anonymous memory, 2 MiB ones off.
        let tuned = sizes(&[
            (64, "[always] inherit madvise never"),
            (2048, "always inherit madvise [never]"),
        ]);
        assert_eq!(
            describe_huge_pages("always [madvise] never", &tuned).as_deref(),
            Some("madvise; 64 kB always")
        );
        // An old kernel: no per-size files.
        assert_eq!(
            describe_huge_pages("[always] madvise never", &[]).as_deref(),
            Some("always")
        );
        // Unreadable sizes are left out; a top level without a selection is no answer.
        let odd = sizes(&[(64, "garbage"), (128, "[madvise]")]);
        assert_eq!(
            describe_huge_pages("never [never]", &odd).as_deref(),
            Some("never; 128 kB madvise")
        );
        assert_eq!(describe_huge_pages("always madvise never", &odd), None);
        assert_eq!(describe_huge_pages("", &[]), None);
    }

    #[test]
    fn this_machine_has_a_huge_page_policy_where_linux_says_so() {
        let policy = huge_page_policy();
        let exists = std::path::Path::new("/sys/kernel/mm/transparent_hugepage/enabled").exists();
        assert_eq!(
            policy.is_some(),
            cfg!(target_os = "linux") && exists,
            "{policy:?}"
        );
    }
}
