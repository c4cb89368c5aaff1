//! The planners' figures, as pure functions over plain rows read from the store.
//!
//! Definitions (DESIGN.md, "Concepts"):
//! - a workstation is *active* if it reported within the equipment window (default 30 days);
//! - a unit's equipped staff is `min(staff, active workstations)`; servers never count;
//! - a level's equipment ratio is Σ equipped / Σ staff over that level's units with staff > 0;
//! - an agent is `online` if it reported within 3 × its interval, `stale` within 24 h, else
//!   `offline` (also when it never reported).
//!
//! - a unit has **LAN** when one of its agents' latest inventory showed an up, non-loopback
//!   interface carrying the default route;
//! - a unit is **reachable** on a probe class (internet, gov-wan, datacentre) when one of its
//!   agents' probes of that class succeeded within the broadband window (default 1 h);
//! - a unit has **broadband** when it is reachable on the internet class through an agent whose
//!   latest speed test, if one ran, measured at least the configured download rate.
//!
//! Levels are data: they are whatever the unit tree says, ordered by how close to the root their
//! units sit, so the 2024 three-tier tree and the 2025 two-tier tree need no code change.

use std::collections::{BTreeMap, HashMap};

use hatang_protocol::ProbeClass;
use serde::Serialize;

/// Agents whose unit is not in the current tree are counted under this level.
pub const UNASSIGNED_LEVEL: &str = "unassigned";
/// An agent is stale, not offline, while its last report is at most this old.
pub(crate) const STALE_AFTER_SECS: i64 = 24 * 3600;
/// An agent is online while its last report is at most this many of its intervals old.
pub(crate) const ONLINE_INTERVALS: i64 = 3;
/// The interval of an agent that has not said its own.
pub(crate) const DEFAULT_INTERVAL_SECS: u32 = 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    #[default]
    Workstation,
    Server,
}

impl Role {
    pub const ALL: [Role; 2] = [Role::Workstation, Role::Server];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Workstation => "workstation",
            Role::Server => "server",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "workstation" => Some(Role::Workstation),
            "server" => Some(Role::Server),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentState {
    Online,
    Stale,
    Offline,
}

impl AgentState {
    pub const ALL: [AgentState; 3] = [AgentState::Online, AgentState::Stale, AgentState::Offline];

    pub fn as_str(self) -> &'static str {
        match self {
            AgentState::Online => "online",
            AgentState::Stale => "stale",
            AgentState::Offline => "offline",
        }
    }

    pub fn parse(s: &str) -> Option<AgentState> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// A unit of the current tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitRow {
    pub code: String,
    pub name: String,
    pub level: String,
    pub parent_code: Option<String>,
    pub staff: u32,
    pub depth: u32,
}

/// The probe classes, in the order their evidence is kept.
pub const CLASSES: [ProbeClass; 3] = [
    ProbeClass::Internet,
    ProbeClass::GovWan,
    ProbeClass::Datacentre,
];

pub fn class_name(class: ProbeClass) -> &'static str {
    match class {
        ProbeClass::Internet => "internet",
        ProbeClass::GovWan => "gov-wan",
        ProbeClass::Datacentre => "datacentre",
    }
}

/// An agent's latest speed test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Speed {
    pub at: i64,
    pub download_bps: f64,
}

/// What the figures need to know of an agent.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AgentRow {
    pub unit_code: String,
    pub role: Role,
    pub last_report_at: Option<i64>,
    pub interval_secs: Option<u32>,
    /// From the latest inventory; `None` before the first one.
    pub lan_up: Option<bool>,
    /// When a probe of each class (in [`CLASSES`] order) last succeeded.
    pub class_ok_at: [Option<i64>; 3],
    pub speed: Option<Speed>,
    /// The agent's spool as its latest report told it; `None` before a report with spool figures.
    pub spool: Option<hatang_protocol::SpoolStats>,
    /// Its key was revoked (a machine enrolled into the wrong unit, cloned, stolen): it counts
    /// for nothing until it is enrolled again.
    pub revoked: bool,
}

