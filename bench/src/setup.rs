//! Setting up the collector a bench loads: its own process on a fresh database with a synthetic
//! unit tree and one enrolment token per staffed unit (or a collector already running, given by
//! URL and token), and agents enrolled over the real HTTP API. Shared by `hatang-load` and
//! `hatang-soak`, so both load a collector prepared the same way.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hatang_protocol::{EnrollRequest, EnrollResponse};
use reqwest::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, HeaderValue};

use crate::collector::{self, Collector};
use crate::reports::Fleet;
use futures_like::buffered;

/// Where the load goes and what the collector is started with.
#[derive(Debug, clap::Args)]
pub struct TargetArgs {
    /// Load this running collector instead of starting one (e.g. http://127.0.0.1:8080).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// With --url: an enrolment token (`hatang-collector token create --unit CODE`).
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
    /// With --url: the collector's process id, to report its memory and CPU.
    #[arg(long, value_name = "PID")]
    pub pid: Option<u32>,
    /// PostgreSQL server to create a throwaway database on (postgres://USER@HOST:PORT/DB);
    /// default: a temporary SQLite file.
    #[arg(long, value_name = "URL")]
    pub database: Option<String>,
    /// The collector binary (default: hatang-collector beside this program).
    #[arg(long, value_name = "PATH")]
    pub collector_bin: Option<PathBuf>,
    /// Units in the synthetic tree (163 is one province such as Phú Thọ after the reform).
    #[arg(long, default_value_t = 163)]
    pub units: usize,
    /// Seed of the synthetic tree and reports.
    #[arg(long, default_value_t = 2025)]
    pub seed: u64,
    /// Keep the temporary directory and database afterwards.
    #[arg(long)]
    pub keep: bool,
}

/// Limits high enough never to refuse the bench, but not 0, so the limiter's bookkeeping still
/// runs on every report as in production. Without this, one address enrolling thousands of
/// agents and each agent sending many reports a second would be throttled (429) as intended.
const CONFIG: &str = "\
[limits]
reports_per_minute_per_agent = 1000000
requests_per_minute_per_address = 1000000
";

/// The collector a run loads, ready for its agents to enrol.
#[derive(Debug)]
pub struct Target {
    /// `http://HOST:PORT`, no trailing slash.
    pub base: String,
    /// The process this run started (`None` with `--url`).
    pub collector: Option<Collector>,
    /// Its process id, as `/proc` names it, when known.
    pub pid: Option<String>,
    /// (unit code, enrolment token) per agent, in agent order.
    pub tokens: Vec<(String, String)>,
    /// From starting `serve` to its first `200` from `/readyz`.
    pub startup: Option<Duration>,
}

impl Target {
    /// Stops the collector this run started, saying whether it logged warnings or errors, and
    /// removes its files and database unless `keep`.
    pub async fn finish(self, keep: bool) -> anyhow::Result<()> {
        let Some(c) = self.collector else {
            return Ok(());
        };
        let warnings = c
            .log()
            .lines()
            .filter(|l| l.contains("ERROR") || l.contains(" WARN "))
            .count();
        if warnings > 0 {
            eprintln!("the collector logged {warnings} warnings/errors; see its log (--keep)");
        }
        c.finish(keep).await
    }
}

/// Prepares the collector for `agents` agents (starting it unless `--url` names one).
pub async fn prepare(
    args: &TargetArgs,
    agents: usize,
    client: &reqwest::Client,
) -> anyhow::Result<Target> {
    if let Some(url) = &args.url {
        let token = args
            .token
            .clone()
            .context("--url needs --token (hatang-collector token create --unit CODE)")?;
        return Ok(Target {
            base: url.trim_end_matches('/').to_string(),
            collector: None,
            pid: args.pid.map(|p| p.to_string()),
            tokens: (0..agents)
                .map(|_| ("X".to_string(), token.clone()))
                .collect(),
            startup: None,
        });
    }
    let bin = collector::binary(args.collector_bin.as_deref())?;
    let c = Collector::new(bin, args.database.as_deref()).await?;
    c.configure(CONFIG)?;
    eprintln!("preparing {} ({})", c.backend(), c.dir.path().display());
    let units = c.import_tree(args.units, args.seed).await?;
    // Agents go round-robin over the staffed units; one token per unit used, made by the CLI.
    let staffed: Vec<String> = units
        .iter()
        .filter(|u| u.staff > 0)
        .map(|u| u.code.clone())
        .collect();
    let used: Vec<String> = staffed.iter().take(agents).cloned().collect();
    let c = Arc::new(c);
    let started = Instant::now();
    let made = buffered(used.clone(), 4, |code| {
        let c = Arc::clone(&c);
        async move {
            let out = c.cli(&["token", "create", "--unit", &code]).await?;
            let token = out.lines().last().unwrap_or_default().trim().to_string();
            anyhow::Ok((code, token))
        }
    })
    .await
    .into_iter()
    .collect::<anyhow::Result<Vec<_>>>()?;
    eprintln!(
        "{} units imported, {} enrolment tokens made with the CLI in {:.1} s",
        units.len(),
        made.len(),
        started.elapsed().as_secs_f64()
    );
    let tokens = (0..agents).map(|i| made[i % made.len()].clone()).collect();
    let mut c = Arc::try_unwrap(c).expect("no CLI call is running");
    let startup = c.start(client).await?;
    Ok(Target {
        base: c.base_url(),
        pid: c.pid(),
        collector: Some(c),
        tokens,
        startup: Some(startup),
    })
}

