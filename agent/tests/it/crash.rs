//! `hatang-agent run` killed (SIGKILL, or TerminateProcess on Windows) at random moments and restarted: every report it
//! spooled reaches the collector, and is stored exactly once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use uuid::Uuid;

use crate::support::{FakeCollector, enrol, running, spooled_ids, wait_until};

/// Kills while the collector is down (reports pile up across restarts), then as many while it
/// is back (kills land in the middle of sending the backlog).
const KILLS_PER_PHASE: usize = 5;

/// xorshift64: enough to spread kills, and reproducible from the printed seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Every report id that appears in the spool directory, polled from outside every few
/// milliseconds until dropped.
struct Watcher {
    seen: Arc<Mutex<BTreeSet<Uuid>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watcher {
    fn start(spool_dir: PathBuf) -> Self {
        let seen = Arc::new(Mutex::new(BTreeSet::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let (seen, stop) = (Arc::clone(&seen), Arc::clone(&stop));
            move || {
                while !stop.load(Ordering::Relaxed) {
                    seen.lock().unwrap().extend(spooled_ids(&spool_dir));
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        });
        Self {
            seen,
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> BTreeSet<Uuid> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap();
        self.seen.lock().unwrap().clone()
    }
}

/// SIGKILL on Unix, `TerminateProcess` on Windows: no chance to clean up either way.
fn kill(child: &mut tokio::process::Child) {
    child.start_kill().expect("the agent could be killed");
}

/// Stops the agent the way its platform stops a daemon, and says whether it may exit cleanly:
/// SIGTERM on Unix. A Windows console process has no SIGTERM (the service control manager
/// stops the service there), so it is terminated, which the spool must survive as well.
fn stop(child: &mut tokio::process::Child) -> bool {
    #[cfg(unix)]
    {
        let pid = child.id().expect("running").to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -TERM {pid}");
        true
    }
    #[cfg(not(unix))]
    {
        kill(child);
        false
    }
}

#[tokio::test]
async fn sigkill_at_random_moments_loses_and_repeats_nothing() {
    let seed = std::env::var("HATANG_IT_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
        | 1;
    eprintln!("crash test seed {seed} (HATANG_IT_CRASH_SEED={seed} repeats the kill times)");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let spool_dir = dir.path().join("spool");
    // The answer comes 150 ms after the report is stored: a kill then leaves a report the
    // collector has and the agent still holds.
    let server = FakeCollector::storing(Duration::from_millis(150)).await;
    enrol(dir.path(), &server.url);
    let config = dir.path().join("agent.toml");
    std::fs::write(&config, "interval_secs = 5\n").unwrap();
    let run = || running(dir.path(), &config);
    let watcher = Watcher::start(spool_dir.clone());

    // How long a fresh agent takes to get its first report answered: kills land anywhere from
    // start-up to well past that (collecting, writing the spool, sending, waiting, idle).
    let started = Instant::now();
    let mut child = run();
    wait_until(Duration::from_secs(20), "the first report arrived", || {
        !server.received().is_empty()
    })
    .await;
    let first = started.elapsed();
    kill(&mut child);
    child.wait().await.unwrap();
    let window = (first.as_millis() as u64 * 2).max(400);
    let mut kill_times = Vec::new();
    for round in 0..2 * KILLS_PER_PHASE {
        let down = round < KILLS_PER_PHASE;
        server.set_down(down);
        let mut child = run();
        // With the collector back, sending the backlog takes 150 ms a report.
        let after = rng.below(if down { window } else { window + 1000 });
        kill_times.push(after);
        tokio::time::sleep(Duration::from_millis(after)).await;
        kill(&mut child);
        let status = child.wait().await.unwrap();
        assert!(!status.success(), "killed, not finished: {status:?}");
    }

    // One last restart drains the spool; it stops cleanly once its first report is in.
    let before = server.deliveries().len();
    let mut child = run();
    wait_until(Duration::from_secs(30), "the spool drained", || {
        server.deliveries().len() > before && spooled_ids(&spool_dir).is_empty()
    })
    .await;
    let clean = stop(&mut child);
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("stopped within 10 s")
        .unwrap();
    assert_eq!(status.success(), clean, "{status:?}");
    let seen = watcher.finish();
    // A tick between the drain and the stop may have spooled one more: not sent, not lost.
    let left: BTreeSet<Uuid> = spooled_ids(&spool_dir).into_iter().collect();

    let received = server.received();
    let mut accepted: BTreeMap<Uuid, usize> = BTreeMap::new();
    for r in received.iter().filter(|r| r.answered == 202) {
        *accepted.entry(r.report().report_id).or_default() += 1;
    }
    let duplicates = received.iter().filter(|r| r.answered == 200).count();
    eprintln!(
        "first report after {first:?}; kills at {kill_times:?} ms; {} reports stored, {duplicates} \
         resends answered as duplicates, {} seen in the spool",
        accepted.len(),
        seen.len()
    );
    assert!(
        accepted.values().all(|n| *n == 1),
        "a report was stored twice: {accepted:?}"
    );
    for id in seen.iter().filter(|id| !left.contains(id)) {
        assert!(accepted.contains_key(id), "spooled {id} never arrived");
    }
    for id in &left {
        assert!(
            !accepted.contains_key(id),
            "{id} arrived but is still spooled"
        );
    }
    // First arrivals in spool order, which for one machine's clock is report id order.
    let order: Vec<Uuid> = server.deliveries().iter().map(|(id, _)| *id).collect();
    assert!(order.is_sorted(), "out of order: {order:?}");
    // Nothing was dropped or damaged along the way.
    assert!(!spool_dir.join("drops.json").exists());
    assert!(!spool_dir.join("damaged").exists());
    assert!(accepted.len() >= 2, "too few reports to show anything");
}
