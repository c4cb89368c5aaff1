//! The agent's commands (`enroll`, `once`, `run`, `check`), apart from argument parsing.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hatang_protocol::EnrollRequest;

use crate::collect::{self, Collector};
use crate::config::Config;
use crate::push::{self, PushError};
use crate::report::{self, InventoryPolicy};
use crate::spool::Spool;
use crate::state::{self, Enrolment};

/// Exchanges an enrolment token for this machine's agent key and stores it.
pub async fn enroll(config: &Config, token: &str, out: &mut impl Write) -> anyhow::Result<()> {
    let Some(collector) = config.collector.as_deref() else {
        bail!("say which collector to enrol with: --collector URL");
    };
    let machine_id = state::machine_id().map_err(anyhow::Error::msg)?;
    state::ensure_dir(&config.state_dir)?;
    let request = EnrollRequest {
        token: token.trim().to_string(),
        machine_id,
        hostname: collect::hostname(),
    };
    let client = push::client(config.timeout);
    let response = push::enroll(&client, collector, &request)
        .await
        .with_context(|| format!("enrolment with {collector} failed"))?;
    let enrolment = Enrolment {
        collector: collector.to_string(),
        agent_id: response.agent_id,
        agent_key: response.agent_key,
        unit: response.unit,
        role: response.role,
    };
    state::save(&config.state_dir, &enrolment)?;
    tracing::info!(agent = %enrolment.agent_id, collector, "enrolled");
    writeln!(
        out,
        "enrolled as agent {} in unit {} ({}); state in {}",
        enrolment.agent_id,
        enrolment.unit.as_deref().unwrap_or("?"),
        enrolment.role.as_deref().unwrap_or("?"),
        config.state_dir.display()
    )?;
    Ok(())
}

/// The enrolment, with the collector URL from the configuration winning over the stored one.
fn enrolment(config: &Config) -> anyhow::Result<Enrolment> {
    let mut enrolment = state::load(&config.state_dir)?;
    if let Some(url) = &config.collector {
        enrolment.collector.clone_from(url);
    }
    Ok(enrolment)
}

/// Collects one report; prints it (`print`) or spools and sends it with everything waiting.
pub async fn once(config: &Config, print: bool, out: &mut impl Write) -> anyhow::Result<()> {
    let mut collector = Collector::new();
    let inventory = collector.inventory();
    let sample = collector.sample();
    let report = report::build(Some(inventory), Some(sample), Vec::new(), config.interval);
    if print {
        serde_json::to_writer_pretty(&mut *out, &report)?;
        writeln!(out)?;
        return Ok(());
    }
    let enrolment = enrolment(config)?;
    let spool = Spool::open(&config.state_dir, config.spool_max_reports)
        .context("cannot open the spool")?;
    spool.push(report.report_id, &report::encode(&report)?)?;
    let client = push::client(config.timeout);
    let (flushed, result) =
        push::flush(&client, &enrolment.collector, &enrolment.agent_key, &spool).await;
    match result {
        Ok(()) => {
            writeln!(
                out,
                "sent {} report(s) to {}",
                flushed.delivered, enrolment.collector
            )?;
            Ok(())
        }
        Err(e) => {
            let hint = if matches!(e, PushError::Refused { status: 401, .. }) {
                "; the collector no longer accepts this agent's key: enrol again with `hatang-agent enroll`"
            } else {
                ""
            };
            Err(anyhow::Error::new(e).context(format!(
                "report kept in the spool ({} waiting) for the next run{hint}",
                flushed.waiting
            )))
        }
    }
}

