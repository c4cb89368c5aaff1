//! The spool: reports waiting on disk until the collector acknowledged them.
//!
//! Every report is written here, durably, before the first attempt to send it, and leaves only
//! when the collector acknowledged it, when the collector refused it for good, or when the bounds
//! below push it out. What left without being delivered is counted, and the count travels in the
//! next report ([`Spool::stats`]).
//!
//! # Why one file per report
//! The alternative is an append-only log with a checksum per record, as vector's disk buffer
//! does. A log needs fewer fsyncs under heavy load, but an agent writes one report a minute, and
//! a log brings its own recovery code: finding the last whole record after a torn append,
//! tracking an acknowledgement offset in a second file, compacting or rotating segments so the
//! disk is given back. With one file per report the filesystem does that work: a record becomes
//! visible by an atomic `rename`, leaves by an atomic `unlink`, and dropping the oldest is
//! deleting a file. The checksum is still there, because `rename` is only atomic for the
//! directory entry: after a power cut, a filesystem that does not order data before renames
//! (ext4 `data=writeback`, some FAT and network filesystems) can show a whole name over missing
//! or partial data.
//!
//! # On-disk format
//! `<state_dir>/spool/` holds:
//! - `<seq>-<report_id>.rec`, one per waiting report. `seq` is 20 decimal digits, one more than
//!   the highest waiting when the report was spooled, so name order is spool order even when the
//!   clock goes backwards (report ids are UUID v7, ordered by a clock). A record is a 40-byte
//!   header, all integers little-endian, then the gzip JSON body exactly as it is sent:
//!
//!   | bytes  | field                                                       |
//!   |--------|-------------------------------------------------------------|
//!   | 0..4   | magic `HTSR`                                                |
//!   | 4      | format version, 1                                           |
//!   | 5..8   | zero                                                        |
//!   | 8..16  | when it was spooled, Unix seconds (u64)                     |
//!   | 16..32 | report id (UUID bytes; must match the name)                 |
//!   | 32..36 | body length (u32)                                           |
//!   | 36..40 | CRC-32 (IEEE, as gzip's) of bytes 0..36 followed by the body |
//! - `*.tmp`: a record (or `drops.json`) being written.
//! - `drops.json`: reports dropped since install, by cause ([`Drops`]).
//! - `damaged/`: records that failed their check, kept for someone to look at (the first 16;
//!   later ones are deleted, so a failing disk cannot fill this one).
//!
//! # Invariants
//! - A record is complete before it has its name: written to `<name>.tmp`, synced, renamed,
//!   and the directory synced; [`Spool::push`] returns only then.
//! - A record is checked (length, magic, version, checksum, id) whenever it is read: when the
//!   spool is opened (every record), before it is sent, and when its age is looked at. One that
//!   fails is moved aside, counted as dropped and logged once (it is gone from the spool after);
//!   never an error, and the others keep flowing.
//! - Reports are handed out oldest first, by `seq`. After [`Spool::push`] the spool holds at
//!   most `max_reports` records and `max_bytes` bytes (or only the new report, if that alone is
//!   larger) and nothing spooled more than `max_age` ago: the oldest go first, each counted.
//! - A drop is counted only by the process whose `unlink` or `rename` removed the record, after
//!   it did, so one record is never counted twice even when two agent processes share the spool.
//!
//! # What happens at each crash point
//! - Before the write: nothing was spooled; the report is lost with the process that made it,
//!   and never claimed to be kept.
//! - During the write: a `.tmp` file remains. [`Spool::open`] deletes `.tmp` files untouched for
//!   a minute (younger ones may belong to another agent process writing right now). That report
//!   was never spooled or sent.
//! - After the rename, before or during the send: the record is complete and is sent on the next
//!   run. If a power cut tore it despite the rename, the check finds it and it is counted.
//! - After the collector stored it, before the file is deleted: the next run sends it again and
//!   the collector, which keys reports by `report_id`, answers `200 duplicate`: stored once.
//! - During the delete: `unlink` is atomic; either the record is gone or it is resent as above.
//!   Deletes are not followed by a directory sync for that reason: a lost delete costs a
//!   duplicate, never a report.
//! - Between dropping a record and saving `drops.json`: that drop is not counted. Counts can
//!   fall short by the records of one interrupted trim; they never count a report twice.
//!
//! # Clocks and counts
//! - Age is by the wall clock (the caller passes `now`, so tests move time without sleeping): a
//!   clock set years ahead and then corrected makes the backlog look old, and it is dropped as
//!   expired (and counted, so the collector sees it). Order does not depend on the clock.
//! - A report carries the counts as they were before it was spooled; the drops its own arrival
//!   causes travel with the next one.
//! - `drops.json` is read, added to and replaced without a lock: two agent processes dropping
//!   at the same instant (the service and an operator's `once`) can lose one increment. A count
//!   that cannot be saved at all (a full disk) is logged and lost; the drop itself stands.
//!
//! # Acknowledged
//! A report is acknowledged when the collector answered `202 accepted` or `200 duplicate` to it:
//! the collector commits a report before answering, so either means it is stored. Only then is
//! [`Spool::remove`] called. A report the collector refused for good (a 4xx resending cannot fix)
//! leaves through [`Spool::refused`] and is counted as dropped.

