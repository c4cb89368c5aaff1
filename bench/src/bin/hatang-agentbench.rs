//! `hatang-agentbench`: the agent against node_exporter, measured in the same run, beside the
//! budgets of issue 3: binary size, resident memory of `run` after a minute, CPU per collection
//! cycle, report bytes before and after gzip.
//!
//! - **Agent**: `hatang-agent run` (interval 5 s, speed test and gateway probe off, a temporary
//!   state directory holding a made-up enrolment) sends its reports to a fake collector in this
//!   process on 127.0.0.1 that answers 202 and keeps every body. Cycles are counted from the
//!   reports received; CPU per cycle is the CPU time (`/proc/PID/stat`) between the first report
//!   and the last, divided by the cycles in between, so start-up and the first (inventory)
//!   cycle are reported apart. Report sizes are those of the bodies received: gzip as sent, and
//!   the JSON inside.
//! - **node_exporter** (`/usr/bin/prometheus-node-exporter`, default collectors) on a free
//!   127.0.0.1 port, scraped once to warm up, then `--scrapes` times, one every
//!   `--scrape-every-ms`, asking for gzip as Prometheus does; CPU per scrape is the CPU time
//!   over those scrapes divided by their number (idle time between them included, as for the
//!   agent).
//!
//! - **Windows agent** (information, no budget): the release .exe's size, and its memory when
//!   it runs `run` the same way under Wine (`agent/tests/wine/run`, Wine's prefix from
//!   `WINEPREFIX`) for `--windows-seconds`: `VmRSS` at the end and `VmHWM` of the .exe's own
//!   process. Wine's wineserver and service processes, which a real Windows does not have, are
//!   not counted.
//!
//! Nothing is built or installed here: build the agent first (`cargo build --release -p
//! hatang-agent -p hatang-bench`, `cargo build --profile dist -p hatang-agent` for the
//! shipped binary, and `cargo build --release -p hatang-agent --target x86_64-pc-windows-gnu`
//! for the Windows .exe); install node_exporter with `apt-get install -y prometheus-node-exporter`
//! and Wine with `apt-get install -y wine wine64`.
//! Without node_exporter, its column says "not installed" and the budgets that need it are not
//! judged; without Wine or the .exe, the Windows memory row says which is missing.

use std::fmt::Write as _;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use hatang_bench::load::{mib, ms};
use hatang_bench::proc::{self, Usage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

/// hatang-agent against node_exporter: binary size, memory, CPU per cycle, report bytes.
#[derive(Debug, Parser)]
#[command(name = "hatang-agentbench", version, about, long_about = None)]
struct Args {
    /// Seconds `hatang-agent run` is measured for (the budget speaks of a minute).
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// The agent's `interval_secs` (5 at least).
    #[arg(long, default_value_t = 5)]
    interval: u32,
    /// node_exporter scrapes measured (after one warm-up scrape).
    #[arg(long, default_value_t = 20)]
    scrapes: u32,
    /// Milliseconds between two scrapes.
    #[arg(long, default_value_t = 1000)]
    scrape_every_ms: u64,
    /// The release agent (default: hatang-agent beside this program).
    #[arg(long, value_name = "PATH")]
    agent_bin: Option<PathBuf>,
    /// The dist-profile agent (default: ../dist/hatang-agent from this program's directory);
    /// its size is reported when it exists.
    #[arg(long, value_name = "PATH")]
    dist_bin: Option<PathBuf>,
    /// The Windows release agent, whose size (and memory under Wine) is reported when it exists
    /// (default: ../x86_64-pc-windows-gnu/release/hatang-agent.exe from this program's
    /// directory).
    #[arg(long, value_name = "PATH")]
    windows_bin: Option<PathBuf>,
    /// Seconds the Windows agent runs under Wine for its memory figure (0: not run).
    #[arg(long, default_value_t = 30)]
    windows_seconds: u64,
    /// Wine, as the Windows agent's runner calls it.
    #[arg(long, env = "WINE", default_value = "/usr/lib/wine/wine64")]
    wine: PathBuf,
    /// Run the dist agent rather than the release one for the memory and CPU figures.
    #[arg(long)]
    run_dist: bool,
    #[arg(
        long,
        value_name = "PATH",
        default_value = "/usr/bin/prometheus-node-exporter"
    )]
    node_exporter: PathBuf,
}

