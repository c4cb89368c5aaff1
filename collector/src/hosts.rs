//! Data-centre hosts: the agents enrolled with role `server`, each with its own series.
//!
//! Workstations are only ever counted per unit; servers are few (a provincial data centre has
//! tens, not thousands) and the IT staff need each one's health, so they get per-host series
//! built from their latest sample and inventory.

use std::collections::{BTreeMap, HashMap, HashSet};

use hatang_protocol::{Inventory, Sample};
use serde::Serialize;

use crate::figures::{AgentState, agent_state};
use crate::store::AgentRecord;

/// One server's latest state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostFigures {
    /// The `host` label: the hostname, made unique with the agent id's tail where two servers
    /// share one (a duplicate label set would break the whole exposition).
    pub host: String,
    pub agent_id: String,
    pub unit_code: String,
    pub state: AgentState,
    pub last_report_at: Option<i64>,
    pub memory_total_bytes: Option<u64>,
    /// Filesystem sizes by mount point, from the inventory.
    pub filesystem_size_bytes: BTreeMap<String, u64>,
    pub sample: Option<Sample>,
}

/// A server's stored evidence, parsed.
#[derive(Debug, Clone, Default)]
pub struct HostEvidence {
    pub inventory: Option<Inventory>,
    pub sample: Option<Sample>,
}

/// The hosts among `servers`: every one not revoked. A revoked server (decommissioned, stolen,
/// enrolled by mistake) counts for nothing, as a revoked workstation does; kept, it would read
/// as up on the data-centre page until its last report aged, then as down for good, its
/// `hatang_host_up` 0 firing HostDown for a machine nobody runs.
pub fn compute(servers: &[(AgentRecord, HostEvidence)], now: i64) -> Vec<HostFigures> {
    let servers: Vec<_> = servers
        .iter()
        .filter(|(record, _)| record.revoked_at.is_none())
        .collect();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (record, _) in &servers {
        *seen.entry(record.hostname.as_str()).or_default() += 1;
    }
    let mut hosts: Vec<HostFigures> = servers
        .into_iter()
        .map(|(record, evidence)| {
            let host = if seen[record.hostname.as_str()] > 1 || record.hostname.is_empty() {
                let tail = &record.id[record.id.len().saturating_sub(8)..];
                format!("{}~{tail}", record.hostname)
            } else {
                record.hostname.clone()
            };
            let interval = record.interval_secs.and_then(|i| u32::try_from(i).ok());
            HostFigures {
                host,
                agent_id: record.id.clone(),
                unit_code: record.unit_code.clone(),
                state: agent_state(record.last_report_at, interval, now),
                last_report_at: record.last_report_at,
                memory_total_bytes: evidence.inventory.as_ref().map(|i| i.memory.total_bytes),
                filesystem_size_bytes: evidence
                    .inventory
                    .iter()
                    .flat_map(|i| &i.filesystems)
                    .map(|f| (f.mount_point.clone(), f.total_bytes))
                    .collect(),
                sample: evidence.sample.clone().map(distinct),
            }
        })
        .collect();
    hosts.sort_by(|a, b| a.host.cmp(&b.host));
    hosts
}

