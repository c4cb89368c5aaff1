//! `hatang-soak`: a thousand agents reporting at their own pace against one collector process for
//! ten minutes, while the collector's resident memory and open file descriptors are sampled; then
//! a table per minute and a verdict: did memory stay flat, were there errors.
//!
//! A leak shows over time, not in a 20-second burst: `hatang-load` answers "how fast", this one
//! "does it stay the same". Each agent sends its next report a random 2-6 s (`--min-interval-secs`,
//! `--max-interval-secs`) after the previous one was due, whatever the answer took: a thousand
//! agents at 4 s on average send what 15,000 agents send at the agent's default 60 s, 250 reports
//! a second. A scrape of `/metrics` every 15 s, as a Prometheus would, runs the figures' code too.
//! Every answer to a report other than `202`, and every failed scrape, is an error.
//!
//! The verdict compares the mean RSS of the last quarter of the run with the first and with the
//! second quarter, and judges on the second: the first holds the warm-up (SQLite's page caches and
//! the allocator's arenas filling), a leak keeps growing after it.
//!
//! The collector is prepared as `hatang-load` prepares it (`hatang_bench::setup`): its own
//! process on a fresh database, a synthetic unit tree, agents enrolled over HTTP.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use hatang_bench::load::{self, mib, ms, thousands};
use hatang_bench::reports::Fleet;
use hatang_bench::setup::{TargetArgs, counted_accepted, enrol, prepare, report_request};
use hatang_bench::{Rng, mix, proc};
use reqwest::header::HeaderValue;

/// Soak run of the hatang collector: many agents at their own pace for minutes, its memory watched.
#[derive(Debug, Parser)]
#[command(name = "hatang-soak", version, about, long_about = None)]
struct Args {
    #[command(flatten)]
    target: TargetArgs,
    /// Agents to enrol, each reporting on its own schedule.
    #[arg(long, default_value_t = 1000)]
    agents: usize,
    /// Seconds of reporting.
    #[arg(long, short = 'd', default_value_t = 600)]
    duration_secs: u64,
    /// Shortest wait of an agent between two reports, seconds (drawn anew for every report).
    #[arg(long, default_value_t = 2.0)]
    min_interval_secs: f64,
    /// Longest wait of an agent between two reports, seconds.
    #[arg(long, default_value_t = 6.0)]
    max_interval_secs: f64,
    /// Seconds between two samples of the collector's memory and descriptors.
    #[arg(long, default_value_t = 5)]
    sample_secs: u64,
    /// Seconds of the run per row of the table.
    #[arg(long, default_value_t = 60)]
    row_secs: u64,
    /// Seconds between two scrapes of /metrics (0: no scrapes).
    #[arg(long, default_value_t = 15)]
    scrape_secs: u64,
    /// Growth of resident memory from the second quarter of the run to the last that still counts
    /// as flat, percent. The first quarter holds the warm-up (caches filling); its growth to the
    /// last quarter is printed too.
    #[arg(long, default_value_t = 10.0)]
    max_growth_pct: f64,
    /// Threads of the load generator's runtime (it shares the machine with the collector).
    #[arg(long, default_value_t = 2)]
    client_threads: usize,
}

impl Args {
    /// Every problem with the figures given, at once.
    fn check(&self) -> anyhow::Result<()> {
        let mut problems = Vec::new();
        if self.agents == 0 {
            problems.push("--agents must be at least 1".to_string());
        }
        let (lo, hi) = (self.min_interval_secs, self.max_interval_secs);
        if !(lo > 0.0 && lo.is_finite() && hi.is_finite() && lo <= hi) {
            problems.push(format!(
                "the interval must satisfy 0 < --min-interval-secs ≤ --max-interval-secs (got {lo} and {hi})"
            ));
        }
        if self.sample_secs == 0 || self.row_secs < self.sample_secs {
            problems.push(format!(
                "--sample-secs must be at least 1 and at most --row-secs (got {} and {})",
                self.sample_secs, self.row_secs
            ));
        }
        if self.duration_secs < 4 * self.sample_secs.max(1) {
            problems.push(format!(
                "--duration-secs must hold at least one sample per quarter: at least {} s",
                4 * self.sample_secs.max(1)
            ));
        }
        if self.target.url.is_some() && self.target.pid.is_none() {
            problems
                .push("--url needs --pid: a soak run watches the collector's memory".to_string());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            bail!("{}", problems.join("; "))
        }
    }

