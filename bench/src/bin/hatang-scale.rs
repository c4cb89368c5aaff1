//! `hatang-scale`: a collector holding a country's worth of agents (100,000 in 3,500 units):
//! start-up time, latency and size of `/metrics` and of `/metrics/detail`, memory, and one
//! level's equipment ratio checked against a direct SQL count.
//!
//! The unit tree goes in through the collector's CLI; the agents are written straight into the
//! database in one transaction (enrolling 100,000 machines over HTTP would measure enrolment, and
//! take minutes). They are spread over the units by staff, with a realistic mix of states:
//! most online, some stale, some only active for the equipment window, some past it, and the
//! provincial data centres' servers with their latest sample and inventory.

use std::fmt::Write as _;
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use hatang_bench::collector::{self, Collector};
use hatang_bench::load::{self, mib, ms, quantile, thousands};
use hatang_bench::{Rng, proc, reports, tree};
use sqlx::Connection;

/// /metrics, memory and start-up of a collector holding 100,000 agents.
#[derive(Debug, Parser)]
#[command(name = "hatang-scale", version, about, long_about = None)]
struct Args {
    /// PostgreSQL server to create a throwaway database on; default: a temporary SQLite file.
    #[arg(long, value_name = "URL")]
    database: Option<String>,
    /// The collector binary (default: hatang-collector beside this program).
    #[arg(long, value_name = "PATH")]
    collector_bin: Option<std::path::PathBuf>,
    #[arg(long, default_value_t = 3500)]
    units: usize,
    #[arg(long, default_value_t = 100_000)]
    agents: usize,
    /// Servers in each provincial data centre (one per province), counted in --agents; each
    /// gets the per-host series.
    #[arg(long, default_value_t = 50)]
    servers: usize,
    /// Scrapes of each endpoint spaced past the 2 s figures cache (the two endpoints take turns
    /// at coming first after the pause).
    #[arg(long, default_value_t = 20)]
    scrapes: usize,
    /// Scrapes of each endpoint back to back, answered from the figures cache.
    #[arg(long, default_value_t = 20)]
    cached_scrapes: usize,
    /// Level whose equipment ratio is checked against SQL.
    #[arg(long, default_value = "commune")]
    level: String,
    #[arg(long, default_value_t = 2025)]
    seed: u64,
    /// Keep the temporary directory and database afterwards.
    #[arg(long)]
    keep: bool,
}

const DAY: i64 = 86_400;
/// The collector's default figures cache (`figures_cache_secs`).
const FIGURES_CACHE: Duration = Duration::from_secs(2);
/// The exposition the budget is about, and the detail beside it.
const METRICS: &str = "/metrics";
const DETAIL: &str = "/metrics/detail";

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    match runtime.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hatang-scale: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// One agent row to write.
struct Row {
    id: String,
    unit: String,
    server: bool,
    hostname: String,
    last_report_at: Option<i64>,
    lan_up: bool,
    ok_at: [Option<i64>; 3],
    speed: Option<(i64, f64, f64)>,
    /// Latest inventory and sample documents (servers only: the figures read them for hosts).
    documents: Option<(String, String, String)>,
}

/// Whether a unit is a provincial data centre, whose machines are its servers.
fn datacentre(unit: &tree::Unit) -> bool {
    unit.code.ends_with("-TTDL")
}

/// Agents per unit, adding up to `total`: `servers` in each data centre, the rest over the other
/// staffed units in proportion to staff times a per-unit factor (some offices are well equipped,
/// some far from it).
fn spread(units: &[tree::Unit], total: usize, servers: usize, rng: &mut Rng) -> Vec<usize> {
    let centres = units.iter().filter(|u| datacentre(u)).count();
    let total = total.saturating_sub(centres * servers);
    let weights: Vec<f64> = units
        .iter()
        .map(|u| {
            let w = f64::from(u.staff) * (0.3 + 0.9 * rng.unit());
            if datacentre(u) { 0.0 } else { w }
        })
        .collect();
    let sum: f64 = weights.iter().sum::<f64>().max(1e-9);
    let mut counts: Vec<usize> = weights
        .iter()
        .map(|w| (total as f64 * w / sum).floor() as usize)
        .collect();
    let staffed: Vec<usize> = (0..units.len())
        .filter(|&i| units[i].staff > 0 && !datacentre(&units[i]))
        .collect();
    let mut short = total - counts.iter().sum::<usize>();
    let mut i = 0;
    while short > 0 && !staffed.is_empty() {
        counts[staffed[i % staffed.len()]] += 1;
        short -= 1;
        i += 1;
    }
    for (count, unit) in counts.iter_mut().zip(units) {
        if datacentre(unit) {
            *count = servers;
        }
    }
    counts
}

