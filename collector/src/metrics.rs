//! The collector's Prometheus exposition, on a registry of its own.
//!
//! Two kinds of series live here: counters of events (`hatang_reports_received_total`), bumped by
//! the code that handles the event, and gauges of figures, rewritten from the latest [`Figures`]
//! on every scrape so they always agree with the API. Label values are bounded: levels, roles,
//! states and outcomes are small fixed or configured sets; `unit` grows with the unit tree (a few
//! thousand), never with the number of machines.

use std::sync::Mutex;

use prometheus::{
    GaugeVec, Histogram, HistogramOpts, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::changes::{COMPONENTS, ChangeKind};
use crate::checks::ServiceResult;
use crate::figures::{AgentState, Figures};
use crate::hosts::HostFigures;

/// What became of one `POST /api/v1/reports`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    Duplicate,
    Rejected,
    Unauthorized,
    RateLimited,
    /// The ingest queue was full: answered 503, nothing taken.
    Busy,
}

impl Outcome {
    const ALL: [Outcome; 6] = [
        Outcome::Accepted,
        Outcome::Duplicate,
        Outcome::Rejected,
        Outcome::Unauthorized,
        Outcome::RateLimited,
        Outcome::Busy,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Duplicate => "duplicate",
            Outcome::Rejected => "rejected",
            Outcome::Unauthorized => "unauthorized",
            Outcome::RateLimited => "rate_limited",
            Outcome::Busy => "busy",
        }
    }
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reports: IntCounterVec,
    enrolments: IntCounterVec,
    inventory_changes: IntCounterVec,
    clock_skew: Histogram,
    equipment_ratio: GaugeVec,
    equipment_target: GaugeVec,
    unit_info: IntGaugeVec,
    unit_staff: IntGaugeVec,
    unit_equipped: IntGaugeVec,
    unit_workstations: IntGaugeVec,
    agents: IntGaugeVec,
    unit_lan: IntGaugeVec,
    unit_broadband: IntGaugeVec,
    unit_reachable: IntGaugeVec,
    unit_download: GaugeVec,
    lan_ratio: GaugeVec,
    broadband_ratio: GaugeVec,
    reachable_ratio: GaugeVec,
    hosts: HostSeries,
    services: ServiceSeries,
    /// Without labels; absent until a certificate is loaded, so a collector serving plain HTTP
    /// has no such series.
    tls_expiry: GaugeVec,
    /// Scrapes rewrite the figure gauges; one at a time so two scrapes never interleave.
    render: Mutex<()>,
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help)
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let reports = IntCounterVec::new(
            opts(
                "hatang_reports_received_total",
                "Reports received by outcome: accepted (stored), duplicate (already stored), rejected (invalid), unauthorized, rate_limited.",
            ),
            &["outcome"],
        )
        .unwrap();
        let enrolments = IntCounterVec::new(
            opts(
                "hatang_enrolments_total",
                "Enrolment attempts by outcome: enrolled, reenrolled (known machine), refused, rate_limited.",
            ),
            &["outcome"],
        )
        .unwrap();
        // Signed: negative for a report that waited in a spool or a clock behind, positive only
        // for a clock ahead. ±10 s is "in sync"; the outer buckets are a day, 30 days, a year.
        let clock_skew = Histogram::with_opts(
            HistogramOpts::new(
                "hatang_report_clock_skew_seconds",
                "A report's agent_time minus when it arrived, for every report that decoded.",
            )
            .buckets(
                [
                    -31_536_000.0,
                    -2_592_000.0,
                    -86_400.0,
                    -3600.0,
                    -300.0,
                    -60.0,
                    -10.0,
                    10.0,
                    60.0,
                    300.0,
                    3600.0,
                    86_400.0,
                    2_592_000.0,
                    31_536_000.0,
                ]
                .to_vec(),
            ),
        )
        .unwrap();
        registry.register(Box::new(clock_skew.clone())).unwrap();
        let equipment_ratio = GaugeVec::new(
            opts(
                "hatang_equipment_ratio",
                "Share of the level's staff with an active workstation: sum of equipped staff over sum of staff, 0..1.",
            ),
            &["level"],
        )
        .unwrap();
        let equipment_target = GaugeVec::new(
            opts(
                "hatang_equipment_target_ratio",
                "The plan's target equipment ratio for the level, from the collector's configuration.",
            ),
            &["level"],
        )
        .unwrap();
        let unit_info = IntGaugeVec::new(
            opts(
                "hatang_unit_info",
                "Always 1; joins a unit code to its name, level and parent.",
            ),
            &["unit", "name", "level", "parent"],
        )
        .unwrap();
        let unit_staff = IntGaugeVec::new(
            opts("hatang_unit_staff", "Staff headcount of the unit."),
            &["unit", "level"],
        )
        .unwrap();
        let unit_equipped = IntGaugeVec::new(
            opts(
                "hatang_unit_equipped_staff",
                "Staff of the unit with a working computer: min(staff, active workstations).",
            ),
            &["unit", "level"],
        )
        .unwrap();
        let unit_workstations = IntGaugeVec::new(
            opts(
                "hatang_unit_active_workstations",
                "Workstations of the unit that reported within the equipment window (may exceed staff).",
            ),
            &["unit", "level"],
        )
        .unwrap();
        let agents = IntGaugeVec::new(
            opts(
                "hatang_agents",
                "Enrolled agents by the level of their unit, role and state (online, stale, offline).",
            ),
            &["level", "role", "state"],
        )
        .unwrap();
        let unit_lan = IntGaugeVec::new(
            opts(
                "hatang_unit_lan_up",
                "1 when an agent of the unit showed an up, non-loopback interface carrying the default route.",
            ),
            &["unit", "level"],
        )
        .unwrap();
        let unit_broadband = IntGaugeVec::new(
            opts(
                "hatang_unit_broadband_up",
                "1 when an agent of the unit reached the internet within the broadband window, at broadband speed where a speed test ran.",
            ),
            &["unit", "level"],
        )
        .unwrap();
        let unit_reachable = IntGaugeVec::new(
            opts(
                "hatang_unit_reachable",
                "1 when an agent of the unit reached a probe target of the class (internet, gov-wan, datacentre) within the broadband window.",
            ),
            &["unit", "level", "class"],
        )
        .unwrap();
        let unit_download = GaugeVec::new(
            opts(
                "hatang_unit_download_bytes_per_second",
                "Best download rate among the unit's agents' latest speed tests against the collector, bytes per second (Prometheus base unit; multiply by 8 for bit/s).",
            ),
            &["unit", "level"],
        )
        .unwrap();
        let lan_ratio = GaugeVec::new(
            opts(
                "hatang_lan_ratio",
                "Share of the level's units (staff > 0) with LAN, 0..1.",
            ),
            &["level"],
        )
        .unwrap();
        let broadband_ratio = GaugeVec::new(
            opts(
                "hatang_broadband_ratio",
                "Share of the level's units (staff > 0) with broadband, 0..1.",
            ),
            &["level"],
        )
        .unwrap();
        let reachable_ratio = GaugeVec::new(
            opts(
                "hatang_reachable_ratio",
                "Share of the level's units (staff > 0) reachable on the probe class, 0..1.",
            ),
            &["level", "class"],
        )
        .unwrap();
        let inventory_changes = IntCounterVec::new(
            opts(
                "hatang_inventory_changes_total",
                "Inventory changes recorded at ingest, by component (system, os, cpu, memory, disk, network) and kind (added, removed, changed).",
            ),
            &["component", "kind"],
        )
        .unwrap();
        for c in [&reports, &enrolments, &inventory_changes] {
            registry.register(Box::new(c.clone())).unwrap();
        }
        for g in [
            &equipment_ratio,
            &equipment_target,
            &unit_download,
            &lan_ratio,
            &broadband_ratio,
            &reachable_ratio,
        ] {
            registry.register(Box::new(g.clone())).unwrap();
        }
        for g in [
            &unit_info,
            &unit_staff,
            &unit_equipped,
            &unit_workstations,
            &agents,
            &unit_lan,
            &unit_broadband,
            &unit_reachable,
        ] {
            registry.register(Box::new(g.clone())).unwrap();
        }
        let tls_expiry = GaugeVec::new(
            opts(
                "hatang_tls_certificate_expiry_timestamp_seconds",
                "When the certificate the collector serves HTTPS with expires, Unix seconds; only with [tls] configured.",
            ),
            &[],
        )
        .unwrap();
        registry.register(Box::new(tls_expiry.clone())).unwrap();
        let hosts = HostSeries::new(&registry);
        let services = ServiceSeries::new(&registry);
        for o in Outcome::ALL {
            reports.with_label_values(&[o.as_str()]);
        }
        for o in ["enrolled", "reenrolled", "refused", "rate_limited"] {
            enrolments.with_label_values(&[o]);
        }
        for component in COMPONENTS {
            for kind in ChangeKind::ALL {
                inventory_changes.with_label_values(&[component, kind.as_str()]);
            }
        }
        Self {
            registry,
            reports,
            enrolments,
            inventory_changes,
            clock_skew,
            equipment_ratio,
            equipment_target,
            unit_info,
            unit_staff,
            unit_equipped,
            unit_workstations,
            agents,
            unit_lan,
            unit_broadband,
            unit_reachable,
            unit_download,
            lan_ratio,
            broadband_ratio,
            reachable_ratio,
            hosts,
            services,
            tls_expiry,
            render: Mutex::new(()),
        }
    }

    pub fn report(&self, outcome: Outcome) {
        self.reports.with_label_values(&[outcome.as_str()]).inc();
    }

    pub fn enrolment(&self, outcome: &'static str) {
        self.enrolments.with_label_values(&[outcome]).inc();
    }

    /// One change an accepted report made to its agent's recorded inventory.
    pub fn inventory_change(&self, component: &str, kind: ChangeKind) {
        self.inventory_changes
            .with_label_values(&[component, kind.as_str()])
            .inc();
    }

    /// A report's `agent_time` minus its arrival, in seconds.
    pub fn clock_skew(&self, seconds: i64) {
        self.clock_skew.observe(seconds as f64);
    }

    /// The certificate now served expires at `unix_seconds`.
    pub fn tls_certificate_expiry(&self, unix_seconds: i64) {
        self.tls_expiry
            .with_label_values::<&str>(&[])
            .set(unix_seconds as f64);
    }

    /// The text exposition with the figure gauges set from `figures`.
    pub fn render(&self, figures: &Figures, services: &[ServiceResult]) -> String {
        let _one_at_a_time = self.render.lock().unwrap_or_else(|p| p.into_inner());
        for g in [
            &self.equipment_ratio,
            &self.equipment_target,
            &self.unit_download,
            &self.lan_ratio,
            &self.broadband_ratio,
            &self.reachable_ratio,
        ] {
            g.reset();
        }
        for g in [
            &self.unit_info,
            &self.unit_staff,
            &self.unit_equipped,
            &self.unit_workstations,
            &self.agents,
            &self.unit_lan,
            &self.unit_broadband,
            &self.unit_reachable,
        ] {
            g.reset();
        }
        for l in &figures.levels {
            // A level with no staff has no ratio; leaving the series out beats inventing 0.
            if let Some(r) = l.equipment_ratio {
                self.equipment_ratio.with_label_values(&[&l.level]).set(r);
            }
            if let Some(t) = l.target_ratio {
                self.equipment_target.with_label_values(&[&l.level]).set(t);
            }
            if let Some(r) = l.lan_ratio {
                self.lan_ratio.with_label_values(&[&l.level]).set(r);
            }
            if let Some(r) = l.broadband_ratio {
                self.broadband_ratio.with_label_values(&[&l.level]).set(r);
            }
            for (class, r) in &l.reachable_ratio {
                self.reachable_ratio
                    .with_label_values(&[l.level.as_str(), class])
                    .set(*r);
            }
        }
        for u in &figures.units {
            let parent = u.parent_code.as_deref().unwrap_or("");
            self.unit_info
                .with_label_values(&[&u.code, &u.name, &u.level, parent])
                .set(1);
            let labels = [u.code.as_str(), u.level.as_str()];
            self.unit_staff
                .with_label_values(&labels)
                .set(i64::from(u.staff));
            self.unit_equipped
                .with_label_values(&labels)
                .set(i64::from(u.equipped_staff));
            self.unit_workstations
                .with_label_values(&labels)
                .set(i64::from(u.active_workstations));
            self.unit_lan
                .with_label_values(&labels)
                .set(i64::from(u.lan));
            self.unit_broadband
                .with_label_values(&labels)
                .set(i64::from(u.broadband));
            for (class, up) in &u.reachable {
                self.unit_reachable
                    .with_label_values(&[u.code.as_str(), u.level.as_str(), class])
                    .set(i64::from(*up));
            }
            if let Some(d) = u.download_bps {
                // Speeds travel in bits per second (how links are sold); metrics use bytes.
                self.unit_download.with_label_values(&labels).set(d / 8.0);
            }
        }
        self.hosts.render(&figures.hosts);
        self.services.render(services);
        for a in &figures.agents {
            self.agents
                .with_label_values(&[&a.level, a.role.as_str(), a.state.as_str()])
                .set(i64::try_from(a.agents).unwrap_or(i64::MAX));
        }
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Per-host series of the data-centre servers, rewritten from [`HostFigures`] on every scrape.
#[derive(Debug)]
struct HostSeries {
    up: IntGaugeVec,
    last_report: GaugeVec,
    uptime: GaugeVec,
    cpu: GaugeVec,
    load1: GaugeVec,
    memory_total: GaugeVec,
    memory_used: GaugeVec,
    fs_size: GaugeVec,
    fs_used: GaugeVec,
    fs_available: GaugeVec,
    /// Cumulative counters as the host reports them (they restart at its reboot, as any
    /// counter may); exposed as counters so `rate()` applies.
    net: [IntCounterVec; 4],
}

const HOST: &[&str] = &["host", "unit"];
const HOST_FS: &[&str] = &["host", "unit", "mountpoint"];
const HOST_NET: &[&str] = &["host", "unit", "interface"];

impl HostSeries {
    fn new(registry: &Registry) -> Self {
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let g = GaugeVec::new(opts(name, help), labels).unwrap();
            registry.register(Box::new(g.clone())).unwrap();
            g
        };
        let counter = |name: &str, help: &str| {
            let c = IntCounterVec::new(opts(name, help), HOST_NET).unwrap();
            registry.register(Box::new(c.clone())).unwrap();
            c
        };
        let up = IntGaugeVec::new(
            opts(
                "hatang_host_up",
                "1 while the data-centre server's agent is online (reported within 3 intervals).",
            ),
            HOST,
        )
        .unwrap();
        registry.register(Box::new(up.clone())).unwrap();
        Self {
            up,
            last_report: gauge(
                "hatang_host_last_report_timestamp_seconds",
                "When the server's latest report arrived, Unix seconds.",
                HOST,
            ),
            uptime: gauge(
                "hatang_host_uptime_seconds",
                "Seconds since the server booted.",
                HOST,
            ),
            cpu: gauge(
                "hatang_host_cpu_usage_ratio",
                "Share of all the server's CPUs busy over its last interval, 0..1.",
                HOST,
            ),
            load1: gauge(
                "hatang_host_load1",
                "The server's 1-minute load average.",
                HOST,
            ),
            memory_total: gauge("hatang_host_memory_total_bytes", "Installed memory.", HOST),
            memory_used: gauge("hatang_host_memory_used_bytes", "Memory in use.", HOST),
            fs_size: gauge(
                "hatang_host_filesystem_size_bytes",
                "Size of the server's filesystem.",
                HOST_FS,
            ),
            fs_used: gauge(
                "hatang_host_filesystem_used_bytes",
                "Used space of the server's filesystem, as df counts it.",
                HOST_FS,
            ),
            fs_available: gauge(
                "hatang_host_filesystem_available_bytes",
                "Space an unprivileged process may still use on the server's filesystem.",
                HOST_FS,
            ),
            net: [
                counter(
                    "hatang_host_network_receive_bytes_total",
                    "Bytes received by the server's interface since it booted.",
                ),
                counter(
                    "hatang_host_network_transmit_bytes_total",
                    "Bytes sent by the server's interface since it booted.",
                ),
                counter(
                    "hatang_host_network_receive_errors_total",
                    "Receive errors on the server's interface since it booted.",
                ),
                counter(
                    "hatang_host_network_transmit_errors_total",
                    "Transmit errors on the server's interface since it booted.",
                ),
            ],
        }
    }

    fn render(&self, hosts: &[HostFigures]) {
        self.up.reset();
        for g in [
            &self.last_report,
            &self.uptime,
            &self.cpu,
            &self.load1,
            &self.memory_total,
            &self.memory_used,
            &self.fs_size,
            &self.fs_used,
            &self.fs_available,
        ] {
            g.reset();
        }
        for c in &self.net {
            c.reset();
        }
        for h in hosts {
            let id = [h.host.as_str(), h.unit_code.as_str()];
            self.up
                .with_label_values(&id)
                .set(i64::from(h.state == AgentState::Online));
            if let Some(t) = h.last_report_at {
                self.last_report.with_label_values(&id).set(t as f64);
            }
            if let Some(m) = h.memory_total_bytes {
                self.memory_total.with_label_values(&id).set(m as f64);
            }
            for (mount, size) in &h.filesystem_size_bytes {
                self.fs_size
                    .with_label_values(&[h.host.as_str(), &h.unit_code, mount])
                    .set(*size as f64);
            }
            let Some(sample) = &h.sample else { continue };
            self.uptime
                .with_label_values(&id)
                .set(sample.uptime_secs as f64);
            if let Some(c) = sample.cpu_usage_ratio {
                self.cpu.with_label_values(&id).set(c);
            }
            if let Some([l1, _, _]) = sample.load {
                self.load1.with_label_values(&id).set(l1);
            }
            self.memory_used
                .with_label_values(&id)
                .set(sample.memory_used_bytes as f64);
            for fs in &sample.filesystems {
                let labels = [h.host.as_str(), &h.unit_code, &fs.mount_point];
                self.fs_used
                    .with_label_values(&labels)
                    .set(fs.used_bytes as f64);
                self.fs_available
                    .with_label_values(&labels)
                    .set(fs.available_bytes.unwrap_or(fs.free_bytes) as f64);
            }
            for n in &sample.interfaces {
                let labels = [h.host.as_str(), &h.unit_code, &n.name];
                for (counter, value) in
                    self.net
                        .iter()
                        .zip([n.rx_bytes, n.tx_bytes, n.rx_errors, n.tx_errors])
                {
                    counter.with_label_values(&labels).inc_by(value);
                }
            }
        }
    }
}