/// Budgets from issue 3.
const SAMPLE_REPORT_GZ_BUDGET: u64 = 2048;

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
            eprintln!("hatang-agentbench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn beside_me(rel: &str) -> anyhow::Result<PathBuf> {
    Ok(std::env::current_exe()?
        .parent()
        .context("this program has no directory")?
        .join(rel))
}

fn size(path: &Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|m| m.len())
}

async fn run(args: Args) -> anyhow::Result<()> {
    if args.interval < 5 {
        bail!("--interval must be 5 or more (the agent refuses less)");
    }
    let release = match &args.agent_bin {
        Some(p) => p.clone(),
        None => beside_me("hatang-agent")?,
    };
    let dist = match &args.dist_bin {
        Some(p) => p.clone(),
        None => beside_me("../dist/hatang-agent")?,
    };
    let windows = match &args.windows_bin {
        Some(p) => p.clone(),
        None => beside_me("../x86_64-pc-windows-gnu/release/hatang-agent.exe")?,
    };
    let release_size = size(&release);
    let dist_size = size(&dist);
    let ne_size = size(&args.node_exporter);
    let agent = if args.run_dist { &dist } else { &release };
    if size(agent).is_none() {
        bail!(
            "{} is missing: build it first (cargo build --release -p hatang-agent -p hatang-bench{})",
            agent.display(),
            if args.run_dist {
                "; cargo build --profile dist -p hatang-agent"
            } else {
                ""
            }
        );
    }

    eprintln!(
        "agent: {} run, interval {} s, for {} s",
        agent.display(),
        args.interval,
        args.seconds
    );
    let a = measure_agent(
        &Launch::Native(agent.clone()),
        args.interval,
        Duration::from_secs(args.seconds),
    )
    .await?;
    let under_wine = measure_wine(&args, &windows).await;
    let ne = if ne_size.is_some() {
        eprintln!(
            "node_exporter: {} scrapes, one every {} ms",
            args.scrapes, args.scrape_every_ms
        );
        Some(
            measure_node_exporter(
                &args.node_exporter,
                args.scrapes.max(1),
                Duration::from_millis(args.scrape_every_ms),
            )
            .await?,
        )
    } else {
        eprintln!(
            "node_exporter: {} not installed (apt-get install -y prometheus-node-exporter); its column is skipped",
            args.node_exporter.display()
        );
        None
    };

    let header = format!(
        "hatang-agentbench, {} ({}), commit {}",
        hatang_bench::today(),
        hatang_bench::machine(),
        hatang_bench::commit().unwrap_or_else(|| "?".into())
    );
    println!("{header}\n");
    println!(
        "{}",
        table(&Sizes {
            release: release_size,
            dist: dist_size,
            windows: size(&windows),
            under_wine: &under_wine,
            node_exporter: ne_size,
            ran: if args.run_dist { "dist" } else { "release" },
            agent: &a,
            ne: ne.as_ref(),
        })
    );
    println!(
        "agent: {} reports in {:.0} s ({} with inventory); start-up and first cycle {} CPU; {} CPU per steady cycle over {} cycles ({} user, {} system; /proc counts in 10 ms ticks)",
        a.reports.len(),
        a.elapsed.as_secs_f64(),
        a.reports.iter().filter(|r| r.inventory).count(),
        ms(a.first_cycle_cpu),
        ms(a.cpu_per_cycle()),
        a.steady_cycles,
        ms(a.steady_user / a.steady_cycles.max(1)),
        ms(a.steady_system / a.steady_cycles.max(1)),
    );
    if let Some(ne) = &ne {
        println!(
            "node_exporter: {} series, {} bytes exposition ({} gzipped); {} CPU per scrape over {} scrapes; scrape latency median {}",
            ne.series,
            ne.exposition_bytes,
            ne.exposition_gz_bytes,
            ms(ne.cpu_per_scrape()),
            ne.scrapes,
            ms(ne.median_latency),
        );
    }
    Ok(())
}

/// One report body the fake collector received.
#[derive(Debug, Clone)]
struct Received {
    gz_bytes: u64,
    json_bytes: u64,
    inventory: bool,
}

#[derive(Debug)]
struct AgentRun {
    reports: Vec<Received>,
    elapsed: Duration,
    /// CPU from start to just after the first report (start-up + the inventory cycle).
    first_cycle_cpu: Duration,
    steady_user: Duration,
    steady_system: Duration,
    steady_cycles: u32,
    /// At the end of the run.
    end: Usage,
    /// Largest `VmRSS` seen at a cycle.
    max_rss_kib: u64,
}

