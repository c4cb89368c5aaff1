//! The collector's Prometheus exposition, on a registry of its own.
//!
//! Two kinds of series live here: counters of events (`hatang_reports_received_total`), bumped by
//! the code that handles the event, and gauges of figures, rewritten from the latest [`Figures`]
//! on every scrape so they always agree with the API. Label values are bounded: levels, roles,
//! states and outcomes are small fixed or configured sets; `unit` grows with the unit tree (a few
//! thousand), never with the number of machines.

use std::sync::Mutex;

use prometheus::{GaugeVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

use crate::figures::Figures;

/// What became of one `POST /api/v1/reports`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    Duplicate,
    Rejected,
    Unauthorized,
}

impl Outcome {
    const ALL: [Outcome; 4] = [
        Outcome::Accepted,
        Outcome::Duplicate,
        Outcome::Rejected,
        Outcome::Unauthorized,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Duplicate => "duplicate",
            Outcome::Rejected => "rejected",
            Outcome::Unauthorized => "unauthorized",
        }
    }
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reports: IntCounterVec,
    enrolments: IntCounterVec,
    equipment_ratio: GaugeVec,
    equipment_target: GaugeVec,
    unit_info: IntGaugeVec,
    unit_staff: IntGaugeVec,
    unit_equipped: IntGaugeVec,
    unit_workstations: IntGaugeVec,
    agents: IntGaugeVec,
    /// Scrapes rewrite the figure gauges; one at a time so two scrapes never interleave.
    render: Mutex<()>,
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help)
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let reports = IntCounterVec::new(
            opts(
                "hatang_reports_received_total",
                "Reports received by outcome: accepted (stored), duplicate (already stored), rejected (invalid), unauthorized.",
            ),
            &["outcome"],
        )
        .unwrap();
        let enrolments = IntCounterVec::new(
            opts(
                "hatang_enrolments_total",
                "Enrolment attempts by outcome: enrolled, reenrolled (known machine), refused.",
            ),
            &["outcome"],
        )
        .unwrap();
        let equipment_ratio = GaugeVec::new(
            opts(
                "hatang_equipment_ratio",
                "Share of the level's staff with an active workstation: sum of equipped staff over sum of staff, 0..1.",
            ),
            &["level"],
        )
        .unwrap();
        let equipment_target = GaugeVec::new(
            opts(
                "hatang_equipment_target_ratio",
                "The plan's target equipment ratio for the level, from the collector's configuration.",
            ),
            &["level"],
        )
        .unwrap();
        let unit_info = IntGaugeVec::new(
            opts(
                "hatang_unit_info",
                "Always 1; joins a unit code to its name, level and parent.",
            ),
            &["unit", "name", "level", "parent"],
        )
        .unwrap();
        let unit_staff = IntGaugeVec::new(
            opts("hatang_unit_staff", "Staff headcount of the unit."),
            &["unit", "level"],
        )
        .unwrap();
        let unit_equipped = IntGaugeVec::new(
            opts(
                "hatang_unit_equipped_staff",
                "Staff of the unit with a working computer: min(staff, active workstations).",
            ),
            &["unit", "level"],
        )
        .unwrap();
        let unit_workstations = IntGaugeVec::new(
            opts(
                "hatang_unit_active_workstations",
                "Workstations of the unit that reported within the equipment window (may exceed staff).",
            ),
            &["unit", "level"],
        )
        .unwrap();
        let agents = IntGaugeVec::new(
            opts(
                "hatang_agents",
                "Enrolled agents by the level of their unit, role and state (online, stale, offline).",
            ),
            &["level", "role", "state"],
        )
        .unwrap();
        for c in [&reports, &enrolments] {
            registry.register(Box::new(c.clone())).unwrap();
        }
        for g in [&equipment_ratio, &equipment_target] {
            registry.register(Box::new(g.clone())).unwrap();
        }
        for g in [
            &unit_info,
            &unit_staff,
            &unit_equipped,
            &unit_workstations,
            &agents,
        ] {
            registry.register(Box::new(g.clone())).unwrap();
        }
        for o in Outcome::ALL {
            reports.with_label_values(&[o.as_str()]);
        }
        for o in ["enrolled", "reenrolled", "refused"] {
            enrolments.with_label_values(&[o]);
        }
        Self {
            registry,
            reports,
            enrolments,
            equipment_ratio,
            equipment_target,
            unit_info,
            unit_staff,
            unit_equipped,
            unit_workstations,
            agents,
            render: Mutex::new(()),
        }
    }

    pub fn report(&self, outcome: Outcome) {
        self.reports.with_label_values(&[outcome.as_str()]).inc();
    }

    pub fn enrolment(&self, outcome: &'static str) {
        self.enrolments.with_label_values(&[outcome]).inc();
    }

    /// The text exposition with the figure gauges set from `figures`.
    pub fn render(&self, figures: &Figures) -> String {
        let _one_at_a_time = self.render.lock().unwrap_or_else(|p| p.into_inner());
        for g in [&self.equipment_ratio, &self.equipment_target] {
            g.reset();
        }
        for g in [
            &self.unit_info,
            &self.unit_staff,
            &self.unit_equipped,
            &self.unit_workstations,
            &self.agents,
        ] {
            g.reset();
        }
        for l in &figures.levels {
            // A level with no staff has no ratio; leaving the series out beats inventing 0.
            if let Some(r) = l.equipment_ratio {
                self.equipment_ratio.with_label_values(&[&l.level]).set(r);
            }
            if let Some(t) = l.target_ratio {
                self.equipment_target.with_label_values(&[&l.level]).set(t);
            }
        }
        for u in &figures.units {
            let parent = u.parent_code.as_deref().unwrap_or("");
            self.unit_info
                .with_label_values(&[&u.code, &u.name, &u.level, parent])
                .set(1);
            let labels = [u.code.as_str(), u.level.as_str()];
            self.unit_staff
                .with_label_values(&labels)
                .set(i64::from(u.staff));
            self.unit_equipped
                .with_label_values(&labels)
                .set(i64::from(u.equipped_staff));
            self.unit_workstations
                .with_label_values(&labels)
                .set(i64::from(u.active_workstations));
        }
        for a in &figures.agents {
            self.agents
                .with_label_values(&[&a.level, a.role.as_str(), a.state.as_str()])
                .set(i64::try_from(a.agents).unwrap_or(i64::MAX));
        }
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::figures::{AgentRow, Role, Rules, UnitRow, compute};

    fn families(exposition: &str) -> BTreeSet<String> {
        exposition
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_string)
            .collect()
    }

    fn one_unit_figures() -> Figures {
        let units = [UnitRow {
            code: "4351".into(),
            name: "Phường \"Tân\" Hòa".into(),
            level: "commune".into(),
            parent_code: None,
            staff: 4,
            depth: 0,
        }];
        let agents = [AgentRow {
            unit_code: "4351".into(),
            role: Role::Workstation,
            last_report_at: Some(100),
            interval_secs: Some(60),
        }];
        let rules = Rules {
            equipment_window_secs: 86_400,
            targets: [("commune".to_string(), 0.88)].into(),
        };
        compute(&units, &agents, &rules, 120)
    }

    #[test]
    fn reference_lists_every_family() {
        let reference = include_str!("../../docs/metrics.md");
        let documented: BTreeSet<String> = reference
            .lines()
            .filter_map(|l| l.strip_prefix("| `hatang_"))
            .filter_map(|l| l.split('`').next())
            .map(|name| format!("hatang_{name}"))
            .collect();
        let exposed = families(&Metrics::new().render(&one_unit_figures()));
        assert_eq!(documented, exposed);
    }

    #[test]
    fn figures_become_series_with_escaped_labels() {
        let m = Metrics::new();
        m.report(Outcome::Accepted);
        let text = m.render(&one_unit_figures());
        for line in [
            "hatang_equipment_ratio{level=\"commune\"} 0.25",
            "hatang_equipment_target_ratio{level=\"commune\"} 0.88",
            "hatang_unit_info{level=\"commune\",name=\"Phường \\\"Tân\\\" Hòa\",parent=\"\",unit=\"4351\"} 1",
            "hatang_unit_equipped_staff{level=\"commune\",unit=\"4351\"} 1",
            "hatang_agents{level=\"commune\",role=\"workstation\",state=\"online\"} 1",
            "hatang_agents{level=\"commune\",role=\"server\",state=\"offline\"} 0",
            "hatang_reports_received_total{outcome=\"accepted\"} 1",
            "hatang_reports_received_total{outcome=\"unauthorized\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
        }
    }

    #[test]
    fn a_second_render_forgets_units_that_are_gone() {
        let m = Metrics::new();
        let _ = m.render(&one_unit_figures());
        let empty = compute(
            &[],
            &[],
            &Rules {
                equipment_window_secs: 1,
                targets: Default::default(),
            },
            0,
        );
        let text = m.render(&empty);
        assert!(!text.contains("4351"), "{text}");
    }
}
