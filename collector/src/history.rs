//! Daily snapshots of the figures: every level's and every unit's numbers as they stood on a
//! day, so "what was the commune ratio on 1 January" has an answer after the tree, the fleet or
//! the targets changed.
//!
//! - **Dates** are local: a snapshot is dated in the collector's `utc_offset` (default `+07:00`,
//!   Vietnam, which keeps no daylight saving time, so a fixed offset is exact all year). A planner
//!   asking about 1 January means the Vietnamese 1 January; dating in UTC would label the figures
//!   of 00:00–06:59 local time with the day before.
//! - **Timing**: `serve` takes today's snapshot at start-up when it is missing, and then just
//!   after each local midnight; it looks again at least every [`CHECK_EVERY`], so a midnight
//!   missed (the collector down, the database unreachable) is made up within minutes.
//!   `hatang-collector snapshot` does the same once, for cron, and `units import` before it
//!   changes the tree, so a reorganisation imported while `serve` was not running still leaves
//!   the day's figures as they stood under the old tree. The snapshot of a day holds the figures
//!   as they stood when it was taken: normally the start of that day. Nothing is taken before a
//!   tree is imported.
//! - **Once**: the store claims the date and writes the rows in one transaction; a replica (or
//!   a later run) that finds the date claimed writes nothing. A snapshot is never rewritten: a
//!   unit import changes the current tree and today's figures, never a past day's.

use std::collections::BTreeMap;
use std::time::Duration;

use time::{Date, OffsetDateTime, UtcOffset};

use crate::config::Config;
use crate::figures::{CLASSES, Figures, LevelFigures, UnitFigures, class_name};
use crate::store::{SnapshotRow, Store, StoreError};

/// How long the background task sleeps at most between two looks at today's snapshot.
pub const CHECK_EVERY: Duration = Duration::from_secs(15 * 60);

const DATE_FORMAT: &[time::format_description::BorrowedFormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]");

/// The local date of the Unix time `at`.
pub fn date_of(at: i64, offset: UtcOffset) -> Date {
    OffsetDateTime::from_unix_timestamp(at)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .to_offset(offset)
        .date()
}

/// `YYYY-MM-DD`, as snapshots are keyed.
pub fn format_date(date: Date) -> String {
    date.format(DATE_FORMAT).unwrap_or_default()
}

/// Reads `YYYY-MM-DD` (a real date), or says what was expected.
pub fn parse_date(text: &str) -> Result<Date, String> {
    Date::parse(text, DATE_FORMAT)
        .map_err(|_| format!("{text:?} is not a date such as 2026-01-01 (YYYY-MM-DD)"))
}

/// How long from `now` until just after the next local midnight.
fn until_next_midnight(now: i64, offset: UtcOffset) -> Duration {
    let next = date_of(now, offset)
        .next_day()
        .map(|d| d.midnight().assume_offset(offset).unix_timestamp())
        .unwrap_or(now);
    Duration::from_secs(u64::try_from(next - now).unwrap_or(0) + 1)
}

/// The counts of `[internet, gov-wan, datacentre]` in [`CLASSES`] order.
fn class_flags(reachable: &BTreeMap<&'static str, bool>) -> [i64; 3] {
    CLASSES.map(|c| i64::from(reachable.get(class_name(c)).copied().unwrap_or(false)))
}

/// The rows of the snapshot of `date`: the levels, then the units, each in the figures' order.
pub fn rows(date: &str, figures: &Figures) -> Vec<SnapshotRow> {
    let mut rows = Vec::with_capacity(figures.levels.len() + figures.units.len());
    for (position, l) in figures.levels.iter().enumerate() {
        // The level figures keep shares; the snapshot keeps the counts they were taken of.
        let mut classes = [0i64; 3];
        for u in figures
            .units
            .iter()
            .filter(|u| u.level == l.level && u.staff > 0)
        {
            for (count, flag) in classes.iter_mut().zip(class_flags(&u.reachable)) {
                *count += flag;
            }
        }
        rows.push(SnapshotRow {
            date: date.to_string(),
            scope: "level".into(),
            code: l.level.clone(),
            position: position as i64,
            level: l.level.clone(),
            name: l.level.clone(),
            parent_code: None,
            units: i64::from(l.units),
            staff: i64::try_from(l.staff).unwrap_or(i64::MAX),
            equipped_staff: i64::try_from(l.equipped_staff).unwrap_or(i64::MAX),
            active_workstations: None,
            servers: None,
            equipment_ratio: l.equipment_ratio,
            target_ratio: l.target_ratio,
            lan: i64::from(l.lan_units),
            broadband: i64::from(l.broadband_units),
            internet: classes[0],
            gov_wan: classes[1],
            datacentre: classes[2],
            download_bps: None,
        });
    }
    for (position, u) in figures.units.iter().enumerate() {
        let [internet, gov_wan, datacentre] = class_flags(&u.reachable);
        rows.push(SnapshotRow {
            date: date.to_string(),
            scope: "unit".into(),
            code: u.code.clone(),
            position: position as i64,
            level: u.level.clone(),
            name: u.name.clone(),
            parent_code: u.parent_code.clone(),
            units: i64::from(u.staff > 0),
            staff: i64::from(u.staff),
            equipped_staff: i64::from(u.equipped_staff),
            active_workstations: Some(i64::from(u.active_workstations)),
            servers: Some(i64::from(u.servers)),
            equipment_ratio: u.equipment_ratio,
            target_ratio: None,
            lan: i64::from(u.lan),
            broadband: i64::from(u.broadband),
            internet,
            gov_wan,
            datacentre,
            download_bps: u.download_bps,
        });
    }
    rows
}