fn rows(units: &[tree::Unit], total: usize, servers: usize, now: i64, seed: u64) -> Vec<Row> {
    let mut rng = Rng::new(seed);
    let counts = spread(units, total, servers, &mut rng);
    let mut out = Vec::with_capacity(total);
    for (unit, &n) in units.iter().zip(&counts) {
        let servers = datacentre(unit);
        for i in 0..n {
            let draw = rng.unit();
            // 85% online, 8% stale, 4% offline but within the 30-day equipment window, 2.5%
            // past it, 0.5% never reported. Well clear of every boundary, so the figures
            // cannot change while the run lasts.
            let last = if draw < 0.85 {
                Some(now - rng.range(0, 120) as i64)
            } else if draw < 0.93 {
                Some(now - rng.range(3600, 20 * 3600) as i64)
            } else if draw < 0.97 {
                Some(now - rng.range(2 * DAY as u64, 25 * DAY as u64) as i64)
            } else if draw < 0.995 {
                Some(now - rng.range(40 * DAY as u64, 200 * DAY as u64) as i64)
            } else {
                None
            };
            let probe = |rng: &mut Rng, p: f64| {
                last.filter(|_| rng.chance(p))
                    .map(|l| l - rng.range(0, 60) as i64)
            };
            let ok_at = [
                probe(&mut rng, 0.9),
                probe(&mut rng, 0.8),
                probe(&mut rng, 0.85),
            ];
            let speed = (last.is_some() && rng.chance(0.3)).then(|| {
                let down = if rng.chance(0.15) {
                    1.0e6
                } else {
                    rng.range(5, 200) as f64 * 1e6
                };
                (now - rng.range(0, 3600) as i64, down, down / 3.0)
            });
            let (inventory, _) = reports::inventory(&mut rng, &unit.code, i);
            let documents = servers.then(|| {
                let cycle = reports::cycle(&mut rng, false);
                (
                    serde_json::to_string(&inventory).expect("serialises"),
                    serde_json::to_string(&cycle.sample).expect("serialises"),
                    serde_json::to_string(&cycle.probes).expect("serialises"),
                )
            });
            out.push(Row {
                id: uuid::Uuid::from_u64_pair(seed, out.len() as u64).to_string(),
                unit: unit.code.clone(),
                server: servers,
                hostname: inventory.hostname,
                last_report_at: last,
                lan_up: rng.chance(0.95),
                ok_at,
                speed,
                documents,
            });
        }
    }
    out
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or("NULL".into(), |v| v.to_string())
}