/// Series of the collector's own checks of the shared applications.
#[derive(Debug)]
struct ServiceSeries {
    up: IntGaugeVec,
    latency: GaugeVec,
    http_status: IntGaugeVec,
    tls_expiry: GaugeVec,
    checked: GaugeVec,
}

impl ServiceSeries {
    fn new(registry: &Registry) -> Self {
        let gauge = |name: &str, help: &str| {
            let g = GaugeVec::new(opts(name, help), &["service"]).unwrap();
            registry.register(Box::new(g.clone())).unwrap();
            g
        };
        let int_gauge = |name: &str, help: &str| {
            let g = IntGaugeVec::new(opts(name, help), &["service"]).unwrap();
            registry.register(Box::new(g.clone())).unwrap();
            g
        };
        Self {
            up: int_gauge(
                "hatang_service_up",
                "1 when the collector's latest check of the shared application succeeded.",
            ),
            latency: gauge(
                "hatang_service_latency_seconds",
                "Time the latest check took to connect (TCP) or to receive the response headers (HTTP).",
            ),
            http_status: int_gauge(
                "hatang_service_http_status_code",
                "HTTP status of the latest check, for http(s) services that answered.",
            ),
            tls_expiry: gauge(
                "hatang_service_tls_expiry_timestamp_seconds",
                "When the https service's certificate expires, Unix seconds.",
            ),
            checked: gauge(
                "hatang_service_last_check_timestamp_seconds",
                "When the service was last checked, Unix seconds.",
            ),
        }
    }

