//! What `/proc` says about a process: resident memory, open file descriptors, and the CPU time it
//! has used, in total and per thread name (the collector's HTTP runtime threads apart from its
//! SQLite worker threads).

use std::collections::BTreeMap;
use std::io;
use std::sync::OnceLock;
use std::time::Duration;

/// Memory and CPU of one process at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// `VmRSS`: resident now, KiB.
    pub rss_kib: u64,
    /// `RssAnon`: the part of it that is the process's own memory (heap, stacks), KiB; the rest
    /// is mapped files (the binary, libraries) the kernel can drop and read again.
    pub anon_kib: u64,
    /// `VmHWM`: the most it was ever resident, KiB.
    pub hwm_kib: u64,
    /// User CPU time of all its threads.
    pub user: Duration,
    /// Kernel CPU time of all its threads (system calls: sockets, fsync, page faults).
    pub system: Duration,
}

impl Usage {
    pub fn cpu(&self) -> Duration {
        self.user + self.system
    }
}

/// Clock ticks per second of `/proc/*/stat` times (`getconf CLK_TCK`; 100 on Linux x86-64).
fn ticks_per_second() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .filter(|&t| t > 0)
            .unwrap_or(100)
    })
}

fn ticks(t: u64) -> Duration {
    Duration::from_secs_f64(t as f64 / ticks_per_second() as f64)
}

/// (comm, utime, stime) from the text of a `stat` file. The command name sits in parentheses
/// and may itself hold spaces and parentheses, so fields are counted from the last `)`.
fn parse_stat(text: &str) -> Option<(String, u64, u64)> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_string();
    // After ")": state(3) ppid(4) … utime(14) stime(15); index 0 here is field 3.
    let fields: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    Some((
        comm,
        fields.get(11)?.parse().ok()?,
        fields.get(12)?.parse().ok()?,
    ))
}

fn status_kib(status: &str, key: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Memory and CPU of process `pid` (`"self"` for this one).
pub fn usage(pid: &str) -> io::Result<Usage> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let (_, utime, stime) = parse_stat(&stat)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unreadable /proc stat"))?;
    Ok(Usage {
        rss_kib: status_kib(&status, "VmRSS:"),
        anon_kib: status_kib(&status, "RssAnon:"),
        hwm_kib: status_kib(&status, "VmHWM:"),
        user: ticks(utime),
        system: ticks(stime),
    })
}

/// How many file descriptors process `pid` has open (sockets, database files, its log).
pub fn open_fds(pid: &str) -> io::Result<usize> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/fd"))?.count())
}

/// CPU time per thread name of process `pid`, trailing numbers dropped so a pool's threads add
/// up (`tokio-runtime-w`, `sqlx-sqlite-wor…`). Threads that ended are not counted.
pub fn threads(pid: &str) -> BTreeMap<String, Duration> {
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for entry in dir.flatten() {
        let Ok(text) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        if let Some((comm, u, s)) = parse_stat(&text) {
            let name = comm
                .trim_end_matches(|c: char| c.is_ascii_digit() || c == '-' || c == '_')
                .to_string();
            *out.entry(name).or_insert(Duration::ZERO) += ticks(u + s);
        }
    }
    out
}

/// CPU time the whole machine spent busy (every core, every process) and its wall-clock
/// capacity so far, from `/proc/stat`: (busy, busy + idle + iowait).
pub fn machine() -> Option<(Duration, Duration)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let (idle, iowait) = (*v.get(3)?, *v.get(4)?);
    let busy: u64 = v.iter().take(8).sum::<u64>() - idle - iowait;
    Some((ticks(busy), ticks(busy + idle + iowait)))
}

/// User + system CPU of every process whose command name is `comm` (e.g. `postgres`: the
/// server and each connection's backend).
pub fn by_name(comm: &str) -> Duration {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Duration::ZERO;
    };
    dir.flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter_map(|t| parse_stat(&t))
        .filter(|(c, _, _)| c == comm)
        .map(|(_, u, s)| ticks(u + s))
        .sum()
}

/// `after - before` per thread name, largest first.
pub fn threads_delta(
    before: &BTreeMap<String, Duration>,
    after: &BTreeMap<String, Duration>,
) -> Vec<(String, Duration)> {
    let mut out: Vec<(String, Duration)> = after
        .iter()
        .map(|(k, v)| {
            let was = before.get(k).copied().unwrap_or(Duration::ZERO);
            (k.clone(), v.saturating_sub(was))
        })
        .filter(|(_, d)| !d.is_zero())
        .collect();
    out.sort_by_key(|e| std::cmp::Reverse(e.1));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let line = "4242 (tokio-runtime (w) 1) S 1 4242 4242 0 -1 4194560 900 0 0 0 1234 56 0 0 20 0 9 0 77 0";
        assert_eq!(
            parse_stat(line),
            Some(("tokio-runtime (w) 1".into(), 1234, 56))
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_process_can_be_read() {
        let u = usage("self").unwrap();
        assert!(u.rss_kib > 0 && u.hwm_kib >= u.rss_kib, "{u:?}");
        assert!(u.anon_kib > 0 && u.anon_kib < u.rss_kib, "{u:?}");
        assert!(!threads("self").is_empty());
        let before = open_fds("self").unwrap();
        let file = std::fs::File::open("/proc/self/status").unwrap();
        assert_eq!(open_fds("self").unwrap(), before + 1);
        drop(file);
        assert!(open_fds("/nonexistent-pid").is_err());
        let (busy, all) = machine().unwrap();
        assert!(busy <= all && !all.is_zero());
    }
}