/// Multi-row INSERT statements of at most `batch` agents. Values are inlined (all generated
/// here, strings quoted) so one text serves both databases; only the blob literal differs, and
/// where the inventory is kept (a column of `agents` on PostgreSQL, a table of its own on SQLite).
fn inserts(rows: &[Row], now: i64, postgres: bool, batch: usize) -> Vec<String> {
    let mut statements = Vec::new();
    for (c, chunk) in rows.chunks(batch).enumerate() {
        let mut sql = format!(
            "INSERT INTO agents (id, machine_id, unit_code, role, hostname, key_hash, enrolled_at, \
             last_report_at, interval_secs, agent_version, lan_up, internet_ok_at, gov_wan_ok_at, \
             datacentre_ok_at, speed_at, download_bps, upload_bps, sample, probes{}) VALUES ",
            if postgres { ", inventory" } else { "" }
        );
        let mut inventories = Vec::new();
        for (i, r) in chunk.iter().enumerate() {
            let n = c * batch + i;
            // A unique 32-byte digest per agent; nobody will present its key.
            let key = format!("{:016x}{:016x}{:032x}", n, 0x5ca1e, n);
            let key = if postgres {
                format!("'\\x{key}'::bytea")
            } else {
                format!("X'{key}'")
            };
            let docs = r.documents.as_ref();
            let inventory = docs.map_or("NULL".into(), |d| quote(&d.0));
            let _ = write!(
                sql,
                "{}({}, {}, {}, {}, {}, {key}, {}, {}, 60, '0.1.0', {}, {}, {}, {}, {}, {}, {}, {}, {}{})",
                if i == 0 { "" } else { ", " },
                quote(&r.id),
                quote(&format!("scale-{n:06}")),
                quote(&r.unit),
                quote(if r.server { "server" } else { "workstation" }),
                quote(&r.hostname),
                now - 90 * DAY,
                opt(r.last_report_at),
                if r.lan_up { "TRUE" } else { "FALSE" },
                opt(r.ok_at[0]),
                opt(r.ok_at[1]),
                opt(r.ok_at[2]),
                opt(r.speed.map(|s| s.0)),
                opt(r.speed.map(|s| s.1)),
                opt(r.speed.map(|s| s.2)),
                docs.map_or("NULL".into(), |d| quote(&d.1)),
                docs.map_or("NULL".into(), |d| quote(&d.2)),
                if postgres {
                    format!(", {inventory}")
                } else {
                    String::new()
                },
            );
            if !postgres && docs.is_some() {
                inventories.push(format!("({}, {inventory})", quote(&r.id)));
            }
        }
        statements.push(sql);
        if !inventories.is_empty() {
            statements.push(format!(
                "INSERT INTO agent_inventory (agent_id, inventory) VALUES {}",
                inventories.join(", ")
            ));
        }
    }
    statements
}

/// The level's equipment figure counted in SQL, straight from the definition: Σ min(staff,
/// workstations that reported within 30 days) / Σ staff over the level's current units with staff.
fn equipment_sql(level: &str, now: i64) -> String {
    format!(
        "SELECT CAST(SUM(staff) AS BIGINT), CAST(SUM(CASE WHEN active < staff THEN active ELSE staff END) AS BIGINT)
         FROM (SELECT u.staff AS staff,
                      (SELECT COUNT(*) FROM agents a WHERE a.unit_code = u.code AND a.role = 'workstation'
                         AND a.last_report_at >= {}) AS active
               FROM units u WHERE u.level = {} AND u.retired_at IS NULL AND u.staff > 0) t",
        now - 30 * DAY,
        quote(level)
    )
}

enum Db {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl Db {
    async fn open(url: &str) -> anyhow::Result<Self> {
        Ok(if url.starts_with("sqlite:") {
            let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)?
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                .foreign_keys(true);
            Db::Sqlite(sqlx::SqliteConnection::connect_with(&options).await?)
        } else {
            Db::Postgres(sqlx::PgConnection::connect(url).await?)
        })
    }

