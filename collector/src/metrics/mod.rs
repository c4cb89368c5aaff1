//! The collector's Prometheus exposition.
//!
//! Two kinds of series live here: counters of events (`hatang_reports_received_total`), bumped by
//! the code that handles the event and kept on a prometheus registry of their own, and gauges of
//! figures, written afresh from the latest [`Figures`] on every scrape (see [`text`]) so they
//! always agree with the API. Label values are bounded: levels, roles, states and outcomes are
//! small fixed or configured sets; `unit` grows with the unit tree (a few thousand), `host`,
//! `mountpoint`, `interface` and `sensor` only with the data-centre servers, never with the
//! number of workstations.
//!
//! The figures are served on two [`Endpoint`]s. `/metrics` has what the contract names, the
//! per-level figures, the per-unit coverage series, `hatang_host_up`, the service checks and the
//! event counters: what the planners' figures and the critical alerts need, under 2 MB for a
//! country-sized tree. `/metrics/detail` has the high-cardinality detail no contract names: the
//! per-unit connectivity and agent series, and every per-server resource series but
//! `hatang_host_up` (together more than half the bytes at national scale, and slower-moving
//! or of interest to fewer people), for a second scrape job that may run at a longer interval.

mod text;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use prometheus::{
    GaugeVec, Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

use crate::changes::{COMPONENTS, ChangeKind};
use crate::checks::ServiceResult;
use crate::figures::{AgentState, Figures, LevelFigures, UnitAgents, UnitFigures};
use crate::hosts::HostFigures;
use text::Exposition;

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
    /// The database failed (full, read-only, unreachable): answered 503, nothing stored; the
    /// agent keeps the report and sends it again.
    Failed,
}

impl Outcome {
    const ALL: [Outcome; 7] = [
        Outcome::Accepted,
        Outcome::Duplicate,
        Outcome::Rejected,
        Outcome::Unauthorized,
        Outcome::RateLimited,
        Outcome::Busy,
        Outcome::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Duplicate => "duplicate",
            Outcome::Rejected => "rejected",
            Outcome::Unauthorized => "unauthorized",
            Outcome::RateLimited => "rate_limited",
            Outcome::Busy => "busy",
            Outcome::Failed => "failed",
        }
    }
}

/// Which exposition a family is served on (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET /metrics`.
    Metrics,
    /// `GET /metrics/detail`.
    Detail,
}

/// The figure series of one figures value, split by endpoint.
#[derive(Debug)]
struct Rendered {
    metrics: Arc<str>,
    detail: Arc<str>,
}

impl Rendered {
    fn of(&self, endpoint: Endpoint) -> &Arc<str> {
        match endpoint {
            Endpoint::Metrics => &self.metrics,
            Endpoint::Detail => &self.detail,
        }
    }
}

/// Expositions being written, one per endpoint: each family goes to the one it is served on.
struct Expositions {
    metrics: Exposition,
    detail: Exposition,
}

impl Expositions {
    fn on(&mut self, endpoint: Endpoint) -> &mut Exposition {
        match endpoint {
            Endpoint::Metrics => &mut self.metrics,
            Endpoint::Detail => &mut self.detail,
        }
    }
}