use std::fs;
use std::io;
use std::ops::AddAssign;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hatang_protocol::SpoolStats;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::state::{sync_dir, write_synced};

const SUFFIX: &str = ".rec";
const TMP_SUFFIX: &str = ".tmp";
const MAGIC: [u8; 4] = *b"HTSR";
const FORMAT_VERSION: u8 = 1;
/// Bytes before the body in every record.
const HEADER_LEN: usize = 40;
const DROPS_FILE: &str = "drops.json";
const DAMAGED_DIR: &str = "damaged";
/// Damaged records kept in `damaged/` for someone to look at; beyond this they are deleted.
const DAMAGED_KEPT: usize = 16;
/// A `.tmp` file untouched this long was left by a crash, not by a writer still at work.
const ABANDONED_TMP: Duration = Duration::from_secs(60);

/// How much the spool may hold; the oldest reports are dropped beyond any of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub max_reports: usize,
    /// Bytes of records on disk, headers included.
    pub max_bytes: u64,
    pub max_age: Duration,
}

/// Reports that left the spool without being delivered, by cause, since the agent was installed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Drops {
    /// The spool was over `max_reports` or `max_bytes`.
    pub full: u64,
    /// Spooled longer ago than `max_age`.
    pub expired: u64,
    /// Failed its check: cut short, a wrong checksum, not a record.
    pub damaged: u64,
    /// The collector refused it for good.
    pub refused: u64,
}

impl Drops {
    /// Every cause together. The counts come from a file on disk that anybody may edit, so
    /// sums stop at `u64::MAX` rather than wrap (or panic, in a debug build).
    pub fn total(&self) -> u64 {
        self.full
            .saturating_add(self.expired)
            .saturating_add(self.damaged)
            .saturating_add(self.refused)
    }
}

impl AddAssign for Drops {
    fn add_assign(&mut self, other: Self) {
        self.full = self.full.saturating_add(other.full);
        self.expired = self.expired.saturating_add(other.expired);
        self.damaged = self.damaged.saturating_add(other.damaged);
        self.refused = self.refused.saturating_add(other.refused);
    }
}

/// One waiting report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: PathBuf,
    pub report_id: Uuid,
    /// Bytes on disk, header included.
    pub len: u64,
    seq: u64,
}

#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    bounds: Bounds,
}

impl Spool {
    /// Opens (creating) the spool under `state_dir`: clears what a crash left half-written,
    /// checks every record (setting aside those that fail) and applies the bounds as of `now`.
    pub fn open(state_dir: &Path, bounds: Bounds, now: SystemTime) -> io::Result<Self> {
        let spool = Self {
            dir: state_dir.join("spool"),
            bounds,
        };
        fs::create_dir_all(&spool.dir)?;
        for entry in fs::read_dir(&spool.dir)? {
            let entry = entry?;
            if !entry.file_name().to_string_lossy().ends_with(TMP_SUFFIX) {
                continue;
            }
            let idle = entry.metadata().and_then(|m| m.modified()).ok();
            if idle.is_some_and(|t| now.duration_since(t).is_ok_and(|i| i >= ABANDONED_TMP)) {
                let path = entry.path();
                tracing::warn!(file = %path.display(), "removing a file left half-written by a crash");
                remove_if_present(&path)?;
            }
        }
        for entry in spool.pending()? {
            spool.load(&entry)?;
        }
        spool.trim(spool.pending()?, now)?;
        Ok(spool)
    }

    /// The directory the reports wait in, for messages.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stores one report body durably, then applies the bounds as of `now`, never dropping this
    /// report. Returns how many older reports were dropped.
    pub fn push(&self, report_id: Uuid, body: &[u8], now: SystemTime) -> io::Result<usize> {
        let mut pending = self.pending()?;
        // Saturating: after a record named with the last number (copied in, typed by hand) the
        // new ones share it, and their report ids (UUID v7, by time) keep them in order.
        let seq = pending.last().map_or(0, |e| e.seq.saturating_add(1));
        let record = encode(report_id, unix_secs(now), body)?;
        let path = self.dir.join(format!("{seq:020}-{report_id}{SUFFIX}"));
        let mut tmp = path.clone().into_os_string();
        tmp.push(TMP_SUFFIX);
        replace(Path::new(&tmp), &path, &record)?;
        sync_dir(&self.dir)?;
        pending.push(Entry {
            path,
            report_id,
            len: record.len() as u64,
            seq,
        });
        self.trim(pending, now)
    }

