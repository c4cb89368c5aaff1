//! Scale-out: two collector processes on one PostgreSQL, agents reporting to either, both
//! replicas computing the same figures and one of them publishing them to Prometheus.

use std::process::Command;
use std::time::Duration;

use crate::support::{Agent, Balancer, Collector, Metrics, eventually, get_as, run_ok, testdata};

/// Figure series (the event counters are per process).
const FIGURES: [&str; 5] = [
    "hatang_equipment_ratio",
    "hatang_unit_equipped_staff",
    "hatang_unit_active_workstations",
    "hatang_agents",
    "hatang_unit_lan_up",
];

fn figures(m: &Metrics) -> Vec<(String, f64)> {
    FIGURES.iter().flat_map(|name| m.series(name)).collect()
}

/// Two replicas on a fresh PostgreSQL database holding the Phú Thọ tree, both serving; `a`
/// started first and took the figures lock. `None` without a server to test on.
fn two_replicas() -> Option<(Collector, Collector)> {
    let mut a = Collector::on_postgres()?;
    let mut b = a.replica();
    run_ok(
        a.cli(&["units", "import"])
            .arg(testdata("units-phu-tho-2025.csv")),
    );
    a.start(0);
    b.start(0);
    Some((a, b))
}

/// The reports a replica accepted itself.
fn accepted(m: &Metrics) -> f64 {
    m.sum("hatang_reports_received_total", &[("outcome", "accepted")])
}

#[test]
fn two_replicas_on_one_postgres_agree() {
    let Some((mut a, b)) = two_replicas() else {
        return;
    };

    let units = ["25-SYT", "25-SKHCN", "7900", "7894"];
    let mut agents = Vec::new();
    for (i, unit) in units.iter().enumerate() {
        // Tokens from either replica's CLI, enrolment and reports through either server.
        let (enrol_at, report_to) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let token = enrol_at.token(&["--unit", unit]);
        let agent = Agent::new(&format!("scaleout-{i}"));
        agent.enroll(enrol_at, &token);
        run_ok(
            agent
                .cmd(&["once"])
                .env("HATANG_COLLECTOR", report_to.url()),
        );
        agents.push(agent);
    }

    // One replica publishes the figures, the one that started first and so took the lock; the
    // other serves its own counters only, or Prometheus, scraping both, would count every
    // figure twice.
    let (ma, mb) = (a.metrics(), b.metrics());
    assert_eq!(ma.get("hatang_figures_published", &[]), Some(1.0));
    assert_eq!(mb.get("hatang_figures_published", &[]), Some(0.0));
    let fa = figures(&ma);
    assert!(!fa.is_empty());
    assert_eq!(figures(&mb), [], "the standby publishes no figure");
    assert_eq!(b.exposition("/metrics/detail"), "");
    for unit in units {
        assert_eq!(
            ma.get("hatang_unit_equipped_staff", &[("unit", unit)]),
            Some(1.0),
            "{unit}"
        );
    }
    assert_eq!(ma.sum("hatang_agents", &[("state", "online")]), 4.0);
    // Each replica counted the reports it received itself: together, all four.
    assert_eq!(accepted(&ma) + accepted(&mb), 4.0);

    // Both compute the same figures for the API and the pages.
    let viewer = a.token(&["--role", "viewer"]);
    let coverage = |c: &Collector| {
        let (status, body) = get_as(&c.addr, "/api/v1/coverage", Some(&viewer)).unwrap();
        assert_eq!(status, 200, "{body}");
        body
    };
    assert_eq!(coverage(&a), coverage(&b));

    // The publisher goes (a crash: its session ends with the process); the other takes over
    // with the same figures, and the first, back, stands by.
    a.stop();
    let taken_over = eventually(Duration::from_secs(30), || {
        let m = b.metrics();
        (m.get("hatang_figures_published", &[]) == Some(1.0)).then_some(m)
    });
    assert_eq!(figures(&taken_over), fa);
    a.start(0);
    let ma = a.metrics();
    assert_eq!(ma.get("hatang_figures_published", &[]), Some(0.0));
    assert_eq!(figures(&ma), []);
}

/// Agents that know only a load balancer's address, which hands each connection to the next
/// replica: enrolments and reports land on both, each report is stored once, and the figures
/// count each agent once.
#[test]
fn agents_behind_a_round_robin_balancer_are_counted_once() {
    let Some((a, b)) = two_replicas() else {
        return;
    };
    let balancer = Balancer::round_robin(vec![a.addr.clone(), b.addr.clone()]);
    let token = a.token(&["--unit", "25-SKHCN"]);
    let agents: Vec<Agent> = (0..3)
        .map(|i| Agent::new(&format!("balanced-{i}")))
        .collect();
    for agent in &agents {
        run_ok(&mut agent.cmd(&["enroll", "--collector", &balancer.url(), "--token", &token]));
    }
    for _ in 0..2 {
        for agent in &agents {
            agent.once();
        }
    }

    let (ma, mb) = (a.metrics(), b.metrics());
    let enrolled = |m: &Metrics| m.sum("hatang_enrolments_total", &[("outcome", "enrolled")]);
    assert!(
        accepted(&ma) > 0.0 && accepted(&mb) > 0.0,
        "the balancer used both replicas"
    );
    assert_eq!(accepted(&ma) + accepted(&mb), 6.0);
    assert_eq!(enrolled(&ma) + enrolled(&mb), 3.0);
    let publisher = if ma.get("hatang_figures_published", &[]) == Some(1.0) {
        &ma
    } else {
        &mb
    };
    assert_eq!(publisher.sum("hatang_agents", &[("state", "online")]), 3.0);
    assert_eq!(
        publisher.get("hatang_unit_active_workstations", &[("unit", "25-SKHCN")]),
        Some(3.0)
    );
}

/// A publisher that stops answering without its connection closing (a hung machine, or one
/// behind a connection pooler that keeps its own connection to the server up) loses the lock
/// to the server's idle limit, and the other replica takes over; woken again, the old one
/// finds its session ended and stands by.
#[test]
fn a_hung_publisher_is_replaced() {
    let Some(mut a) = Collector::on_postgres() else {
        return;
    };
    let mut b = a.replica();
    a.start(0);
    b.start(0);
    let published = |c: &Collector| c.metrics().get("hatang_figures_published", &[]);
    assert_eq!((published(&a), published(&b)), (Some(1.0), Some(0.0)));

    // SIGSTOP: the kernel still answers for its sockets, so TCP keepalives see nothing wrong.
    let pid = a.pid().to_string();
    run_ok(Command::new("kill").args(["-STOP", &pid]));
    let took_over = std::time::Instant::now();
    eventually(Duration::from_secs(60), || {
        (published(&b) == Some(1.0)).then_some(())
    });
    let waited = took_over.elapsed();
    run_ok(Command::new("kill").args(["-CONT", &pid]));
    eventually(Duration::from_secs(30), || {
        (published(&a) == Some(0.0)).then_some(())
    });
    assert_eq!(published(&b), Some(1.0), "after {waited:?}");
}