/// The daemon loop: a report every interval, spooled first, sent with everything waiting.
/// Returns when `shutdown` completes, never in the middle of writing a report.
pub async fn run(config: &Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let enrolment = enrolment(config)?;
    let spool = Spool::open(&config.state_dir, config.spool_max_reports)
        .context("cannot open the spool")?;
    let client = push::client(config.timeout);
    let mut collector = Collector::new();
    let mut policy = InventoryPolicy::default();
    let mut ticker = tokio::time::interval(config.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut unauthorized_logged = false;
    tokio::pin!(shutdown);
    tracing::info!(
        agent = %enrolment.agent_id,
        collector = %enrolment.collector,
        interval_secs = config.interval.as_secs(),
        "agent running"
    );
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = ticker.tick() => {}
        }
        let inventory = collector.inventory();
        let inventory = policy.due(&inventory, Instant::now()).then_some(inventory);
        let report = report::build(
            inventory,
            Some(collector.sample()),
            Vec::new(),
            config.interval,
        );
        spool.push(report.report_id, &report::encode(&report)?)?;
        // Stopping mid-flush is safe: the report being sent stays spooled and, if the collector
        // did commit it, the resend next time is answered as a duplicate. A long backlog must not
        // hold the agent past its service manager's stop timeout.
        let (flushed, result) = tokio::select! {
            () = &mut shutdown => break,
            done = push::flush(&client, &enrolment.collector, &enrolment.agent_key, &spool) => done,
        };
        match result {
            Ok(()) => {
                unauthorized_logged = false;
                tracing::debug!(delivered = flushed.delivered, "reports sent");
            }
            Err(PushError::Refused {
                status: 401,
                message,
            }) => {
                if !unauthorized_logged {
                    tracing::error!(reason = %message, state_dir = %config.state_dir.display(), "the collector no longer accepts this agent's key; reports are kept until it is enrolled again (hatang-agent enroll)");
                    unauthorized_logged = true;
                }
            }
            Err(e) => tracing::warn!(
                error = %e,
                waiting = flushed.waiting,
                "collector not reachable; reports kept in the spool"
            ),
        }
    }
    tracing::info!("agent stopped");
    Ok(())
}

/// A human-readable self-test; returns whether everything essential is fine.
pub async fn check(config: &Config, out: &mut impl Write) -> anyhow::Result<bool> {
    let mut ok = true;
    let mut line = |name: &str, good: bool, text: String| -> std::io::Result<()> {
        writeln!(
            out,
            "{:<10} {:<4} {text}",
            name,
            if good { "ok" } else { "FAIL" }
        )
    };
    match state::machine_id() {
        Ok(id) => line("identity", true, format!("machine id {id}"))?,
        Err(e) => {
            ok = false;
            line("identity", false, e)?;
        }
    }
    let enrolment = match enrolment(config) {
        Ok(e) => {
            line(
                "enrolled",
                true,
                format!(
                    "agent {} in unit {} ({})",
                    e.agent_id,
                    e.unit.as_deref().unwrap_or("?"),
                    e.role.as_deref().unwrap_or("?")
                ),
            )?;
            Some(e)
        }
        Err(e) => {
            ok = false;
            line("enrolled", false, format!("{e:#}"))?;
            None
        }
    };
    if let Some(url) = enrolment
        .as_ref()
        .map(|e| e.collector.clone())
        .or(config.collector.clone())
    {
        let client = push::client(config.timeout.min(Duration::from_secs(5)));
        let started = Instant::now();
        match client.get(format!("{url}/healthz")).send().await {
            Ok(r) if r.status().is_success() => line(
                "collector",
                true,
                format!("{url} answers in {} ms", started.elapsed().as_millis()),
            )?,
            Ok(r) => {
                ok = false;
                line("collector", false, format!("{url} answered {}", r.status()))?;
            }
            Err(e) => {
                ok = false;
                line("collector", false, format!("{url} unreachable: {e}"))?;
            }
        }
    }
    if let Ok(spool) = Spool::open(&config.state_dir, config.spool_max_reports) {
        let waiting = spool.pending().map(|p| p.len()).unwrap_or(0);
        line("spool", true, format!("{waiting} report(s) waiting"))?;
    }
    let inventory = Collector::new().inventory();
    let lan = inventory
        .interfaces
        .iter()
        .find(|i| i.up && !i.loopback && i.default_route);
    match lan {
        Some(i) => line(
            "LAN",
            true,
            format!(
                "{} is up with the default route{}",
                i.name,
                inventory
                    .default_gateway
                    .map(|g| format!(" via {g}"))
                    .unwrap_or_default()
            ),
        )?,
        None => {
            ok = false;
            line(
                "LAN",
                false,
                "no interface is up with a default route".to_string(),
            )?;
        }
    }
    Ok(ok)
}
