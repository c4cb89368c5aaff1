//! `hatang-load`: enrols simulated agents over the real HTTP API and pushes their reports at a
//! collector, then prints throughput, latency, errors, and the collector's memory and CPU.
//!
//! By default it starts its own collector (the `hatang-collector` binary beside it) on a fresh
//! temporary SQLite file, or on a fresh database of the PostgreSQL server `--database` names,
//! imports a synthetic unit tree and creates the enrolment tokens with the collector's CLI.
//! With `--url` it loads a collector that is already running instead (then `--token` is needed,
//! and the collector's own rate limits apply).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Parser;
use hatang_bench::collector;
use hatang_bench::load::{self, MakeRequest, Outcome, Plan, mib, ms, thousands};
use hatang_bench::proc;
use hatang_bench::reports::{Fleet, INVENTORY_EVERY};
use hatang_bench::setup::{TargetArgs, counted_accepted, enrol, prepare};
use hatang_bench::wire;

/// Load generator for the hatang collector: enrol agents, push reports, measure.
#[derive(Debug, Parser)]
#[command(name = "hatang-load", version, about, long_about = None)]
struct Args {
    #[command(flatten)]
    target: TargetArgs,
    /// Agents to enrol; each connection sends for its own share of them in turn.
    #[arg(long, default_value_t = 2000)]
    agents: usize,
    /// Concurrent keep-alive connections (simultaneous agents).
    #[arg(long, short = 'c', default_value_t = 64)]
    concurrency: usize,
    /// Seconds of report pushing measured.
    #[arg(long, short = 'd', default_value_t = 20)]
    duration: u64,
    /// Seconds of /healthz measured with the same client, for the ingest/trivial ratio.
    #[arg(long, default_value_t = 5)]
    healthz_duration: u64,
    /// Seconds of unmeasured traffic before each measured phase (connections, caches).
    #[arg(long, default_value_t = 1)]
    warmup: u64,
    /// Reports per second over all connections; default: as fast as the collector answers.
    #[arg(long)]
    rate: Option<f64>,
    /// Threads of the load generator's runtime. It shares the machine with the collector: one
    /// thread keeps 64 connections busy at about 0.3 of a core, and a second one added
    /// preemption of the collector's threads and CPU per request (docs/benchmarks.md).
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let threads = args.client_threads;
    match hatang_bench::block_on("hatang-load", threads, run(args)) {
        Some(()) => std::process::ExitCode::SUCCESS,
        None => std::process::ExitCode::FAILURE,
    }
}

/// Which agent request `n` of worker `w` speaks for, and that agent's report number.
fn assign(agents: usize, concurrency: usize, w: usize, n: u64) -> (usize, u64) {
    if agents >= concurrency {
        // Worker w owns agents w, w + c, w + 2c, …: no agent has two reports in flight.
        let share = ((agents - w).div_ceil(concurrency)) as u64;
        let agent = w + concurrency * (n % share) as usize;
        // Offset by the agent so inventories are spread over the run, not sent all at once.
        (agent, n / share + agent as u64)
    } else {
        let agent = (w + concurrency * n as usize) % agents;
        (agent, n + agent as u64)
    }
}

/// CPU, memory and per-thread CPU of the collector around one phase.
struct Watch {
    pid: Option<String>,
    before: Option<proc::Usage>,
    threads: std::collections::BTreeMap<String, Duration>,
    me: Option<proc::Usage>,
    machine: Option<(Duration, Duration)>,
    postgres: Duration,
}

impl Watch {
    fn start(pid: Option<&String>) -> Self {
        Self {
            before: pid.and_then(|p| proc::usage(p).ok()),
            threads: pid.map(|p| proc::threads(p)).unwrap_or_default(),
            pid: pid.cloned(),
            me: proc::usage("self").ok(),
            machine: proc::machine(),
            postgres: proc::by_name("postgres"),
        }
    }

    /// (collector user+system CPU, its per-thread split, its user and system parts, this
    /// program's CPU) used since `start`.
    fn stop(&self) -> Used {
        let after = self.pid.as_ref().and_then(|p| proc::usage(p).ok());
        let me = proc::usage("self").ok();
        let (user, system) = match (self.before, after) {
            (Some(b), Some(a)) => (
                a.user.saturating_sub(b.user),
                a.system.saturating_sub(b.system),
            ),
            _ => (Duration::ZERO, Duration::ZERO),
        };
        Used {
            known: after.is_some(),
            user,
            system,
            threads: self
                .pid
                .as_ref()
                .map(|p| proc::threads_delta(&self.threads, &proc::threads(p)))
                .unwrap_or_default(),
            generator: match (self.me, me) {
                (Some(b), Some(a)) => a.cpu().saturating_sub(b.cpu()),
                _ => Duration::ZERO,
            },
            machine: match (self.machine, proc::machine()) {
                (Some(b), Some(a)) => (a.0.saturating_sub(b.0), a.1.saturating_sub(b.1)),
                _ => (Duration::ZERO, Duration::ZERO),
            },
            postgres: proc::by_name("postgres").saturating_sub(self.postgres),
        }
    }
}