/// The rules that turn rows into figures, from the collector's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    pub equipment_window_secs: i64,
    /// Target equipment ratio per level name.
    pub targets: BTreeMap<String, f64>,
    /// A probe success older than this proves nothing about connectivity now.
    pub broadband_window_secs: i64,
    /// Slowest download rate, in bits per second, that still counts as broadband.
    pub broadband_min_bps: f64,
}

impl Rules {
    /// A workstation that reported at `at` counts as equipment at `now`.
    fn active(&self, at: Option<i64>, now: i64) -> bool {
        at.is_some_and(|t| now.saturating_sub(t) <= self.equipment_window_secs)
    }

    fn recent(&self, at: Option<i64>, now: i64) -> bool {
        at.is_some_and(|t| now.saturating_sub(t) <= self.broadband_window_secs)
    }

    /// The agent proves the internet class now, at broadband speed where a speed test ran.
    fn broadband(&self, agent: &AgentRow, now: i64) -> bool {
        self.recent(agent.class_ok_at[0], now)
            && agent
                .speed
                .is_none_or(|s| s.download_bps >= self.broadband_min_bps)
    }
}

pub fn agent_state(
    last_report_at: Option<i64>,
    interval_secs: Option<u32>,
    now: i64,
) -> AgentState {
    let Some(last) = last_report_at else {
        return AgentState::Offline;
    };
    let age = now.saturating_sub(last);
    let online_for = ONLINE_INTERVALS * i64::from(interval_secs.unwrap_or(DEFAULT_INTERVAL_SECS));
    if age <= online_for {
        AgentState::Online
    } else if age <= STALE_AFTER_SECS {
        AgentState::Stale
    } else {
        AgentState::Offline
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnitFigures {
    pub code: String,
    pub name: String,
    pub level: String,
    pub parent_code: Option<String>,
    pub staff: u32,
    /// Workstations that reported within the equipment window (may exceed staff).
    pub active_workstations: u32,
    /// `min(staff, active_workstations)`.
    pub equipped_staff: u32,
    /// `equipped_staff / staff`; absent for a unit with no staff.
    pub equipment_ratio: Option<f64>,
    pub servers: u32,
    pub lan: bool,
    pub broadband: bool,
    /// Reachability per probe class name (`internet`, `gov-wan`, `datacentre`).
    pub reachable: BTreeMap<&'static str, bool>,
    /// The best download rate among the unit's agents' latest speed tests, bits per second.
    pub download_bps: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LevelFigures {
    pub level: String,
    /// Units of this level with staff > 0: the ones the ratio is taken over.
    pub units: u32,
    pub staff: u64,
    pub equipped_staff: u64,
    /// Σ equipped / Σ staff; absent when no unit of the level has staff.
    pub equipment_ratio: Option<f64>,
    pub target_ratio: Option<f64>,
    /// Units of the level with staff > 0 that have LAN / broadband.
    pub lan_units: u32,
    pub broadband_units: u32,
    /// `lan_units / units` and `broadband_units / units`; absent when `units` is 0.
    pub lan_ratio: Option<f64>,
    pub broadband_ratio: Option<f64>,
    /// Share of the level's units (staff > 0) reachable on each probe class.
    pub reachable_ratio: BTreeMap<&'static str, f64>,
}

/// What a unit's agents are doing now: live state, kept apart from [`UnitFigures`] because the
/// daily snapshots (and so figures for past dates) do not record it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct UnitAgents {
    /// Agents of any role that reported within three of their intervals.
    pub online: u32,
    /// Workstations enrolled (not revoked), whether they report or not.
    pub workstations: u32,
    /// Σ reports waiting in the agents' spools, as their latest reports told.
    pub spool_waiting_reports: u64,
    /// Σ reports the agents dropped since they were installed (full or expired spool, damage,
    /// refused for good).
    pub spool_dropped_reports: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentCount {
    pub level: String,
    pub role: Role,
    pub state: AgentState,
    pub agents: u64,
}

/// Everything the metrics, the API and the CLI show, computed at one instant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figures {
    /// Unix seconds the figures were computed for.
    pub at: i64,
    pub levels: Vec<LevelFigures>,
    pub units: Vec<UnitFigures>,
    /// Live agent state per unit code, for units with at least one agent; empty in figures read
    /// back from a snapshot.
    pub unit_agents: BTreeMap<String, UnitAgents>,
    /// One entry for every level × role × state, zeros included, so series never vanish.
    pub agents: Vec<AgentCount>,
    /// The data-centre hosts (agents with role `server`), filled in by the caller that has
    /// their samples ([`crate::hosts::compute`]).
    pub hosts: Vec<crate::hosts::HostFigures>,
}

/// What the figures need to know of the agents of one unit and role: the rows of
/// [`AgentRow`] reduced by the figure rules at one instant. [`group`] defines it; each store
/// computes the same with one aggregate query (the storage conformance suite holds them to it),
/// so the figures never load every agent.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AgentGroup {
    pub unit_code: String,
    pub role: Role,
    pub agents: u64,
    /// Reported within the equipment window.
    pub active: u64,
    pub online: u64,
    pub stale: u64,
    /// Some agent active within the equipment window showed LAN in its latest inventory: an
    /// office whose machines all went silent a year ago proves no LAN today.
    pub lan: bool,
    /// Some agent proves broadband now ([`Rules::broadband`]).
    pub broadband: bool,
    /// Some agent reached each probe class (in [`CLASSES`] order) within the broadband window.
    pub reachable: [bool; 3],
    /// The best download rate among the agents' latest speed tests, bits per second.
    pub download_bps: Option<f64>,
    pub spool_waiting_reports: u64,
    pub spool_dropped_reports: u64,
}

impl AgentGroup {
    fn add(&mut self, agent: &AgentRow, rules: &Rules, now: i64) {
        self.agents += 1;
        self.active += u64::from(rules.active(agent.last_report_at, now));
        match agent_state(agent.last_report_at, agent.interval_secs, now) {
            AgentState::Online => self.online += 1,
            AgentState::Stale => self.stale += 1,
            AgentState::Offline => {}
        }
        self.lan |= agent.lan_up == Some(true) && rules.active(agent.last_report_at, now);
        self.broadband |= rules.broadband(agent, now);
        for (up, at) in self.reachable.iter_mut().zip(agent.class_ok_at) {
            *up |= rules.recent(at, now);
        }
        if let Some(s) = agent.speed {
            self.download_bps = Some(
                self.download_bps
                    .map_or(s.download_bps, |d| d.max(s.download_bps)),
            );
        }
        if let Some(spool) = agent.spool {
            self.spool_waiting_reports += spool.waiting_reports;
            self.spool_dropped_reports += spool.dropped_reports;
        }
    }

    fn merge(&mut self, other: &AgentGroup) {
        self.agents += other.agents;
        self.active += other.active;
        self.online += other.online;
        self.stale += other.stale;
        self.lan |= other.lan;
        self.broadband |= other.broadband;
        for (up, other) in self.reachable.iter_mut().zip(other.reachable) {
            *up |= other;
        }
        self.download_bps = match (self.download_bps, other.download_bps) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.spool_waiting_reports += other.spool_waiting_reports;
        self.spool_dropped_reports += other.spool_dropped_reports;
    }
}

/// The definition of [`AgentGroup`]: `agents` reduced per unit and role, ordered by unit code
/// and role; revoked agents left out.
pub fn group(agents: &[AgentRow], rules: &Rules, now: i64) -> Vec<AgentGroup> {
    let mut groups: BTreeMap<(&str, Role), AgentGroup> = BTreeMap::new();
    for a in agents.iter().filter(|a| !a.revoked) {
        groups
            .entry((a.unit_code.as_str(), a.role))
            .or_insert_with(|| AgentGroup {
                unit_code: a.unit_code.clone(),
                role: a.role,
                ..AgentGroup::default()
            })
            .add(a, rules, now);
    }
    groups.into_values().collect()
}

/// Levels ordered from the root down: by the smallest depth any of their units has.
fn level_order(units: &[UnitRow]) -> Vec<String> {
    let mut min_depth: HashMap<&str, u32> = HashMap::new();
    for u in units {
        let d = min_depth.entry(&u.level).or_insert(u.depth);
        *d = (*d).min(u.depth);
    }
    let mut levels: Vec<(&str, u32)> = min_depth.into_iter().collect();
    levels.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(b.0)));
    levels.into_iter().map(|(l, _)| l.to_string()).collect()
}