impl AgentRun {
    fn cpu_per_cycle(&self) -> Duration {
        (self.steady_user + self.steady_system) / self.steady_cycles.max(1)
    }

    fn sample_only(&self) -> Vec<&Received> {
        self.reports.iter().filter(|r| !r.inventory).collect()
    }

    fn with_inventory(&self) -> Option<&Received> {
        self.reports.iter().find(|r| r.inventory)
    }
}

type Headers = Vec<(String, String)>;

/// The fake collector's side of one request: method and path, headers (names in lower case),
/// and where the body starts, from the bytes read so far; `None` until the head is complete.
fn parse_head(buf: &[u8]) -> Option<(String, Headers, usize)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]);
    let mut lines = head.split("\r\n");
    let request_line = lines.next()?.to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Some((request_line, headers, end + 4))
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// What one report body holds: its JSON size and whether it carries an inventory.
fn inspect(gz: &[u8], gzipped: bool) -> Received {
    let json = if gzipped {
        let mut out = Vec::new();
        match flate2::read::GzDecoder::new(gz).read_to_end(&mut out) {
            Ok(_) => out,
            Err(_) => Vec::new(),
        }
    } else {
        gz.to_vec()
    };
    let inventory = serde_json::from_slice::<serde_json::Value>(&json)
        .ok()
        .and_then(|v| v.get("inventory").map(|i| !i.is_null()))
        .unwrap_or(false);
    Received {
        gz_bytes: gz.len() as u64,
        json_bytes: json.len() as u64,
        inventory,
    }
}

/// Report bodies the fake collector received, with when.
type Seen = Arc<Mutex<Vec<(Instant, Received)>>>;