    fn render(&self, services: &[ServiceResult]) {
        self.up.reset();
        self.http_status.reset();
        for g in [&self.latency, &self.tls_expiry, &self.checked] {
            g.reset();
        }
        for s in services {
            let service = [s.name.as_str()];
            self.up.with_label_values(&service).set(i64::from(s.up));
            self.checked
                .with_label_values(&service)
                .set(s.checked_at as f64);
            if let Some(l) = s.latency_seconds {
                self.latency.with_label_values(&service).set(l);
            }
            if let Some(code) = s.http_status {
                self.http_status
                    .with_label_values(&service)
                    .set(i64::from(code));
            }
            if let Some(t) = s.tls_not_after {
                self.tls_expiry.with_label_values(&service).set(t as f64);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::figures::{AgentRow, Role, Rules, Speed, UnitRow, compute};

    fn families(exposition: &str) -> BTreeSet<String> {
        exposition
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_string)
            .collect()
    }

    fn one_unit_figures() -> Figures {
        let units = [UnitRow {
            code: "4351".into(),
            name: "Phường \"Tân\" Hòa".into(),
            level: "commune".into(),
            parent_code: None,
            staff: 4,
            depth: 0,
        }];
        let agents = [AgentRow {
            unit_code: "4351".into(),
            role: Role::Workstation,
            last_report_at: Some(100),
            interval_secs: Some(60),
            lan_up: Some(true),
            class_ok_at: [Some(90), None, None],
            speed: Some(Speed {
                at: 90,
                download_bps: 8e6,
            }),
        }];
        let rules = Rules {
            equipment_window_secs: 86_400,
            targets: [("commune".to_string(), 0.88)].into(),
            broadband_window_secs: 3600,
            broadband_min_bps: 2e6,
        };
        let mut figures = compute(&units, &agents, &rules, 120);
        figures.hosts = vec![HostFigures {
            host: "db-1".into(),
            agent_id: "a1".into(),
            unit_code: "4351".into(),
            state: AgentState::Online,
            last_report_at: Some(100),
            memory_total_bytes: Some(64 << 30),
            filesystem_size_bytes: [("/var".to_string(), 1000)].into(),
            sample: Some(
                serde_json::from_value(serde_json::json!({
                    "uptime_secs": 3600, "cpu_usage_ratio": 0.5, "load": [1.5, 1.0, 0.5],
                    "memory_used_bytes": 1024, "swap_used_bytes": 0,
                    "filesystems": [{"mount_point": "/var", "used_bytes": 600, "free_bytes": 400,
                                     "available_bytes": 350}],
                    "interfaces": [{"name": "bond0", "rx_bytes": 10, "tx_bytes": 20,
                                    "rx_errors": 1, "tx_errors": 2}],
                }))
                .unwrap(),
            ),
        }];
        figures
    }

    fn one_service() -> Vec<ServiceResult> {
        vec![ServiceResult {
            name: "portal".into(),
            target: "https://dichvucong.example/".into(),
            up: true,
            latency_seconds: Some(0.25),
            http_status: Some(200),
            tls_not_after: Some(1_800_000_000),
            error: None,
            checked_at: 110,
        }]
    }

    #[test]
    fn reference_lists_every_family() {
        let reference = include_str!("../../docs/metrics.md");
        let documented: BTreeSet<String> = reference
            .lines()
            .filter_map(|l| l.strip_prefix("| `hatang_"))
            .filter_map(|l| l.split('`').next())
            .map(|name| format!("hatang_{name}"))
            .collect();
        let metrics = Metrics::new();
        metrics.tls_certificate_expiry(1_900_000_000);
        let exposed = families(&metrics.render(&one_unit_figures(), &one_service()));
        assert_eq!(documented, exposed);
    }

    #[test]
    fn figures_become_series_with_escaped_labels() {
        let m = Metrics::new();
        m.report(Outcome::Accepted);
        m.inventory_change("memory", ChangeKind::Changed);
        let text = m.render(&one_unit_figures(), &one_service());
        for line in [
            "hatang_equipment_ratio{level=\"commune\"} 0.25",
            "hatang_equipment_target_ratio{level=\"commune\"} 0.88",
            "hatang_unit_info{level=\"commune\",name=\"Phường \\\"Tân\\\" Hòa\",parent=\"\",unit=\"4351\"} 1",
            "hatang_unit_equipped_staff{level=\"commune\",unit=\"4351\"} 1",
            "hatang_agents{level=\"commune\",role=\"workstation\",state=\"online\"} 1",
            "hatang_agents{level=\"commune\",role=\"server\",state=\"offline\"} 0",
            "hatang_reports_received_total{outcome=\"accepted\"} 1",
            "hatang_reports_received_total{outcome=\"unauthorized\"} 0",
            "hatang_inventory_changes_total{component=\"memory\",kind=\"changed\"} 1",
            "hatang_inventory_changes_total{component=\"disk\",kind=\"removed\"} 0",
            "hatang_unit_lan_up{level=\"commune\",unit=\"4351\"} 1",
            "hatang_unit_broadband_up{level=\"commune\",unit=\"4351\"} 1",
            "hatang_unit_reachable{class=\"internet\",level=\"commune\",unit=\"4351\"} 1",
            "hatang_unit_reachable{class=\"gov-wan\",level=\"commune\",unit=\"4351\"} 0",
            "hatang_unit_download_bytes_per_second{level=\"commune\",unit=\"4351\"} 1000000",
            "hatang_broadband_ratio{level=\"commune\"} 1",
            "hatang_reachable_ratio{class=\"datacentre\",level=\"commune\"} 0",
            "hatang_host_up{host=\"db-1\",unit=\"4351\"} 1",
            "hatang_service_up{service=\"portal\"} 1",
            "hatang_service_tls_expiry_timestamp_seconds{service=\"portal\"} 1800000000",
            "hatang_host_cpu_usage_ratio{host=\"db-1\",unit=\"4351\"} 0.5",
            "hatang_host_filesystem_available_bytes{host=\"db-1\",mountpoint=\"/var\",unit=\"4351\"} 350",
            "hatang_host_network_transmit_errors_total{host=\"db-1\",interface=\"bond0\",unit=\"4351\"} 2",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
        }
    }

    #[test]
    fn a_second_render_forgets_units_that_are_gone() {
        let m = Metrics::new();
        let _ = m.render(&one_unit_figures(), &one_service());
        let empty = compute(
            &[],
            &[],
            &Rules {
                equipment_window_secs: 1,
                targets: Default::default(),
                broadband_window_secs: 1,
                broadband_min_bps: 0.0,
            },
            0,
        );
        let text = m.render(&empty, &[]);
        assert!(!text.contains("4351"), "{text}");
    }
}
