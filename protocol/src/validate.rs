//! Semantic checks on a decoded report: what serde's types cannot express.
//!
//! The collector runs these before storing anything, so a report that passes is safe to store and
//! to turn into metrics: bounded collection sizes and string lengths, no control characters in
//! the names that become label values, ratios within 0..=1, finite numbers, integers that fit a
//! signed 64-bit column, a real (non-nil, v4 or v7) `report_id` and a schema version this crate
//! knows.

use std::fmt;

use crate::{Report, SCHEMA_VERSION};

/// Bounds on what one report may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest string, in bytes.
    pub max_string_bytes: usize,
    /// Longest list (disks, filesystems, interfaces, probes, addresses).
    pub max_items: usize,
    pub min_interval_secs: u32,
    pub max_interval_secs: u32,
    /// Most installed-software entries one inventory may list.
    pub max_software: usize,
    /// Longest software name or version, in bytes. Kept far below `max_string_bytes` so that a
    /// full list (5000 × 64-byte name and version, about 0.8 MB of JSON) still fits the
    /// collector's default 1 MiB report size.
    pub max_software_text_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_string_bytes: 1024,
            max_items: 512,
            min_interval_secs: 5,
            max_interval_secs: 86_400,
            max_software: 5000,
            max_software_text_bytes: 64,
        }
    }
}

/// One reason a report was refused; `field` is a JSON-path-like location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    pub field: String,
    pub problem: String,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.problem)
    }
}

/// Where in the report a check looks, written out only for a report that fails it: a string
/// literal, or `format_args!` over an [`At`]. Formatting every field's path up front cost a tenth
/// of the ingest's request-side CPU (`perf`), for reports that almost all pass.
trait Field: fmt::Display + Copy {}

impl<T: fmt::Display + Copy> Field for T {}

/// `list[i].`, the prefix of the fields of one item of a list.
#[derive(Clone, Copy)]
struct At(&'static str, usize);

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}].", self.0, self.1)
    }
}

struct Checker {
    limits: Limits,
    errors: Vec<ValidationError>,
}

impl Checker {
    fn fail(&mut self, field: impl fmt::Display, problem: impl Into<String>) {
        self.errors.push(ValidationError {
            field: field.to_string(),
            problem: problem.into(),
        });
    }

    fn string(&mut self, field: impl Field, value: &str) {
        self.bounded_string(field, value, self.limits.max_string_bytes);
    }

    fn bounded_string(&mut self, field: impl Field, value: &str, max: usize) {
        if value.len() > max {
            self.fail(field, format!("longer than {max} bytes"));
        }
        if value.contains('\0') {
            self.fail(field, "contains a NUL character");
        }
    }

    /// A name that becomes a label value (host, interface, mount point) or a dashboard row: no
    /// control characters. The exposition would escape a line break, but a name with one is no
    /// name; the agent reads these from interfaces that cannot produce them.
    fn label(&mut self, field: impl Field, value: &str) {
        self.string(field, value);
        if value.chars().any(|c| c.is_control() && c != '\0') {
            self.fail(field, "contains a control character");
        }
    }

    /// Byte counts, counters and seconds: at most `i64::MAX`, so a store that keeps them in a
    /// signed 64-bit column (PostgreSQL has no unsigned one) holds them exactly, never negative.
    fn integers(&mut self, at: impl Field, values: &[(&str, Option<u64>)]) {
        for (name, value) in values {
            if value.is_some_and(|v| i64::try_from(v).is_err()) {
                self.fail(format!("{at}{name}"), format!("larger than {}", i64::MAX));
            }
        }
    }

    fn opt_string(&mut self, field: impl Field, value: Option<&String>) {
        if let Some(v) = value {
            self.string(field, v);
        }
    }

    fn items<T>(&mut self, field: impl Field, list: &[T]) {
        self.bounded_items(field, list, self.limits.max_items);
    }

    fn bounded_items<T>(&mut self, field: impl Field, list: &[T], max: usize) {
        if list.len() > max {
            self.fail(field, format!("more than {max} items"));
        }
    }