/// Serves one keep-alive connection: every request is answered 202, report bodies are kept.
async fn serve(mut stream: tokio::net::TcpStream, seen: Seen) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let (request_line, headers, body_at) = loop {
            if let Some(h) = parse_head(&buf) {
                break h;
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let length: usize = header(&headers, "content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < body_at + length {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body: Vec<u8> = buf.drain(..body_at + length).skip(body_at).collect();
        if request_line.contains("/api/v1/reports") {
            let gzipped = header(&headers, "content-encoding") == Some("gzip");
            let r = inspect(&body, gzipped);
            seen.lock().unwrap().push((Instant::now(), r));
        }
        let answer = br#"{"status":"accepted"}"#;
        let response = format!(
            "HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            answer.len()
        );
        if stream.write_all(response.as_bytes()).await.is_err()
            || stream.write_all(answer).await.is_err()
        {
            return;
        }
    }
}

fn pid_of(child: &Child) -> anyhow::Result<String> {
    Ok(child.id().context("the process is gone")?.to_string())
}

/// Waits until `seen` holds more than `count` reports or `limit` passes; the new count.
async fn wait_reports(
    seen: &Mutex<Vec<(Instant, Received)>>,
    count: usize,
    limit: Duration,
    child: &mut Child,
) -> anyhow::Result<usize> {
    let until = Instant::now() + limit;
    loop {
        let n = seen.lock().unwrap().len();
        if n > count || Instant::now() >= until {
            return Ok(n);
        }
        if let Some(status) = child.try_wait()? {
            bail!("the agent exited ({status}); run it by hand to see why");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How the agent is started: this machine's binary, or a Windows .exe under Wine.
#[derive(Debug)]
enum Launch {
    Native(PathBuf),
    Wine { runner: PathBuf, exe: PathBuf },
}

impl Launch {
    fn command(&self) -> Command {
        match self {
            Launch::Native(bin) => Command::new(bin),
            Launch::Wine { runner, exe } => {
                let mut cmd = Command::new(runner);
                cmd.arg(exe);
                cmd
            }
        }
    }

    /// `path` as the agent names it: under Wine, on the `Z:` drive that maps `/`.
    fn path(&self, path: &Path) -> String {
        match self {
            Launch::Native(_) => path.display().to_string(),
            Launch::Wine { .. } => format!("Z:{}", path.display()).replace('/', "\\"),
        }
    }

    /// Start-up on top of the first cycle: a Wine prefix used for the first time is made first.
    fn start_up(&self) -> Duration {
        match self {
            Launch::Native(_) => Duration::ZERO,
            Launch::Wine { .. } => Duration::from_secs(60),
        }
    }
}

/// The Windows agent's run under Wine, or why there is none.
async fn measure_wine(args: &Args, exe: &Path) -> Result<AgentRun, String> {
    let runner = Path::new(env!("CARGO_MANIFEST_DIR")).join("../agent/tests/wine/run");
    if args.windows_seconds == 0 {
        return Err("not run (--windows-seconds 0)".into());
    }
    if size(exe).is_none() {
        return Err(format!("not measured: {} is not built", exe.display()));
    }
    if size(&args.wine).is_none() {
        return Err(format!(
            "not measured: no Wine at {} (apt-get install -y wine wine64)",
            args.wine.display()
        ));
    }
    eprintln!(
        "windows agent: {} run under Wine, interval {} s, for {} s",
        exe.display(),
        args.interval,
        args.windows_seconds
    );
    let launch = Launch::Wine {
        runner,
        exe: exe.to_path_buf(),
    };
    measure_agent(
        &launch,
        args.interval,
        Duration::from_secs(args.windows_seconds),
    )
    .await
    .map_err(|e| format!("not measured: {e:#}"))
}

async fn measure_agent(
    launch: &Launch,
    interval: u32,
    run_for: Duration,
) -> anyhow::Result<AgentRun> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let seen: Seen = Arc::default();
    let server_seen = seen.clone();
    let server = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream, server_seen.clone()));
        }
    });

    let dir = tempfile::Builder::new()
        .prefix("hatang-agentbench-")
        .tempdir()?;
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state)?;
    // A made-up enrolment: the fake collector takes any key.
    std::fs::write(
        state.join("agent.json"),
        serde_json::to_vec_pretty(&serde_json::json!({
            "collector": format!("http://{addr}"),
            "agent_id": "00000000-0000-4000-8000-000000000001",
            "agent_key": "bench-key",
            "unit": "bench",
            "role": "office",
        }))?,
    )?;
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = {:?}\ninterval_secs = {interval}\nspeedtest_interval_secs = 0\ngateway_probe = false\n",
            launch.path(&state)
        ),
    )?;
    let log = std::fs::File::create(dir.path().join("agent.log"))?;
    let started = Instant::now();
    let mut child = launch
        .command()
        .arg("--config")
        .arg(launch.path(&config))
        .arg("run")
        .env_remove("HATANG_COLLECTOR")
        .env_remove("HATANG_STATE_DIR")
        .env("HATANG_GATEWAY_PROBE", "false")
        .env("HATANG_MACHINE_ID", "hatang-agentbench-0001")
        .env("HATANG_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {launch:?}"))?;
    // Under Wine too: the runner and Wine's loader exec, so this process becomes the .exe's.
    let pid = pid_of(&child)?;
    // A cycle ends once its report is acknowledged; a moment later the agent is idle again.
    let settle = Duration::from_millis(300);
    let patience = Duration::from_secs(u64::from(interval) + 20);

    let mut count = wait_reports(&seen, 0, patience + launch.start_up(), &mut child).await?;
    if count == 0 {
        let text = std::fs::read_to_string(dir.path().join("agent.log")).unwrap_or_default();
        bail!("no report from the agent within {patience:?}; its log:\n{text}");
    }
    tokio::time::sleep(settle).await;
    let first = proc::usage(&pid)?;
    let first_count = seen.lock().unwrap().len();
    let mut max_rss = first.rss_kib;
    let mut last = first;
    let mut last_count = first_count;
    while started.elapsed() < run_for {
        let n = wait_reports(&seen, count, patience, &mut child).await?;
        if n == count {
            break;
        }
        count = n;
        tokio::time::sleep(settle).await;
        let u = proc::usage(&pid)?;
        max_rss = max_rss.max(u.rss_kib);
        // Only whole cycles count: the usage read just after the latest report.
        last = u;
        last_count = seen.lock().unwrap().len();
    }
    let elapsed = started.elapsed();
    let end = proc::usage(&pid)?;
    let _ = child.kill().await;
    server.abort();
    let reports: Vec<Received> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|(_, r)| r.clone())
        .collect();
    let agent_log = std::fs::read_to_string(dir.path().join("agent.log")).unwrap_or_default();
    if !agent_log.trim().is_empty() {
        eprintln!("agent log (warnings and errors):\n{}", agent_log.trim_end());
    }
    Ok(AgentRun {
        reports,
        elapsed,
        first_cycle_cpu: first.cpu(),
        steady_user: last.user.saturating_sub(first.user),
        steady_system: last.system.saturating_sub(first.system),
        steady_cycles: u32::try_from(last_count.saturating_sub(first_count)).unwrap_or(u32::MAX),
        end,
        max_rss_kib: max_rss.max(end.rss_kib),
    })
}

