//! Scale-out: two collector processes on one PostgreSQL, agents reporting to either, and both
//! replicas showing the same figures.

use crate::support::{Agent, Collector, Metrics, run_ok, testdata};

/// The figure series that must agree between replicas (the event counters are per process).
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

#[test]
fn two_replicas_on_one_postgres_agree() {
    let Some(mut a) = Collector::on_postgres() else {
        return;
    };
    let mut b = a.replica();
    run_ok(
        a.cli(&["units", "import"])
            .arg(testdata("units-phu-tho-2025.csv")),
    );
    a.start(0);
    b.start(0);

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

    let (ma, mb) = (a.metrics(), b.metrics());
    let fa = figures(&ma);
    assert!(!fa.is_empty());
    assert_eq!(fa, figures(&mb), "both replicas compute the same figures");
    for unit in units {
        assert_eq!(
            ma.get("hatang_unit_equipped_staff", &[("unit", unit)]),
            Some(1.0),
            "{unit}"
        );
    }
    assert_eq!(ma.sum("hatang_agents", &[("state", "online")]), 4.0);
    // Each replica counted the reports it received itself: together, all four.
    let accepted = |m: &Metrics| m.sum("hatang_reports_received_total", &[("outcome", "accepted")]);
    assert_eq!(accepted(&ma) + accepted(&mb), 4.0);
}
