//! The agent's commands (`enroll`, `once`, `run`, `check`), apart from argument parsing.

use std::io::Write;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use hatang_protocol::{EnrollRequest, Report};

use crate::collect::{self, Collector};
use crate::config::Config;
use crate::identity;
use crate::push::{self, PushError};
use crate::report::{self, InventoryPolicy};
use crate::speed;
use crate::spool::Spool;
use crate::state::{self, Enrolment};
use hatang_probe::{self as probe, Evidence};

/// Exchanges an enrolment token for this machine's agent key and stores it.
pub async fn enroll(config: &Config, token: &str, out: &mut impl Write) -> anyhow::Result<()> {
    let Some(collector) = config.collector.as_deref() else {
        bail!("say which collector to enrol with: --collector URL");
    };
    push::warn_if_unencrypted(collector);
    // An enrolment already here may pin the identity the collector knows this machine by.
    let previous = state::load(&config.state_dir).ok();
    let machine_id = identity::for_enrolment(previous.as_ref()).map_err(anyhow::Error::msg)?;
    state::ensure_dir(&config.state_dir)?;
    let request = EnrollRequest {
        token: token.trim().to_string(),
        machine_id: machine_id.clone(),
        hostname: collect::hostname(),
    };
    let client = push::client(config.timeout, &config.tls)?;
    let response = push::enroll(&client, collector, &request)
        .await
        .with_context(|| format!("enrolment with {} failed", push::shown(collector)))?;
    let enrolment = Enrolment {
        collector: collector.to_string(),
        agent_id: response.agent_id,
        agent_key: response.agent_key,
        unit: response.unit,
        role: response.role,
        machine_id: Some(machine_id),
        tls: config.tls.absolute()?,
    };
    state::save(&config.state_dir, &enrolment)?;
    tracing::info!(agent = %enrolment.agent_id, collector = %push::shown(collector), "enrolled");
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

/// The enrolment, with the collector URL and TLS files from the configuration winning over the
/// stored ones.
fn enrolment(config: &Config) -> anyhow::Result<Enrolment> {
    let mut enrolment = state::load(&config.state_dir)?;
    if let Some(url) = &config.collector {
        enrolment.collector.clone_from(url);
    }
    enrolment.tls = config.tls.or(&enrolment.tls);
    Ok(enrolment)
}

fn open_spool(config: &Config) -> anyhow::Result<Spool> {
    Spool::open(&config.state_dir, config.spool_bounds(), SystemTime::now())
        .with_context(|| format!("cannot open the spool in {}", config.state_dir.display()))
}

/// Spools `report`, telling it first what the spool has lost and holds. Drops that spooling it
/// causes travel with the next report.
fn spool_report(spool: &Spool, report: &mut Report) -> anyhow::Result<()> {
    report.spool = spool
        .stats()
        .inspect_err(|e| tracing::warn!(error = %e, "spool figures unreadable; sent without them"))
        .ok();
    report::sound(report);
    let body = report::encode(report)?;
    spool
        .push(report.report_id, &body, SystemTime::now())
        .with_context(|| {
            format!(
                "cannot write the report to the spool in {}",
                spool.dir().display()
            )
        })?;
    Ok(())
}

/// Collects one report; prints it (`print`) or spools and sends it with everything waiting.
pub async fn once(config: &Config, print: bool, out: &mut impl Write) -> anyhow::Result<()> {
    let mut collector = Collector::new().with_software(config.inventory_software);
    let inventory = collector.inventory();
    let sample = collector.sample();
    let evidence = probes(config, inventory.default_gateway).await;
    let mut report = report::build(
        Some(inventory),
        Some(sample),
        evidence.probes,
        config.interval,
    );
    report.gateway = evidence.gateway;
    if print {
        serde_json::to_writer_pretty(&mut *out, &report)?;
        writeln!(out)?;
        return Ok(());
    }
    let enrolment = enrolment(config)?;
    push::warn_if_unencrypted(&enrolment.collector);
    let spool = open_spool(config)?;
    spool_report(&spool, &mut report)?;
    let client = push::client(config.timeout, &enrolment.tls)
        .context("report kept in the spool for the next run")?;
    // Everything waiting, not one batch: a person (or a script) ran this to send.
    let (flushed, result) = push::flush(
        &client,
        &enrolment.collector,
        &enrolment.agent_key,
        &spool,
        usize::MAX,
    )
    .await;
    match result {
        Ok(()) => {
            writeln!(
                out,
                "sent {} report(s) to {}",
                flushed.delivered,
                push::shown(&enrolment.collector)
            )?;
            Ok(())
        }
        Err(e) => {
            let hint = if matches!(e, PushError::KeyRefused(_)) {
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
    let mut enrolment = enrolment(config)?;
    push::warn_if_unencrypted(&enrolment.collector);
    let spool = open_spool(config)?;
    let mut client = push::client(config.timeout, &enrolment.tls)?;
    let mut collector = Collector::new().with_software(config.inventory_software);
    let mut policy = InventoryPolicy::default();
    let mut ticker = tokio::time::interval(config.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut unauthorized_logged = false;
    let mut backoff = push::Backoff::default();
    let mut speed_tests = speed::Schedule::new(config.speedtest_interval);
    tokio::pin!(shutdown);
    tracing::info!(
        agent = %enrolment.agent_id,
        collector = %push::shown(&enrolment.collector),
        interval_secs = config.interval.as_secs(),
        "agent running"
    );
    'cycles: loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = ticker.tick() => {}
        }
        let cycle_end = tokio::time::Instant::now() + config.interval;
        let inventory = collector.inventory();
        let gateway = inventory.default_gateway;
        let collected_at = Instant::now();
        let due = policy.due(&inventory, collected_at);
        let inventory = due.is_some().then_some(inventory);
        // Measuring writes nothing, so a shutdown meanwhile loses nothing.
        let evidence = tokio::select! {
            () = &mut shutdown => break,
            evidence = probes(config, gateway) => evidence,
        };
        let speed = if speed_tests.start(Instant::now()) {
            tokio::select! {
                () = &mut shutdown => break,
                test = speed::measure(&enrolment.collector, &enrolment.agent_key, config.speedtest_bytes, &enrolment.tls) => Some(log_speed(test)),
            }
        } else {
            None
        };
        let mut report = report::build(
            inventory,
            Some(collector.sample()),
            evidence.probes,
            config.interval,
        );
        report.gateway = evidence.gateway;
        report.speed = speed;
        // A spool that cannot be written (a full disk) must not stop the agent: what is already
        // spooled still goes out.
        match spool_report(&spool, &mut report) {
            // `sound` may have left out an inventory the collector would refuse: then it was
            // not sent, and stays due.
            Ok(()) => {
                if let Some(due) = due.filter(|_| report.inventory.is_some()) {
                    policy.spooled(due, collected_at);
                }
            }
            Err(e) => tracing::error!(error = %format!("{e:#}"), "report not kept"),
        }
        // Stopping mid-flush is safe: the report being sent stays spooled and, if the collector
        // did commit it, the resend next time is answered as a duplicate. A long backlog must not
        // hold the agent past its service manager's stop timeout.
        // Passes of `send_batch_reports`, oldest first, until the spool is empty, the collector
        // cannot take more or the next cycle is due: a week of backlog drains at the link's
        // pace and never delays a cycle's collection.
        // Refused the key: an operator may have enrolled this machine again since (`hatang-agent
        // enroll` writes agent.json); take the new enrolment without waiting for a restart.
        if unauthorized_logged && let Some(again) = enrolled_again(config, &enrolment) {
            match push::client(config.timeout, &again.tls) {
                Ok(c) => {
                    tracing::info!(agent = %again.agent_id, collector = %push::shown(&again.collector), "enrolled again; sending with the new key");
                    push::warn_if_unencrypted(&again.collector);
                    client = c;
                    enrolment = again;
                    backoff = push::Backoff::default();
                    unauthorized_logged = false;
                }
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "enrolled again, but its TLS settings do not load; still sending with the old key")
                }
            }
        }
        if !backoff.ready(Instant::now()) {
            tracing::debug!("collector failed recently; sending waits, the report is spooled");
            continue;
        }
        let (flushed, result) = loop {
            let batch = config.send_batch_reports;
            let (flushed, result) = tokio::select! {
                () = &mut shutdown => break 'cycles,
                done = push::flush(&client, &enrolment.collector, &enrolment.agent_key, &spool, batch) => done,
            };
            if result.is_err() || flushed.waiting == 0 || tokio::time::Instant::now() >= cycle_end {
                break (flushed, result);
            }
        };
        match &result {
            Ok(()) => backoff.succeeded(),
            Err(e) => {
                let asked = e.retry_after();
                let wait = backoff.failed(Instant::now(), config.interval, push::jitter(), asked);
                if let Some(asked) = asked {
                    tracing::warn!(
                        retry_after_secs = asked.as_secs(),
                        wait_secs = wait.as_secs(),
                        "the collector asked to wait before sending again; collecting goes on"
                    );
                } else if !wait.is_zero() {
                    tracing::info!(
                        wait_secs = wait.as_secs(),
                        "sending again after failures in a row; collecting goes on"
                    );
                }
            }
        }
        match result {
            Ok(()) => {
                unauthorized_logged = false;
                tracing::debug!(delivered = flushed.delivered, "reports sent");
            }
            Err(PushError::KeyRefused(message)) => {
                if !unauthorized_logged {
                    tracing::error!(reason = %message, state_dir = %config.state_dir.display(), "the collector no longer accepts this agent's key; reports are kept until it is enrolled again (hatang-agent enroll)");
                    unauthorized_logged = true;
                }
            }
            Err(e @ PushError::Refused { .. }) => tracing::warn!(
                error = %e,
                waiting = flushed.waiting,
                "the collector did not take the reports; they stay in the spool"
            ),
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

/// The enrolment on disk now, if it is not `current`'s: another key (or collector) than the
/// one the collector refused.
fn enrolled_again(config: &Config, current: &Enrolment) -> Option<Enrolment> {
    enrolment(config)
        .ok()
        .filter(|e| e.agent_key != current.agent_key || e.collector != current.collector)
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
    let stored = state::load(&config.state_dir).ok();
    match identity::for_enrolment(stored.as_ref()) {
        Ok(id) => match stored.and_then(|e| e.machine_id) {
            Some(enrolled) if enrolled != id && identity::comparable(&enrolled, &id) => {
                ok = false;
                line(
                    "identity",
                    false,
                    format!(
                        "machine id {id}, but this state was enrolled as {enrolled}: a cloned \
                         disk image or replaced hardware; enrol this machine again"
                    ),
                )?;
            }
            Some(enrolled) if enrolled != id => line(
                "identity",
                true,
                format!(
                    "machine id {id}; enrolled as {enrolled} from evidence this user cannot read"
                ),
            )?,
            _ => line("identity", true, format!("machine id {id}"))?,
        },
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
        let tls = enrolment.as_ref().map_or(&config.tls, |e| &e.tls);
        let shown = push::shown(&url);
        let started = Instant::now();
        let client = push::client(config.timeout.min(Duration::from_secs(5)), tls);
        let answer = match &client {
            Ok(client) => (client.get(format!("{url}/healthz")).send().await)
                .map_err(|e| push::unreachable(&e).to_string()),
            Err(e) => Err(e.to_string()),
        };
        match answer {
            Ok(r) if r.status().is_success() => {
                line(
                    "collector",
                    true,
                    format!("{shown} answers in {} ms", started.elapsed().as_millis()),
                )?;
                // /healthz takes no key and no client certificate: ask something that does,
                // or a revoked key would pass this check and fail every report.
                if let (Ok(client), Some(e)) = (&client, &enrolment) {
                    let (good, text) = push::key_accepted(client, &url, &e.agent_key).await;
                    ok &= good;
                    line("key", good, text)?;
                }
            }
            Ok(r) => {
                ok = false;
                line(
                    "collector",
                    false,
                    format!("{shown} answered {}", r.status()),
                )?;
            }
            Err(e) => {
                ok = false;
                line("collector", false, format!("{shown}: {e}"))?;
            }
        }
    }
    if let Ok(spool) = open_spool(config) {
        let waiting = spool.pending().map(|p| p.len()).unwrap_or(0);
        let d = spool.drops().unwrap_or_default();
        line(
            "spool",
            true,
            format!(
                "{waiting} report(s) waiting; {} dropped since install ({} spool full, {} expired, {} damaged, {} refused by the collector)",
                d.total(),
                d.full,
                d.expired,
                d.damaged,
                d.refused
            ),
        )?;
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
    let evidence = probes(config, inventory.default_gateway).await;
    if let Some(g) = &evidence.gateway {
        let good = g.successes > 0;
        ok &= good;
        let text = format!(
            "{} answered {} of {} attempts{}{}",
            g.address,
            g.successes,
            g.attempts,
            milliseconds(", avg", g.rtt_avg_seconds),
            failure(g.error.as_deref())
        );
        line("gateway", good, text)?;
    }
    for p in &evidence.probes {
        let good = p.successes > 0;
        ok &= good;
        line("probe", good, describe_probe(p))?;
    }
    let speed = match (&enrolment, config.speedtest_interval) {
        (Some(e), Some(_)) => {
            Some(speed::measure(&e.collector, &e.agent_key, config.speedtest_bytes, &e.tls).await)
        }
        _ => None,
    };
    if let Some(s) = &speed {
        let good = s.error.is_none();
        ok &= good;
        let mbit = |bps: Option<f64>| bps.map_or("-".to_owned(), probe::mbit_per_second);
        let text = format!(
            "{} Mbit/s down, {} Mbit/s up ({:.1} MiB in {:.1} s){}",
            mbit(s.download_bits_per_second),
            mbit(s.upload_bits_per_second),
            s.bytes as f64 / f64::from(1 << 20),
            s.duration_seconds,
            failure(s.error.as_deref())
        );
        line("speed", good, text)?;
    }
    line(
        "verdict",
        ok,
        probe::verdict(lan.is_some(), &evidence, speed.as_ref()),
    )?;
    Ok(ok)
}

/// This cycle's probes, and the gateway's when the configuration allows and there is one.
async fn probes(config: &Config, gateway: Option<std::net::IpAddr>) -> Evidence {
    let gateway = gateway.filter(|_| config.gateway_probe);
    probe::gather(&config.probes, gateway, probe::budget(config.interval)).await
}

fn log_speed(test: hatang_protocol::SpeedTest) -> hatang_protocol::SpeedTest {
    let mbit = |bps: Option<f64>| bps.map(probe::mbit_per_second);
    match &test.error {
        None => tracing::info!(
            down_mbit = mbit(test.download_bits_per_second),
            up_mbit = mbit(test.upload_bits_per_second),
            "speed test to the collector"
        ),
        Some(e) => tracing::warn!(error = %e, "speed test to the collector failed"),
    }
    test
}

/// `portal (http, datacentre) https://…: 4 of 4 answered, avg 41 ms, jitter 3 ms, HTTP 200,
/// certificate expires 2026-03-14`.
fn describe_probe(p: &hatang_protocol::ProbeResult) -> String {
    let mut text = format!(
        "{} ({}, {}) {}: {} of {} answered{}{}",
        p.name,
        wire_name(&p.kind),
        wire_name(&p.class),
        p.target,
        p.successes,
        p.attempts,
        milliseconds(", avg", p.rtt_avg_seconds),
        milliseconds(", jitter", p.jitter_seconds),
    );
    if let Some(status) = p.http_status {
        text.push_str(&format!(", HTTP {status}"));
    }
    if let Some(at) = p.tls_not_after {
        let days = (at - time::OffsetDateTime::now_utc()).whole_days();
        text.push_str(&format!(
            ", certificate expires {} ({days} days)",
            at.date()
        ));
    }
    text + &failure(p.error.as_deref())
}

/// A protocol enum as the wire and the configuration spell it (`gov-wan`).
fn wire_name(value: &impl serde::Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn milliseconds(label: &str, seconds: Option<f64>) -> String {
    seconds.map_or_else(String::new, |s| format!("{label} {:.1} ms", s * 1000.0))
}

fn failure(error: Option<&str>) -> String {
    error.map_or_else(String::new, |e| format!(" ({e})"))
}