#[derive(Debug)]
struct NodeExporterRun {
    scrapes: u32,
    cpu: Duration,
    end: Usage,
    series: usize,
    exposition_bytes: usize,
    exposition_gz_bytes: usize,
    median_latency: Duration,
}

impl NodeExporterRun {
    fn cpu_per_scrape(&self) -> Duration {
        self.cpu / self.scrapes.max(1)
    }
}

async fn measure_node_exporter(
    bin: &Path,
    scrapes: u32,
    every: Duration,
) -> anyhow::Result<NodeExporterRun> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut child = Command::new(bin)
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    let pid = pid_of(&child)?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()?;
    let url = format!("http://127.0.0.1:{port}/metrics");
    // Prometheus asks for gzip; so do we (reqwest here decodes nothing: the bytes are counted).
    let scrape = || async {
        let response = client
            .get(&url)
            .header("accept-encoding", "gzip")
            .send()
            .await?
            .error_for_status()?;
        anyhow::Ok(response.bytes().await?)
    };
    let ready_by = Instant::now() + Duration::from_secs(10);
    let warm = loop {
        match scrape().await {
            Ok(b) => break b,
            Err(e) if Instant::now() >= ready_by => {
                return Err(e.context("node_exporter did not answer within 10 s"));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    if let Some(status) = child.try_wait()? {
        bail!("node_exporter exited ({status})");
    }
    let mut text = String::new();
    flate2::read::GzDecoder::new(&warm[..])
        .read_to_string(&mut text)
        .context("node_exporter's answer is not gzip")?;
    let series = text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count();
    tokio::time::sleep(every).await;
    let before = proc::usage(&pid)?;
    let mut latencies = Vec::new();
    for i in 0..scrapes {
        let t = Instant::now();
        scrape().await?;
        latencies.push(t.elapsed());
        if i + 1 < scrapes {
            tokio::time::sleep(every.saturating_sub(t.elapsed())).await;
        }
    }
    // Let the last scrape's work (and its garbage) settle as the agent's cycle does.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let end = proc::usage(&pid)?;
    let _ = child.kill().await;
    latencies.sort();
    Ok(NodeExporterRun {
        scrapes,
        cpu: end.cpu().saturating_sub(before.cpu()),
        end,
        series,
        exposition_bytes: text.len(),
        exposition_gz_bytes: warm.len(),
        median_latency: latencies[latencies.len() / 2],
    })
}

fn median(mut v: Vec<u64>) -> Option<u64> {
    v.sort_unstable();
    v.get(v.len() / 2).copied()
}

fn bytes(n: u64) -> String {
    if n >= 1 << 20 {
        format!("{:.2} MiB ({n} B)", n as f64 / f64::from(1 << 20))
    } else {
        format!("{n} B ({:.2} KiB)", n as f64 / 1024.0)
    }
}

/// "ok" or "OVER" for a measured value against a ceiling; "—" when either is unknown.
fn verdict(value: Option<f64>, ceiling: Option<f64>, strict: bool) -> &'static str {
    match (value, ceiling) {
        (Some(v), Some(c)) if (strict && v < c) || (!strict && v <= c) => "ok",
        (Some(_), Some(_)) => "OVER",
        _ => "— (no peer)",
    }
}

struct Sizes<'a> {
    release: Option<u64>,
    dist: Option<u64>,
    /// The Windows (x86_64-pc-windows-gnu) release agent.
    windows: Option<u64>,
    /// Its run under Wine, or why there is none.
    under_wine: &'a Result<AgentRun, String>,
    node_exporter: Option<u64>,
    ran: &'a str,
    agent: &'a AgentRun,
    ne: Option<&'a NodeExporterRun>,
}