    fn mean_interval(&self) -> f64 {
        (self.min_interval_secs + self.max_interval_secs) / 2.0
    }
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let threads = args.client_threads;
    match hatang_bench::block_on("hatang-soak", threads, run(args)) {
        Some(true) => std::process::ExitCode::SUCCESS,
        Some(false) | None => std::process::ExitCode::FAILURE,
    }
}

/// What the agents and the scraper saw, shared with the sampler.
#[derive(Debug, Default)]
struct Tally {
    accepted: AtomicU64,
    errors: AtomicU64,
    scrapes: AtomicU64,
    /// Every error by outcome (`503`, `error: connect`, `scrape 500`, …).
    kinds: Mutex<BTreeMap<String, u64>>,
    /// Latency of each report answered since the sampler last took them, microseconds.
    latencies: Mutex<Vec<u32>>,
}

impl Tally {
    fn report(&self, outcome: String, took: Duration) {
        if outcome == "202" {
            self.accepted.fetch_add(1, Ordering::Relaxed);
        } else {
            self.error(outcome);
        }
        let us = took.as_micros().min(u128::from(u32::MAX)) as u32;
        self.latencies.lock().expect("tally lock").push(us);
    }

    fn error(&self, outcome: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        *self
            .kinds
            .lock()
            .expect("tally lock")
            .entry(outcome)
            .or_default() += 1;
    }

    fn take_latencies(&self) -> Vec<u32> {
        std::mem::take(&mut *self.latencies.lock().expect("tally lock"))
    }
}

/// Everything an agent task needs.
struct Fleetwide {
    client: reqwest::Client,
    url: String,
    fleet: Fleet,
    tally: Tally,
    start: Instant,
    deadline: Instant,
    interval: (f64, f64),
    seed: u64,
}

impl Fleetwide {
    fn interval(&self, rng: &mut Rng) -> Duration {
        let (lo, hi) = self.interval;
        Duration::from_secs_f64(lo + rng.unit() * (hi - lo))
    }
}

/// One agent: a report every interval until the deadline, the first at a random point of the
/// first interval so a thousand agents do not start in step.
async fn agent(all: Arc<Fleetwide>, index: usize, key: HeaderValue) {
    let mut rng = Rng::new(mix(all.seed, index as u64));
    let mut due = all.start + all.interval(&mut rng).mul_f64(rng.unit());
    // Offset by the agent so the inventories (1 report in 60) are spread over the run.
    let mut seq = index as u64;
    while due < all.deadline {
        tokio::time::sleep_until(due.into()).await;
        let body = all.fleet.body(index, seq, rng.next_u64());
        let sent = Instant::now();
        let answer = report_request(&all.client, &all.url, &key, body)
            .send()
            .await;
        all.tally
            .report(load::outcome(answer).await, sent.elapsed());
        seq += 1;
        due += all.interval(&mut rng);
    }
}

/// `GET /metrics` every `every` until the deadline, as a Prometheus would.
async fn scraper(all: Arc<Fleetwide>, base: String, every: Duration) {
    let url = format!("{base}/metrics");
    let mut next = all.start + every;
    while next < all.deadline {
        tokio::time::sleep_until(next.into()).await;
        let outcome = load::outcome(all.client.get(&url).send().await).await;
        all.tally.scrapes.fetch_add(1, Ordering::Relaxed);
        if outcome != "200" {
            all.tally.error(format!("scrape {outcome}"));
        }
        next += every;
    }
}

/// The collector and the agents at one moment; counts are totals since the start.
#[derive(Debug, Clone, Default)]
struct Sample {
    at: Duration,
    accepted: u64,
    errors: u64,
    rss_kib: u64,
    anon_kib: u64,
    fds: usize,
    /// Latencies of the reports answered since the previous sample, microseconds.
    latencies_us: Vec<u32>,
}

/// One row of the table: what happened in one stretch of the run.
#[derive(Debug, PartialEq)]
struct Row {
    /// End of the stretch, from the start of the run.
    until: Duration,
    accepted: u64,
    errors: u64,
    p50: Duration,
    p99: Duration,
    /// At the last sample of the stretch, and the most of any of its samples.
    rss_kib: u64,
    peak_rss_kib: u64,
    anon_kib: u64,
    fds: usize,
}

