//! The spool: reports waiting on disk until the collector acknowledged them.
//!
//! # On-disk format
//! One file per report in `<state_dir>/spool/`, named `<report_id>.json.gz`, holding exactly the
//! gzip body that is sent. Report ids are UUID v7, so name order is creation order and the oldest
//! report is sent first.
//!
//! # Invariants and crash points
//! - A report is in the spool before any attempt to send it: written to `<name>.tmp`, synced,
//!   renamed, and the directory synced. A crash before the rename leaves a `.tmp` file that
//!   [`Spool::open`] deletes (that report was never sent, and the cycle that made it did not
//!   finish); a crash after it leaves a complete file. There is no partially written report.
//! - A file is deleted only after the collector answered `202 accepted` or `200 duplicate`, or
//!   refused it for good (a 4xx that resending cannot fix). A crash between the answer and the
//!   deletion resends the report, which the collector recognises by its `report_id`: delivered
//!   exactly once.
//! - The spool holds at most `max_reports` files; when full, the oldest are deleted first and
//!   counted, so a machine offline for weeks keeps its most recent evidence.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use uuid::Uuid;

const SUFFIX: &str = ".json.gz";

#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_reports: usize,
}

/// One waiting report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: PathBuf,
    pub report_id: String,
}

impl Spool {
    /// Opens (creating) the spool under `state_dir` and clears what a crash left half-written.
    pub fn open(state_dir: &Path, max_reports: usize) -> io::Result<Self> {
        let dir = state_dir.join("spool");
        fs::create_dir_all(&dir)?;
        for entry in fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "tmp") {
                tracing::warn!(file = %path.display(), "removing a report left half-written by a crash");
                fs::remove_file(&path)?;
            }
        }
        Ok(Self { dir, max_reports })
    }

    /// Stores one gzip report durably; returns how many old reports were dropped to make room.
    pub fn push(&self, report_id: Uuid, gzip_body: &[u8]) -> io::Result<usize> {
        let name = format!("{report_id}{SUFFIX}");
        let tmp = self.dir.join(format!("{name}.tmp"));
        crate::state::write_synced(&tmp, gzip_body)?;
        fs::rename(&tmp, self.dir.join(&name))?;
        crate::state::sync_dir(&self.dir)?;
        let pending = self.pending()?;
        let excess = pending.len().saturating_sub(self.max_reports);
        for old in &pending[..excess] {
            fs::remove_file(&old.path)?;
        }
        if excess > 0 {
            tracing::warn!(
                dropped = excess,
                max_reports = self.max_reports,
                "spool full: dropped the oldest unsent reports"
            );
        }
        Ok(excess)
    }

    /// Waiting reports, oldest first.
    pub fn pending(&self) -> io::Result<Vec<Entry>> {
        let mut entries = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let path = entry?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if let Some(id) = name.strip_suffix(SUFFIX) {
                entries.push(Entry {
                    report_id: id.to_string(),
                    path: path.clone(),
                });
            }
        }
        entries.sort_by(|a, b| a.report_id.cmp(&b.report_id));
        Ok(entries)
    }

    pub fn read(&self, entry: &Entry) -> io::Result<Vec<u8>> {
        fs::read(&entry.path)
    }

    /// Forgets a report the collector acknowledged (or refused for good).
    pub fn remove(&self, entry: &Entry) -> io::Result<()> {
        match fs::remove_file(&entry.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_come_back_oldest_first_and_leave_on_remove() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), 10).unwrap();
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        for (i, id) in ids.iter().enumerate().rev() {
            spool.push(*id, format!("body{i}").as_bytes()).unwrap();
        }
        let pending = spool.pending().unwrap();
        let got: Vec<String> = pending.iter().map(|e| e.report_id.clone()).collect();
        assert_eq!(got, ids.iter().map(Uuid::to_string).collect::<Vec<_>>());
        assert_eq!(spool.read(&pending[0]).unwrap(), b"body0");
        spool.remove(&pending[0]).unwrap();
        spool.remove(&pending[0]).unwrap();
        assert_eq!(spool.pending().unwrap().len(), 2);
    }

    #[test]
    fn a_full_spool_drops_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), 2).unwrap();
        let ids: Vec<Uuid> = (0..4).map(|_| Uuid::now_v7()).collect();
        let dropped: Vec<usize> = ids
            .iter()
            .map(|id| spool.push(*id, b"x").unwrap())
            .collect();
        assert_eq!(dropped, [0, 0, 1, 1]);
        let left: Vec<String> = spool
            .pending()
            .unwrap()
            .into_iter()
            .map(|e| e.report_id)
            .collect();
        assert_eq!(left, [ids[2].to_string(), ids[3].to_string()]);
    }

    #[test]
    fn survives_restart_and_clears_half_written_files() {
        let dir = tempfile::tempdir().unwrap();
        let id = Uuid::now_v7();
        Spool::open(dir.path(), 10)
            .unwrap()
            .push(id, b"kept")
            .unwrap();
        let torn = dir
            .path()
            .join("spool")
            .join(format!("{}{SUFFIX}.tmp", Uuid::now_v7()));
        fs::write(&torn, b"half").unwrap();
        let reopened = Spool::open(dir.path(), 10).unwrap();
        assert!(!torn.exists());
        let pending = reopened.pending().unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(reopened.read(&pending[0]).unwrap(), b"kept");
    }
}