fn table(s: &Sizes<'_>) -> String {
    let mut out = String::new();
    let absent = |o: Option<u64>, what: &str| o.map_or_else(|| what.to_string(), bytes);
    let ne_col = |o: Option<String>| o.unwrap_or_else(|| "not installed".into());
    let half = s.node_exporter.map(|n| n as f64 / 2.0);
    let _ = writeln!(
        out,
        "| measure | hatang-agent | node_exporter | budget | verdict |\n|---|---|---|---|---|"
    );
    let _ = writeln!(
        out,
        "| binary, release profile | {} | {} | ≤ ½ node_exporter | {} |",
        absent(s.release, "not built"),
        ne_col(s.node_exporter.map(bytes)),
        verdict(s.release.map(|v| v as f64), half, false)
    );
    let _ = writeln!(
        out,
        "| binary, dist profile | {} | | ≤ ½ node_exporter | {} |",
        absent(
            s.dist,
            "not built (cargo build --profile dist -p hatang-agent)"
        ),
        if s.dist.is_some() {
            verdict(s.dist.map(|v| v as f64), half, false)
        } else {
            "—"
        }
    );
    let _ = writeln!(
        out,
        "| binary, Windows .exe, release profile | {} | | (information) | |",
        absent(
            s.windows,
            "not built (cargo build --release -p hatang-agent --target x86_64-pc-windows-gnu)"
        ),
    );
    let _ = writeln!(
        out,
        "| RSS of the Windows .exe under Wine, release agent{} | {} | | (information) | |",
        s.under_wine.as_ref().map_or(String::new(), |w| format!(
            " after {:.0} s",
            w.elapsed.as_secs_f64()
        )),
        wine_memory(s.under_wine),
    );
    let ne_rss = s.ne.map(|n| n.end.rss_kib);
    let _ = writeln!(
        out,
        "| RSS (VmRSS) at the end, {} agent after {:.0} s | {} | {} | ≤ ½ node_exporter | {} |",
        s.ran,
        s.agent.elapsed.as_secs_f64(),
        mib(s.agent.end.rss_kib),
        ne_col(ne_rss.map(mib)),
        verdict(
            Some(s.agent.end.rss_kib as f64),
            ne_rss.map(|r| r as f64 / 2.0),
            false
        )
    );
    let ne_hwm = s.ne.map(|n| n.end.hwm_kib);
    let _ = writeln!(
        out,
        "| peak RSS (VmHWM) | {} (largest VmRSS seen at a cycle: {}) | {} | (information) | |",
        mib(s.agent.end.hwm_kib),
        mib(s.agent.max_rss_kib),
        ne_col(ne_hwm.map(mib)),
    );
    let ne_cpu = s.ne.map(NodeExporterRun::cpu_per_scrape);
    let _ = writeln!(
        out,
        "| CPU per collection cycle / per scrape | {} ({} cycles) | {} | < node_exporter | {} |",
        ms(s.agent.cpu_per_cycle()),
        s.agent.steady_cycles,
        ne_col(ne_cpu.map(ms)),
        if s.agent.steady_cycles == 0 {
            "— (no whole cycle: run longer)"
        } else {
            verdict(
                Some(s.agent.cpu_per_cycle().as_secs_f64()),
                ne_cpu.map(|d| d.as_secs_f64()),
                true,
            )
        }
    );
    let sample = s.agent.sample_only();
    let gz = median(sample.iter().map(|r| r.gz_bytes).collect());
    let json = median(sample.iter().map(|r| r.json_bytes).collect());
    let _ = writeln!(
        out,
        "| sample report, JSON → gzip (median of {}) | {} → {} | {} → {} per scrape | gzip ≤ 2 KiB | {} |",
        sample.len(),
        json.map_or("none received".into(), bytes),
        gz.map_or("—".into(), bytes),
        ne_col(s.ne.map(|n| bytes(n.exposition_bytes as u64))),
        s.ne.map_or("—".into(), |n| bytes(n.exposition_gz_bytes as u64)),
        match gz {
            Some(g) if g <= SAMPLE_REPORT_GZ_BUDGET => "ok",
            Some(_) => "OVER",
            None => "— (run longer than one interval)",
        }
    );
    let inv = s.agent.with_inventory();
    let _ = writeln!(
        out,
        "| report with inventory, JSON → gzip | {} | | (information) | |",
        inv.map_or("none received".into(), |r| format!(
            "{} → {}",
            bytes(r.json_bytes),
            bytes(r.gz_bytes)
        )),
    );
    out
}

