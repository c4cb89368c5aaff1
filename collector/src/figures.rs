//! The planners' figures, as pure functions over plain rows read from the store.
//!
//! Definitions (DESIGN.md, "Concepts"):
//! - a workstation is *active* if it reported within the equipment window (default 30 days);
//! - a unit's equipped staff is `min(staff, active workstations)`; servers never count;
//! - a level's equipment ratio is Σ equipped / Σ staff over that level's units with staff > 0;
//! - an agent is `online` if it reported within 3 × its interval, `stale` within 24 h, else
//!   `offline` (also when it never reported).
//!
//! Levels are data: they are whatever the unit tree says, ordered by how close to the root their
//! units sit, so the 2024 three-tier tree and the 2025 two-tier tree need no code change.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

/// Agents whose unit is not in the current tree are counted under this level.
pub const UNASSIGNED_LEVEL: &str = "unassigned";
const STALE_AFTER_SECS: i64 = 24 * 3600;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
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

/// What the figures need to know of an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRow {
    pub unit_code: String,
    pub role: Role,
    pub last_report_at: Option<i64>,
    pub interval_secs: Option<u32>,
}

/// The rules that turn rows into figures, from the collector's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    pub equipment_window_secs: i64,
    /// Target equipment ratio per level name.
    pub targets: BTreeMap<String, f64>,
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
    let online_for = 3 * i64::from(interval_secs.unwrap_or(60));
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
    /// One entry for every level × role × state, zeros included, so series never vanish.
    pub agents: Vec<AgentCount>,
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

pub fn compute(units: &[UnitRow], agents: &[AgentRow], rules: &Rules, now: i64) -> Figures {
    let index: HashMap<&str, usize> = units
        .iter()
        .enumerate()
        .map(|(i, u)| (u.code.as_str(), i))
        .collect();
    let mut active = vec![0u32; units.len()];
    let mut servers = vec![0u32; units.len()];
    let mut counts: BTreeMap<(String, Role, AgentState), u64> = BTreeMap::new();
    for a in agents {
        let unit = index.get(a.unit_code.as_str()).copied();
        if let Some(i) = unit {
            match a.role {
                Role::Server => servers[i] += 1,
                Role::Workstation => {
                    let recent = a
                        .last_report_at
                        .is_some_and(|t| now.saturating_sub(t) <= rules.equipment_window_secs);
                    if recent {
                        active[i] += 1;
                    }
                }
            }
        }
        let level = unit.map_or(UNASSIGNED_LEVEL, |i| units[i].level.as_str());
        let state = agent_state(a.last_report_at, a.interval_secs, now);
        *counts
            .entry((level.to_string(), a.role, state))
            .or_default() += 1;
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
            }
        })
        .collect();

    let order = level_order(units);
    let levels = order
        .iter()
        .map(|level| {
            let (mut n, mut staff, mut equipped) = (0u32, 0u64, 0u64);
            for u in unit_figures
                .iter()
                .filter(|u| &u.level == level && u.staff > 0)
            {
                n += 1;
                staff += u64::from(u.staff);
                equipped += u64::from(u.equipped_staff);
            }
            LevelFigures {
                level: level.clone(),
                units: n,
                staff,
                equipped_staff: equipped,
                equipment_ratio: (staff > 0).then(|| equipped as f64 / staff as f64),
                target_ratio: rules.targets.get(level).copied(),
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
        agents: agent_counts,
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
        }
    }

    fn rules() -> Rules {
        Rules {
            equipment_window_secs: 30 * DAY,
            targets: [
                ("province".to_string(), 0.98),
                ("commune".to_string(), 0.88),
            ]
            .into(),
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
        let f = compute(&tree(), &agents, &rules(), NOW);
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
        let f = compute(&tree(), &agents, &rules(), NOW);
        let u = unit_of(&f, "C1");
        assert_eq!((u.active_workstations, u.equipped_staff), (7, 3));
        assert_eq!(u.equipment_ratio, Some(1.0));
    }

    #[test]
    fn staff_zero_units_have_no_ratio_and_root_only_levels_none() {
        let agents = vec![agent("C0", Role::Workstation, Some(5))];
        let f = compute(&tree(), &agents, &rules(), NOW);
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
        let f = compute(&tree(), &agents, &rules(), NOW);
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
        let f = compute(&tree(), &agents, &rules(), NOW);
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
    fn agent_counts_cover_every_combination_and_unassigned() {
        let agents = vec![
            agent("C1", Role::Workstation, Some(10)),
            agent("C1", Role::Workstation, Some(2 * DAY)),
            agent("gone", Role::Server, Some(10)),
        ];
        let f = compute(&tree(), &agents, &rules(), NOW);
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
}