/// `sample` with one entry per mount point, interface and sensor, the first of each: each
/// becomes a label set of the host's series, and one repeated breaks the exposition (promtool
/// refuses it; Prometheus drops the repeats). The Linux agent names them uniquely, but the
/// protocol does not require it.
fn distinct(mut sample: Sample) -> Sample {
    let mut seen = HashSet::new();
    sample
        .filesystems
        .retain(|f| seen.insert(f.mount_point.clone()));
    seen.clear();
    sample.interfaces.retain(|n| seen.insert(n.name.clone()));
    seen.clear();
    sample
        .temperatures
        .retain(|t| seen.insert(t.sensor.clone()));
    sample
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, hostname: &str, last: Option<i64>) -> AgentRecord {
        AgentRecord {
            id: id.into(),
            machine_id: format!("m-{id}"),
            unit_code: "25-TTDL".into(),
            role: "server".into(),
            hostname: hostname.into(),
            enrolled_at: 0,
            last_report_at: last,
            interval_secs: Some(60),
            agent_version: None,
            lan_up: None,
            internet_ok_at: None,
            gov_wan_ok_at: None,
            datacentre_ok_at: None,
            speed_at: None,
            download_bps: None,
            upload_bps: None,
            spool_waiting: None,
            spool_dropped: None,
            revoked_at: None,
        }
    }

    #[test]
    fn hosts_are_up_while_online_and_labels_stay_unique() {
        let servers = vec![
            (
                record("0000-aaaaaaaa", "db", Some(990)),
                HostEvidence::default(),
            ),
            (
                record("0000-bbbbbbbb", "web", Some(100)),
                HostEvidence::default(),
            ),
            (
                record("0000-cccccccc", "web", None),
                HostEvidence::default(),
            ),
        ];
        let hosts = compute(&servers, 1000);
        let labels: Vec<&str> = hosts.iter().map(|h| h.host.as_str()).collect();
        assert_eq!(labels, ["db", "web~bbbbbbbb", "web~cccccccc"]);
        assert_eq!(hosts[0].state, AgentState::Online);
        assert_eq!(hosts[1].state, AgentState::Stale);
        assert_eq!(hosts[2].state, AgentState::Offline);
    }

    #[test]
    fn a_revoked_server_is_no_host_and_leaves_its_name_free() {
        let mut revoked = record("0000-bbbbbbbb", "db", Some(1000));
        revoked.revoked_at = Some(999);
        let servers = vec![
            (
                record("0000-aaaaaaaa", "db", Some(1000)),
                HostEvidence::default(),
            ),
            (revoked, HostEvidence::default()),
        ];
        let hosts = compute(&servers, 1000);
        let ids: Vec<&str> = hosts.iter().map(|h| h.agent_id.as_str()).collect();
        assert_eq!(ids, ["0000-aaaaaaaa"]);
        assert_eq!(hosts[0].host, "db");
    }

    #[test]
    fn a_name_reported_twice_is_one_series() {
        let sample: Sample = serde_json::from_value(serde_json::json!({
            "uptime_secs": 1, "memory_used_bytes": 1, "swap_used_bytes": 0,
            "filesystems": [
                {"mount_point": "/", "used_bytes": 1, "free_bytes": 2},
                {"mount_point": "/", "used_bytes": 3, "free_bytes": 4},
            ],
            "interfaces": [
                {"name": "eth0", "rx_bytes": 1, "tx_bytes": 1, "rx_errors": 0, "tx_errors": 0},
                {"name": "eth0", "rx_bytes": 2, "tx_bytes": 2, "rx_errors": 0, "tx_errors": 0},
                {"name": "eth1", "rx_bytes": 3, "tx_bytes": 3, "rx_errors": 0, "tx_errors": 0},
            ],
            "temperatures": [
                {"sensor": "coretemp/Core 0", "celsius": 50.0},
                {"sensor": "coretemp/Core 0", "celsius": 51.0},
            ],
        }))
        .unwrap();
        let servers = vec![(
            record("1", "db", Some(1000)),
            HostEvidence {
                inventory: None,
                sample: Some(sample),
            },
        )];
        let s = compute(&servers, 1000)[0].sample.clone().unwrap();
        let used: Vec<u64> = s.filesystems.iter().map(|f| f.used_bytes).collect();
        let rx: Vec<u64> = s.interfaces.iter().map(|n| n.rx_bytes).collect();
        let celsius: Vec<f64> = s.temperatures.iter().map(|t| t.celsius).collect();
        assert_eq!((used, rx, celsius), (vec![1], vec![1, 3], vec![50.0]));
    }

    #[test]
    fn sizes_come_from_the_inventory() {
        let inventory: Inventory = serde_json::from_value(serde_json::json!({
            "hostname": "db", "os": {"family": "linux", "arch": "x86_64"}, "cpu": {"threads": 8},
            "memory": {"total_bytes": 34359738368u64, "swap_total_bytes": 0},
            "filesystems": [{"mount_point": "/var", "device": "/dev/sdb1", "fs_type": "xfs",
                             "total_bytes": 1000}],
        }))
        .unwrap();
        let servers = vec![(
            record("1", "db", Some(1000)),
            HostEvidence {
                inventory: Some(inventory),
                sample: None,
            },
        )];
        let h = &compute(&servers, 1000)[0];
        assert_eq!(h.memory_total_bytes, Some(34_359_738_368));
        assert_eq!(h.filesystem_size_bytes["/var"], 1000);
    }
}
