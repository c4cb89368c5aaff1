//! The foundation path: real agents enrol, report, and are counted against their units' staff
//! in the collector's `/metrics`, with the exact figures DESIGN.md defines.

use std::time::Duration;

use crate::support::{
    Agent, Collector, Metrics, eventually, promtool_check, run_ok, testdata, units,
};

/// Units of three levels from the Hoà Bình 2024 tree.
const PROVINCE_UNIT: &str = "17-SYT";
const DISTRICT_UNIT: &str = "148";
const COMMUNE_UNIT: &str = "4792";

fn level_staff(tree: &std::collections::BTreeMap<String, (String, u32)>, level: &str) -> u32 {
    tree.values()
        .filter(|(l, staff)| l == level && *staff > 0)
        .map(|(_, staff)| staff)
        .sum()
}

#[test]
fn three_agents_at_three_levels_are_counted_exactly_and_a_reinstall_is_not_a_new_computer() {
    three_agents_at_three_levels(Collector::new());
}

/// The same story with the collector on PostgreSQL (`HATANG_TEST_POSTGRES_URL`).
#[test]
fn three_agents_at_three_levels_on_postgres() {
    if let Some(collector) = Collector::on_postgres() {
        three_agents_at_three_levels(collector);
    }
}

fn three_agents_at_three_levels(mut collector: Collector) {
    let file = testdata("units-hoa-binh-2024.csv");
    let tree = units(&file);
    run_ok(collector.cli(&["units", "import"]).arg(&file));
    // A short cache so the figures below are fresh; the default (2 s) is tested further down.
    collector.start(0);

    let placed = [
        (PROVINCE_UNIT, "province", "e2e-machine-province"),
        (DISTRICT_UNIT, "district", "e2e-machine-district"),
        (COMMUNE_UNIT, "commune", "e2e-machine-commune"),
    ];
    let mut agents = Vec::new();
    for (unit, level, machine) in placed {
        assert_eq!(tree[unit].0, level, "fixture: {unit} is a {level} unit");
        let token = collector.token(&["--unit", unit]);
        assert!(token.starts_with("hte_"), "{token}");
        let agent = Agent::new(machine);
        let id = agent.enroll(&collector, &token);
        agent.once();
        agents.push((agent, id, token));
    }

    let check = |m: &Metrics| {
        for (unit, level, _) in placed {
            let labels = [("unit", unit), ("level", level)];
            assert_eq!(
                m.get("hatang_unit_equipped_staff", &labels),
                Some(1.0),
                "{unit}"
            );
            assert_eq!(
                m.get("hatang_unit_staff", &labels),
                Some(f64::from(tree[unit].1)),
                "{unit}"
            );
            assert_eq!(
                m.get("hatang_unit_info", &[("unit", unit), ("level", level)]),
                Some(1.0)
            );
            let expected = 1.0 / f64::from(level_staff(&tree, level));
            let got = m
                .get("hatang_equipment_ratio", &[("level", level)])
                .unwrap_or_else(|| panic!("no ratio for {level}"));
            assert!(
                (got - expected).abs() < 1e-12,
                "{level}: {got} != {expected}"
            );
            assert_eq!(
                m.get(
                    "hatang_agents",
                    &[
                        ("level", level),
                        ("role", "workstation"),
                        ("state", "online")
                    ]
                ),
                Some(1.0),
                "{level}"
            );
        }
        assert_eq!(m.sum("hatang_agents", &[]), 3.0, "three machines in all");
        assert_eq!(
            m.get("hatang_equipment_target_ratio", &[("level", "commune")]),
            Some(0.88)
        );
        // Every other unit has no agent.
        assert_eq!(m.sum("hatang_unit_equipped_staff", &[]), 3.0);
    };
    let before = collector.metrics();
    check(&before);
    assert_eq!(
        before.get("hatang_reports_received_total", &[("outcome", "accepted")]),
        Some(3.0)
    );
    assert_eq!(
        before.get(
            "hatang_unit_info",
            &[("unit", COMMUNE_UNIT), ("parent", DISTRICT_UNIT)]
        ),
        Some(1.0),
        "the tree is joined through the parent label"
    );

    // The commune machine is reinstalled: a fresh state directory, the same machine id.
    let (old, old_id, token) = &agents[2];
    let reinstalled = Agent::new(&old.machine_id);
    let new_id = reinstalled.enroll(&collector, token);
    assert_eq!(&new_id, old_id, "same machine, same agent");
    reinstalled.once();
    // The old installation's key no longer works: the reinstall replaced it.
    let refused = old.cmd(&["once"]).output().unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("401"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    let after = collector.metrics();
    check(&after);
    assert_eq!(
        after.get("hatang_reports_received_total", &[("outcome", "accepted")]),
        Some(4.0)
    );
    assert_eq!(
        after.get(
            "hatang_reports_received_total",
            &[("outcome", "unauthorized")]
        ),
        Some(1.0)
    );

    for path in ["/metrics", "/metrics/detail"] {
        let exposition = collector.exposition(path);
        if let Some(out) = promtool_check(&exposition) {
            let said = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                out.status.success() && said.trim().is_empty(),
                "promtool {path}: {said}"
            );
        } else {
            eprintln!("promtool not installed: skipped the exposition lint (CI runs it)");
        }
    }
}

#[test]
fn a_units_import_while_serving_shows_in_the_figures_within_seconds() {
    let file = testdata("units-hoa-binh-2024.csv");
    let mut collector = Collector::new();
    run_ok(collector.cli(&["units", "import"]).arg(&file));
    collector.start(2);
    let m = collector.metrics();
    assert!(
        m.get("hatang_equipment_ratio", &[("level", "district")])
            .is_some()
    );

    // The July 2025 reform: the two-tier tree replaces the three-tier one.
    run_ok(
        collector
            .cli(&["units", "import"])
            .arg(testdata("units-phu-tho-2025.csv")),
    );
    let after = eventually(Duration::from_secs(10), || {
        let m = collector.metrics();
        m.get("hatang_unit_info", &[("unit", "25")]).map(|_| m)
    });
    assert_eq!(
        after.get("hatang_equipment_ratio", &[("level", "district")]),
        None,
        "the district level is gone from the current figures"
    );
    assert_eq!(after.get("hatang_unit_info", &[("unit", "17")]), None);
    let tree = units(&testdata("units-phu-tho-2025.csv"));
    assert_eq!(
        after.sum("hatang_unit_staff", &[("level", "commune")]),
        f64::from(level_staff(&tree, "commune"))
    );
}

#[test]
fn bad_unit_files_are_refused_with_every_line_and_nothing_changes() {
    let collector = Collector::new();
    let good = testdata("units-hoa-binh-2024.csv");
    run_ok(collector.cli(&["units", "import"]).arg(&good));
    let before = run_ok(&mut collector.cli(&["units", "list"]));

    let bad = collector.dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "code,name,level,parent_code,staff\n\
         17,Tỉnh Hoà Bình,province,,0\n\
         17-A,Sở A,province,17,-4\n\
         17-B,Sở B,province,99,5\n\
         17-A,Sở A again,province,17,5\n\
         17-C,Sở C,province,17,nine\n",
    )
    .unwrap();
    let output = collector
        .cli(&["units", "import"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    for expected in [
        "bad.csv:3: staff -4 is negative",
        "bad.csv:4: unknown parent_code 99",
        "bad.csv:5: duplicate code 17-A (first on line 3)",
        "bad.csv:6: staff \"nine\" is not a whole number",
        "4 problem(s) in",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
    assert_eq!(run_ok(&mut collector.cli(&["units", "list"])), before);
}