/// The event counters, and the renderer of everything else.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reports: IntCounterVec,
    enrolments: IntCounterVec,
    inventory_changes: IntCounterVec,
    clock_skew: Histogram,
    /// Without labels; absent until a certificate is loaded, so a collector serving plain HTTP
    /// has no such series.
    tls_expiry: GaugeVec,
    /// Whether this process serves the figure series ([`crate::store::Store::claim_figures`]),
    /// and the series that says so.
    publishing: Arc<AtomicBool>,
    published: IntGauge,
    /// The figure series of the latest figures rendered, reused by every scrape of either
    /// endpoint until the figures change (megabytes at national scale, identical between
    /// refreshes).
    rendered: Mutex<Option<(Arc<Figures>, Arc<Rendered>)>>,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).unwrap();
            registry.register(Box::new(c.clone())).unwrap();
            c
        };
        let reports = counter(
            "hatang_reports_received_total",
            "Reports received by outcome: accepted (stored), duplicate (already stored), rejected (invalid), unauthorized, rate_limited, busy, failed (the database could not store it; the agent resends it).",
            &["outcome"],
        );
        let enrolments = counter(
            "hatang_enrolments_total",
            "Enrolment attempts by outcome: enrolled, reenrolled (known machine), refused, rate_limited.",
            &["outcome"],
        );
        let inventory_changes = counter(
            "hatang_inventory_changes_total",
            "Inventory changes recorded at ingest, by component (system, os, cpu, memory, disk, network) and kind (added, removed, changed).",
            &["component", "kind"],
        );
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
        let tls_expiry = GaugeVec::new(
            Opts::new(
                "hatang_tls_certificate_expiry_timestamp_seconds",
                "When the certificate the collector serves HTTPS with expires, Unix seconds; only with [tls] configured.",
            ),
            &[],
        )
        .unwrap();
        registry.register(Box::new(tls_expiry.clone())).unwrap();
        let published = IntGauge::new(
            "hatang_figures_published",
            "1 if this collector serves the figure series; 0 on a replica that leaves them to the one holding the database's figures lock and serves only its own counters and checks.",
        )
        .unwrap();
        registry.register(Box::new(published.clone())).unwrap();
        // Every outcome from the start, so `rate()` sees the first event of each.
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
            tls_expiry,
            publishing: Arc::new(AtomicBool::new(true)),
            published,
            rendered: Mutex::new(None),
        }
    }

    pub fn report(&self, outcome: Outcome) {
        self.reports.with_label_values(&[outcome.as_str()]).inc();
    }

    pub fn enrolment(&self, outcome: &'static str) {
        self.enrolments.with_label_values(&[outcome]).inc();
    }

    pub fn inventory_change(&self, component: &str, kind: ChangeKind) {
        self.inventory_changes
            .with_label_values(&[component, kind.as_str()])
            .inc();
    }

    pub fn clock_skew(&self, seconds: i64) {
        self.clock_skew.observe(float(seconds));
    }

    /// The certificate now served expires at `unix_seconds`.
    pub fn tls_certificate_expiry(&self, unix_seconds: i64) {
        self.tls_expiry
            .with_label_values::<&str>(&[])
            .set(float(unix_seconds));
    }

    /// Where the store's claim to publish the figures is recorded (true until a store that
    /// needs a claim says otherwise).
    pub fn publishing(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.publishing)
    }

    /// Whether this process serves the figure series now.
    pub fn publishes_figures(&self) -> bool {
        self.publishing.load(Ordering::Relaxed)
    }

    /// The exposition of `endpoint`: on [`Endpoint::Metrics`] the event counters, the figure
    /// series of `figures` that go there and the service checks; on [`Endpoint::Detail`] the
    /// other figure series. `None` (this process does not publish the figures) leaves out
    /// every figure series.
    pub fn render(
        &self,
        endpoint: Endpoint,
        figures: Option<&Arc<Figures>>,
        services: &[ServiceResult],
    ) -> String {
        let rendered = figures.map(|f| self.figure_series(f));
        let figure_series = rendered.as_ref().map_or("", |r| r.of(endpoint).as_ref());
        if endpoint == Endpoint::Detail {
            return figure_series.to_string();
        }
        self.published.set(i64::from(figures.is_some()));
        let counters = TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_default();
        let mut x = Exposition::with_capacity(counters.len() + figure_series.len() + 4096);
        x.push_encoded(&counters);
        x.push_encoded(figure_series);
        self::services(&mut x, services);
        x.finish()
    }

    /// Writes the series of `figures` now, so the next [`Metrics::render`] of them only copies.
    pub fn prerender(&self, figures: &Arc<Figures>) {
        self.figure_series(figures);
    }

    /// The series of `figures` for both endpoints, written once per figures value.
    fn figure_series(&self, figures: &Arc<Figures>) -> Arc<Rendered> {
        let mut rendered = self.rendered.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((of, text)) = rendered.as_ref()
            && Arc::ptr_eq(of, figures)
        {
            return Arc::clone(text);
        }
        // About 60 bytes a series: 5 per unit and one per server here, the rest there.
        let mut x = Expositions {
            metrics: Exposition::with_capacity(4096 + figures.units.len() * 320),
            detail: Exposition::with_capacity(
                4096 + figures.units.len() * 480 + figures.hosts.len() * 1200,
            ),
        };
        levels(x.on(Endpoint::Metrics), figures);
        units(&mut x, figures);
        hosts(&mut x, &figures.hosts);
        let text = Arc::new(Rendered {
            metrics: x.metrics.finish().into(),
            detail: x.detail.finish().into(),
        });
        *rendered = Some((Arc::clone(figures), Arc::clone(&text)));
        text
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// A family taken from one kind of thing: name, help, and the value of one thing, if it has one.
type Series<T> = (&'static str, &'static str, fn(&T) -> Option<f64>);

/// Counts, sizes and Unix times as sample values (exact in an f64 up to 2^53).
fn float(n: impl TryInto<i64>) -> f64 {
    n.try_into().unwrap_or(i64::MAX) as f64
}

fn levels(x: &mut Exposition, figures: &Figures) {
    let ratios: [Series<LevelFigures>; 4] = [
        (
            "hatang_equipment_ratio",
            "Share of the level's staff with an active workstation: sum of equipped staff over sum of staff, 0..1.",
            |l| l.equipment_ratio,
        ),
        (
            "hatang_equipment_target_ratio",
            "The plan's target equipment ratio for the level, from the collector's configuration.",
            |l| l.target_ratio,
        ),
        (
            "hatang_lan_ratio",
            "Share of the level's units (staff > 0) with LAN, 0..1.",
            |l| l.lan_ratio,
        ),
        (
            "hatang_broadband_ratio",
            "Share of the level's units (staff > 0) with broadband, 0..1.",
            |l| l.broadband_ratio,
        ),
    ];
    for (name, help, value) in ratios {
        let mut f = x.gauge(name, help);
        for l in &figures.levels {
            // A level with no staff has no ratio; leaving the series out beats inventing 0.
            if let Some(v) = value(l) {
                f.sample(&[("level", &l.level)], v);
            }
        }
    }
    let mut f = x.gauge(
        "hatang_reachable_ratio",
        "Share of the level's units (staff > 0) reachable on the probe class, 0..1.",
    );
    for l in &figures.levels {
        for (class, r) in &l.reachable_ratio {
            f.sample(&[("class", class), ("level", &l.level)], *r);
        }
    }
    let mut f = x.gauge(
        "hatang_agents",
        "Enrolled agents by the level of their unit, role and state (online, stale, offline).",
    );
    for a in &figures.agents {
        f.sample(
            &[
                ("level", &a.level),
                ("role", a.role.as_str()),
                ("state", a.state.as_str()),
            ],
            float(a.agents),
        );
    }
}

fn units(x: &mut Expositions, figures: &Figures) {
    let mut f = x.on(Endpoint::Metrics).gauge(
        "hatang_unit_info",
        "Always 1; joins a unit code to its name, level and parent.",
    );
    for u in &figures.units {
        let parent = u.parent_code.as_deref().unwrap_or("");
        f.sample(
            &[
                ("level", &u.level),
                ("name", &u.name),
                ("parent", parent),
                ("unit", &u.code),
            ],
            1.0,
        );
    }
    // The coverage series stay with the contract's (active workstations make equipped staff, and
    // move as slowly); the speed tests are connectivity detail.
    let per_unit: [(Endpoint, Series<UnitFigures>); 6] = [
        (
            Endpoint::Metrics,
            ("hatang_unit_staff", "Staff headcount of the unit.", |u| {
                Some(f64::from(u.staff))
            }),
        ),
        (
            Endpoint::Metrics,
            (
                "hatang_unit_equipped_staff",
                "Staff of the unit with a working computer: min(staff, active workstations).",
                |u| Some(f64::from(u.equipped_staff)),
            ),
        ),
        (
            Endpoint::Metrics,
            (
                "hatang_unit_active_workstations",
                "Workstations of the unit that reported within the equipment window (may exceed staff).",
                |u| Some(f64::from(u.active_workstations)),
            ),
        ),
        (
            Endpoint::Metrics,
            (
                "hatang_unit_lan_up",
                "1 when an agent of the unit that reported within the equipment window showed an up, non-loopback interface carrying the default route.",
                |u| Some(f64::from(u8::from(u.lan))),
            ),
        ),
        (
            Endpoint::Metrics,
            (
                "hatang_unit_broadband_up",
                "1 when an agent of the unit reached the internet within the broadband window, at broadband speed where a speed test ran.",
                |u| Some(f64::from(u8::from(u.broadband))),
            ),
        ),
        (
            Endpoint::Detail,
            (
                "hatang_unit_download_bytes_per_second",
                "Best download rate among the unit's agents' latest speed tests against the collector, bytes per second (Prometheus base unit; multiply by 8 for bit/s).",
                // Speeds travel in bits per second (how links are sold); metrics use bytes.
                |u| u.download_bps.map(|d| d / 8.0),
            ),
        ),
    ];
    for (endpoint, (name, help, value)) in per_unit {
        let mut f = x.on(endpoint).gauge(name, help);
        for u in &figures.units {
            if let Some(v) = value(u) {
                f.sample(&[("level", &u.level), ("unit", &u.code)], v);
            }
        }
    }
    let mut f = x.on(Endpoint::Detail).gauge(
        "hatang_unit_reachable",
        "1 when an agent of the unit reached a probe target of the class (internet, gov-wan, datacentre) within the broadband window.",
    );
    for u in &figures.units {
        for (class, up) in &u.reachable {
            f.sample(
                &[("class", class), ("level", &u.level), ("unit", &u.code)],
                f64::from(u8::from(*up)),
            );
        }
    }
    // Live agent state: only units with agents (a unit nobody enrolled has nothing to say), and
    // the spool sums only where they are not zero, so a healthy province costs no series.
    let live: [Series<UnitAgents>; 4] = [
        (
            "hatang_unit_agents_online",
            "Agents of the unit (any role) that reported within three of their intervals; only units with enrolled agents.",
            |a| Some(f64::from(a.online)),
        ),
        (
            "hatang_unit_workstations",
            "Workstations enrolled in the unit and not revoked, whether they report or not; only units with enrolled agents.",
            |a| Some(f64::from(a.workstations)),
        ),
        (
            "hatang_unit_spool_waiting_reports",
            "Reports waiting in the spools of the unit's agents, as their latest reports told; only where not zero.",
            |a| (a.spool_waiting_reports > 0).then(|| float(a.spool_waiting_reports)),
        ),
        (
            "hatang_unit_spool_dropped_reports",
            "Reports the unit's agents dropped since they were installed (full or expired spool, damaged, refused for good); only where not zero.",
            |a| (a.spool_dropped_reports > 0).then(|| float(a.spool_dropped_reports)),
        ),
    ];
    for (name, help, value) in live {
        let mut f = x.on(Endpoint::Detail).gauge(name, help);
        for u in &figures.units {
            if let Some(v) = figures.unit_agents.get(&u.code).and_then(value) {
                f.sample(&[("level", &u.level), ("unit", &u.code)], v);
            }
        }
    }
}

fn hosts(x: &mut Expositions, hosts: &[HostFigures]) {
    // Whether a server is up is the contract's, for the duty officer's alert; its resources are
    // detail, some twenty series a server.
    let up: Series<HostFigures> = (
        "hatang_host_up",
        "1 while the data-centre server's agent is online (reported within 3 intervals).",
        |h| Some(f64::from(u8::from(h.state == AgentState::Online))),
    );
    let resources: [Series<HostFigures>; 6] = [
        (
            "hatang_host_last_report_timestamp_seconds",
            "When the server's latest report arrived, Unix seconds.",
            |h| h.last_report_at.map(float),
        ),
        (
            "hatang_host_uptime_seconds",
            "Seconds since the server booted.",
            |h| h.sample.as_ref().map(|s| float(s.uptime_secs)),
        ),
        (
            "hatang_host_cpu_usage_ratio",
            "Share of all the server's CPUs busy over its last interval, 0..1.",
            |h| h.sample.as_ref()?.cpu_usage_ratio,
        ),
        (
            "hatang_host_load1",
            "The server's 1-minute load average.",
            |h| h.sample.as_ref()?.load.map(|[l1, _, _]| l1),
        ),
        ("hatang_host_memory_total_bytes", "Installed memory.", |h| {
            h.memory_total_bytes.map(float)
        }),
        ("hatang_host_memory_used_bytes", "Memory in use.", |h| {
            h.sample.as_ref().map(|s| float(s.memory_used_bytes))
        }),
    ];
    let per_host = std::iter::once((Endpoint::Metrics, up))
        .chain(resources.map(|series| (Endpoint::Detail, series)));
    for (endpoint, (name, help, value)) in per_host {
        let mut f = x.on(endpoint).gauge(name, help);
        for h in hosts {
            if let Some(v) = value(h) {
                f.sample(&[("host", &h.host), ("unit", &h.unit_code)], v);
            }
        }
    }
    let x = x.on(Endpoint::Detail);
    let mut f = x.gauge(
        "hatang_host_filesystem_size_bytes",
        "Size of the server's filesystem.",
    );
    for h in hosts {
        for (mount, size) in &h.filesystem_size_bytes {
            f.sample(
                &[
                    ("host", &h.host),
                    ("mountpoint", mount),
                    ("unit", &h.unit_code),
                ],
                float(*size),
            );
        }
    }
    type FsValue = fn(&hatang_protocol::FilesystemUsage) -> u64;
    let usage: [(&'static str, &'static str, FsValue); 2] = [
        (
            "hatang_host_filesystem_used_bytes",
            "Used space of the server's filesystem, as df counts it.",
            |fs| fs.used_bytes,
        ),
        (
            "hatang_host_filesystem_available_bytes",
            "Space an unprivileged process may still use on the server's filesystem.",
            |fs| fs.available_bytes.unwrap_or(fs.free_bytes),
        ),
    ];
    for (name, help, value) in usage {
        let mut f = x.gauge(name, help);
        for h in hosts {
            for fs in h.sample.iter().flat_map(|s| &s.filesystems) {
                f.sample(
                    &[
                        ("host", &h.host),
                        ("mountpoint", &fs.mount_point),
                        ("unit", &h.unit_code),
                    ],
                    float(value(fs)),
                );
            }
        }
    }
    let mut f = x.gauge(
        "hatang_host_temperature_celsius",
        "Reading of the server's hardware temperature sensor (chip/sensor), degrees Celsius.",
    );
    for h in hosts {
        for t in h.sample.iter().flat_map(|s| &s.temperatures) {
            f.sample(
                &[
                    ("host", &h.host),
                    ("sensor", &t.sensor),
                    ("unit", &h.unit_code),
                ],
                t.celsius,
            );
        }
    }
    // Cumulative counters as the host reports them (they restart at its reboot, as any counter
    // may); exposed as counters so `rate()` applies.
    type NetValue = fn(&hatang_protocol::InterfaceCounters) -> u64;
    let net: [(&'static str, &'static str, NetValue); 4] = [
        (
            "hatang_host_network_receive_bytes_total",
            "Bytes received by the server's interface since it booted.",
            |n| n.rx_bytes,
        ),
        (
            "hatang_host_network_transmit_bytes_total",
            "Bytes sent by the server's interface since it booted.",
            |n| n.tx_bytes,
        ),
        (
            "hatang_host_network_receive_errors_total",
            "Receive errors on the server's interface since it booted.",
            |n| n.rx_errors,
        ),
        (
            "hatang_host_network_transmit_errors_total",
            "Transmit errors on the server's interface since it booted.",
            |n| n.tx_errors,
        ),
    ];
    for (name, help, value) in net {
        let mut f = x.counter(name, help);
        for h in hosts {
            for n in h.sample.iter().flat_map(|s| &s.interfaces) {
                f.sample(
                    &[
                        ("host", &h.host),
                        ("interface", &n.name),
                        ("unit", &h.unit_code),
                    ],
                    float(value(n)),
                );
            }
        }
    }
}

fn services(x: &mut Exposition, services: &[ServiceResult]) {
    let per_service: [Series<ServiceResult>; 5] = [
        (
            "hatang_service_up",
            "1 when the collector's latest check of the shared application succeeded.",
            |s| Some(f64::from(u8::from(s.up))),
        ),
        (
            "hatang_service_latency_seconds",
            "Time the latest check took to connect (TCP) or to receive the response headers (HTTP).",
            |s| s.latency_seconds,
        ),
        (
            "hatang_service_http_status_code",
            "HTTP status of the latest check, for http(s) services that answered.",
            |s| s.http_status.map(f64::from),
        ),
        (
            "hatang_service_tls_expiry_timestamp_seconds",
            "When the https service's certificate expires, Unix seconds.",
            |s| s.tls_not_after.map(float),
        ),
        (
            "hatang_service_last_check_timestamp_seconds",
            "When the service was last checked, Unix seconds.",
            |s| Some(float(s.checked_at)),
        ),
    ];
    for (name, help, value) in per_service {
        let mut f = x.gauge(name, help);
        for s in services {
            if let Some(v) = value(s) {
                f.sample(&[("service", &s.name)], v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::figures::{AgentRow, Role, Rules, Speed, UnitRow, compute, group};

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
            spool: Some(hatang_protocol::SpoolStats {
                dropped_reports: 2,
                waiting_reports: 17,
            }),
            revoked: false,
        }];
        let rules = Rules {
            equipment_window_secs: 86_400,
            targets: [("commune".to_string(), 0.88)].into(),
            broadband_window_secs: 3600,
            broadband_min_bps: 2e6,
        };
        let mut figures = compute(&units, &group(&agents, &rules, 120), &rules, 120);
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
                    "temperatures": [{"sensor": "coretemp/Package id 0", "celsius": 61.5}],
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

    /// Renders both endpoints of one figures value.
    fn both(m: &Metrics, figures: &Arc<Figures>, services: &[ServiceResult]) -> [String; 2] {
        [Endpoint::Metrics, Endpoint::Detail].map(|e| m.render(e, Some(figures), services))
    }

    #[test]
    fn reference_lists_every_family_on_its_endpoint() {
        let reference = include_str!("../../../docs/metrics.md");
        // `| `hatang_x` | `/metrics` | gauge | …`
        let documented = |path: &str| -> BTreeSet<String> {
            reference
                .lines()
                .filter_map(|l| l.strip_prefix("| `hatang_"))
                .filter_map(|l| {
                    let mut cells = l.split(" | ");
                    let name = cells.next()?.trim_end_matches('`');
                    (cells.next()? == format!("`{path}`")).then(|| format!("hatang_{name}"))
                })
                .collect()
        };
        let metrics = Metrics::new();
        metrics.tls_certificate_expiry(1_900_000_000);
        let [main, detail] = both(&metrics, &Arc::new(one_unit_figures()), &one_service());
        assert_eq!(documented("/metrics"), families(&main));
        assert_eq!(documented("/metrics/detail"), families(&detail));
    }

    /// Which family goes where is the reference's (above) and the integration tests'; here, that
    /// no family is on both and the detail is only per-unit and per-server series.
    #[test]
    fn every_family_is_served_once_and_the_detail_is_per_unit_or_per_server() {
        let m = Metrics::new();
        let [main, detail] = both(&m, &Arc::new(one_unit_figures()), &one_service());
        let (main, detail) = (families(&main), families(&detail));
        assert!(main.is_disjoint(&detail), "{main:?}\n{detail:?}");
        assert!(
            detail
                .iter()
                .all(|f| f.starts_with("hatang_unit_") || f.starts_with("hatang_host_")),
            "{detail:?}"
        );
        for family in ["hatang_unit_info", "hatang_host_up", "hatang_service_up"] {
            assert!(main.contains(family), "{family} left /metrics");
        }
    }

    /// A replica that does not publish the figures serves its own counters and checks, says it
    /// does not publish, and nothing else: not one series another replica also serves.
    #[test]
    fn without_the_figures_only_this_process_is_described() {
        let m = Metrics::new();
        let [main, _] = both(&m, &Arc::new(one_unit_figures()), &one_service());
        assert!(
            main.lines().any(|l| l == "hatang_figures_published 1"),
            "{main}"
        );

        let standby = m.render(Endpoint::Metrics, None, &one_service());
        assert!(
            standby.lines().any(|l| l == "hatang_figures_published 0"),
            "{standby}"
        );
        assert_eq!(m.render(Endpoint::Detail, None, &one_service()), "");
        let own: BTreeSet<String> = [
            "hatang_figures_published",
            "hatang_reports_received_total",
            "hatang_enrolments_total",
            "hatang_inventory_changes_total",
            "hatang_report_clock_skew_seconds",
        ]
        .map(String::from)
        .into();
        let mut checks = Exposition::with_capacity(0);
        services(&mut checks, &one_service());
        let checks = families(&checks.finish());
        assert!(checks.contains("hatang_service_up"), "{checks:?}");
        assert_eq!(families(&standby), &own | &checks);
    }

    #[test]
    fn figures_become_series_with_escaped_labels() {
        let m = Metrics::new();
        m.report(Outcome::Accepted);
        m.inventory_change("memory", ChangeKind::Changed);
        let [main, detail] = both(&m, &Arc::new(one_unit_figures()), &one_service());
        let text = format!("{main}{detail}");
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
            "hatang_host_temperature_celsius{host=\"db-1\",sensor=\"coretemp/Package id 0\",unit=\"4351\"} 61.5",
            "hatang_unit_agents_online{level=\"commune\",unit=\"4351\"} 1",
            "hatang_unit_workstations{level=\"commune\",unit=\"4351\"} 1",
            "hatang_unit_spool_waiting_reports{level=\"commune\",unit=\"4351\"} 17",
            "hatang_unit_spool_dropped_reports{level=\"commune\",unit=\"4351\"} 2",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
        }
    }

    #[test]
    fn cached_figure_series_come_with_fresh_counters() {
        let m = Metrics::new();
        let figures = Arc::new(one_unit_figures());
        let [first, first_detail] = both(&m, &figures, &one_service());
        m.report(Outcome::Accepted);
        let [second, second_detail] = both(&m, &figures, &one_service());
        assert_eq!(
            first_detail, second_detail,
            "no counter on the detail endpoint"
        );
        assert!(
            Arc::ptr_eq(&m.figure_series(&figures), &m.figure_series(&figures)),
            "both endpoints' series are written once per figures value"
        );
        let accepted = "hatang_reports_received_total{outcome=\"accepted\"}";
        assert!(first.contains(&format!("{accepted} 0\n")));
        assert!(second.contains(&format!("{accepted} 1\n")));
        let unit = "hatang_unit_staff{level=\"commune\",unit=\"4351\"} 4\n";
        assert!(first.contains(unit) && second.contains(unit));
        assert_eq!(first.len(), second.len(), "only a counter's digit changed");
    }

    #[test]
    fn a_second_render_forgets_units_that_are_gone() {
        let m = Metrics::new();
        let _ = both(&m, &Arc::new(one_unit_figures()), &one_service());
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
        for text in both(&m, &Arc::new(empty), &[]) {
            assert!(!text.contains("4351"), "{text}");
        }
    }
}
