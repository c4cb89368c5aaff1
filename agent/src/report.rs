//! Assembling a report from what was collected, and deciding when the inventory goes with it.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::io::{self, Write};
use std::time::{Duration, Instant};

use flate2::Compression;
use flate2::write::GzEncoder;
use hatang_protocol::{Inventory, ProbeResult, Report, SCHEMA_VERSION, Sample};
use uuid::Uuid;

/// The inventory is resent at least this often even when nothing changed, so a collector that
/// lost it (restored from an old backup, a new replica) gets it back within a day.
const INVENTORY_REFRESH: Duration = Duration::from_secs(24 * 3600);

pub fn build(
    inventory: Option<Inventory>,
    sample: Option<Sample>,
    probes: Vec<ProbeResult>,
    interval: Duration,
) -> Report {
    Report {
        schema_version: SCHEMA_VERSION,
        report_id: Uuid::now_v7(),
        agent_time: time::OffsetDateTime::now_utc(),
        interval_secs: u32::try_from(interval.as_secs()).unwrap_or(u32::MAX),
        agent_version: env!("CARGO_PKG_VERSION").to_string(),
        inventory,
        sample,
        probes,
    }
}

/// The gzip JSON body sent to the collector.
pub fn encode(report: &Report) -> io::Result<Vec<u8>> {
    let json = serde_json::to_vec(report)?;
    let mut gz = GzEncoder::new(Vec::with_capacity(json.len() / 3), Compression::default());
    gz.write_all(&json)?;
    gz.finish()
}

/// Sends the inventory when its content changed or a day has passed since it was last sent.
#[derive(Debug, Default)]
pub struct InventoryPolicy {
    last: Option<(u64, Instant)>,
}

impl InventoryPolicy {
    /// Whether `inventory` should go with the report made at `now`; remembers it if so.
    pub fn due(&mut self, inventory: &Inventory, now: Instant) -> bool {
        let hash = content_hash(inventory);
        let due = match self.last {
            None => true,
            Some((last_hash, sent)) => {
                last_hash != hash || now.duration_since(sent) >= INVENTORY_REFRESH
            }
        };
        if due {
            self.last = Some((hash, now));
        }
        due
    }
}

fn content_hash(inventory: &Inventory) -> u64 {
    let mut h = DefaultHasher::new();
    serde_json::to_string(inventory)
        .unwrap_or_default()
        .hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn encoded_report_decodes_to_the_same_report() {
        let report = build(
            None,
            Some(Sample::default()),
            Vec::new(),
            Duration::from_secs(60),
        );
        let mut json = String::new();
        flate2::read::GzDecoder::new(&encode(&report).unwrap()[..])
            .read_to_string(&mut json)
            .unwrap();
        let back: Report = serde_json::from_str(&json).unwrap();
        assert_eq!(back, report);
        assert_eq!(back.report_id.get_version_num(), 7);
        back.validate(&Default::default()).unwrap();
    }

    #[test]
    fn inventory_goes_when_changed_or_a_day_old() {
        let mut policy = InventoryPolicy::default();
        let t0 = Instant::now();
        let mut inv = Inventory {
            hostname: "pc-1".into(),
            ..Inventory::default()
        };
        assert!(policy.due(&inv, t0));
        assert!(!policy.due(&inv, t0 + Duration::from_secs(60)));
        inv.memory.total_bytes = 8 << 30;
        assert!(policy.due(&inv, t0 + Duration::from_secs(120)));
        assert!(!policy.due(&inv, t0 + Duration::from_secs(3600)));
        assert!(policy.due(&inv, t0 + Duration::from_secs(120) + INVENTORY_REFRESH));
    }
}