/// Groups samples into rows of `row` (a sample at exactly a row's end belongs to that row).
fn rows(samples: &[Sample], row: Duration) -> Vec<Row> {
    let mut out: Vec<Row> = Vec::new();
    let (mut accepted, mut errors) = (0, 0);
    let mut latencies: Vec<u32> = Vec::new();
    let mut i = 0;
    while i < samples.len() {
        let index = samples[i].at.as_nanos().div_ceil(row.as_nanos()).max(1) as u32;
        let until = row * index;
        let stretch: Vec<&Sample> = samples[i..].iter().take_while(|s| s.at <= until).collect();
        i += stretch.len();
        let last = stretch
            .last()
            .expect("a stretch holds the sample it started at");
        latencies.clear();
        latencies.extend(stretch.iter().flat_map(|s| s.latencies_us.iter().copied()));
        latencies.sort_unstable();
        out.push(Row {
            until,
            accepted: last.accepted - accepted,
            errors: last.errors - errors,
            p50: load::quantile(&latencies, 0.5),
            p99: load::quantile(&latencies, 0.99),
            rss_kib: last.rss_kib,
            peak_rss_kib: stretch.iter().map(|s| s.rss_kib).max().unwrap_or(0),
            anon_kib: last.anon_kib,
            fds: last.fds,
        });
        (accepted, errors) = (last.accepted, last.errors);
    }
    out
}

/// Resident memory and open descriptors in each quarter of the run.
#[derive(Debug, PartialEq)]
struct Drift {
    /// Mean RSS over the samples of each quarter, KiB.
    rss_kib: [f64; 4],
    /// The same for the anonymous part of it.
    anon_kib: [f64; 4],
    /// `(min, max)` open descriptors in each quarter.
    fds: [(usize, usize); 4],
}

impl Drift {
    /// Growth of the mean RSS from quarter `from` (0-based) to the last, percent.
    fn growth_pct(&self, from: usize) -> f64 {
        100.0 * (self.rss_kib[3] - self.rss_kib[from]) / self.rss_kib[from].max(1.0)
    }
}

/// Means and ranges per quarter of `duration` (a sample at a quarter's end belongs to it);
/// `None` when a quarter holds no sample.
fn drift(samples: &[Sample], duration: Duration) -> Option<Drift> {
    let quarter = |s: &Sample| {
        let q = (4 * s.at.as_nanos()).div_ceil(duration.as_nanos().max(1));
        (q.clamp(1, 4) - 1) as usize
    };
    let mut d = Drift {
        rss_kib: [0.0; 4],
        anon_kib: [0.0; 4],
        fds: [(usize::MAX, 0); 4],
    };
    for q in 0..4 {
        let these: Vec<&Sample> = samples.iter().filter(|s| quarter(s) == q).collect();
        if these.is_empty() {
            return None;
        }
        let n = these.len() as f64;
        d.rss_kib[q] = these.iter().map(|s| s.rss_kib as f64).sum::<f64>() / n;
        d.anon_kib[q] = these.iter().map(|s| s.anon_kib as f64).sum::<f64>() / n;
        for s in these {
            d.fds[q] = (d.fds[q].0.min(s.fds), d.fds[q].1.max(s.fds));
        }
    }
    Some(d)
}

/// Four quarters' figures as `a / b / c / d`.
fn quarters<T>(values: &[T; 4], show: impl Fn(&T) -> String) -> String {
    values.iter().map(show).collect::<Vec<_>>().join(" / ")
}

fn clock(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}:{:02}", s / 60, s % 60)
}

/// Samples the collector `pid` every `every` until the deadline, then once more after the
/// agents finished; fails as soon as the collector is gone.
async fn watch(
    all: &Fleetwide,
    pid: &str,
    every: Duration,
    row: Duration,
    agents: Vec<tokio::task::JoinHandle<()>>,
) -> anyhow::Result<Vec<Sample>> {
    let take = |at: Duration| -> anyhow::Result<Sample> {
        let usage =
            proc::usage(pid).with_context(|| format!("the collector (pid {pid}) is gone"))?;
        Ok(Sample {
            at,
            accepted: all.tally.accepted.load(Ordering::Relaxed),
            errors: all.tally.errors.load(Ordering::Relaxed),
            rss_kib: usage.rss_kib,
            anon_kib: usage.anon_kib,
            fds: proc::open_fds(pid)
                .with_context(|| format!("the collector (pid {pid}) is gone"))?,
            latencies_us: all.tally.take_latencies(),
        })
    };
    let total = all.deadline - all.start;
    let mut samples = Vec::new();
    let mut at = every;
    while at <= total {
        tokio::time::sleep_until((all.start + at).into()).await;
        let sample = take(at)?;
        if at.as_nanos().is_multiple_of(row.as_nanos()) {
            eprintln!(
                "{}: {} accepted, {} errors, RSS {}, {} fds",
                clock(at),
                thousands(sample.accepted as f64),
                sample.errors,
                mib(sample.rss_kib),
                sample.fds
            );
        }
        samples.push(sample);
        at += every;
    }
    for a in agents {
        a.await.context("an agent task failed")?;
    }
    // Reports still in flight at the deadline are answered by now; they belong to the last row.
    samples.push(take(total)?);
    Ok(samples)
}