    /// Waiting reports, oldest first. Listing does not check them: a damaged record is found
    /// (and set aside) when it is read.
    pub fn pending(&self) -> io::Result<Vec<Entry>> {
        let mut entries = Vec::new();
        for dirent in fs::read_dir(&self.dir)? {
            let dirent = dirent?;
            let Some((seq, report_id)) = dirent.file_name().to_str().and_then(parse_name) else {
                continue;
            };
            let len = match dirent.metadata() {
                Ok(m) => m.len(),
                // Sent or dropped by another agent process since the listing.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            entries.push(Entry {
                path: dirent.path(),
                report_id,
                len,
                seq,
            });
        }
        entries.sort_by_key(|e| (e.seq, e.report_id));
        Ok(entries)
    }

    /// The report to send, checked. `None` when there is nothing to send: the record failed
    /// its check (it was set aside and counted) or another agent process already took it.
    pub fn read(&self, entry: &Entry) -> io::Result<Option<Spooled>> {
        Ok(self.load(entry)?.map(|r| Spooled {
            body: r.body,
            spooled_at: UNIX_EPOCH + Duration::from_secs(r.spooled_at),
        }))
    }

    /// Forgets a report the collector acknowledged.
    pub fn remove(&self, entry: &Entry) -> io::Result<()> {
        remove_if_present(&entry.path).map(drop)
    }

    /// Forgets a report the collector refused for good, counting it as dropped.
    pub fn refused(&self, entry: &Entry) -> io::Result<()> {
        if remove_if_present(&entry.path)? {
            self.count(Drops {
                refused: 1,
                ..Drops::default()
            });
        }
        Ok(())
    }

    /// Reports dropped since install, by cause. A `drops.json` that cannot be parsed counts as
    /// zero (with a warning) rather than stopping the agent.
    pub fn drops(&self) -> io::Result<Drops> {
        let path = self.dir.join(DROPS_FILE);
        match fs::read(&path) {
            Ok(bytes) => Ok(serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(file = %path.display(), error = %e, "drop counts unreadable; counting from zero");
                Drops::default()
            })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Drops::default()),
            Err(e) => Err(e),
        }
    }

    /// What the next report says about the spool.
    pub fn stats(&self) -> io::Result<SpoolStats> {
        Ok(SpoolStats {
            dropped_reports: self.drops()?.total(),
            waiting_reports: self.pending()?.len() as u64,
        })
    }

    /// Drops the oldest of `pending` while the bounds are exceeded or the oldest is damaged or
    /// expired; the newest is dropped only for age. Returns how many went for size or age.
    fn trim(&self, pending: Vec<Entry>, now: SystemTime) -> io::Result<usize> {
        let mut count = pending.len();
        let mut bytes: u64 = pending.iter().map(|e| e.len).sum();
        let mut dropped = Drops::default();
        let max_age = self.bounds.max_age.as_secs();
        for entry in &pending {
            let full =
                count > self.bounds.max_reports || (bytes > self.bounds.max_bytes && count > 1);
            let counter = if full {
                Some(&mut dropped.full)
            } else {
                match self.load(entry)? {
                    // Damaged (set aside and counted by `load`) or taken by another process.
                    None => None,
                    Some(r) if unix_secs(now).saturating_sub(r.spooled_at) <= max_age => break,
                    Some(_) => Some(&mut dropped.expired),
                }
            };
            if let Some(counter) = counter
                && remove_if_present(&entry.path)?
            {
                *counter += 1;
            }
            count -= 1;
            bytes -= entry.len;
        }
        if dropped.total() > 0 {
            tracing::warn!(
                full = dropped.full,
                expired = dropped.expired,
                max_reports = self.bounds.max_reports,
                max_bytes = self.bounds.max_bytes,
                max_age_secs = self.bounds.max_age.as_secs(),
                "spool bounds reached: dropped the oldest unsent reports"
            );
            self.count(dropped);
        }
        Ok((dropped.full + dropped.expired) as usize)
    }

    /// Reads and checks one record; one that fails is set aside, counted and logged here. So is
    /// one this process may not read, or a directory by a record's name (an operator's `sudo
    /// hatang-agent once` beside the service can leave a root-only record): as an error it
    /// stopped the whole spool at that file, and the agent's start with it. Other errors (out of
    /// file handles, say) say nothing about the record and stay errors.
    fn load(&self, entry: &Entry) -> io::Result<Option<Record>> {
        // Only a regular file is read: a FIFO by a record's name would block the read (and the
        // agent) for ever, a symlink loop fail it with an error that says nothing of the rest.
        // This process writes nothing else here.
        match fs::symlink_metadata(&entry.path) {
            Ok(m) if !m.is_file() => {
                self.set_aside(entry, "not a regular file")?;
                return Ok(None);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            _ => {}
        }
        let bytes = match fs::read(&entry.path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::PermissionDenied | io::ErrorKind::IsADirectory
                ) =>
            {
                self.set_aside(entry, &format!("cannot be read: {e}"))?;
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        match decode(bytes, entry.report_id) {
            Ok(record) => Ok(Some(record)),
            Err(reason) => {
                self.set_aside(entry, &reason)?;
                Ok(None)
            }
        }
    }

    fn set_aside(&self, entry: &Entry, reason: &str) -> io::Result<()> {
        let damaged = self.dir.join(DAMAGED_DIR);
        fs::create_dir_all(&damaged)?;
        let keep = fs::read_dir(&damaged)?.count() < DAMAGED_KEPT;
        let moved = if keep {
            let to = damaged.join(entry.path.file_name().unwrap_or_default());
            match fs::rename(&entry.path, to) {
                Ok(()) => true,
                Err(e) if e.kind() == io::ErrorKind::NotFound => false,
                Err(e) => return Err(e),
            }
        } else {
            remove_if_present(&entry.path)?
        };
        if moved {
            tracing::warn!(
                report = %entry.report_id,
                file = %entry.path.display(),
                %reason,
                kept = keep,
                "a spooled report failed its check; set aside and counted as dropped"
            );
            self.count(Drops {
                damaged: 1,
                ..Drops::default()
            });
        }
        Ok(())
    }

    /// Adds to the persistent drop counts (written like a record: tmp, sync, rename, sync).
    /// Called once the records are gone, which is what matters: a count that cannot be saved
    /// (a full disk; on Windows, another agent process replacing the file at that instant) is
    /// logged and lost, as the module allows, and never turns the drop into an error.
    fn count(&self, more: Drops) {
        if let Err(e) = self.add_to_counts(more) {
            tracing::warn!(error = %e, ?more, "reports dropped but the count could not be saved");
        }
    }

    fn add_to_counts(&self, more: Drops) -> io::Result<()> {
        let mut drops = self.drops()?;
        drops += more;
        // A name of this process's own: two agent processes counting at once each rename their
        // own file, where one shared name had the second rename fail with "not found".
        static WRITES: AtomicU64 = AtomicU64::new(0);
        let n = WRITES.fetch_add(1, Ordering::Relaxed);
        let tmp = self.dir.join(format!(
            "{DROPS_FILE}.{}-{n}{TMP_SUFFIX}",
            std::process::id()
        ));
        replace(
            &tmp,
            &self.dir.join(DROPS_FILE),
            &serde_json::to_vec(&drops)?,
        )?;
        sync_dir(&self.dir)
    }
}

/// A waiting report as [`Spool::read`] gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spooled {
    /// The gzip JSON body, exactly as it is sent.
    pub body: Vec<u8>,
    /// When it was spooled, by this machine's clock (to the second).
    pub spooled_at: SystemTime,
}