/// The figures at `now` from the current tree and the agents' groups ([`group`], or a store's
/// aggregate query).
pub fn compute(units: &[UnitRow], groups: &[AgentGroup], rules: &Rules, now: i64) -> Figures {
    let index: HashMap<&str, usize> = units
        .iter()
        .enumerate()
        .map(|(i, u)| (u.code.as_str(), i))
        .collect();
    let mut active = vec![0u32; units.len()];
    let mut servers = vec![0u32; units.len()];
    let mut links = vec![AgentGroup::default(); units.len()];
    let mut counts: BTreeMap<(String, Role, AgentState), u64> = BTreeMap::new();
    let mut unit_agents: BTreeMap<String, UnitAgents> = BTreeMap::new();
    let count = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
    for g in groups {
        let unit = index.get(g.unit_code.as_str()).copied();
        if let Some(i) = unit {
            let live = unit_agents.entry(units[i].code.clone()).or_default();
            live.online = live.online.saturating_add(count(g.online));
            live.spool_waiting_reports += g.spool_waiting_reports;
            live.spool_dropped_reports += g.spool_dropped_reports;
            links[i].merge(g);
            match g.role {
                Role::Server => servers[i] = servers[i].saturating_add(count(g.agents)),
                Role::Workstation => {
                    active[i] = active[i].saturating_add(count(g.active));
                    live.workstations = live.workstations.saturating_add(count(g.agents));
                }
            }
        }
        let level = unit.map_or(UNASSIGNED_LEVEL, |i| units[i].level.as_str());
        let offline = g.agents.saturating_sub(g.online + g.stale);
        for (state, n) in [
            (AgentState::Online, g.online),
            (AgentState::Stale, g.stale),
            (AgentState::Offline, offline),
        ] {
            *counts
                .entry((level.to_string(), g.role, state))
                .or_default() += n;
        }
    }

    let unit_figures: Vec<UnitFigures> = units
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let equipped = u.staff.min(active[i]);
            UnitFigures {
                code: u.code.clone(),
                name: u.name.clone(),
                level: u.level.clone(),
                parent_code: u.parent_code.clone(),
                staff: u.staff,
                active_workstations: active[i],
                equipped_staff: equipped,
                equipment_ratio: (u.staff > 0).then(|| f64::from(equipped) / f64::from(u.staff)),
                servers: servers[i],
                lan: links[i].lan,
                broadband: links[i].broadband,
                reachable: CLASSES
                    .iter()
                    .zip(links[i].reachable)
                    .map(|(c, up)| (class_name(*c), up))
                    .collect(),
                download_bps: links[i].download_bps,
            }
        })
        .collect();

    let order = level_order(units);
    let levels = order
        .iter()
        .map(|level| {
            let (mut n, mut staff, mut equipped) = (0u32, 0u64, 0u64);
            let (mut lan, mut broadband) = (0u32, 0u32);
            let mut reachable = [0u32; 3];
            for u in unit_figures
                .iter()
                .filter(|u| &u.level == level && u.staff > 0)
            {
                n += 1;
                staff += u64::from(u.staff);
                equipped += u64::from(u.equipped_staff);
                lan += u32::from(u.lan);
                broadband += u32::from(u.broadband);
                for (count, class) in reachable.iter_mut().zip(CLASSES) {
                    *count += u32::from(u.reachable[class_name(class)]);
                }
            }
            let share = |k: u32| (n > 0).then(|| f64::from(k) / f64::from(n));
            LevelFigures {
                level: level.clone(),
                units: n,
                staff,
                equipped_staff: equipped,
                equipment_ratio: (staff > 0).then(|| equipped as f64 / staff as f64),
                target_ratio: rules.targets.get(level).copied(),
                lan_units: lan,
                broadband_units: broadband,
                lan_ratio: share(lan),
                broadband_ratio: share(broadband),
                reachable_ratio: CLASSES
                    .iter()
                    .zip(reachable)
                    .filter_map(|(c, k)| share(k).map(|r| (class_name(*c), r)))
                    .collect(),
            }
        })
        .collect();

    let mut agent_levels = order;
    if counts.keys().any(|(l, _, _)| l == UNASSIGNED_LEVEL) {
        agent_levels.push(UNASSIGNED_LEVEL.to_string());
    }
    let mut agent_counts = Vec::new();
    for level in &agent_levels {
        for role in Role::ALL {
            for state in AgentState::ALL {
                let key = (level.clone(), role, state);
                agent_counts.push(AgentCount {
                    level: level.clone(),
                    role,
                    state,
                    agents: counts.get(&key).copied().unwrap_or(0),
                });
            }
        }
    }

    Figures {
        at: now,
        levels,
        units: unit_figures,
        unit_agents,
        agents: agent_counts,
        hosts: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z
    const DAY: i64 = 86_400;

    fn unit(code: &str, level: &str, parent: Option<&str>, staff: u32, depth: u32) -> UnitRow {
        UnitRow {
            code: code.into(),
            name: format!("Unit {code}"),
            level: level.into(),
            parent_code: parent.map(Into::into),
            staff,
            depth,
        }
    }

    fn agent(unit: &str, role: Role, ago: Option<i64>) -> AgentRow {
        AgentRow {
            unit_code: unit.into(),
            role,
            last_report_at: ago.map(|a| NOW - a),
            interval_secs: Some(60),
            ..AgentRow::default()
        }
    }

    fn figures_of(units: &[UnitRow], agents: &[AgentRow]) -> Figures {
        let rules = rules();
        compute(units, &group(agents, &rules, NOW), &rules, NOW)
    }

    fn rules() -> Rules {
        Rules {
            equipment_window_secs: 30 * DAY,
            targets: [
                ("province".to_string(), 0.98),
                ("commune".to_string(), 0.88),
            ]
            .into(),
            broadband_window_secs: 3600,
            broadband_min_bps: 2e6,
        }
    }

    fn tree() -> Vec<UnitRow> {
        vec![
            unit("P", "province", None, 0, 0),
            unit("P-A", "province", Some("P"), 4, 1),
            unit("D", "district", Some("P"), 10, 1),
            unit("C1", "commune", Some("D"), 3, 2),
            unit("C2", "commune", Some("D"), 5, 2),
            unit("C0", "commune", Some("D"), 0, 2),
        ]
    }

    fn level<'a>(f: &'a Figures, name: &str) -> &'a LevelFigures {
        f.levels.iter().find(|l| l.level == name).unwrap()
    }

    fn unit_of<'a>(f: &'a Figures, code: &str) -> &'a UnitFigures {
        f.units.iter().find(|u| u.code == code).unwrap()
    }

    #[test]
    fn level_ratio_is_sum_equipped_over_sum_staff() {
        let agents = vec![
            agent("P-A", Role::Workstation, Some(60)),
            agent("C1", Role::Workstation, Some(DAY)),
            agent("C1", Role::Workstation, Some(2 * DAY)),
            agent("C2", Role::Workstation, Some(10)),
        ];
        let f = figures_of(&tree(), &agents);
        assert_eq!(
            f.levels
                .iter()
                .map(|l| l.level.as_str())
                .collect::<Vec<_>>(),
            ["province", "district", "commune"]
        );
        let p = level(&f, "province");
        assert_eq!((p.staff, p.equipped_staff, p.units), (4, 1, 1));
        assert_eq!(p.equipment_ratio, Some(0.25));
        assert_eq!(p.target_ratio, Some(0.98));
        // commune: (2 + 1) / (3 + 5); C0 has no staff and is left out of the ratio
        let c = level(&f, "commune");
        assert_eq!((c.staff, c.equipped_staff, c.units), (8, 3, 2));
        assert_eq!(c.equipment_ratio, Some(3.0 / 8.0));
        let d = level(&f, "district");
        assert_eq!(d.equipment_ratio, Some(0.0));
        assert_eq!(d.target_ratio, None);
    }

    #[test]
    fn more_computers_than_staff_caps_at_staff() {
        let agents: Vec<_> = (0..7)
            .map(|_| agent("C1", Role::Workstation, Some(5)))
            .collect();
        let f = figures_of(&tree(), &agents);
        let u = unit_of(&f, "C1");
        assert_eq!((u.active_workstations, u.equipped_staff), (7, 3));
        assert_eq!(u.equipment_ratio, Some(1.0));
    }

    #[test]
    fn staff_zero_units_have_no_ratio_and_root_only_levels_none() {
        let agents = vec![agent("C0", Role::Workstation, Some(5))];
        let f = figures_of(&tree(), &agents);
        let u = unit_of(&f, "C0");
        assert_eq!((u.active_workstations, u.equipped_staff), (1, 0));
        assert_eq!(u.equipment_ratio, None);
        let only_root = compute(&[unit("P", "province", None, 0, 0)], &[], &rules(), NOW);
        assert_eq!(only_root.levels[0].equipment_ratio, None);
    }

    #[test]
    fn servers_never_count_as_equipment() {
        let agents = vec![
            agent("P-A", Role::Server, Some(5)),
            agent("P-A", Role::Server, Some(5)),
        ];
        let f = figures_of(&tree(), &agents);
        let u = unit_of(&f, "P-A");
        assert_eq!((u.servers, u.equipped_staff), (2, 0));
        assert_eq!(level(&f, "province").equipment_ratio, Some(0.0));
    }

    #[test]
    fn workstations_outside_the_window_are_not_equipment() {
        let agents = vec![
            agent("C2", Role::Workstation, Some(30 * DAY)),
            agent("C2", Role::Workstation, Some(30 * DAY + 1)),
            agent("C2", Role::Workstation, None),
        ];
        let f = figures_of(&tree(), &agents);
        assert_eq!(unit_of(&f, "C2").active_workstations, 1);
    }

    #[test]
    fn agent_states_follow_interval_and_day() {
        assert_eq!(
            agent_state(Some(NOW - 180), Some(60), NOW),
            AgentState::Online
        );
        assert_eq!(
            agent_state(Some(NOW - 181), Some(60), NOW),
            AgentState::Stale
        );
        assert_eq!(
            agent_state(Some(NOW - 900), Some(300), NOW),
            AgentState::Online
        );
        assert_eq!(
            agent_state(Some(NOW - DAY), Some(60), NOW),
            AgentState::Stale
        );
        assert_eq!(
            agent_state(Some(NOW - DAY - 1), Some(60), NOW),
            AgentState::Offline
        );
        assert_eq!(agent_state(None, None, NOW), AgentState::Offline);
        // a clock ahead of ours is not "in the future offline"
        assert_eq!(
            agent_state(Some(NOW + 30), Some(60), NOW),
            AgentState::Online
        );
    }

    #[test]
    fn unit_agents_count_the_online_and_add_up_spools() {
        let spool = |dropped_reports, waiting_reports| {
            Some(hatang_protocol::SpoolStats {
                dropped_reports,
                waiting_reports,
            })
        };
        let agents = vec![
            AgentRow {
                spool: spool(3, 41),
                ..agent("C1", Role::Workstation, Some(10))
            },
            // Offline, but what it last said of its spool still counts: that backlog is real.
            AgentRow {
                spool: spool(1, 0),
                ..agent("C1", Role::Workstation, Some(2 * DAY))
            },
            agent("C1", Role::Workstation, Some(20)),
            agent("C2", Role::Server, Some(10)),
            // Its unit is gone: no unit to count it in.
            AgentRow {
                spool: spool(100, 100),
                ..agent("GONE", Role::Workstation, Some(10))
            },
        ];
        let f = figures_of(&tree(), &agents);
        assert_eq!(
            f.unit_agents["C1"],
            UnitAgents {
                online: 2,
                // the offline one is still enrolled
                workstations: 3,
                spool_waiting_reports: 41,
                spool_dropped_reports: 4,
            }
        );
        assert_eq!(f.unit_agents["C2"].online, 1);
        assert_eq!(
            f.unit_agents["C2"].workstations, 0,
            "a server is not a workstation"
        );
        assert_eq!(
            f.unit_agents.keys().collect::<Vec<_>>(),
            ["C1", "C2"],
            "only units with agents"
        );
    }

    #[test]
    fn agent_counts_cover_every_combination_and_unassigned() {
        let agents = vec![
            agent("C1", Role::Workstation, Some(10)),
            agent("C1", Role::Workstation, Some(2 * DAY)),
            agent("gone", Role::Server, Some(10)),
        ];
        let f = figures_of(&tree(), &agents);
        assert_eq!(f.agents.len(), 4 * 2 * 3);
        let count = |level: &str, role, state| {
            f.agents
                .iter()
                .find(|c| c.level == level && c.role == role && c.state == state)
                .unwrap()
                .agents
        };
        assert_eq!(count("commune", Role::Workstation, AgentState::Online), 1);
        assert_eq!(count("commune", Role::Workstation, AgentState::Offline), 1);
        assert_eq!(count("unassigned", Role::Server, AgentState::Online), 1);
        assert_eq!(count("province", Role::Server, AgentState::Online), 0);
    }

    #[test]
    fn two_tier_tree_has_two_levels() {
        let units = vec![
            unit("25", "province", None, 0, 0),
            unit("25-SYT", "province", Some("25"), 10, 1),
            unit("4792", "commune", Some("25"), 20, 1),
        ];
        let f = compute(&units, &[], &rules(), NOW);
        assert_eq!(
            f.levels
                .iter()
                .map(|l| l.level.as_str())
                .collect::<Vec<_>>(),
            ["province", "commune"]
        );
    }

    /// An agent of `unit` with connectivity evidence: LAN, the age of its last success per
    /// class (internet, gov-wan, datacentre) and its latest download rate.
    fn linked(
        unit: &str,
        lan: Option<bool>,
        ok_ago: [Option<i64>; 3],
        download: Option<f64>,
    ) -> AgentRow {
        AgentRow {
            lan_up: lan,
            class_ok_at: ok_ago.map(|a| a.map(|a| NOW - a)),
            speed: download.map(|d| Speed {
                at: NOW - 60,
                download_bps: d,
            }),
            ..agent(unit, Role::Workstation, Some(60))
        }
    }

    #[test]
    fn lan_comes_from_any_agent_of_the_unit() {
        let agents = vec![
            linked("C1", Some(false), [None; 3], None),
            linked("C1", Some(true), [None; 3], None),
            linked("C2", Some(false), [None; 3], None),
            linked("P-A", None, [None; 3], None),
        ];
        let f = figures_of(&tree(), &agents);
        assert!(unit_of(&f, "C1").lan);
        assert!(!unit_of(&f, "C2").lan);
        assert!(!unit_of(&f, "P-A").lan, "no inventory yet is no evidence");
        let c = level(&f, "commune");
        assert_eq!((c.units, c.lan_units), (2, 1));
        assert_eq!(c.lan_ratio, Some(0.5));
    }

    #[test]
    fn lan_needs_an_agent_heard_from_within_the_equipment_window() {
        let agents = vec![
            // said LAN, then went silent for longer than the equipment window
            AgentRow {
                last_report_at: Some(NOW - 31 * DAY),
                ..linked("C1", Some(true), [None; 3], None)
            },
            AgentRow {
                last_report_at: Some(NOW - 29 * DAY),
                ..linked("C2", Some(true), [None; 3], None)
            },
        ];
        let f = figures_of(&tree(), &agents);
        assert!(!unit_of(&f, "C1").lan, "a year-old LAN is no LAN today");
        assert!(unit_of(&f, "C2").lan);
    }

    #[test]
    fn a_revoked_agent_counts_for_nothing() {
        let revoked = |a: AgentRow| AgentRow { revoked: true, ..a };
        let agents = vec![
            linked("C1", Some(true), [Some(60); 3], None),
            revoked(linked("C2", Some(true), [Some(60); 3], None)),
            revoked(agent("C1", Role::Workstation, Some(10))),
        ];
        let f = figures_of(&tree(), &agents);
        let c1 = unit_of(&f, "C1");
        assert_eq!((c1.active_workstations, f.unit_agents["C1"].online), (1, 1));
        let c2 = unit_of(&f, "C2");
        assert_eq!(c2.active_workstations, 0);
        assert!(!c2.lan && !c2.broadband, "{c2:?}");
        assert!(!f.unit_agents.contains_key("C2"), "{:?}", f.unit_agents);
    }

    #[test]
    fn broadband_needs_a_recent_internet_success_at_speed() {
        let agents = vec![
            // recent success, no speed test: broadband
            linked("C1", Some(true), [Some(600), None, None], None),
            // recent success but too slow
            linked("C2", Some(true), [Some(600), Some(60), None], Some(1e6)),
            // fast enough but the success is over an hour old
            linked("P-A", Some(true), [Some(3601), None, Some(10)], Some(50e6)),
        ];
        let f = figures_of(&tree(), &agents);
        assert!(unit_of(&f, "C1").broadband);
        assert!(!unit_of(&f, "C2").broadband);
        assert!(!unit_of(&f, "P-A").broadband);
        let c2 = unit_of(&f, "C2");
        assert!(c2.reachable["internet"]);
        assert!(c2.reachable["gov-wan"]);
        assert!(!c2.reachable["datacentre"]);
        assert_eq!(c2.download_bps, Some(1e6));
        assert!(unit_of(&f, "P-A").reachable["datacentre"]);
        let c = level(&f, "commune");
        assert_eq!(c.broadband_units, 1);
        assert_eq!(c.broadband_ratio, Some(0.5));
        assert_eq!(c.reachable_ratio["internet"], 1.0);
        assert_eq!(c.reachable_ratio["gov-wan"], 0.5);
        assert_eq!(level(&f, "province").broadband_ratio, Some(0.0));
    }

    #[test]
    fn a_fast_agent_gives_the_unit_broadband_even_beside_a_slow_one() {
        let agents = vec![
            linked("C1", None, [Some(10), None, None], Some(0.5e6)),
            linked("C1", None, [Some(10), None, None], Some(20e6)),
        ];
        let f = figures_of(&tree(), &agents);
        assert!(unit_of(&f, "C1").broadband);
        assert_eq!(unit_of(&f, "C1").download_bps, Some(20e6));
    }

    #[test]
    fn levels_without_staffed_units_have_no_connectivity_ratios() {
        let f = compute(&[unit("P", "province", None, 0, 0)], &[], &rules(), NOW);
        assert_eq!(f.levels[0].broadband_ratio, None);
        assert!(f.levels[0].reachable_ratio.is_empty());
    }
}
