//! Crash safety: the collector process killed with SIGKILL again and again while agents push
//! reports, and started again on the same database and port each time. Afterwards every report it
//! acknowledged is stored, and stored once.
//!
//! Each pusher is an enrolled agent on its own thread, sending one report after another over HTTP,
//! each with a fresh UUID v7 `report_id`, and doing with a report what the agent does with its
//! spool: one that got no answer (connection refused while the collector is down, connection cut
//! by the kill, `503` busy) is sent again until it is answered. It is acknowledged by `202` or, when
//! the answer to an earlier attempt was lost after the commit, by `200 duplicate`: those are the
//! reports sent, not acknowledged at the time, and stored anyway, which is allowed. So when the
//! pushers stop, every report sent has been acknowledged once, and each agent's stored count must
//! equal the reports acknowledged to it: fewer would be an acknowledged report lost in a kill,
//! more a report stored twice. Then every acknowledged report is sent once more and must answer
//! `duplicate`, never `accepted`, and the counts must not move.

use std::collections::HashSet;
use std::hash::BuildHasher;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::support::{Collector, get_as, post_json, run_ok, testdata};

const PUSHERS: usize = 16;
const ROUNDS: usize = 5;
/// Limits off: sixteen agents on one address sending back to back would be throttled otherwise.
const CONFIG: &str = "\
[limits]
reports_per_minute_per_agent = 0
requests_per_minute_per_address = 0
";
/// The longest a report may go unanswered while the collector keeps coming back.
const PATIENCE: Duration = Duration::from_secs(30);

#[test]
fn acknowledged_reports_survive_sigkill_on_sqlite() {
    crash_repeatedly(Collector::new(), "SQLite");
}

#[test]
fn acknowledged_reports_survive_sigkill_on_postgres() {
    let Some(collector) = Collector::on_postgres() else {
        return;
    };
    crash_repeatedly(collector, "PostgreSQL");
}

/// An enrolled agent as the pushers and the checks know it.
struct Pusher {
    agent_id: String,
    key: String,
}

/// What one pusher got acknowledged.
#[derive(Default)]
struct Pushed {
    /// Every report acknowledged, with the body sent.
    acked: Vec<(Uuid, String)>,
    /// Acknowledged by `duplicate` to a resend: the answer to an earlier attempt was lost.
    lost_but_stored: usize,
    /// Attempts that got no answer (refused, cut off, busy).
    unanswered: usize,
}

/// A random-ish pause of 0.3-1 s, different in every round and every run.
fn pause(round: usize) -> Duration {
    let r = std::collections::hash_map::RandomState::new().hash_one(round);
    Duration::from_millis(300 + r % 700)
}

/// Report `seq` of an agent: the golden report with a fresh id and clock; only the first carries
/// the inventory, as an agent sends it when it changed.
fn report(template: &Value, seq: u64) -> (Uuid, String) {
    let mut r = template.clone();
    let id = Uuid::now_v7();
    r["report_id"] = json!(id.to_string());
    r["agent_time"] = json!(OffsetDateTime::now_utc().format(&Rfc3339).unwrap());
    r["sample"]["uptime_secs"] = json!(seq);
    if seq > 0 {
        r.as_object_mut().unwrap().remove("inventory");
    }
    (id, r.to_string())
}