    fn seconds(&mut self, field: impl Field, value: Option<f64>) {
        if let Some(v) = value
            && !(v.is_finite() && (0.0..=3600.0).contains(&v))
        {
            self.fail(field, "must be a number of seconds between 0 and 3600");
        }
    }
}

impl Report {
    /// Checks everything serde could not; returns every problem found, not just the first.
    pub fn validate(&self, limits: &Limits) -> Result<(), Vec<ValidationError>> {
        let mut c = Checker {
            limits: *limits,
            errors: Vec::new(),
        };
        if self.schema_version != SCHEMA_VERSION {
            c.fail(
                "schema_version",
                format!(
                    "version {} is not supported (this collector reads {SCHEMA_VERSION})",
                    self.schema_version
                ),
            );
        }
        if !matches!(self.report_id.get_version_num(), 4 | 7) {
            c.fail("report_id", "must be a UUID version 4 or 7");
        }
        if !(limits.min_interval_secs..=limits.max_interval_secs).contains(&self.interval_secs) {
            c.fail(
                "interval_secs",
                format!(
                    "must be between {} and {}",
                    limits.min_interval_secs, limits.max_interval_secs
                ),
            );
        }
        c.string("agent_version", &self.agent_version);
        if let Some(inv) = &self.inventory {
            check_inventory(&mut c, inv);
        }
        if let Some(s) = &self.sample {
            if let Some(r) = s.cpu_usage_ratio
                && !(r.is_finite() && (0.0..=1.0).contains(&r))
            {
                c.fail("sample.cpu_usage_ratio", "must be between 0 and 1");
            }
            // A million: far above any real run queue, far below a float that breaks a graph.
            if let Some(load) = s.load
                && load
                    .iter()
                    .any(|l| !(l.is_finite() && (0.0..=1e6).contains(l)))
            {
                c.fail("sample.load", "must be between 0 and 1e6");
            }
            c.integers(
                "sample.",
                &[
                    ("uptime_secs", Some(s.uptime_secs)),
                    ("memory_used_bytes", Some(s.memory_used_bytes)),
                    ("memory_available_bytes", s.memory_available_bytes),
                    ("swap_used_bytes", Some(s.swap_used_bytes)),
                ],
            );
            c.items("sample.filesystems", &s.filesystems);
            for (i, fs) in s.filesystems.iter().enumerate() {
                let at = At("sample.filesystems", i);
                c.label(format_args!("{at}mount_point"), &fs.mount_point);
                c.integers(
                    at,
                    &[
                        ("used_bytes", Some(fs.used_bytes)),
                        ("free_bytes", Some(fs.free_bytes)),
                        ("available_bytes", fs.available_bytes),
                    ],
                );
            }
            c.items("sample.interfaces", &s.interfaces);
            for (i, n) in s.interfaces.iter().enumerate() {
                let at = At("sample.interfaces", i);
                c.label(format_args!("{at}name"), &n.name);
                c.integers(
                    at,
                    &[
                        ("rx_bytes", Some(n.rx_bytes)),
                        ("tx_bytes", Some(n.tx_bytes)),
                        ("rx_errors", Some(n.rx_errors)),
                        ("tx_errors", Some(n.tx_errors)),
                    ],
                );
            }
            c.items("sample.temperatures", &s.temperatures);
            for (i, t) in s.temperatures.iter().enumerate() {
                let at = At("sample.temperatures", i);
                c.label(format_args!("{at}sensor"), &t.sensor);
                if !crate::Temperature::PLAUSIBLE_CELSIUS.contains(&t.celsius) {
                    c.fail(format!("{at}celsius"), "must be between -273.15 and 500");
                }
            }
        }
        c.items("probes", &self.probes);
        for (i, p) in self.probes.iter().enumerate() {
            let at = At("probes", i);
            c.label(format_args!("{at}name"), &p.name);
            c.string(format_args!("{at}target"), &p.target);
            c.opt_string(format_args!("{at}error"), p.error.as_ref());
            if p.successes > p.attempts {
                c.fail(format!("{at}successes"), "more successes than attempts");
            }
            if p.attempts > 1000 {
                c.fail(format!("{at}attempts"), "more than 1000 attempts");
            }
            if let Some(status) = p.http_status
                && !(100..=599).contains(&status)
            {
                c.fail(format!("{at}http_status"), "must be between 100 and 599");
            }
            for (name, v) in [
                ("rtt_min_seconds", p.rtt_min_seconds),
                ("rtt_avg_seconds", p.rtt_avg_seconds),
                ("rtt_max_seconds", p.rtt_max_seconds),
                ("jitter_seconds", p.jitter_seconds),
            ] {
                c.seconds(format_args!("{at}{name}"), v);
            }
        }
        if let Some(g) = &self.gateway {
            c.opt_string("gateway.error", g.error.as_ref());
            if g.successes > g.attempts {
                c.fail("gateway.successes", "more successes than attempts");
            }
            if g.attempts > 1000 {
                c.fail("gateway.attempts", "more than 1000 attempts");
            }
            c.seconds("gateway.rtt_avg_seconds", g.rtt_avg_seconds);
        }
        if let Some(s) = &self.speed {
            for (name, v) in [
                ("download_bits_per_second", s.download_bits_per_second),
                ("upload_bits_per_second", s.upload_bits_per_second),
            ] {
                // 1 Tbit/s: far beyond any office link, small enough to catch a unit mix-up.
                if let Some(v) = v
                    && !(v.is_finite() && (0.0..=1e12).contains(&v))
                {
                    c.fail(
                        format!("speed.{name}"),
                        "must be between 0 and 1e12 bits per second",
                    );
                }
            }
            c.seconds("speed.duration_seconds", Some(s.duration_seconds));
            c.integers("speed.", &[("bytes", Some(s.bytes))]);
            c.opt_string("speed.error", s.error.as_ref());
        }
        if let Some(s) = &self.spool {
            c.integers(
                "spool.",
                &[
                    ("dropped_reports", Some(s.dropped_reports)),
                    ("waiting_reports", Some(s.waiting_reports)),
                ],
            );
        }
        if c.errors.is_empty() {
            Ok(())
        } else {
            Err(c.errors)
        }
    }
}