struct Used {
    known: bool,
    user: Duration,
    system: Duration,
    threads: Vec<(String, Duration)>,
    generator: Duration,
    /// The whole machine: (busy, busy + idle) CPU time over all cores.
    machine: (Duration, Duration),
    /// Every `postgres` process (server and backends) on this machine.
    postgres: Duration,
}

impl Used {
    fn cpu(&self) -> Duration {
        self.user + self.system
    }

    fn split(&self) -> String {
        let total = self
            .threads
            .iter()
            .map(|(_, d)| d.as_secs_f64())
            .sum::<f64>()
            .max(1e-9);
        self.threads
            .iter()
            .take(4)
            .map(|(name, d)| format!("{name} {:.0}%", 100.0 * d.as_secs_f64() / total))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

async fn phase(
    client: &Arc<wire::Client>,
    plan: Plan,
    warmup: Duration,
    pid: Option<&String>,
    make: MakeRequest,
) -> (Outcome, Used, Outcome) {
    let mut warm = Outcome::default();
    if !warmup.is_zero() {
        warm = load::run(
            client,
            Plan {
                duration: warmup,
                ..plan
            },
            Arc::clone(&make),
        )
        .await;
    }
    let watch = Watch::start(pid);
    let outcome = load::run(client, plan, make).await;
    (outcome, watch.stop(), warm)
}

/// /healthz requests per second as `wrk` measures them, when wrk is installed: shows whether
/// this program's client, rather than the collector, limits the trivial endpoint's figure.
/// wrk's threads: one per core, its usual setting.
fn wrk_threads() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}

async fn wrk_healthz(base: &str, connections: usize, threads: usize, secs: u64) -> Option<f64> {
    let out = tokio::process::Command::new("wrk")
        .args([
            &format!("-t{}", threads.max(1)),
            &format!("-c{connections}"),
            &format!("-d{}s", secs.max(1)),
            &format!("{base}/healthz"),
        ])
        .output()
        .await
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
}

async fn run(args: Args) -> anyhow::Result<()> {
    if args.agents == 0 || args.concurrency == 0 {
        bail!("--agents and --concurrency must be at least 1");
    }
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let loadavg: Vec<&str> = loadavg.split_whitespace().take(3).collect();
    let client = load::client(args.concurrency);
    let target = prepare(&args.target, args.agents, &client).await?;
    let units: Vec<String> = target.tokens.iter().map(|(u, _)| u.clone()).collect();
    let fleet = Fleet::new(&units, args.target.seed);

    // What making one body costs this program, measured apart from any network work.
    let _ = fleet.body(0, 1, 0);
    let probe = Instant::now();
    let mut body_bytes = 0usize;
    let samples = 50 * INVENTORY_EVERY as usize;
    for i in 0..samples {
        body_bytes += fleet
            .body(i % fleet.agents().len(), i as u64, i as u64)
            .len();
    }
    let body_cost = probe.elapsed() / samples as u32;
    let body_bytes = body_bytes / samples;

    let started = Instant::now();
    let keys = enrol(
        &client,
        &target.base,
        &target.tokens,
        &fleet,
        args.concurrency.min(32),
    )
    .await?;
    let enrol_time = started.elapsed();
    eprintln!(
        "enrolled {} agents in {:.1} s",
        keys.len(),
        enrol_time.as_secs_f64()
    );

    let plan = Plan {
        concurrency: args.concurrency,
        duration: Duration::from_secs(args.healthz_duration),
        rate: None,
    };
    let warmup = Duration::from_secs(args.warmup);
    let pid = target.pid.as_ref();
    // The measured phases speak through `wire`: reqwest's own CPU would be taken from the
    // collector under test (docs/benchmarks.md).
    let pool = Arc::new(wire::Client::new(&target.base).await?);
    let host = pool.host().to_string();
    let (healthz, healthz_cpu, _) = phase(
        &pool,
        plan,
        warmup,
        pid,
        Arc::new(move |_, _, out: &mut Vec<u8>| {
            let request = wire::Request {
                method: "GET",
                path: "/healthz",
                authorization: None,
                body: None,
            };
            wire::encode(out, &host, &request);
        }),
    )
    .await;
    eprintln!("/healthz: {} req/s", thousands(healthz.rate("200")));
    let wrk = wrk_healthz(
        &target.base,
        args.concurrency,
        wrk_threads(),
        args.healthz_duration,
    )
    .await;

    let keys = Arc::new(keys);
    let (agents, concurrency) = (args.agents, args.concurrency);
    let body_fleet = fleet.clone();
    let host = pool.host().to_string();
    let make: MakeRequest = Arc::new(move |w, n, out: &mut Vec<u8>| {
        let (agent, seq) = assign(agents, concurrency, w, n);
        let body = body_fleet.body(agent, seq, hatang_bench::mix(w as u64, n));
        let request = wire::Request {
            method: "POST",
            path: "/api/v1/reports",
            authorization: Some(keys[agent].as_bytes()),
            body: Some(wire::Body {
                content_type: "application/json",
                content_encoding: Some("gzip"),
                bytes: &body,
            }),
        };
        wire::encode(out, &host, &request);
    });
    let plan = Plan {
        duration: Duration::from_secs(args.duration),
        rate: args.rate,
        ..plan
    };
    let (ingest, ingest_cpu, warm) = phase(&pool, plan, warmup, pid, make).await;
    let after = pid.and_then(|p| proc::usage(p).ok());
    let counted = counted_accepted(&client, &target.base).await;
    let db_bytes = match &target.collector {
        Some(c) => collector::database_bytes(c.database_url()).await,
        None => None,
    };

    // The table.
    let backend = target
        .collector
        .as_ref()
        .map_or("external".to_string(), |c| c.backend().to_string());
    let accepted = ingest.rate("202");
    // The ratio's denominator is the better of the two /healthz figures, so a client that
    // loads the trivial endpoint less well never flatters the ingest.
    let trivial = healthz.rate("200").max(wrk.unwrap_or(0.0));
    let p99 = ingest.quantile(0.99);
    println!();
    println!(
        "hatang-load · {} · commit {} · {} · {}",
        hatang_bench::today(),
        hatang_bench::commit().unwrap_or_else(|| "?".into()),
        hatang_bench::machine(),
        backend
    );
    println!();
    println!("| measure | value |");
    println!("|---|---|");
    let row = |k: &str, v: String| println!("| {k} | {v} |");
    row(
        "setup",
        format!(
            "{} units, {} agents enrolled over HTTP in {:.1} s ({}/s), {} connections, {} s measured after {} s warm-up{}",
            args.target.units,
            args.agents,
            enrol_time.as_secs_f64(),
            thousands(args.agents as f64 / enrol_time.as_secs_f64().max(1e-9)),
            args.concurrency,
            args.duration,
            args.warmup,
            args.rate.map_or(String::new(), |r| format!(
                ", target rate {} /s",
                thousands(r)
            ))
        ),
    );
    row(
        "machine load average before the run (1/5/15 min)",
        loadavg.join(" "),
    );
    if let Some(s) = target.startup {
        row("start-up to /readyz", ms(s));
    }
    row(
        "report body",
        format!(
            "{body_bytes} B gzip on the wire (JSON {} B, {} B with inventory, 1 in {INVENTORY_EVERY}); generator {:.1} µs/body",
            fleet.json_sizes().0,
            fleet.json_sizes().1,
            body_cost.as_secs_f64() * 1e6
        ),
    );
    row(
        "**ingest: accepted reports/s**",
        format!("**{}**", thousands(accepted)),
    );
    row(
        "ingest latency p50 / p90 / p99 / max",
        format!(
            "{} / {} / {} / {}",
            ms(ingest.quantile(0.5)),
            ms(ingest.quantile(0.9)),
            ms(p99),
            ms(ingest.quantile(1.0))
        ),
    );
    row("ingest errors", ingest.errors(&["202"]));
    row(
        "/healthz req/s (same client, same connections)",
        format!(
            "{} (p50 {}, p99 {}; errors {})",
            thousands(healthz.rate("200")),
            ms(healthz.quantile(0.5)),
            ms(healthz.quantile(0.99)),
            healthz.errors(&["200"])
        ),
    );
    if let Some(w) = wrk {
        row(
            &format!(
                "/healthz req/s with wrk -t{} -c{} (cross-check of this client)",
                wrk_threads(),
                args.concurrency
            ),
            thousands(w),
        );
    }
    row(
        "ingest / healthz ratio (against the better /healthz figure)",
        format!("{:.3}", accepted / trivial.max(1e-9)),
    );
    if ingest_cpu.known {
        let secs = ingest.elapsed.as_secs_f64();
        row(
            "collector CPU while ingesting",
            format!(
                "{:.1} s in {:.1} s = {:.2} cores (user {:.0}%, system {:.0}%); {:.0} µs per accepted report",
                ingest_cpu.cpu().as_secs_f64(),
                secs,
                ingest_cpu.cpu().as_secs_f64() / secs,
                100.0 * ingest_cpu.user.as_secs_f64() / ingest_cpu.cpu().as_secs_f64().max(1e-9),
                100.0 * ingest_cpu.system.as_secs_f64() / ingest_cpu.cpu().as_secs_f64().max(1e-9),
                1e6 * ingest_cpu.cpu().as_secs_f64() / ingest.count("202").max(1) as f64
            ),
        );
        row("collector CPU by thread (ingest)", ingest_cpu.split());
        row(
            "collector CPU while serving /healthz",
            format!(
                "{:.2} cores; {:.0} µs per request",
                healthz_cpu.cpu().as_secs_f64() / healthz.elapsed.as_secs_f64(),
                1e6 * healthz_cpu.cpu().as_secs_f64() / healthz.count("200").max(1) as f64
            ),
        );
    }
    row(
        "load generator CPU (ingest / healthz)",
        format!(
            "{:.2} / {:.2} cores; {:.0} / {:.0} µs per request",
            ingest_cpu.generator.as_secs_f64() / ingest.elapsed.as_secs_f64(),
            healthz_cpu.generator.as_secs_f64() / healthz.elapsed.as_secs_f64(),
            1e6 * ingest_cpu.generator.as_secs_f64() / ingest.total().max(1) as f64,
            1e6 * healthz_cpu.generator.as_secs_f64() / healthz.total().max(1) as f64
        ),
    );
    let secs = ingest.elapsed.as_secs_f64().max(1e-9);
    let (busy, capacity) = ingest_cpu.machine;
    if !capacity.is_zero() {
        let cores = capacity.as_secs_f64() / secs;
        let other = busy
            .saturating_sub(ingest_cpu.cpu())
            .saturating_sub(ingest_cpu.generator)
            .saturating_sub(ingest_cpu.postgres);
        row(
            "machine CPU while ingesting (all processes)",
            format!(
                "{:.2} of {cores:.0} cores busy: collector {:.2}, load generator {:.2}{}, everything else {:.2}",
                busy.as_secs_f64() / secs,
                ingest_cpu.cpu().as_secs_f64() / secs,
                ingest_cpu.generator.as_secs_f64() / secs,
                if ingest_cpu.postgres.is_zero() {
                    String::new()
                } else {
                    format!(
                        ", PostgreSQL {:.2}",
                        ingest_cpu.postgres.as_secs_f64() / secs
                    )
                },
                other.as_secs_f64() / secs,
            ),
        );
    }
    if let Some(a) = after {
        row(
            "collector RSS now / peak",
            format!("{} / {}", mib(a.rss_kib), mib(a.hwm_kib)),
        );
    }
    if let Some(n) = counted {
        let seen = ingest.count("202") + warm.count("202");
        row(
            "check: collector's accepted counter",
            format!(
                "{} = {} answered 202 here (warm-up included): {}",
                thousands(n),
                thousands(seen as f64),
                if n as u64 == seen {
                    "agrees"
                } else {
                    "DISAGREES"
                }
            ),
        );
    }
    if let Some(b) = db_bytes {
        row("database size after", mib(b / 1024));
    }

    println!();
    let floor = if backend == "PostgreSQL" {
        10_000.0
    } else {
        20_000.0
    };
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    println!(
        "budget {} reports/s: {} ({:.0}% of it)",
        thousands(floor),
        verdict(accepted >= floor),
        100.0 * accepted / floor
    );
    println!(
        "budget p99 < 50 ms: {} ({})",
        verdict(p99 < Duration::from_millis(50)),
        ms(p99)
    );
    println!(
        "budget ingest ≥ 0.5 × /healthz: {} ({:.3})",
        verdict(accepted >= 0.5 * trivial),
        accepted / trivial.max(1e-9)
    );
    if let Some(s) = target.startup {
        println!(
            "budget start-up ≤ 1 s: {} ({})",
            verdict(s <= Duration::from_secs(1)),
            ms(s)
        );
    }

    target.finish(args.target.keep).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::assign;

    #[test]
    fn each_worker_owns_its_agents() {
        let (agents, c) = (10, 3);
        let mut seen = vec![0u32; agents];
        for w in 0..c {
            for n in 0..40 {
                let (a, _) = assign(agents, c, w, n);
                assert_eq!(a % c, w, "agent {a} belongs to worker {}", a % c);
                seen[a] += 1;
            }
        }
        assert!(seen.iter().all(|&s| s > 0), "{seen:?}");
        // fewer agents than workers: they are shared, all in range
        for n in 0..10 {
            assert!(assign(2, 5, 4, n).0 < 2);
        }
    }
}