/// A record read back and checked.
struct Record {
    spooled_at: u64,
    body: Vec<u8>,
}

fn encode(report_id: Uuid, spooled_at: u64, body: &[u8]) -> io::Result<Vec<u8>> {
    let len = u32::try_from(body.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "report larger than 4 GiB"))?;
    let mut record = Vec::with_capacity(HEADER_LEN + body.len());
    record.extend_from_slice(&MAGIC);
    record.extend_from_slice(&[FORMAT_VERSION, 0, 0, 0]);
    record.extend_from_slice(&spooled_at.to_le_bytes());
    record.extend_from_slice(report_id.as_bytes());
    record.extend_from_slice(&len.to_le_bytes());
    let crc = checksum(&record, body);
    record.extend_from_slice(&crc.to_le_bytes());
    record.extend_from_slice(body);
    Ok(record)
}

fn checksum(head: &[u8], body: &[u8]) -> u32 {
    let mut crc = crc32fast::Hasher::new();
    crc.update(head);
    crc.update(body);
    crc.finalize()
}

/// The checked record, or why it fails its check.
fn decode(mut bytes: Vec<u8>, report_id: Uuid) -> Result<Record, String> {
    let le = |range: std::ops::Range<usize>| -> u64 {
        bytes[range]
            .iter()
            .rev()
            .fold(0, |n, b| (n << 8) | u64::from(*b))
    };
    if bytes.len() < HEADER_LEN {
        return Err(format!("{} bytes, shorter than a header", bytes.len()));
    }
    if bytes[..4] != MAGIC {
        return Err("not a spool record".into());
    }
    if bytes[4] != FORMAT_VERSION {
        return Err(format!(
            "format version {}, expected {FORMAT_VERSION}",
            bytes[4]
        ));
    }
    let body_len = bytes.len() - HEADER_LEN;
    if le(32..36) != body_len as u64 {
        return Err(format!(
            "{body_len} body bytes where the header says {}",
            le(32..36)
        ));
    }
    if le(36..40) != u64::from(checksum(&bytes[..36], &bytes[HEADER_LEN..])) {
        return Err("checksum mismatch".into());
    }
    if bytes[16..32] != report_id.as_bytes()[..] {
        return Err("holds another report than its name says".into());
    }
    let spooled_at = le(8..16);
    bytes.drain(..HEADER_LEN);
    Ok(Record {
        spooled_at,
        body: bytes,
    })
}