fn check_inventory(c: &mut Checker, inv: &crate::Inventory) {
    c.label("inventory.hostname", &inv.hostname);
    c.string("inventory.os.family", &inv.os.family);
    c.string("inventory.os.arch", &inv.os.arch);
    c.opt_string("inventory.os.name", inv.os.name.as_ref());
    c.opt_string("inventory.os.version", inv.os.version.as_ref());
    c.opt_string("inventory.os.kernel", inv.os.kernel.as_ref());
    c.opt_string("inventory.cpu.model", inv.cpu.model.as_ref());
    c.opt_string("inventory.cpu.vendor", inv.cpu.vendor.as_ref());
    c.opt_string("inventory.virtualization", inv.virtualization.as_ref());
    c.integers(
        "inventory.",
        &[
            ("cpu.frequency_hz", inv.cpu.frequency_hz),
            ("memory.total_bytes", Some(inv.memory.total_bytes)),
            ("memory.swap_total_bytes", Some(inv.memory.swap_total_bytes)),
        ],
    );
    c.items("inventory.disks", &inv.disks);
    for (i, d) in inv.disks.iter().enumerate() {
        c.string(format_args!("inventory.disks[{i}].name"), &d.name);
        c.integers(
            format_args!("inventory.disks[{i}]."),
            &[("size_bytes", Some(d.size_bytes))],
        );
        c.opt_string(format_args!("inventory.disks[{i}].model"), d.model.as_ref());
        c.opt_string(
            format_args!("inventory.disks[{i}].serial"),
            d.serial.as_ref(),
        );
    }
    c.items("inventory.filesystems", &inv.filesystems);
    for (i, f) in inv.filesystems.iter().enumerate() {
        c.label(
            format_args!("inventory.filesystems[{i}].mount_point"),
            &f.mount_point,
        );
        c.integers(
            format_args!("inventory.filesystems[{i}]."),
            &[("total_bytes", Some(f.total_bytes))],
        );
        c.string(format_args!("inventory.filesystems[{i}].device"), &f.device);
        c.string(
            format_args!("inventory.filesystems[{i}].fs_type"),
            &f.fs_type,
        );
    }
    c.items("inventory.interfaces", &inv.interfaces);
    for (i, n) in inv.interfaces.iter().enumerate() {
        c.label(format_args!("inventory.interfaces[{i}].name"), &n.name);
        c.integers(
            format_args!("inventory.interfaces[{i}]."),
            &[("speed_bps", n.speed_bps)],
        );
        c.opt_string(
            format_args!("inventory.interfaces[{i}].mac"),
            n.mac.as_ref(),
        );
        c.items(
            format_args!("inventory.interfaces[{i}].addresses"),
            &n.addresses,
        );
        for a in &n.addresses {
            c.string(format_args!("inventory.interfaces[{i}].addresses"), a);
        }
    }
    if let Some(dmi) = &inv.dmi {
        for (name, v) in [
            ("sys_vendor", &dmi.sys_vendor),
            ("product_name", &dmi.product_name),
            ("product_serial", &dmi.product_serial),
            ("product_uuid", &dmi.product_uuid),
            ("board_vendor", &dmi.board_vendor),
            ("board_name", &dmi.board_name),
            ("bios_vendor", &dmi.bios_vendor),
            ("bios_version", &dmi.bios_version),
            ("bios_date", &dmi.bios_date),
            ("chassis_type", &dmi.chassis_type),
        ] {
            c.opt_string(format_args!("inventory.dmi.{name}"), v.as_ref());
        }
    }
    check_devices(c, inv);
}