fn count<T: TryFrom<i64> + Default>(n: i64) -> T {
    T::try_from(n).unwrap_or_default()
}

/// A level row back as the level's figures (the shares recomputed from the stored counts, as
/// [`crate::figures::compute`] computes them).
pub fn level_figures(row: &SnapshotRow) -> LevelFigures {
    let units: u32 = count(row.units);
    let share = |k: i64| (units > 0).then(|| k as f64 / f64::from(units));
    let classes = [row.internet, row.gov_wan, row.datacentre];
    LevelFigures {
        level: row.level.clone(),
        units,
        staff: count(row.staff),
        equipped_staff: count(row.equipped_staff),
        equipment_ratio: row.equipment_ratio,
        target_ratio: row.target_ratio,
        lan_units: count(row.lan),
        broadband_units: count(row.broadband),
        lan_ratio: share(row.lan),
        broadband_ratio: share(row.broadband),
        reachable_ratio: CLASSES
            .iter()
            .zip(classes)
            .filter_map(|(c, k)| share(k).map(|r| (class_name(*c), r)))
            .collect(),
    }
}

fn unit_figures(row: &SnapshotRow) -> UnitFigures {
    let classes = [row.internet, row.gov_wan, row.datacentre];
    UnitFigures {
        code: row.code.clone(),
        name: row.name.clone(),
        level: row.level.clone(),
        parent_code: row.parent_code.clone(),
        staff: count(row.staff),
        active_workstations: count(row.active_workstations.unwrap_or(0)),
        equipped_staff: count(row.equipped_staff),
        equipment_ratio: row.equipment_ratio,
        servers: count(row.servers.unwrap_or(0)),
        lan: row.lan != 0,
        broadband: row.broadband != 0,
        reachable: CLASSES
            .iter()
            .zip(classes)
            .map(|(c, k)| (class_name(*c), k != 0))
            .collect(),
        download_bps: row.download_bps,
    }
}

/// A stored snapshot back as figures (levels and units; agent counts and hosts are not kept).
pub fn figures(taken_at: i64, rows: &[SnapshotRow]) -> Figures {
    Figures {
        at: taken_at,
        levels: rows
            .iter()
            .filter(|r| r.scope == "level")
            .map(level_figures)
            .collect(),
        units: rows
            .iter()
            .filter(|r| r.scope == "unit")
            .map(unit_figures)
            .collect(),
        unit_agents: BTreeMap::new(),
        agents: Vec::new(),
        hosts: Vec::new(),
    }
}

/// What taking a snapshot did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken {
    Written {
        date: String,
        levels: usize,
        units: usize,
    },
    /// The date already had a snapshot, which stays as it is.
    Exists { date: String },
    /// No unit tree is imported yet: nothing to keep, and the date stays free for the first
    /// figures worth keeping.
    NoUnits,
}

/// Writes `figures` as the snapshot of `date`, unless that date has one.
pub async fn write(store: &dyn Store, date: &str, figures: &Figures) -> Result<Taken, StoreError> {
    let written = store
        .write_snapshot(date, figures.at, &rows(date, figures))
        .await?;
    Ok(if written {
        Taken::Written {
            date: date.to_string(),
            levels: figures.levels.len(),
            units: figures.units.len(),
        }
    } else {
        Taken::Exists {
            date: date.to_string(),
        }
    })
}

/// Takes today's snapshot (the local date of the moment the figures are computed) unless it
/// exists.
pub async fn take_today(store: &dyn Store, config: &Config) -> Result<Taken, StoreError> {
    let figures = crate::http::compute_figures(store, config).await?;
    if figures.units.is_empty() {
        return Ok(Taken::NoUnits);
    }
    let date = format_date(date_of(figures.at, config.utc_offset));
    write(store, &date, &figures).await
}

