//! Wire types exchanged between `hatang-agent` and `hatang-collector`.
//!
//! Compatibility rules, which both sides rely on:
//! - every struct tolerates unknown fields, so an old collector reads a new agent's report;
//! - new fields are added as `#[serde(default)]` (usually `Option<_>`), so a new collector reads
//!   an old agent's report;
//! - a change that breaks either rule bumps [`SCHEMA_VERSION`], and the collector refuses
//!   versions it does not know with a clear error rather than guessing.
//!
//! Units are base units throughout: bytes, seconds, ratios in 0..=1, bits per second.

mod enroll;
mod report;
mod validate;

pub use enroll::{EnrollRequest, EnrollResponse};
pub use report::{
    Cpu, Disk, Dmi, Filesystem, FilesystemUsage, FormFactor, GatewayCheck, Gpu, Interface,
    InterfaceCounters, Inventory, Memory, MemoryModule, Monitor, Os, ProbeClass, ProbeKind,
    ProbeResult, Report, Sample, Software, SpeedTest, SpoolStats, Temperature,
};
pub use validate::{Limits, ValidationError};

/// The report schema this crate writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

/// The request header in which the agent says how long a report waited in its spool before
/// this attempt to send it: whole seconds, measured on the agent's own clock from spooling to
/// sending, so it is right even when that clock is not. The body, written once when the report
/// is spooled, cannot say it. The collector dates the report's evidence `received - age`;
/// without the header (an older agent) it uses the report's `agent_time`.
pub const REPORT_AGE_HEADER: &str = "hatang-report-age";

/// A configuration file's error `message` with where it is: the line number and that line's
/// text, so the key is named (`line 73 (max_clock_skew_days = "365"): invalid type: string
/// "365", expected u32`). `at` is the byte range the parser blamed in `text`, if it said.
/// Shared by the agent's and the collector's TOML readers.
pub fn located(text: &str, at: Option<std::ops::Range<usize>>, message: &str) -> String {
    let Some(at) = at else {
        return message.to_owned();
    };
    let line = text.get(..at.start).unwrap_or(text).matches('\n').count();
    let source = text.lines().nth(line).unwrap_or_default().trim();
    format!("line {} ({source}): {message}", line + 1)
}