/// The inventory's device lists: memory modules, monitors, GPUs and software.
fn check_devices(c: &mut Checker, inv: &crate::Inventory) {
    c.items("inventory.memory_modules", &inv.memory_modules);
    for (i, m) in inv.memory_modules.iter().enumerate() {
        let at = At("inventory.memory_modules", i);
        c.string(format_args!("{at}locator"), &m.locator);
        c.integers(at, &[("size_bytes", Some(m.size_bytes))]);
        for (name, v) in [
            ("bank", &m.bank),
            ("memory_type", &m.memory_type),
            ("manufacturer", &m.manufacturer),
            ("part_number", &m.part_number),
            ("serial", &m.serial),
        ] {
            c.opt_string(format_args!("{at}{name}"), v.as_ref());
        }
    }
    c.items("inventory.monitors", &inv.monitors);
    for (i, m) in inv.monitors.iter().enumerate() {
        let at = At("inventory.monitors", i);
        c.string(format_args!("{at}connector"), &m.connector);
        for (name, v) in [
            ("manufacturer", &m.manufacturer),
            ("model", &m.model),
            ("serial", &m.serial),
        ] {
            c.opt_string(format_args!("{at}{name}"), v.as_ref());
        }
        // 1000 inches: beyond any display, small enough to catch a unit mix-up.
        if let Some(d) = m.diagonal_inches
            && !(d.is_finite() && (0.0..=1000.0).contains(&d))
        {
            c.fail(format!("{at}diagonal_inches"), "must be between 0 and 1000");
        }
    }
    c.items("inventory.gpus", &inv.gpus);
    for (i, g) in inv.gpus.iter().enumerate() {
        let at = At("inventory.gpus", i);
        c.string(format_args!("{at}pci_slot"), &g.pci_slot);
        c.string(format_args!("{at}vendor_id"), &g.vendor_id);
        c.string(format_args!("{at}device_id"), &g.device_id);
        c.opt_string(format_args!("{at}vendor"), g.vendor.as_ref());
        c.opt_string(format_args!("{at}driver"), g.driver.as_ref());
    }
    if let Some(software) = &inv.software {
        let max = c.limits.max_software_text_bytes;
        c.bounded_items("inventory.software", software, c.limits.max_software);
        for (i, s) in software.iter().enumerate() {
            c.bounded_string(format_args!("inventory.software[{i}].name"), &s.name, max);
            c.bounded_string(
                format_args!("inventory.software[{i}].version"),
                &s.version,
                max,
            );
        }
    }
}
