//! What one report proves about an agent's connectivity, derived once at ingest.
//!
//! Figures must not parse stored JSON for every agent on every scrape, so ingest turns a report
//! into a few facts (LAN seen, which probe classes succeeded and when) that the store keeps on
//! the agent's row.

use hatang_protocol::{ProbeClass, Report};

/// The connectivity facts of one report.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Evidence {
    /// `None` when the report carried no inventory (the previous verdict stands).
    pub lan_up: Option<bool>,
    /// When a probe of each class succeeded, if one did: internet, gov-wan, datacentre.
    pub internet_ok_at: Option<i64>,
    pub gov_wan_ok_at: Option<i64>,
    pub datacentre_ok_at: Option<i64>,
    /// A speed test that measured the download, with its time.
    pub speed: Option<SpeedEvidence>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpeedEvidence {
    pub at: i64,
    pub download_bps: f64,
    /// Absent when the upload half failed.
    pub upload_bps: Option<f64>,
}

/// The evidence of `report`, which arrived at `received_at` (the collector's clock) after
/// waiting `waited` seconds in the agent's spool, if the agent said so.
///
/// The evidence is dated when the report was made, and never later than its receipt, so a
/// spooled report that arrives a day late proves nothing about now. With `waited` (the agent
/// measures it on its own clock, from spooling to sending: `Hatang-Report-Age`) that is
/// `received_at - waited`, right whatever the agent's clock says; a PC whose clock runs two
/// hours slow otherwise dated all its evidence two hours back, and its office never had
/// broadband in the figures. Without it (an older agent), the report's `agent_time`.
pub fn of(report: &Report, received_at: i64, waited: Option<u64>) -> Evidence {
    let at = match waited {
        Some(secs) => received_at.saturating_sub(i64::try_from(secs).unwrap_or(i64::MAX)),
        None => report.agent_time.unix_timestamp().min(received_at),
    };
    let ok = |class: ProbeClass| {
        report
            .probes
            .iter()
            .any(|p| p.class == class && p.successes > 0)
            .then_some(at)
    };
    Evidence {
        lan_up: report.inventory.as_ref().map(|inv| {
            inv.interfaces
                .iter()
                .any(|i| i.up && !i.loopback && i.default_route)
        }),
        internet_ok_at: ok(ProbeClass::Internet),
        gov_wan_ok_at: ok(ProbeClass::GovWan),
        datacentre_ok_at: ok(ProbeClass::Datacentre),
        speed: report.speed.as_ref().and_then(|s| {
            s.download_bits_per_second
                .map(|download_bps| SpeedEvidence {
                    at,
                    download_bps,
                    upload_bps: s.upload_bits_per_second,
                })
        }),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    /// Built from JSON so fields added to the protocol later need no change here.
    fn report(agent_time: i64, extra: Value) -> Report {
        let mut v = json!({
            "schema_version": 1,
            "report_id": uuid::Uuid::now_v7(),
            "agent_time": time::OffsetDateTime::from_unix_timestamp(agent_time)
                .unwrap()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap(),
            "interval_secs": 60,
            "agent_version": "t",
        });
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        serde_json::from_value(v).unwrap()
    }

    fn probe(class: &str, successes: u32) -> Value {
        json!({"name": "p", "kind": "tcp", "class": class, "target": "t:1",
               "attempts": 4, "successes": successes})
    }

    fn lan(interfaces: Value) -> Option<bool> {
        let inventory = json!({"inventory": {
            "hostname": "h", "os": {"family": "linux", "arch": "x86_64"},
            "cpu": {"threads": 1}, "memory": {"total_bytes": 1, "swap_total_bytes": 0},
            "interfaces": interfaces,
        }});
        of(&report(100, inventory), 100, None).lan_up
    }

    fn iface(up: bool, loopback: bool, default_route: bool) -> Value {
        json!({"name": "x", "up": up, "loopback": loopback, "default_route": default_route})
    }

    #[test]
    fn lan_needs_an_up_non_loopback_interface_with_the_default_route() {
        assert_eq!(
            of(&report(100, json!({})), 100, None).lan_up,
            None,
            "no inventory, no verdict"
        );
        assert_eq!(lan(json!([iface(true, false, true)])), Some(true));
        assert_eq!(lan(json!([iface(false, false, true)])), Some(false));
        assert_eq!(lan(json!([iface(true, true, true)])), Some(false));
        assert_eq!(
            lan(json!([iface(true, false, false), iface(true, true, false)])),
            Some(false)
        );
    }

    #[test]
    fn a_class_succeeds_when_any_of_its_probes_got_an_answer() {
        let r = report(
            1_000,
            json!({"probes": [probe("internet", 0), probe("internet", 1), probe("gov-wan", 0)]}),
        );
        let e = of(&r, 1_000, None);
        assert_eq!(e.internet_ok_at, Some(1_000));
        assert_eq!(e.gov_wan_ok_at, None);
        assert_eq!(e.datacentre_ok_at, None);
    }

    #[test]
    fn a_speed_test_counts_when_its_download_was_measured() {
        let measured = report(
            100,
            json!({"speed": {"download_bits_per_second": 2.5e7, "bytes": 8, "duration_seconds": 1.0}}),
        );
        assert_eq!(
            of(&measured, 100, None).speed,
            Some(SpeedEvidence {
                at: 100,
                download_bps: 2.5e7,
                upload_bps: None
            })
        );
        let failed = report(
            100,
            json!({"speed": {"upload_bits_per_second": 1e6, "bytes": 8, "duration_seconds": 1.0,
                             "error": "download: timed out"}}),
        );
        assert_eq!(of(&failed, 100, None).speed, None);
    }

    #[test]
    fn evidence_is_never_dated_after_its_receipt() {
        let r = report(5_000, json!({"probes": [probe("datacentre", 4)]}));
        assert_eq!(of(&r, 4_000, None).datacentre_ok_at, Some(4_000));
        assert_eq!(of(&r, 9_000, None).datacentre_ok_at, Some(5_000));
    }

    #[test]
    fn the_wait_the_agent_measured_dates_evidence_whatever_its_clock_says() {
        // Made at 5,000 by a clock two hours slow, sent at once, received at 12,200.
        let r = report(5_000, json!({"probes": [probe("internet", 4)]}));
        assert_eq!(
            of(&r, 12_200, None).internet_ok_at,
            Some(5_000),
            "by its clock"
        );
        assert_eq!(of(&r, 12_200, Some(0)).internet_ok_at, Some(12_200));
        // The same report after an hour in the spool proves the link an hour ago.
        assert_eq!(of(&r, 12_200, Some(3_600)).internet_ok_at, Some(8_600));
        let absurd = of(&r, 12_200, Some(u64::MAX)).internet_ok_at;
        assert!(
            absurd.is_some_and(|t| t < 0),
            "proves nothing now: {absurd:?}"
        );
    }
}