async fn run(args: Args) -> anyhow::Result<bool> {
    args.check()?;
    let client = load::client(64);
    let target = prepare(&args.target, args.agents, &client).await?;
    let pid = target
        .pid
        .clone()
        .context("the collector's process id is unknown")?;
    let units: Vec<String> = target.tokens.iter().map(|(u, _)| u.clone()).collect();
    let fleet = Fleet::new(&units, args.target.seed);
    let keys = enrol(&client, &target.base, &target.tokens, &fleet, 32).await?;
    eprintln!(
        "enrolled {} agents; reporting for {} s",
        keys.len(),
        args.duration_secs
    );

    let start = Instant::now();
    let duration = Duration::from_secs(args.duration_secs);
    let all = Arc::new(Fleetwide {
        client,
        url: format!("{}/api/v1/reports", target.base),
        fleet,
        tally: Tally::default(),
        start,
        deadline: start + duration,
        interval: (args.min_interval_secs, args.max_interval_secs),
        seed: args.target.seed,
    });
    let agents: Vec<_> = keys
        .into_iter()
        .enumerate()
        .map(|(i, key)| tokio::spawn(agent(Arc::clone(&all), i, key)))
        .collect();
    if args.scrape_secs > 0 {
        tokio::spawn(scraper(
            Arc::clone(&all),
            target.base.clone(),
            Duration::from_secs(args.scrape_secs),
        ));
    }
    let row = Duration::from_secs(args.row_secs);
    let samples = watch(
        &all,
        &pid,
        Duration::from_secs(args.sample_secs),
        row,
        agents,
    )
    .await?;
    let counted = counted_accepted(&all.client, &target.base).await;

    let backend = target
        .collector
        .as_ref()
        .map_or("external".to_string(), |c| c.backend().to_string());
    println!();
    println!(
        "hatang-soak · {} · commit {} · {} · {}",
        hatang_bench::today(),
        hatang_bench::commit().unwrap_or_else(|| "?".into()),
        hatang_bench::machine(),
        backend
    );
    println!(
        "{} agents in {} units, each reporting every {}-{} s (≈ {:.0} reports/s), /metrics every {}, {} s, sampled every {} s",
        args.agents,
        args.target.units,
        args.min_interval_secs,
        args.max_interval_secs,
        args.agents as f64 / args.mean_interval(),
        if args.scrape_secs > 0 {
            format!("{} s", args.scrape_secs)
        } else {
            "never".into()
        },
        args.duration_secs,
        args.sample_secs
    );
    println!();
    println!(
        "| until (m:ss) | reports accepted | errors | latency p50 / p99 | collector RSS (end / peak) | of it anonymous | open fds |"
    );
    println!("|---|---|---|---|---|---|---|");
    for r in rows(&samples, row) {
        println!(
            "| {} | {} | {} | {} / {} | {} / {} | {} | {} |",
            clock(r.until),
            thousands(r.accepted as f64),
            r.errors,
            ms(r.p50),
            ms(r.p99),
            mib(r.rss_kib),
            mib(r.peak_rss_kib),
            mib(r.anon_kib),
            r.fds
        );
    }
    println!();

    let accepted = all.tally.accepted.load(Ordering::Relaxed);
    let errors = all.tally.errors.load(Ordering::Relaxed);
    let kinds = all.tally.kinds.lock().expect("tally lock").clone();
    let drift = drift(&samples, duration).context("a quarter of the run holds no sample")?;
    let flat = drift.growth_pct(1) <= args.max_growth_pct;
    let agrees = counted.is_none_or(|n| n as u64 == accepted);
    let pass = flat && errors == 0 && agrees;
    let mib_f = |kib: &f64| mib(*kib as u64);
    println!(
        "collector RSS by quarter of the run (mean): {} (anonymous {}); open fds {}",
        quarters(&drift.rss_kib, mib_f),
        quarters(&drift.anon_kib, mib_f),
        quarters(&drift.fds, |(lo, hi)| format!("{lo}-{hi}")),
    );
    println!(
        "verdict: RSS {:+.1} % from the first quarter to the last, {:+.1} % from the second ({} {} %); errors {} in {} reports and {} scrapes{}: {}",
        drift.growth_pct(0),
        drift.growth_pct(1),
        if flat {
            "flat after the warm-up, within"
        } else {
            "GROWING after the warm-up, more than"
        },
        args.max_growth_pct,
        errors,
        thousands((accepted + errors) as f64),
        all.tally.scrapes.load(Ordering::Relaxed),
        if kinds.is_empty() {
            String::new()
        } else {
            format!(" ({kinds:?})")
        },
        if pass { "PASS" } else { "FAIL" }
    );
    if let Some(n) = counted {
        println!(
            "check: collector's accepted counter {} = {} answered 202 here: {}",
            thousands(n),
            thousands(accepted as f64),
            if agrees { "agrees" } else { "DISAGREES" }
        );
    }

    target.finish(args.target.keep).await?;
    Ok(pass)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(secs: u64, accepted: u64, errors: u64, rss_kib: u64, fds: usize) -> Sample {
        Sample {
            at: Duration::from_secs(secs),
            accepted,
            errors,
            rss_kib,
            anon_kib: rss_kib / 2,
            fds,
            latencies_us: vec![1000 * secs as u32],
        }
    }

    #[test]
    fn samples_make_rows_of_what_happened_in_each_stretch() {
        let s = [
            sample(5, 10, 0, 100, 20),
            sample(10, 25, 1, 120, 22),
            sample(15, 40, 1, 110, 21),
            sample(20, 50, 3, 115, 25),
            // the final sample after the agents finished, at the end of the run
            sample(20, 52, 3, 116, 24),
        ];
        let r = rows(&s, Duration::from_secs(10));
        assert_eq!(r.len(), 2);
        assert_eq!(
            r[0],
            Row {
                until: Duration::from_secs(10),
                accepted: 25,
                errors: 1,
                p50: Duration::from_millis(5),
                p99: Duration::from_millis(10),
                rss_kib: 120,
                peak_rss_kib: 120,
                anon_kib: 60,
                fds: 22,
            }
        );
        assert_eq!((r[1].accepted, r[1].errors), (27, 2));
        assert_eq!((r[1].rss_kib, r[1].peak_rss_kib, r[1].fds), (116, 116, 24));
        assert_eq!(r[1].p99, Duration::from_millis(20));
    }

    #[test]
    fn drift_compares_the_quarters_of_the_run() {
        let s: Vec<Sample> = (1..=8)
            .map(|i| sample(5 * i, 0, 0, 1000 + 100 * i, 20 + i as usize))
            .collect();
        let d = drift(&s, Duration::from_secs(40)).unwrap();
        // quarters of 10 s, two samples each: (1100, 1200), (1300, 1400), …
        assert_eq!(d.rss_kib, [1150.0, 1350.0, 1550.0, 1750.0]);
        assert_eq!(d.anon_kib, [575.0, 675.0, 775.0, 875.0]);
        assert_eq!(d.fds, [(21, 22), (23, 24), (25, 26), (27, 28)]);
        assert!(
            (d.growth_pct(0) - 52.17).abs() < 0.01,
            "{}",
            d.growth_pct(0)
        );
        assert!(
            (d.growth_pct(1) - 29.63).abs() < 0.01,
            "{}",
            d.growth_pct(1)
        );
        assert_eq!(
            quarters(&d.fds, |(lo, hi)| format!("{lo}-{hi}")),
            "21-22 / 23-24 / 25-26 / 27-28"
        );
        // a quarter without a sample
        assert_eq!(drift(&s[..6], Duration::from_secs(40)), None);
    }

    #[test]
    fn bad_figures_are_refused_all_at_once() {
        let args = Args::parse_from([
            "hatang-soak",
            "--agents",
            "0",
            "--min-interval-secs",
            "5",
            "--max-interval-secs",
            "2",
            "--url",
            "http://127.0.0.1:1",
        ]);
        let e = args.check().unwrap_err().to_string();
        for part in ["--agents", "--min-interval-secs", "--pid"] {
            assert!(e.contains(part), "{part} not in {e}");
        }
        assert!(Args::parse_from(["hatang-soak"]).check().is_ok());
        let short = Args::parse_from(["hatang-soak", "-d", "10"]).check();
        assert!(short.unwrap_err().to_string().contains("--duration-secs"));
    }
}