/// Enrols every agent through `POST /api/v1/enroll`; returns their bearer headers. Machine ids
/// are new for every run, so a collector already running (`--url`) gets new agents each time.
pub async fn enrol(
    client: &reqwest::Client,
    base: &str,
    tokens: &[(String, String)],
    fleet: &Fleet,
    concurrency: usize,
) -> anyhow::Result<Vec<HeaderValue>> {
    let run_id = format!("{}-{}", std::process::id(), uuid::Uuid::now_v7().simple());
    let run = &run_id[run_id.len() - 8..];
    let url = format!("{base}/api/v1/enroll");
    let jobs: Vec<(usize, EnrollRequest)> = tokens
        .iter()
        .enumerate()
        .map(|(i, (_, token))| {
            (
                i,
                EnrollRequest {
                    token: token.clone(),
                    machine_id: format!("bench-{run}-{i:06}"),
                    hostname: fleet.agents()[i].hostname.clone(),
                },
            )
        })
        .collect();
    let keys = buffered(jobs, concurrency, |(i, request)| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let response = client.post(&url).json(&request).send().await?;
            let status = response.status();
            if status.as_u16() != 201 && status.as_u16() != 200 {
                bail!(
                    "enrolment of agent {i} answered {status}: {}",
                    response.text().await.unwrap_or_default()
                );
            }
            let answer: EnrollResponse = response.json().await?;
            Ok(HeaderValue::from_str(&format!(
                "Bearer {}",
                answer.agent_key
            ))?)
        }
    })
    .await;
    keys.into_iter().collect()
}

/// `POST /api/v1/reports` of one gzip body, as the agent whose bearer header is `key`.
pub fn report_request(
    client: &reqwest::Client,
    url: &str,
    key: &HeaderValue,
    body: Vec<u8>,
) -> reqwest::RequestBuilder {
    client
        .post(url)
        .header(AUTHORIZATION, key.clone())
        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
        .header(CONTENT_ENCODING, HeaderValue::from_static("gzip"))
        .body(body)
}

/// The accepted-reports counter from the collector's exposition.
pub async fn counted_accepted(client: &reqwest::Client, base: &str) -> Option<f64> {
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find(|l| l.starts_with("hatang_reports_received_total{outcome=\"accepted\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// A tiny bounded-concurrency map over futures, enough for enrolment and token creation without
/// pulling in a futures crate for one combinator.
mod futures_like {
    use std::future::Future;
    use std::sync::Arc;

    use tokio::sync::Semaphore;

    pub async fn buffered<T, F, Fut>(items: Vec<T>, limit: usize, f: F) -> Vec<Fut::Output>
    where
        T: Send + 'static,
        F: Fn(T) -> Fut,
        Fut: Future + Send + 'static,
        Fut::Output: Send + 'static,
    {
        let permits = Arc::new(Semaphore::new(limit.max(1)));
        let mut handles = Vec::with_capacity(items.len());
        for item in items {
            let permit = Arc::clone(&permits)
                .acquire_owned()
                .await
                .expect("open semaphore");
            let fut = f(item);
            handles.push(tokio::spawn(async move {
                let out = fut.await;
                drop(permit);
                out
            }));
        }
        let mut out = Vec::with_capacity(handles.len());
        for h in handles {
            out.push(h.await.expect("task does not panic"));
        }
        out
    }
}
