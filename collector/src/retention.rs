//! Report retention: stored reports older than `report_retention_days` are deleted.
//!
//! Every accepted report is recorded under its `report_id` (its body too with
//! `keep_report_bodies`), the key that makes a resent report a duplicate instead of a second copy.
//! Nothing reads the records back for the figures: those come from each agent's latest state, the
//! inventory change log and the daily snapshots, which retention leaves alone. Kept for ever, the
//! records grow without bound (up to 0.4 KB a report on SQLite: a province of 50,000 machines
//! reporting every minute adds some 29 GB a day), so the collector deletes those older than the
//! retention period every hour, a few thousand rows per transaction so ingest never waits long
//! behind it.
//!
//! The period is at least [`crate::config::MIN_RETENTION_DAYS`]: an agent resends a report from
//! its spool for up to 7 days (its `spool_max_age_secs`), and while it may, the collector keeps
//! its `report_id` to answer `duplicate`.

use std::time::Duration;

use crate::Background;
use crate::http::AppState;
use crate::store::{Store, StoreError};

/// Rows per delete transaction.
const BATCH: u32 = 5_000;
const EVERY: Duration = Duration::from_secs(3600);

/// Deletes every report that arrived before `received_before`, a batch at a time; returns how
/// many went.
pub async fn prune(store: &dyn Store, received_before: i64) -> Result<u64, StoreError> {
    let mut total = 0;
    loop {
        let deleted = store.prune_reports(received_before, BATCH).await?;
        total += deleted;
        if deleted < u64::from(BATCH) {
            return Ok(total);
        }
        // Let queued ingest batches through between two deletes.
        tokio::task::yield_now().await;
    }
}

/// Prunes hourly in the background of `serve`; nothing when retention is off.
pub fn spawn(state: AppState) -> Option<Background> {
    let retention = state.config().report_retention_secs?;
    Some(Background::spawn(async move {
        loop {
            let before = crate::now() - retention;
            match prune(state.store(), before).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    reports = n,
                    retention_days = retention / 86_400,
                    "deleted reports past the retention period"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "deleting old reports failed; trying again in an hour")
                }
            }
            tokio::time::sleep(EVERY).await;
        }
    }))
}
