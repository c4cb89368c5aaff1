//! Coverage figures as people read them: a terminal table and a spreadsheet-friendly CSV.

use std::fmt::Write as _;

use crate::figures::Figures;

/// `level` keeps one level; `None` keeps all.
fn units_of<'a>(
    figures: &'a Figures,
    level: Option<&'a str>,
) -> impl Iterator<Item = &'a crate::figures::UnitFigures> {
    figures
        .units
        .iter()
        .filter(move |u| level.is_none_or(|l| u.level == l))
}

/// The levels and units (of one level, or all) as the API and `coverage --format json` give them.
pub fn json(figures: &Figures, level: Option<&str>) -> serde_json::Value {
    let keep = |l: &str| level.is_none_or(|want| want == l);
    serde_json::json!({
        "at": figures.at,
        "levels": figures.levels.iter().filter(|l| keep(&l.level)).collect::<Vec<_>>(),
        "units": units_of(figures, level).collect::<Vec<_>>(),
    })
}

/// A ratio as the CSVs write it: four decimals, rounded down; empty when there is none.
pub(crate) fn ratio(r: Option<f64>) -> String {
    r.map(|r| crate::present::decimals_down(r, 4))
        .unwrap_or_default()
}

/// The columns of a unit's row in [`units_csv`] and [`csv`].
const UNIT_COLUMNS: [&str; 11] = [
    "level",
    "code",
    "name",
    "parent_code",
    "staff",
    "active_workstations",
    "equipped_staff",
    "equipment_ratio",
    "target_ratio",
    "lan",
    "broadband",
];

/// The figures of `level` (or all levels) for a spreadsheet: a row per level, then a row per
/// unit, told apart by the last columns. `scope` is `level` or `unit`; on a level row `staff`
/// and `equipped_staff` are the sums over its units, `equipment_ratio` is Σ equipped / Σ staff
/// (what the plan's targets are about; averaging the units' ratios is not it), `lan` and
/// `broadband` count its units that have them and `units` is how many units with staff the
/// ratios are taken over. On a unit row `lan` and `broadband` are 1 or 0 and `units` is 1 when
/// the unit has staff (it counts in its level's ratio), else 0: the same columns as the daily
/// snapshots.
pub fn csv(figures: &Figures, level: Option<&str>) -> String {
    let header: Vec<&str> = UNIT_COLUMNS
        .iter()
        .copied()
        .chain(["scope", "units"])
        .collect();
    let levels = figures
        .levels
        .iter()
        .filter(|l| level.is_none_or(|want| l.level == want))
        .map(|l| {
            vec![
                l.level.clone(),
                String::new(),
                String::new(),
                String::new(),
                l.staff.to_string(),
                String::new(),
                l.equipped_staff.to_string(),
                ratio(l.equipment_ratio),
                ratio(l.target_ratio),
                l.lan_units.to_string(),
                l.broadband_units.to_string(),
                "level".into(),
                l.units.to_string(),
            ]
        });
    let units = units_of(figures, level).map(|u| {
        let mut row = unit_row(figures, u);
        row.extend(["unit".into(), u32::from(u.staff > 0).to_string()]);
        row
    });
    crate::present::spreadsheet_csv(&header, levels.chain(units))
}

/// One row per unit with its level's target, as [`crate::present::spreadsheet_csv`] writes
/// them (a byte-order mark first, so Vietnamese names show intact): `units.csv`.
pub fn units_csv<'a>(
    figures: &Figures,
    units: impl IntoIterator<Item = &'a crate::figures::UnitFigures>,
) -> String {
    let rows = units.into_iter().map(|u| unit_row(figures, u));
    crate::present::spreadsheet_csv(&UNIT_COLUMNS, rows)
}

fn unit_row(figures: &Figures, u: &crate::figures::UnitFigures) -> Vec<String> {
    let target = figures
        .levels
        .iter()
        .find(|l| l.level == u.level)
        .and_then(|l| l.target_ratio);
    vec![
        u.level.clone(),
        u.code.clone(),
        u.name.clone(),
        u.parent_code.clone().unwrap_or_default(),
        u.staff.to_string(),
        u.active_workstations.to_string(),
        u.equipped_staff.to_string(),
        ratio(u.equipment_ratio),
        ratio(target),
        if u.lan { "1" } else { "0" }.to_string(),
        if u.broadband { "1" } else { "0" }.to_string(),
    ]
}

/// The per-level summary, then (with a level) that level's units.
pub fn table(figures: &Figures, level: Option<&str>) -> String {
    let pct = |r: Option<f64>| {
        r.map_or("-".to_string(), |r| {
            format!("{}%", crate::present::decimals_down(r * 100.0, 1))
        })
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<12} {:>6} {:>8} {:>9} {:>8} {:>8}",
        "LEVEL", "UNITS", "STAFF", "EQUIPPED", "RATIO", "TARGET"
    );
    for l in figures
        .levels
        .iter()
        .filter(|l| level.is_none_or(|want| l.level == want))
    {
        let _ = writeln!(
            out,
            "{:<12} {:>6} {:>8} {:>9} {:>8} {:>8}",
            l.level,
            l.units,
            l.staff,
            l.equipped_staff,
            pct(l.equipment_ratio),
            pct(l.target_ratio)
        );
    }
    if level.is_some() {
        let _ = writeln!(
            out,
            "\n{:<10} {:<40} {:>6} {:>9} {:>8}",
            "UNIT", "NAME", "STAFF", "EQUIPPED", "RATIO"
        );
        for u in units_of(figures, level) {
            let _ = writeln!(
                out,
                "{:<10} {:<40} {:>6} {:>9} {:>8}",
                u.code,
                u.name,
                u.staff,
                u.equipped_staff,
                pct(u.equipment_ratio)
            );
        }
    }
    out
}
