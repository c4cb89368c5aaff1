//! hatang-bench: measures the real `hatang-collector` binary the way a province would load it.
//!
//! Three binaries share these modules: `hatang-load` (enrol agents over HTTP, push reports, compare
//! with a trivial endpoint), `hatang-soak` (a thousand agents at their own pace for ten minutes,
//! watching the collector's memory and descriptors) and `hatang-scale` (a database of 100,000
//! agents, then `/metrics`, memory and start-up). They start the collector as a child process with its own database and
//! read its memory and CPU from `/proc`, so what they measure is the shipped binary, not a test
//! build of its library.

pub mod collector;
pub mod load;
pub mod proc;
pub mod reports;
pub mod setup;
pub mod tree;
pub mod wire;

/// A small deterministic generator (SplitMix64): the same seed gives the same tree and reports,
/// so two runs load the collector with the same data. Not for anything secret.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `lo..hi` (`lo` when the range is empty).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next_u64() % (hi - lo)
    }

    /// A float in `0..1`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.range(0, items.len() as u64) as usize]
    }
}

/// Runs a bench's `run` on a runtime of `threads` worker threads (the bench shares the machine
/// with the collector); an error is printed with its causes after `name` and gives `None`.
pub fn block_on<T>(
    name: &str,
    threads: usize,
    run: impl Future<Output = anyhow::Result<T>>,
) -> Option<T> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
        .expect("a runtime");
    runtime
        .block_on(run)
        .inspect_err(|e| eprintln!("{name}: {e:#}"))
        .ok()
}

/// Mixes two numbers into a seed, so (worker, request) pairs draw independent values.
pub fn mix(a: u64, b: u64) -> u64 {
    Rng::new(a.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ b).next_u64()
}

/// `git describe`-like name of the checked-out commit, `+dirty` when the tree has changes; for
/// the header of a result table. `None` outside a git checkout.
pub fn commit() -> Option<String> {
    let run = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let head = run(&["rev-parse", "--short", "HEAD"])?;
    let dirty =
        run(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    Some(if dirty { format!("{head}+dirty") } else { head })
}

/// One line describing this machine: CPU model and count, memory.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|r| r.split(':').nth(1))
        })
        .map(str::trim)
        .unwrap_or("unknown CPU");
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    format!(
        "{cpus} × {model}, {:.0} GiB RAM",
        mem_kib as f64 / 1024.0 / 1024.0
    )
}

/// Unix seconds now, as the collector's clock reads it.
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Today's date (UTC), for result headers.
pub fn today() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}",
        now.year(),
        u8::from(now.month()),
        now.day()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generator_is_deterministic_and_spread() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        let xs: Vec<u64> = (0..100).map(|_| a.range(10, 20)).collect();
        let ys: Vec<u64> = (0..100).map(|_| b.range(10, 20)).collect();
        assert_eq!(xs, ys);
        assert!(xs.iter().all(|x| (10..20).contains(x)));
        // every value of a small range shows up
        for v in 10..20 {
            assert!(xs.contains(&v), "{v} never drawn");
        }
        assert_eq!(a.range(5, 5), 5);
        let u = Rng::new(1).unit();
        assert!((0.0..1.0).contains(&u));
    }
}