/// Sends reports until `stop`, each until it is answered; counts acknowledgements in `acked`.
fn push(
    addr: &str,
    pusher: &Pusher,
    template: &Value,
    stop: &AtomicBool,
    acked: &AtomicUsize,
) -> Pushed {
    let mut out = Pushed::default();
    let mut seq = 0;
    while !stop.load(Ordering::Relaxed) {
        let (id, body) = report(template, seq);
        let since = Instant::now();
        let mut first = true;
        loop {
            match post_json(addr, "/api/v1/reports", Some(&pusher.key), &body) {
                Ok((202, _)) => break,
                Ok((200, answer)) if answer.contains("\"duplicate\"") => {
                    assert!(!first, "a fresh report {id} was answered duplicate");
                    out.lost_but_stored += 1;
                    break;
                }
                Ok((0 | 503, _)) | Err(_) => out.unanswered += 1,
                Ok((status, answer)) => panic!("report {id} answered {status}: {answer}"),
            }
            first = false;
            assert!(
                since.elapsed() < PATIENCE,
                "report {id} unanswered for {PATIENCE:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        out.acked.push((id, body));
        acked.fetch_add(1, Ordering::Relaxed);
        seq += 1;
    }
    out
}

fn enrol(collector: &Collector, token: &str, backend: &str, i: usize) -> Pusher {
    let request = json!({
        "token": token,
        "machine_id": format!("crash-{backend}-{i}"),
        "hostname": format!("crash-{i:02}"),
    });
    let (status, body) = post_json(
        &collector.addr,
        "/api/v1/enroll",
        None,
        &request.to_string(),
    )
    .unwrap();
    assert!(status == 201 || status == 200, "enrol: {status} {body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    Pusher {
        agent_id: answer["agent_id"].as_str().unwrap().to_string(),
        key: answer["agent_key"].as_str().unwrap().to_string(),
    }
}

fn reports_stored(collector: &Collector, viewer: &str, agent_id: &str) -> usize {
    let path = format!("/api/v1/agents/{agent_id}");
    let (status, body) = get_as(&collector.addr, &path, Some(viewer)).unwrap();
    assert_eq!(status, 200, "{body}");
    let agent: Value = serde_json::from_str(&body).unwrap();
    let n = agent["reports_stored"].as_u64().expect("reports_stored");
    usize::try_from(n).unwrap()
}

fn crash_repeatedly(mut collector: Collector, backend: &str) {
    let started = Instant::now();
    run_ok(
        collector
            .cli(&["units", "import"])
            .arg(testdata("units-hoa-binh-2024.csv")),
    );
    let ready = |c: &Collector| matches!(crate::support::get(&c.addr, "/healthz"), Ok((200, _)));
    collector.start_configured(CONFIG, ready);
    let token = collector.token(&["--unit", "17-SYT"]);
    let viewer = collector.token(&["--role", "viewer"]);
    let pushers: Vec<Pusher> = (0..PUSHERS)
        .map(|i| enrol(&collector, &token, backend, i))
        .collect();
    let template: Value =
        serde_json::from_str(include_str!("../../protocol/tests/golden/report-v1.json")).unwrap();

    let (stop, acked) = (&AtomicBool::new(false), &AtomicUsize::new(0));
    let (addr, template) = (&collector.addr.clone(), &template);
    let mut acked_at_kill = Vec::new();
    let pushed: Vec<Pushed> = std::thread::scope(|s| {
        let threads: Vec<_> = pushers
            .iter()
            .map(|p| s.spawn(move || push(addr, p, template, stop, acked)))
            .collect();
        for round in 0..ROUNDS {
            std::thread::sleep(pause(round));
            // The pushers reached the collector since it was last started: it is killed under load.
            let before = acked_at_kill.last().copied().unwrap_or(0);
            crate::support::eventually(PATIENCE, || {
                (acked.load(Ordering::Relaxed) > before).then_some(())
            });
            acked_at_kill.push(acked.load(Ordering::Relaxed));
            let status = collector.stop().expect("the collector was running");
            assert_eq!(status.signal(), Some(9), "killed by SIGKILL: {status}");
            collector.start_configured(CONFIG, ready);
        }
        std::thread::sleep(pause(ROUNDS));
        let before = acked_at_kill.last().copied().unwrap_or(0);
        crate::support::eventually(PATIENCE, || {
            (acked.load(Ordering::Relaxed) > before).then_some(())
        });
        stop.store(true, Ordering::Relaxed);
        threads
            .into_iter()
            .map(|t| t.join().expect("a pusher panicked"))
            .collect()
    });

    // Every report sent was acknowledged once, and each agent stores exactly its acknowledged ones.
    let all: Vec<Uuid> = pushed
        .iter()
        .flat_map(|p| p.acked.iter().map(|(id, _)| *id))
        .collect();
    let distinct: HashSet<Uuid> = all.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        all.len(),
        "a report id was acknowledged twice"
    );
    for (pusher, done) in pushers.iter().zip(&pushed) {
        assert_eq!(
            reports_stored(&collector, &viewer, &pusher.agent_id),
            done.acked.len(),
            "agent {}: stored reports against acknowledged ones",
            pusher.agent_id
        );
    }

    // Sent again, every acknowledged report is a duplicate.
    let resent: Vec<usize> = std::thread::scope(|s| {
        let threads: Vec<_> = pushers
            .iter()
            .zip(&pushed)
            .map(|(pusher, done)| {
                let addr = &collector.addr;
                s.spawn(move || {
                    for (id, body) in &done.acked {
                        let answer =
                            post_json(addr, "/api/v1/reports", Some(&pusher.key), body).unwrap();
                        assert_eq!(
                            (answer.0, answer.1.contains("\"duplicate\"")),
                            (200, true),
                            "acknowledged report {id} sent again: {answer:?}"
                        );
                    }
                    done.acked.len()
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().expect("a resender panicked"))
            .collect()
    });
    let duplicates: usize = resent.iter().sum();
    let stored: usize = pushers
        .iter()
        .map(|p| reports_stored(&collector, &viewer, &p.agent_id))
        .sum();
    assert_eq!(stored, all.len(), "resending stored nothing new");

    let lost: usize = pushed.iter().map(|p| p.lost_but_stored).sum();
    let unanswered: usize = pushed.iter().map(|p| p.unanswered).sum();
    #[expect(
        clippy::explicit_write,
        reason = "eprintln! is captured by the test harness; a write to stderr itself reaches the CI log"
    )]
    writeln!(
        std::io::stderr(),
        "crash test, {backend}: {ROUNDS} SIGKILL rounds (acknowledged at each kill: {acked_at_kill:?}), \
         {PUSHERS} agents; {} reports acknowledged, {stored} stored; all {duplicates} sent again \
         answered duplicate; {lost} answers lost in a kill with the report stored \
         (duplicate on resend); {unanswered} attempts unanswered; {:.1} s",
        all.len(),
        started.elapsed().as_secs_f64()
    )
    .unwrap();
}