/// The snapshot of `date` as figures, or a message naming the nearest dates that have one.
pub async fn figures_at(
    store: &dyn Store,
    date: Date,
) -> Result<Result<Figures, String>, StoreError> {
    let date = format_date(date);
    if let Some((taken_at, rows)) = store.snapshot(&date).await? {
        return Ok(Ok(figures(taken_at, &rows)));
    }
    let nearest = match store.snapshot_dates_around(&date).await? {
        (None, None) => "no snapshot has been taken yet: `hatang-collector serve` takes one \
                         every day, `hatang-collector snapshot` takes today's now"
            .to_string(),
        (Some(b), None) => format!("the nearest is {b}"),
        (None, Some(a)) => format!("the nearest is {a}"),
        (Some(b), Some(a)) => format!("the nearest are {b} and {a}"),
    };
    Ok(Err(format!("no figure snapshot for {date}; {nearest}")))
}

/// Takes today's snapshot in the background of `serve` (see the module docs); stops when the
/// returned task is dropped.
pub fn spawn(state: crate::http::AppState) -> crate::Background {
    crate::Background::spawn(async move {
        loop {
            match take_today(state.store(), state.config()).await {
                Ok(Taken::Written {
                    date,
                    levels,
                    units,
                }) => {
                    tracing::info!(%date, levels, units, "figure snapshot written");
                }
                Ok(Taken::Exists { .. } | Taken::NoUnits) => {}
                Err(e) => tracing::warn!(error = %e, "figure snapshot failed; trying again later"),
            }
            let wait = until_next_midnight(crate::now(), state.config().utc_offset);
            tokio::time::sleep(wait.min(CHECK_EVERY)).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::figures::{AgentRow, Role, Rules, Speed, UnitRow, compute, group};

    const VN: UtcOffset = time::macros::offset!(+7);

    #[test]
    fn dates_are_local_to_the_configured_offset() {
        // 2025-12-31T17:00:00Z is midnight of 1 January in Hà Nội
        let midnight = 1_767_200_400;
        assert_eq!(format_date(date_of(midnight - 1, VN)), "2025-12-31");
        assert_eq!(format_date(date_of(midnight, VN)), "2026-01-01");
        assert_eq!(format_date(date_of(midnight, UtcOffset::UTC)), "2025-12-31");
        assert_eq!(
            until_next_midnight(midnight - 60, VN),
            Duration::from_secs(61)
        );
        assert_eq!(
            until_next_midnight(midnight, VN),
            Duration::from_secs(86_401)
        );
    }

    #[test]
    fn only_real_dates_parse() {
        assert_eq!(format_date(parse_date("2026-01-01").unwrap()), "2026-01-01");
        for bad in [
            "2026-02-30",
            "2026-1-1",
            "01/01/2026",
            "",
            "2026-01-01T00:00",
        ] {
            assert!(parse_date(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn figures_survive_a_snapshot_unchanged() {
        let unit = |code: &str, level: &str, parent: Option<&str>, staff, depth| UnitRow {
            code: code.into(),
            name: format!("Đơn vị {code}"),
            level: level.into(),
            parent_code: parent.map(Into::into),
            staff,
            depth,
        };
        let units = [
            unit("P", "province", None, 0, 0),
            unit("D", "district", Some("P"), 10, 1),
            unit("C1", "commune", Some("D"), 3, 2),
            unit("C2", "commune", Some("D"), 5, 2),
            unit("C3", "commune", Some("D"), 0, 2),
        ];
        let agent = |unit: &str, role, ok: [Option<i64>; 3], speed: Option<f64>| AgentRow {
            unit_code: unit.into(),
            role,
            last_report_at: Some(990),
            interval_secs: Some(60),
            lan_up: Some(true),
            class_ok_at: ok,
            speed: speed.map(|download_bps| Speed {
                at: 990,
                download_bps,
            }),
            spool: None,
            revoked: false,
        };
        let agents = [
            agent(
                "C1",
                Role::Workstation,
                [Some(990), None, Some(990)],
                Some(8e6),
            ),
            agent("C1", Role::Workstation, [None; 3], None),
            agent("C2", Role::Server, [Some(990), Some(990), None], Some(1e6)),
            agent("D", Role::Workstation, [None, Some(990), None], None),
            agent("C3", Role::Workstation, [Some(990); 3], None),
        ];
        let rules = Rules {
            equipment_window_secs: 86_400,
            targets: [("commune".to_string(), 0.88)].into(),
            broadband_window_secs: 3600,
            broadband_min_bps: 2e6,
        };
        let mut f = compute(&units, &group(&agents, &rules, 1000), &rules, 1000);
        let rows = rows("2026-01-01", &f);
        assert_eq!(rows.len(), 3 + 5);
        let commune = rows.iter().find(|r| r.code == "commune").unwrap();
        // C1 and C2 count (C3 has no staff): 2 units, both on internet, one on gov-wan
        assert_eq!(
            (commune.units, commune.staff, commune.equipped_staff),
            (2, 8, 2)
        );
        assert_eq!(
            (
                commune.lan,
                commune.broadband,
                commune.internet,
                commune.gov_wan
            ),
            (2, 1, 2, 1)
        );
        let back = figures(1000, &rows);
        // What a snapshot does not keep: live agent state.
        f.agents.clear();
        f.unit_agents.clear();
        assert_eq!(back, f);
    }
}