/// `<seq>-<report_id>.rec` → (seq, report id).
fn parse_name(name: &str) -> Option<(u64, Uuid)> {
    let (seq, id) = name.strip_suffix(SUFFIX)?.split_once('-')?;
    Some((seq.parse().ok()?, id.parse().ok()?))
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Deletes `path`; whether it was there to delete (another process may have been first).
/// `bytes` as `path`, whole or not at all: written to `tmp` and synced, then renamed over
/// `path`. A write that fails (a full disk) removes `tmp` rather than leave it for the next
/// start to find.
fn replace(tmp: &Path, path: &Path, bytes: &[u8]) -> io::Result<()> {
    let written = write_synced(tmp, bytes).and_then(|()| fs::rename(tmp, path));
    if written.is_err() {
        let _ = fs::remove_file(tmp);
    }
    written
}

fn remove_if_present(path: &Path) -> io::Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use proptest::prelude::*;

    use super::*;

    const BOUNDS: Bounds = Bounds {
        max_reports: 6,
        max_bytes: 600,
        max_age: Duration::from_secs(300),
    };

    /// The simulated clock: `secs` after a fixed moment.
    fn clock(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_767_225_600 + secs)
    }

    fn ids(spool: &Spool) -> Vec<Uuid> {
        spool
            .pending()
            .unwrap()
            .iter()
            .map(|e| e.report_id)
            .collect()
    }

    /// A spool in `dir` holding `n` reports with ids 1 to `n`.
    fn spool_of(dir: &Path, n: u128) -> Spool {
        let spool = Spool::open(dir, BOUNDS, clock(0)).unwrap();
        for i in 1..=n {
            spool.push(Uuid::from_u128(i), b"report", clock(0)).unwrap();
        }
        spool
    }

    /// The reports `waiting` are all that is left, and `damaged` were set aside and counted.
    fn assert_set_aside(dir: &Path, spool: &Spool, waiting: &[u128], damaged: u64) {
        let waiting: Vec<Uuid> = waiting.iter().map(|&i| Uuid::from_u128(i)).collect();
        assert_eq!(ids(spool), waiting);
        assert_eq!(spool.drops().unwrap().damaged, damaged);
        let aside = dir.join("spool").join(DAMAGED_DIR);
        assert_eq!(fs::read_dir(aside).unwrap().count() as u64, damaged);
    }

    /// `drops.json` is a file anybody may edit: counts near the top of `u64` stay there when
    /// more are added and totalled, instead of wrapping to small numbers (or panicking).
    #[test]
    fn drop_counts_edited_up_to_the_limit_stay_at_it() {
        let dir = tempfile::tempdir().unwrap();
        let spool = spool_of(dir.path(), 1);
        let near = u64::MAX - 1;
        fs::write(
            dir.path().join("spool").join(DROPS_FILE),
            format!(r#"{{"full": {near}, "expired": {near}, "damaged": 0, "refused": {near}}}"#),
        )
        .unwrap();
        spool.refused(&spool.pending().unwrap()[0]).unwrap();
        let drops = spool.drops().unwrap();
        assert_eq!((drops.full, drops.refused), (near, u64::MAX));
        assert_eq!(drops.total(), u64::MAX);
    }

    #[test]
    fn reports_come_back_oldest_first_and_leave_on_remove() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), BOUNDS, clock(0)).unwrap();
        // Spool order, not id order: the clock may go backwards between two reports.
        let ids_in_order: Vec<Uuid> = (0..3).rev().map(|i| Uuid::from_u128(i + 1)).collect();
        for (i, id) in ids_in_order.iter().enumerate() {
            spool
                .push(*id, format!("body{i}").as_bytes(), clock(0))
                .unwrap();
        }
        assert_eq!(ids(&spool), ids_in_order);
        let pending = spool.pending().unwrap();
        assert_eq!(pending[0].len, (HEADER_LEN + 5) as u64);
        assert_eq!(spool.read(&pending[0]).unwrap().unwrap().body, b"body0");
        spool.remove(&pending[0]).unwrap();
        spool.remove(&pending[0]).unwrap();
        assert_eq!(ids(&spool), ids_in_order[1..]);
        assert_eq!(spool.drops().unwrap(), Drops::default());
    }

    #[test]
    fn bounds_drop_the_oldest_and_the_counts_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let bounds = Bounds {
            max_reports: 2,
            ..BOUNDS
        };
        let spool = Spool::open(dir.path(), bounds, clock(0)).unwrap();
        let made: Vec<Uuid> = (1..=4).map(Uuid::from_u128).collect();
        let dropped: Vec<usize> = made
            .iter()
            .map(|id| spool.push(*id, b"x", clock(0)).unwrap())
            .collect();
        assert_eq!(dropped, [0, 0, 1, 1]);
        assert_eq!(ids(&spool), made[2..]);
        let reopened = Spool::open(dir.path(), bounds, clock(301)).unwrap();
        assert!(ids(&reopened).is_empty(), "all expired");
        let drops = Drops {
            full: 2,
            expired: 2,
            ..Drops::default()
        };
        assert_eq!(reopened.drops().unwrap(), drops);
        assert_eq!(
            reopened.stats().unwrap(),
            SpoolStats {
                dropped_reports: 4,
                waiting_reports: 0
            }
        );
    }

    #[test]
    fn a_damaged_record_is_set_aside_counted_and_the_rest_flow() {
        let dir = tempfile::tempdir().unwrap();
        let spool = spool_of(dir.path(), 3);
        let pending = spool.pending().unwrap();
        let mut bytes = fs::read(&pending[1].path).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        fs::write(&pending[1].path, bytes).unwrap();

        let bodies: Vec<Option<Vec<u8>>> = pending
            .iter()
            .map(|e| spool.read(e).unwrap().map(|s| s.body))
            .collect();

        assert_eq!(
            bodies,
            [Some(b"report".to_vec()), None, Some(b"report".to_vec())]
        );
        assert_set_aside(dir.path(), &spool, &[1, 3], 1);
    }

    #[test]
    fn a_record_that_cannot_be_read_is_set_aside_and_blocks_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let spool = spool_of(dir.path(), 3);
        // A directory by the second record's name: unreadable as a file whoever reads it (a
        // file without read permission would be read anyway by root, who runs the tests).
        let second = spool.pending().unwrap()[1].path.clone();
        fs::remove_file(&second).unwrap();
        fs::create_dir(&second).unwrap();

        let reopened = Spool::open(dir.path(), BOUNDS, clock(0)).unwrap();

        assert_eq!(ids(&reopened), [Uuid::from_u128(1), Uuid::from_u128(3)]);
        let pending = reopened.pending().unwrap();
        assert_eq!(reopened.read(&pending[1]).unwrap().unwrap().body, b"report");
        assert_eq!(reopened.drops().unwrap().damaged, 1);
        assert!(
            dir.path()
                .join("spool")
                .join(DAMAGED_DIR)
                .join(second.file_name().unwrap())
                .is_dir()
        );
    }

    /// A FIFO by a record's name (`mkfifo`, a copy tool, a curious operator) blocked the read
    /// forever: `once` and `run` hung at start, every report behind it with them. A symlink
    /// loop stopped the spool from opening at all.
    #[cfg(unix)]
    #[test]
    fn a_record_that_is_no_file_is_set_aside_without_reading_it() {
        let dir = tempfile::tempdir().unwrap();
        let spool = spool_of(dir.path(), 4);
        let pending = spool.pending().unwrap();
        let (fifo, looped) = (pending[1].path.clone(), pending[2].path.clone());
        fs::remove_file(&fifo).unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        fs::remove_file(&looped).unwrap();
        std::os::unix::fs::symlink(&looped, &looped).unwrap();

        let (done, opened) = std::sync::mpsc::channel();
        let path = dir.path().to_path_buf();
        std::thread::spawn(move || done.send(Spool::open(&path, BOUNDS, clock(0)).map(drop)));
        let opened = opened.recv_timeout(Duration::from_secs(10));

        assert!(matches!(opened, Ok(Ok(()))), "{opened:?}");
        assert_set_aside(dir.path(), &spool, &[1, 4], 2);
    }

    /// A record named with the largest sequence number (copied in, or a name typed by hand):
    /// the next report's number overflowed, a panic in a debug build and, wrapped to 0 in a
    /// release one, a new report sent before every older one.
    #[test]
    fn a_record_with_the_last_sequence_number_is_still_followed_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), BOUNDS, clock(0)).unwrap();
        spool.push(Uuid::from_u128(1), b"old", clock(0)).unwrap();
        let old = spool.pending().unwrap().remove(0).path;
        let last = old.with_file_name(format!("{}-{}{SUFFIX}", u64::MAX, Uuid::from_u128(1)));
        fs::rename(&old, &last).unwrap();

        spool.push(Uuid::from_u128(2), b"new", clock(0)).unwrap();

        assert_eq!(ids(&spool), [Uuid::from_u128(1), Uuid::from_u128(2)]);
    }

    #[test]
    fn a_write_that_fails_leaves_no_tmp_file() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("x.rec.tmp");
        // Renaming a file over a directory that holds something fails, as a full disk would
        // fail the write: either way the half-made file goes.
        let taken = dir.path().join("x.rec");
        fs::create_dir(&taken).unwrap();
        fs::write(taken.join("inside"), b"").unwrap();
        assert!(replace(&tmp, &taken, b"record").is_err());
        assert!(!tmp.exists());
        replace(&tmp, &dir.path().join("y.rec"), b"record").unwrap();
        assert_eq!(fs::read(dir.path().join("y.rec")).unwrap(), b"record");
        assert!(!tmp.exists());
    }

    #[test]
    fn drops_counted_at_once_by_two_writers_are_never_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let bounds = Bounds {
            max_reports: 1000,
            max_bytes: 1 << 20,
            ..BOUNDS
        };
        let spool = Spool::open(dir.path(), bounds, clock(0)).unwrap();
        for i in 1..=200 {
            spool.push(Uuid::from_u128(i), b"r", clock(0)).unwrap();
        }
        let pending = spool.pending().unwrap();
        let (evens, odds): (Vec<_>, Vec<_>) = pending.iter().partition(|e| e.seq % 2 == 0);
        std::thread::scope(|s| {
            for half in [evens, odds] {
                let spool = &spool;
                s.spawn(move || {
                    for entry in half {
                        spool.refused(entry).unwrap();
                    }
                });
            }
        });
        assert!(spool.pending().unwrap().is_empty());
        // Counted without a lock: an increment may be lost to the other writer, never doubled.
        let refused = spool.drops().unwrap().refused;
        assert!((1..=200).contains(&refused), "{refused}");
        let left: Vec<_> = fs::read_dir(dir.path().join("spool"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().ends_with(TMP_SUFFIX))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn open_clears_abandoned_tmp_files_and_spares_fresh_ones() {
        let dir = tempfile::tempdir().unwrap();
        // File times are real times: so is this test's clock.
        let now = SystemTime::now();
        Spool::open(dir.path(), BOUNDS, now)
            .unwrap()
            .push(Uuid::from_u128(1), b"kept", now)
            .unwrap();
        let spool_dir = dir.path().join("spool");
        let torn = spool_dir.join(format!(
            "00000000000000000001-{}.rec.tmp",
            Uuid::from_u128(2)
        ));
        let fresh = spool_dir.join("drops.json.tmp");
        fs::write(&torn, b"half").unwrap();
        fs::write(&fresh, b"{").unwrap();
        fs::File::options()
            .write(true)
            .open(&torn)
            .unwrap()
            .set_modified(now - ABANDONED_TMP)
            .unwrap();

        let reopened = Spool::open(dir.path(), BOUNDS, now).unwrap();

        assert!(!torn.exists());
        assert!(fresh.exists(), "may be another process's write in progress");
        let pending = reopened.pending().unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(reopened.read(&pending[0]).unwrap().unwrap().body, b"kept");
    }

    #[test]
    fn every_kind_of_damage_is_named() {
        let id = Uuid::from_u128(7);
        let good = encode(id, 5, b"body").unwrap();
        let damaged = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut bytes = good.clone();
            f(&mut bytes);
            decode(bytes, id).err().unwrap()
        };
        assert_eq!(
            damaged(&|b| b.truncate(10)),
            "10 bytes, shorter than a header"
        );
        assert_eq!(damaged(&|b| b[0] = b'X'), "not a spool record");
        assert_eq!(damaged(&|b| b[4] = 2), "format version 2, expected 1");
        assert_eq!(
            damaged(&|b| b.truncate(42)),
            "2 body bytes where the header says 4"
        );
        assert_eq!(damaged(&|b| b[9] ^= 1), "checksum mismatch");
        assert_eq!(
            decode(good.clone(), Uuid::from_u128(8)).err().unwrap(),
            "holds another report than its name says"
        );
        let record = decode(good, id).unwrap();
        assert_eq!(
            (record.spooled_at, record.body.as_slice()),
            (5, &b"body"[..])
        );
    }

    /// One step of the property test.
    #[derive(Debug, Clone)]
    enum Op {
        Push(Vec<u8>),
        /// The oldest `n` are read and sent: acknowledged, or refused for good.
        Send {
            n: usize,
            refused: bool,
        },
        /// The process dies and a new one opens the spool.
        Restart,
        /// The record at `index` (modulo those waiting) is cut to `at` bytes or has the byte at
        /// `at` flipped (modulo its length).
        Damage {
            index: usize,
            at: usize,
            cut: bool,
        },
        /// The clock moves on.
        Wait(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            // Small bodies fill the spool by count, large ones by bytes (one alone may exceed it).
            4 => prop::collection::vec(any::<u8>(), 0..40).prop_map(Op::Push),
            2 => prop::collection::vec(any::<u8>(), 0..640).prop_map(Op::Push),
            3 => (1..4usize, prop::bool::weighted(0.2))
                .prop_map(|(n, refused)| Op::Send { n, refused }),
            1 => Just(Op::Restart),
            1 => (any::<usize>(), any::<usize>(), any::<bool>())
                .prop_map(|(index, at, cut)| Op::Damage { index, at, cut }),
            // Steps of 75 s against a 300 s bound: reports reach exactly the bound, too.
            1 => (0..=3u64).prop_map(|n| Op::Wait(n * 75)),
        ]
    }

    struct Modelled {
        id: Uuid,
        body: Vec<u8>,
        spooled_at: u64,
        len: u64,
        damaged: bool,
    }

    /// What the spool should hold, in memory, with the same bounds and the same clock.
    #[derive(Default)]
    struct Model {
        records: VecDeque<Modelled>,
        drops: Drops,
        now: u64,
        next_id: u128,
    }

    impl Model {
        /// The spool's rule: from the oldest, drop while over a bound (without reading), or
        /// damaged or expired (found by reading); stop at the first that stays.
        fn trim(&mut self) {
            while let Some(oldest) = self.records.front() {
                let count = self.records.len();
                let bytes: u64 = self.records.iter().map(|r| r.len).sum();
                if count > BOUNDS.max_reports || (bytes > BOUNDS.max_bytes && count > 1) {
                    self.drops.full += 1;
                } else if oldest.damaged {
                    self.drops.damaged += 1;
                } else if self.now - oldest.spooled_at > BOUNDS.max_age.as_secs() {
                    self.drops.expired += 1;
                } else {
                    break;
                }
                self.records.pop_front();
            }
        }
    }

    /// Applies `op` to both; asserts what the spool answered on the way.
    fn step(spool: &mut Spool, model: &mut Model, dir: &Path, op: Op) {
        match op {
            Op::Push(body) => {
                model.next_id += 1;
                let id = Uuid::from_u128(model.next_id);
                spool.push(id, &body, clock(model.now)).unwrap();
                model.records.push_back(Modelled {
                    id,
                    len: (HEADER_LEN + body.len()) as u64,
                    body,
                    spooled_at: model.now,
                    damaged: false,
                });
                model.trim();
            }
            Op::Send { n, refused } => {
                for entry in spool.pending().unwrap().iter().take(n) {
                    let expected = model.records.pop_front().unwrap();
                    match spool.read(entry).unwrap() {
                        None => {
                            assert!(expected.damaged, "a sound record was refused");
                            model.drops.damaged += 1;
                        }
                        Some(spooled) => {
                            assert!(!expected.damaged, "a damaged record passed its check");
                            assert_eq!(
                                spooled,
                                Spooled {
                                    body: expected.body,
                                    spooled_at: clock(expected.spooled_at),
                                }
                            );
                            if refused {
                                spool.refused(entry).unwrap();
                                model.drops.refused += 1;
                            } else {
                                spool.remove(entry).unwrap();
                            }
                        }
                    }
                }
            }
            Op::Restart => {
                *spool = Spool::open(dir, BOUNDS, clock(model.now)).unwrap();
                let before = model.records.len();
                model.records.retain(|r| !r.damaged);
                model.drops.damaged += (before - model.records.len()) as u64;
                model.trim();
            }
            Op::Damage { index, at, cut } => {
                let pending = spool.pending().unwrap();
                if pending.is_empty() {
                    return;
                }
                let index = index % pending.len();
                let path = &pending[index].path;
                let mut bytes = fs::read(path).unwrap();
                if bytes.is_empty() {
                    return;
                }
                let at = at % bytes.len();
                let record = &mut model.records[index];
                // Once is enough: a second flip of the same byte would undo the first, and the
                // record would be sound again while the model thought it damaged.
                if record.damaged {
                    return;
                }
                if cut {
                    bytes.truncate(at);
                    record.len = at as u64;
                } else {
                    bytes[at] ^= 0x5a;
                }
                record.damaged = true;
                fs::write(path, bytes).unwrap();
            }
            Op::Wait(secs) => model.now += secs,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn the_spool_behaves_like_its_model(ops in prop::collection::vec(op(), 1..40)) {
            let dir = tempfile::tempdir().unwrap();
            let mut model = Model::default();
            let mut spool = Spool::open(dir.path(), BOUNDS, clock(0)).unwrap();
            for op in ops {
                step(&mut spool, &mut model, dir.path(), op);
                let pending = spool.pending().unwrap();
                let got: Vec<(Uuid, u64)> = pending.iter().map(|e| (e.report_id, e.len)).collect();
                let want: Vec<(Uuid, u64)> = model.records.iter().map(|r| (r.id, r.len)).collect();
                prop_assert_eq!(got, want);
                prop_assert_eq!(spool.drops().unwrap(), model.drops);
                prop_assert!(pending.len() <= BOUNDS.max_reports);
                let bytes: u64 = pending.iter().map(|e| e.len).sum();
                prop_assert!(bytes <= BOUNDS.max_bytes || pending.len() == 1);
            }
        }
    }
}