    /// Runs `statements` in one transaction.
    async fn write(&mut self, statements: &[String]) -> anyhow::Result<()> {
        match self {
            Db::Sqlite(c) => {
                let mut tx = c.begin().await?;
                for s in statements {
                    sqlx::raw_sql(sqlx::AssertSqlSafe(s.as_str()))
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
            }
            Db::Postgres(c) => {
                let mut tx = c.begin().await?;
                for s in statements {
                    sqlx::raw_sql(sqlx::AssertSqlSafe(s.as_str()))
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                sqlx::raw_sql("ANALYZE").execute(&mut *c).await?;
            }
        }
        Ok(())
    }

    async fn pair(&mut self, sql: &str) -> anyhow::Result<(i64, i64)> {
        let q = sqlx::AssertSqlSafe(sql.to_string());
        Ok(match self {
            Db::Sqlite(c) => sqlx::query_as(q).fetch_one(c).await?,
            Db::Postgres(c) => sqlx::query_as(q).fetch_one(c).await?,
        })
    }
}

/// The value of the first sample of `name` whose label text contains `labels`.
fn sample(exposition: &str, name: &str, labels: &str) -> Option<f64> {
    exposition
        .lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{') && l.contains(labels))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

fn sum(exposition: &str, name: &str) -> f64 {
    exposition
        .lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// One metric family's share of an exposition.
#[derive(Debug, PartialEq)]
struct Family {
    name: String,
    /// HELP and TYPE lines included.
    bytes: usize,
    samples: usize,
}

/// The exposition per metric family, largest first.
fn families(exposition: &str) -> Vec<Family> {
    let mut by_name: std::collections::BTreeMap<&str, (usize, usize)> = Default::default();
    for line in exposition.lines() {
        let (name, sample) = match line.strip_prefix("# ") {
            Some(rest) => (rest.split_whitespace().nth(1).unwrap_or(""), 0),
            None => (line.split(['{', ' ']).next().unwrap_or(""), 1),
        };
        let family = name
            .trim_end_matches("_bucket")
            .trim_end_matches("_sum")
            .trim_end_matches("_count");
        let entry = by_name.entry(family).or_default();
        entry.0 += line.len() + 1;
        entry.1 += sample;
    }
    let mut out: Vec<Family> = by_name
        .into_iter()
        .map(|(name, (bytes, samples))| Family {
            name: name.to_string(),
            bytes,
            samples,
        })
        .collect();
    out.sort_by_key(|f| std::cmp::Reverse(f.bytes));
    out
}

/// Size, samples and where the bytes go, for the report's table.
fn breakdown(exposition: &str) -> [String; 3] {
    let fams = families(exposition);
    let share = |prefix: &str| {
        fams.iter()
            .filter(|f| f.name.starts_with(prefix))
            .map(|f| f.bytes)
            .sum::<usize>() as f64
            / 1e6
    };
    let samples: usize = fams.iter().map(|f| f.samples).sum();
    let (units, hosts) = (share("hatang_unit_"), share("hatang_host_"));
    [
        format!(
            "{} bytes ({:.2} MB), {} samples",
            thousands(exposition.len() as f64),
            exposition.len() as f64 / 1e6,
            thousands(samples as f64)
        ),
        format!(
            "per-unit series {units:.2} MB, per-host (server) series {hosts:.2} MB, the rest {:.2} MB",
            exposition.len() as f64 / 1e6 - units - hosts
        ),
        fams.iter()
            .take(6)
            .map(|f| {
                format!(
                    "{} {:.0} kB ({} samples)",
                    f.name,
                    f.bytes as f64 / 1e3,
                    thousands(f.samples as f64)
                )
            })
            .collect::<Vec<_>>()
            .join(", "),
    ]
}

async fn scrape(client: &reqwest::Client, url: &str) -> anyhow::Result<(Duration, String)> {
    let t = Instant::now();
    let response = client.get(url).send().await?;
    let status = response.status();
    let text = response.text().await?;
    if !status.is_success() {
        bail!("{url} answered {status}: {text}");
    }
    Ok((t.elapsed(), text))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let client = load::client(1);
    let bin = collector::binary(args.collector_bin.as_deref())?;
    let mut c = Collector::new(bin, args.database.as_deref()).await?;
    c.configure("")?;
    eprintln!("preparing {} ({})", c.backend(), c.dir.path().display());
    let t = Instant::now();
    let units = c.import_tree(args.units, args.seed).await?;
    let import = t.elapsed();

    let now = hatang_bench::now();
    let t = Instant::now();
    let rows = rows(&units, args.agents, args.servers, now, args.seed);
    let servers = rows.iter().filter(|r| r.server).count();
    let mut db = Db::open(c.database_url()).await?;
    db.write(&inserts(&rows, now, matches!(db, Db::Postgres(_)), 500))
        .await
        .context("writing the agents")?;
    let fill = t.elapsed();
    eprintln!(
        "{} units imported in {:.1} s; {} agents ({servers} servers) written in {:.1} s",
        units.len(),
        import.as_secs_f64(),
        rows.len(),
        fill.as_secs_f64()
    );
    drop(rows);

    let startup = c.start(&client).await?;
    let pid = c.pid().context("the collector has a pid")?;
    let idle = proc::usage(&pid)?;
    // The two endpoints, each a Prometheus scrape job of its own.
    let urls = [METRICS, DETAIL].map(|path| format!("{}{path}", c.base_url()));

    // The first scrape: the figures are computed for the first time (for both endpoints),
    // connections opened.
    let cpu0 = proc::usage(&pid)?.cpu();
    let (first, exposition) = scrape(&client, &urls[0]).await?;
    let first_cpu = proc::usage(&pid)?.cpu().saturating_sub(cpu0);
    let (first_detail, detail) = scrape(&client, &urls[1]).await?;
    // Each later pair after the cache expired: what Prometheus scraping every 15 s or more
    // sees. The endpoints take turns at coming first, the one that may find the figures old.
    let mut fresh = [Vec::new(), Vec::new()];
    let cpu0 = proc::usage(&pid)?.cpu();
    for i in 0..args.scrapes {
        tokio::time::sleep(FIGURES_CACHE + Duration::from_millis(100)).await;
        for e in [i % 2, 1 - i % 2] {
            fresh[e].push(scrape(&client, &urls[e]).await?.0);
        }
    }
    let fresh_cpu = proc::usage(&pid)?.cpu().saturating_sub(cpu0);
    let mut cached = [Vec::new(), Vec::new()];
    for _ in 0..args.cached_scrapes {
        for (times, url) in cached.iter_mut().zip(&urls) {
            times.push(scrape(&client, url).await?.0);
        }
    }
    let after = proc::usage(&pid)?;
    let micros = |v: &[Duration]| {
        let mut us: Vec<u32> = v.iter().map(|d| d.as_micros() as u32).collect();
        us.sort_unstable();
        us
    };
    let (fresh_us, cached_us) = (
        fresh.each_ref().map(|v| micros(v)),
        cached.each_ref().map(|v| micros(v)),
    );

    // Figures against SQL.
    let (staff, equipped) = db
        .pair(&equipment_sql(&args.level, hatang_bench::now()))
        .await?;
    let sql_ratio = equipped as f64 / staff.max(1) as f64;
    let level_label = format!("level=\"{}\"", args.level);
    let exposed = sample(&exposition, "hatang_equipment_ratio", &level_label);
    let agents_exposed = sum(&exposition, "hatang_agents");

    println!();
    println!(
        "hatang-scale · {} · commit {} · {} · {}",
        hatang_bench::today(),
        hatang_bench::commit().unwrap_or_else(|| "?".into()),
        hatang_bench::machine(),
        c.backend()
    );
    println!();
    println!("| measure | value |");
    println!("|---|---|");
    let row = |k: &str, v: String| println!("| {k} | {v} |");
    row(
        "data",
        format!(
            "{} units ({} levels), {} agents of which {servers} servers; units imported by the CLI in {:.1} s, agents written by SQL in {:.1} s",
            thousands(units.len() as f64),
            2,
            thousands(args.agents as f64),
            import.as_secs_f64(),
            fill.as_secs_f64()
        ),
    );
    row("start-up to /readyz", ms(startup));
    row(
        "first /metrics (figures computed, cold), then /metrics/detail",
        format!(
            "{} ({:.0} ms collector CPU), {}",
            ms(first),
            first_cpu.as_secs_f64() * 1000.0,
            ms(first_detail)
        ),
    );
    for (e, path) in [METRICS, DETAIL].into_iter().enumerate() {
        row(
            &format!(
                "{path} after the cache expired ({} scrapes) p50 / p99 / max",
                fresh_us[e].len()
            ),
            format!(
                "{} / {} / {}",
                ms(quantile(&fresh_us[e], 0.5)),
                ms(quantile(&fresh_us[e], 0.99)),
                ms(quantile(&fresh_us[e], 1.0)),
            ),
        );
    }
    row(
        "collector CPU per pair of scrapes ≥ 2 s apart",
        format!(
            "{:.0} ms",
            fresh_cpu.as_secs_f64() * 1000.0 / args.scrapes.max(1) as f64
        ),
    );
    for (e, path) in [METRICS, DETAIL].into_iter().enumerate() {
        row(
            &format!(
                "{path} from the 2 s cache ({} scrapes) p50 / p99",
                cached_us[e].len()
            ),
            format!(
                "{} / {}",
                ms(quantile(&cached_us[e], 0.5)),
                ms(quantile(&cached_us[e], 0.99))
            ),
        );
    }
    for (path, text) in [(METRICS, &exposition), (DETAIL, &detail)] {
        let [size, kinds, largest] = breakdown(text);
        row(&format!("{path} exposition"), size);
        row(&format!("{path} by kind"), kinds);
        row(&format!("{path} largest families"), largest);
    }
    row(
        "collector RSS idle after start / after scrapes / peak",
        format!(
            "{} / {} / {}",
            mib(idle.rss_kib),
            mib(after.rss_kib),
            mib(after.hwm_kib)
        ),
    );
    row(
        &format!("{} equipment ratio: /metrics vs SQL", args.level),
        format!(
            "{} vs {equipped}/{staff} = {sql_ratio:.6}: {}",
            exposed.map_or("absent".into(), |v| format!("{v:.6}")),
            if exposed.is_some_and(|v| (v - sql_ratio).abs() < 1e-9) {
                "agrees"
            } else {
                "DISAGREES"
            }
        ),
    );
    row(
        "agents in hatang_agents",
        format!(
            "{}: {}",
            thousands(agents_exposed),
            if agents_exposed as usize == args.agents {
                "all counted"
            } else {
                "MISSING SOME"
            }
        ),
    );
    if let Some(b) = collector::database_bytes(c.database_url()).await {
        row("database size", mib(b / 1024));
    }

    println!();
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    let p99 = fresh_us.each_ref().map(|us| quantile(us, 0.99));
    println!(
        "budget /metrics ≤ 50 ms (after the cache expired, p99): {} ({}; {DETAIL} beside it: {})",
        verdict(p99[0] <= Duration::from_millis(50)),
        ms(p99[0]),
        ms(p99[1])
    );
    println!(
        "budget /metrics exposition ≤ 2 MB: {} ({:.2} MB; {DETAIL} beside it: {:.2} MB)",
        verdict(exposition.len() <= 2_000_000),
        exposition.len() as f64 / 1e6,
        detail.len() as f64 / 1e6
    );
    println!(
        "budget RSS ≤ 200 MiB: {} (peak {})",
        verdict(after.hwm_kib <= 200 * 1024),
        mib(after.hwm_kib)
    );
    println!(
        "budget start-up ≤ 1 s: {} ({})",
        verdict(startup <= Duration::from_secs(1)),
        ms(startup)
    );
    drop(db);
    c.finish(args.keep).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agents_are_spread_over_staffed_units_and_add_up() {
        let units = tree::generate(300, 1);
        let rows = rows(&units, 5000, 7, 1_000_000_000, 1);
        assert_eq!(rows.len(), 5000);
        let roots: Vec<&str> = units
            .iter()
            .filter(|u| u.staff == 0)
            .map(|u| u.code.as_str())
            .collect();
        assert!(rows.iter().all(|r| !roots.contains(&r.unit.as_str())));
        assert!(
            rows.iter().any(|r| r.server) && rows.iter().all(|r| r.server == r.documents.is_some())
        );
        let online = rows
            .iter()
            .filter(|r| r.last_report_at.is_some_and(|l| l > 1_000_000_000 - 180))
            .count();
        assert!((4000..4600).contains(&online), "{online}");
        let sql = inserts(&rows[..3], 1, true, 2);
        assert_eq!(sql.len(), 2);
        assert!(
            sql[0].contains("'\\x") && sql[0].matches("'scale-").count() == 2,
            "{}",
            sql[0]
        );
    }

    #[test]
    fn families_are_measured_with_their_help_lines() {
        let text =
            "# HELP a_x x\n# TYPE a_x gauge\na_x{u=\"1\"} 1\nh_bucket{le=\"1\"} 1\nh_sum 1\n";
        let f = families(text);
        assert_eq!(
            f[0],
            Family {
                name: "a_x".to_string(),
                bytes: 13 + 17 + 13,
                samples: 1
            }
        );
        assert_eq!((f[1].name.as_str(), f[1].samples), ("h", 2));
        let [size, kinds, largest] = breakdown(text);
        assert_eq!(size, format!("{} bytes (0.00 MB), 3 samples", text.len()));
        assert!(kinds.starts_with("per-unit series 0.00 MB"), "{kinds}");
        assert!(
            largest.starts_with("a_x 0 kB (1 samples), h 0 kB (2 samples)"),
            "{largest}"
        );
    }

    #[test]
    fn exposition_samples_are_found_by_name_and_label() {
        let text = "# HELP x\nhatang_agents{level=\"a\"} 2\nhatang_agents_x 5\nhatang_agents{level=\"b\"} 3\nhatang_equipment_ratio{level=\"commune\"} 0.5\n";
        assert_eq!(sum(text, "hatang_agents"), 5.0);
        assert_eq!(
            sample(text, "hatang_equipment_ratio", "level=\"commune\""),
            Some(0.5)
        );
        assert_eq!(sample(text, "hatang_equipment_ratio", "level=\"x\""), None);
    }
}