/// The Windows agent's memory under Wine for its row, or why it was not measured.
fn wine_memory(run: &Result<AgentRun, String>) -> String {
    match run {
        Ok(w) => format!(
            "{} at the end, peak {} ({} reports; the .exe's process, not Wine's own)",
            mib(w.end.rss_kib),
            mib(w.end.hwm_kib),
            w.reports.len()
        ),
        Err(why) => why.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    #[test]
    fn a_request_head_is_found_and_read() {
        assert!(parse_head(b"POST /api/v1/reports HTTP/1.1\r\nHost: x\r\n").is_none());
        let raw = b"POST /api/v1/reports HTTP/1.1\r\nContent-Length: 3\r\nContent-Encoding: gzip\r\n\r\nabc";
        let (line, headers, at) = parse_head(raw).unwrap();
        assert_eq!(line, "POST /api/v1/reports HTTP/1.1");
        assert_eq!(header(&headers, "content-length"), Some("3"));
        assert_eq!(header(&headers, "content-encoding"), Some("gzip"));
        assert_eq!(&raw[at..], b"abc");
    }

    #[test]
    fn bodies_are_measured_inside_and_out() {
        let json = br#"{"report_id":"x","inventory":{"hostname":"pc"},"sample":{}}"#;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(json).unwrap();
        let gz = gz.finish().unwrap();
        let r = inspect(&gz, true);
        assert_eq!(r.json_bytes, json.len() as u64);
        assert_eq!(r.gz_bytes, gz.len() as u64);
        assert!(r.inventory);
        assert!(!inspect(br#"{"inventory":null}"#, false).inventory);
        assert!(!inspect(br#"{"sample":{}}"#, false).inventory);
    }

    #[test]
    fn the_windows_row_says_what_it_measured_or_why_not() {
        let wine = Launch::Wine {
            runner: PathBuf::from("run"),
            exe: PathBuf::from("hatang-agent.exe"),
        };
        assert_eq!(wine.path(Path::new("/tmp/b/state")), r"Z:\tmp\b\state");
        assert_eq!(
            Launch::Native(PathBuf::from("a")).path(Path::new("/tmp/b")),
            "/tmp/b"
        );
        let run = AgentRun {
            reports: vec![inspect(br#"{"inventory":{}}"#, false); 3],
            elapsed: Duration::from_secs(30),
            first_cycle_cpu: Duration::ZERO,
            steady_user: Duration::ZERO,
            steady_system: Duration::ZERO,
            steady_cycles: 2,
            end: Usage {
                rss_kib: 20 * 1024,
                hwm_kib: 24 * 1024,
                ..Usage::default()
            },
            max_rss_kib: 20 * 1024,
        };
        let row = wine_memory(&Ok(run));
        assert!(row.starts_with(&mib(20 * 1024)), "{row}");
        assert!(row.contains(&format!("peak {}", mib(24 * 1024))), "{row}");
        assert!(row.contains("3 reports"), "{row}");
        let missing = "not measured: no Wine at /usr/lib/wine/wine64".to_owned();
        assert_eq!(wine_memory(&Err(missing.clone())), missing);
    }

    #[tokio::test]
    async fn without_the_exe_or_wine_the_windows_run_says_which() {
        let args = |extra: &[&str]| {
            Args::parse_from(
                ["hatang-agentbench", "--wine", "/nonexistent/wine64"]
                    .iter()
                    .chain(extra),
            )
        };
        let missing = Path::new("/nonexistent/hatang-agent.exe");
        assert_eq!(
            measure_wine(&args(&[]), missing).await.unwrap_err(),
            "not measured: /nonexistent/hatang-agent.exe is not built"
        );
        let exe = std::env::current_exe().unwrap();
        assert_eq!(
            measure_wine(&args(&[]), &exe).await.unwrap_err(),
            "not measured: no Wine at /nonexistent/wine64 (apt-get install -y wine wine64)"
        );
        assert_eq!(
            measure_wine(&args(&["--windows-seconds", "0"]), &exe)
                .await
                .unwrap_err(),
            "not run (--windows-seconds 0)"
        );
    }

    #[test]
    fn verdicts() {
        assert_eq!(verdict(Some(1.0), Some(1.0), false), "ok");
        assert_eq!(verdict(Some(1.0), Some(1.0), true), "OVER");
        assert_eq!(verdict(Some(2.0), Some(1.0), false), "OVER");
        assert_eq!(verdict(Some(1.0), None, false), "— (no peer)");
        assert_eq!(median(vec![5, 1, 3]), Some(3));
        assert_eq!(median(vec![]), None);
    }
}
