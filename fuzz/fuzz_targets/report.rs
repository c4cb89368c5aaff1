//! Report decoding as `POST /api/v1/reports` does it (collector/src/http/ingest.rs `decode`):
//! optional gzip with a cap on the decompressed size, UTF-8, JSON into `Report`, then
//! `validate`. The collector's `decode` needs its HTTP state, so its pure steps are repeated
//! here with the same bounds. Nothing may panic; a report that validates must survive being
//! written out and read back.
#![no_main]

use std::io::Read;

use flate2::read::MultiGzDecoder;
use hatang_protocol::{Limits, Report};
use libfuzzer_sys::fuzz_target;

/// The collector's default `max_report_bytes`.
const MAX_REPORT_BYTES: usize = 1024 * 1024;

fuzz_target!(|data: &[u8]| {
    let raw;
    let body: &[u8] = if data.starts_with(&[0x1f, 0x8b]) {
        // Like the collector's `gunzip`: at most the cap plus one byte, refused if it is over.
        let mut out = Vec::new();
        match MultiGzDecoder::new(data)
            .take(MAX_REPORT_BYTES as u64 + 1)
            .read_to_end(&mut out)
        {
            Ok(n) if n <= MAX_REPORT_BYTES => {}
            _ => return,
        }
        raw = out;
        &raw
    } else {
        data
    };
    if std::str::from_utf8(body).is_err() {
        return;
    }
    let Ok(report) = serde_json::from_slice::<Report>(body) else {
        return;
    };
    let limits = Limits::default();
    if report.validate(&limits).is_err() {
        return;
    }
    // What was accepted can be written out and read back, and is still valid.
    let text = serde_json::to_vec(&report).expect("a valid report serialises");
    let again: Report = serde_json::from_slice(&text).expect("a valid report reads back");
    if let Err(problems) = again.validate(&limits) {
        panic!("a valid report is invalid after a round trip: {problems:?}");
    }
});
