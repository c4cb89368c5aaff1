//! Assembling a report from what was collected, and deciding when the inventory goes with it.
//!
//! A report must fit the collector's [`Limits`]: one it refuses is refused for good (a 4xx), so
//! the agent would drop it and every later one like it. [`build`] therefore cuts what exceeds
//! them (lists to `max_items`, strings to `max_string_bytes`, NUL characters removed, control
//! characters in names replaced, counts over `i64::MAX` and ratios over 1 brought into range)
//! and says so in the log, rather than sending a report that can never be stored; [`sound`],
//! just before a report is spooled, leaves out whatever part would still be refused.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use flate2::Compression;
use flate2::write::GzEncoder;
use hatang_protocol::{
    Interface, Inventory, Limits, ProbeResult, Report, SCHEMA_VERSION, Sample, ValidationError,
};
use uuid::Uuid;

/// The inventory is resent at least this often even when nothing changed, so a collector that
/// lost it (restored from an old backup, a new replica) gets it back within a day.
const INVENTORY_REFRESH: Duration = Duration::from_secs(24 * 3600);

/// A new report of what was just collected, cut to the collector's default [`Limits`].
pub fn build(
    inventory: Option<Inventory>,
    sample: Option<Sample>,
    probes: Vec<ProbeResult>,
    interval: Duration,
) -> Report {
    let mut report = Report {
        schema_version: SCHEMA_VERSION,
        report_id: Uuid::now_v7(),
        agent_time: time::OffsetDateTime::now_utc(),
        interval_secs: u32::try_from(interval.as_secs()).unwrap_or(u32::MAX),
        agent_version: env!("CARGO_PKG_VERSION").to_string(),
        inventory,
        sample,
        probes,
        // Set by the caller when measured; their one string (an error) is bounded where it is made.
        gateway: None,
        speed: None,
        spool: None,
    };
    let cuts = fit(&mut report, &Limits::default());
    if !cuts.is_empty() {
        static SAID: AtomicBool = AtomicBool::new(false);
        say_once(
            &SAID,
            "report cut to the collector's limits",
            cuts.describe(),
        );
    }
    report
}

/// `message` with its `detail` at warn level the first time, at debug level after: the same
/// machine trips the same limit every cycle, and the log should say so once, not every minute.
fn say_once(said: &AtomicBool, message: &'static str, detail: String) {
    if said.swap(true, Ordering::Relaxed) {
        tracing::debug!(%detail, "{message}");
    } else {
        tracing::warn!(%detail, "{message} (said once)");
    }
}

/// Leaves out of `report` whatever part the collector would still refuse, so that the rest
/// arrives, above all the fact that the machine is alive: one refused report is refused for
/// good, and a machine whose every report is refused drops out of the figures. An item of a
/// list (a probe, a filesystem, a disk) goes alone when the problem is in it; otherwise its
/// section (the inventory, the sample, the gateway, the speed test, the spool figures) goes.
/// [`build`] has cut what it knows how to already; this catches what no rule of [`fit`] covers
/// and the parts set after it. Says the problems in the log (once a run) and returns them.
pub fn sound(report: &mut Report) -> Vec<ValidationError> {
    let Err(problems) = report.validate(&Limits::default()) else {
        return Vec::new();
    };
    static SAID: AtomicBool = AtomicBool::new(false);
    let detail: Vec<String> = problems.iter().map(ToString::to_string).collect();
    say_once(
        &SAID,
        "left out of the report what the collector would refuse",
        detail.join("; "),
    );
    let mut items: BTreeMap<&str, BTreeSet<usize>> = BTreeMap::new();
    let mut sections = BTreeSet::new();
    for p in &problems {
        let field = p.field.as_str();
        match item_of(field) {
            Some((list, i)) => {
                items.entry(list).or_default().insert(i);
            }
            None => {
                sections.insert(field.split(['.', '[']).next().unwrap_or(field));
            }
        }
    }
    let gone = |list: &str| items.get(list);
    keep_others(&mut report.probes, gone("probes"));
    if let Some(s) = &mut report.sample {
        keep_others(&mut s.filesystems, gone("sample.filesystems"));
        keep_others(&mut s.interfaces, gone("sample.interfaces"));
        keep_others(&mut s.temperatures, gone("sample.temperatures"));
    }
    if let Some(inv) = &mut report.inventory {
        keep_others(&mut inv.disks, gone("inventory.disks"));
        keep_others(&mut inv.filesystems, gone("inventory.filesystems"));
        keep_others(&mut inv.interfaces, gone("inventory.interfaces"));
        keep_others(&mut inv.memory_modules, gone("inventory.memory_modules"));
        keep_others(&mut inv.monitors, gone("inventory.monitors"));
        keep_others(&mut inv.gpus, gone("inventory.gpus"));
        if let Some(software) = &mut inv.software {
            keep_others(software, gone("inventory.software"));
        }
    }
    for section in sections {
        match section {
            "inventory" => report.inventory = None,
            "sample" => report.sample = None,
            "probes" => report.probes.clear(),
            "gateway" => report.gateway = None,
            "speed" => report.speed = None,
            "spool" => report.spool = None,
            // The report's own fields (version, id, interval) are the agent's, not the machine's.
            _ => {}
        }
    }
    problems
}

/// `("sample.filesystems", 2)` for `sample.filesystems[2].used_bytes`: the list item a problem
/// is in, if it is in one.
fn item_of(field: &str) -> Option<(&str, usize)> {
    let (list, rest) = field.split_once('[')?;
    let (index, _) = rest.split_once(']')?;
    Some((list, index.parse().ok()?))
}

/// `list` without the items at the indices in `gone`.
fn keep_others<T>(list: &mut Vec<T>, gone: Option<&BTreeSet<usize>>) {
    let Some(gone) = gone else { return };
    let mut i = 0;
    list.retain(|_| {
        i += 1;
        !gone.contains(&(i - 1))
    });
}

/// What [`fit`] removed, per field (list indices left out).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Cuts {
    /// Items dropped from each list.
    pub(crate) items: BTreeMap<&'static str, usize>,
    /// Strings shortened or cleared of characters the collector refuses (NUL anywhere, control
    /// characters in names), in each field.
    pub(crate) strings: BTreeMap<&'static str, usize>,
    /// Numbers brought within the collector's range (counts over `i64::MAX`, a CPU ratio a
    /// rounding above 1), in each field.
    pub(crate) numbers: BTreeMap<&'static str, usize>,
}

impl Cuts {
    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty() && self.strings.is_empty() && self.numbers.is_empty()
    }

    /// One line for the log, e.g. `inventory.interfaces: 88 items dropped; ...`.
    pub(crate) fn describe(&self) -> String {
        let items = self
            .items
            .iter()
            .map(|(field, n)| format!("{field}: {n} items dropped"));
        let strings = self
            .strings
            .iter()
            .map(|(field, n)| format!("{field}: {n} strings shortened or cleaned"));
        let numbers = self
            .numbers
            .iter()
            .map(|(field, n)| format!("{field}: {n} numbers brought into range"));
        items
            .chain(strings)
            .chain(numbers)
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Cuts `report` down to `limits` so that `Report::validate` accepts it; returns what went.
///
/// Lists keep their first `max_items` entries, except that interfaces carrying the default route
/// are kept first: they are the LAN evidence, and a host with hundreds of container interfaces
/// must not lose its uplink to alphabetical order.
pub(crate) fn fit(report: &mut Report, limits: &Limits) -> Cuts {
    let mut f = Fitter {
        limits: *limits,
        cuts: Cuts::default(),
    };
    f.string("agent_version", &mut report.agent_version);
    if let Some(inv) = &mut report.inventory {
        f.inventory(inv);
    }
    if let Some(sample) = &mut report.sample {
        f.sample(sample);
    }
    f.list("probes", &mut report.probes);
    for p in &mut report.probes {
        f.label("probes.name", &mut p.name);
        f.string("probes.target", &mut p.target);
        f.opt("probes.error", &mut p.error);
    }
    f.cuts
}

struct Fitter {
    limits: Limits,
    cuts: Cuts,
}

impl Fitter {
    fn list<T>(&mut self, field: &'static str, list: &mut Vec<T>) {
        self.bounded_list(field, list, self.limits.max_items);
    }

    fn bounded_list<T>(&mut self, field: &'static str, list: &mut Vec<T>, max: usize) {
        if list.len() > max {
            *self.cuts.items.entry(field).or_default() += list.len() - max;
            list.truncate(max);
        }
    }

    fn string(&mut self, field: &'static str, s: &mut String) {
        self.bounded_string(field, s, self.limits.max_string_bytes);
    }

    fn bounded_string(&mut self, field: &'static str, s: &mut String, max: usize) {
        if s.len() <= max && !s.contains('\0') {
            return;
        }
        s.retain(|c| c != '\0');
        s.truncate(s.floor_char_boundary(max));
        *self.cuts.strings.entry(field).or_default() += 1;
    }

    fn opt(&mut self, field: &'static str, s: &mut Option<String>) {
        if let Some(s) = s {
            self.string(field, s);
        }
    }

    /// A name that becomes a label value: a string, and no control characters (a mount point
    /// can hold a tab or a line break: `/proc/mounts` escapes them and the kernel allows them).
    /// Each becomes U+FFFD, which shows that something was there.
    fn label(&mut self, field: &'static str, s: &mut String) {
        self.string(field, s);
        if s.chars().any(char::is_control) {
            *s = s
                .chars()
                .map(|c| if c.is_control() { '\u{fffd}' } else { c })
                .collect();
            *self.cuts.strings.entry(field).or_default() += 1;
        }
    }

    /// A count, size or number of seconds: at most `i64::MAX`, what a signed 64-bit column
    /// holds (a filesystem the kernel reports absurd block counts for saturates at `u64::MAX`).
    fn count(&mut self, field: &'static str, n: &mut u64) {
        const MAX: u64 = i64::MAX as u64;
        if *n > MAX {
            *n = MAX;
            *self.cuts.numbers.entry(field).or_default() += 1;
        }
    }

    fn opt_count(&mut self, field: &'static str, n: &mut Option<u64>) {
        if let Some(n) = n {
            self.count(field, n);
        }
    }

    /// `x` within `range`; one that is not a number at all is dropped.
    fn within(&mut self, field: &'static str, x: &mut Option<f64>, range: (f64, f64)) {
        let Some(v) = *x else { return };
        let fitted = (!v.is_nan()).then(|| v.clamp(range.0, range.1));
        if fitted != Some(v) {
            *x = fitted;
            *self.cuts.numbers.entry(field).or_default() += 1;
        }
    }

    fn sample(&mut self, sample: &mut Sample) {
        self.within(
            "sample.cpu_usage_ratio",
            &mut sample.cpu_usage_ratio,
            (0.0, 1.0),
        );
        if let Some(load) = &mut sample.load {
            for l in load.iter_mut() {
                let mut v = Some(*l);
                self.within("sample.load", &mut v, (0.0, 1e6));
                *l = v.unwrap_or(0.0);
            }
        }
        self.count("sample.uptime_secs", &mut sample.uptime_secs);
        self.count("sample.memory_used_bytes", &mut sample.memory_used_bytes);
        self.opt_count(
            "sample.memory_available_bytes",
            &mut sample.memory_available_bytes,
        );
        self.count("sample.swap_used_bytes", &mut sample.swap_used_bytes);
        self.list("sample.filesystems", &mut sample.filesystems);
        for fs in &mut sample.filesystems {
            self.label("sample.filesystems.mount_point", &mut fs.mount_point);
            self.count("sample.filesystems.used_bytes", &mut fs.used_bytes);
            self.count("sample.filesystems.free_bytes", &mut fs.free_bytes);
            self.opt_count(
                "sample.filesystems.available_bytes",
                &mut fs.available_bytes,
            );
        }
        self.list("sample.interfaces", &mut sample.interfaces);
        for n in &mut sample.interfaces {
            self.label("sample.interfaces.name", &mut n.name);
            for (field, v) in [
                ("sample.interfaces.rx_bytes", &mut n.rx_bytes),
                ("sample.interfaces.tx_bytes", &mut n.tx_bytes),
                ("sample.interfaces.rx_errors", &mut n.rx_errors),
                ("sample.interfaces.tx_errors", &mut n.tx_errors),
            ] {
                self.count(field, v);
            }
        }
        self.list("sample.temperatures", &mut sample.temperatures);
        for t in &mut sample.temperatures {
            self.label("sample.temperatures.sensor", &mut t.sensor);
        }
    }

    fn inventory(&mut self, inv: &mut Inventory) {
        self.label("inventory.hostname", &mut inv.hostname);
        self.string("inventory.os.family", &mut inv.os.family);
        self.string("inventory.os.arch", &mut inv.os.arch);
        self.opt("inventory.os.name", &mut inv.os.name);
        self.opt("inventory.os.version", &mut inv.os.version);
        self.opt("inventory.os.kernel", &mut inv.os.kernel);
        self.opt("inventory.cpu.model", &mut inv.cpu.model);
        self.opt("inventory.cpu.vendor", &mut inv.cpu.vendor);
        self.opt("inventory.virtualization", &mut inv.virtualization);
        self.opt_count("inventory.cpu.frequency_hz", &mut inv.cpu.frequency_hz);
        self.count("inventory.memory.total_bytes", &mut inv.memory.total_bytes);
        self.count(
            "inventory.memory.swap_total_bytes",
            &mut inv.memory.swap_total_bytes,
        );
        self.list("inventory.disks", &mut inv.disks);
        for d in &mut inv.disks {
            self.string("inventory.disks.name", &mut d.name);
            self.count("inventory.disks.size_bytes", &mut d.size_bytes);
            self.opt("inventory.disks.model", &mut d.model);
            self.opt("inventory.disks.serial", &mut d.serial);
        }
        self.list("inventory.filesystems", &mut inv.filesystems);
        for fs in &mut inv.filesystems {
            self.label("inventory.filesystems.mount_point", &mut fs.mount_point);
            self.count("inventory.filesystems.total_bytes", &mut fs.total_bytes);
            self.string("inventory.filesystems.device", &mut fs.device);
            self.string("inventory.filesystems.fs_type", &mut fs.fs_type);
        }
        if inv.interfaces.len() > self.limits.max_items {
            // Stable: the default-route interfaces first, each group in its original order.
            inv.interfaces.sort_by_key(|i: &Interface| !i.default_route);
            self.list("inventory.interfaces", &mut inv.interfaces);
            inv.interfaces.sort_by(|a, b| a.name.cmp(&b.name));
        }
        for n in &mut inv.interfaces {
            self.label("inventory.interfaces.name", &mut n.name);
            self.opt_count("inventory.interfaces.speed_bps", &mut n.speed_bps);
            self.opt("inventory.interfaces.mac", &mut n.mac);
            self.list("inventory.interfaces.addresses", &mut n.addresses);
            for a in &mut n.addresses {
                self.string("inventory.interfaces.addresses", a);
            }
        }
        if let Some(dmi) = &mut inv.dmi {
            for (field, v) in [
                ("inventory.dmi.sys_vendor", &mut dmi.sys_vendor),
                ("inventory.dmi.product_name", &mut dmi.product_name),
                ("inventory.dmi.product_serial", &mut dmi.product_serial),
                ("inventory.dmi.product_uuid", &mut dmi.product_uuid),
                ("inventory.dmi.board_vendor", &mut dmi.board_vendor),
                ("inventory.dmi.board_name", &mut dmi.board_name),
                ("inventory.dmi.bios_vendor", &mut dmi.bios_vendor),
                ("inventory.dmi.bios_version", &mut dmi.bios_version),
                ("inventory.dmi.bios_date", &mut dmi.bios_date),
                ("inventory.dmi.chassis_type", &mut dmi.chassis_type),
            ] {
                self.opt(field, v);
            }
        }
        self.devices(inv);
    }

    fn devices(&mut self, inv: &mut Inventory) {
        self.list("inventory.memory_modules", &mut inv.memory_modules);
        for m in &mut inv.memory_modules {
            self.string("inventory.memory_modules.locator", &mut m.locator);
            self.count("inventory.memory_modules.size_bytes", &mut m.size_bytes);
            for (field, v) in [
                ("inventory.memory_modules.bank", &mut m.bank),
                ("inventory.memory_modules.memory_type", &mut m.memory_type),
                ("inventory.memory_modules.manufacturer", &mut m.manufacturer),
                ("inventory.memory_modules.part_number", &mut m.part_number),
                ("inventory.memory_modules.serial", &mut m.serial),
            ] {
                self.opt(field, v);
            }
        }
        self.list("inventory.monitors", &mut inv.monitors);
        for m in &mut inv.monitors {
            self.string("inventory.monitors.connector", &mut m.connector);
            self.opt("inventory.monitors.manufacturer", &mut m.manufacturer);
            self.opt("inventory.monitors.model", &mut m.model);
            self.opt("inventory.monitors.serial", &mut m.serial);
        }
        self.list("inventory.gpus", &mut inv.gpus);
        for g in &mut inv.gpus {
            self.string("inventory.gpus.pci_slot", &mut g.pci_slot);
            self.string("inventory.gpus.vendor_id", &mut g.vendor_id);
            self.string("inventory.gpus.device_id", &mut g.device_id);
            self.opt("inventory.gpus.vendor", &mut g.vendor);
            self.opt("inventory.gpus.driver", &mut g.driver);
        }
        if let Some(software) = &mut inv.software {
            let max = self.limits.max_software_text_bytes;
            self.bounded_list("inventory.software", software, self.limits.max_software);
            for s in software {
                self.bounded_string("inventory.software.name", &mut s.name, max);
                self.bounded_string("inventory.software.version", &mut s.version, max);
            }
        }
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
/// "Sent" is when the report carrying it was spooled: from then on it reaches the collector
/// (or is counted as dropped); a report that could not be spooled (a full disk) leaves the
/// inventory due for the next one rather than withheld for a day.
#[derive(Debug, Default)]
pub struct InventoryPolicy {
    last: Option<(u64, Instant)>,
}

/// An inventory found due by [`InventoryPolicy::due`], to hand back to
/// [`InventoryPolicy::spooled`] once its report is spooled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due(u64);

impl InventoryPolicy {
    /// Whether `inventory` should go with the report made at `now`.
    pub fn due(&self, inventory: &Inventory, now: Instant) -> Option<Due> {
        let hash = content_hash(inventory);
        let due = match self.last {
            None => true,
            Some((last_hash, sent)) => {
                last_hash != hash || now.duration_since(sent) >= INVENTORY_REFRESH
            }
        };
        due.then_some(Due(hash))
    }

    /// The report carrying the inventory `due` found was spooled at `now`.
    pub fn spooled(&mut self, due: Due, now: Instant) {
        self.last = Some((due.0, now));
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

    fn interface(name: &str, addresses: usize) -> Interface {
        Interface {
            name: name.to_owned(),
            addresses: (0..addresses).map(|i| format!("fd00::{i:x}/64")).collect(),
            up: true,
            ..Interface::default()
        }
    }

    #[test]
    fn a_report_with_too_many_interfaces_is_cut_to_validate() {
        let limits = Limits::default();
        let mut interfaces: Vec<Interface> = (0..600)
            .map(|i| interface(&format!("veth{i:04}"), 1))
            .collect();
        interfaces.push(Interface {
            default_route: true,
            ..interface("wan0", 700)
        });
        let counters = interfaces
            .iter()
            .map(|i| hatang_protocol::InterfaceCounters {
                name: i.name.clone(),
                ..Default::default()
            })
            .collect();
        let inventory = Inventory {
            hostname: "h".repeat(2000),
            interfaces,
            ..Inventory::default()
        };
        let sample = Sample {
            interfaces: counters,
            ..Sample::default()
        };
        let mut unbounded = build(None, None, Vec::new(), Duration::from_secs(60));
        unbounded.inventory = Some(inventory.clone());
        assert!(unbounded.validate(&limits).is_err());

        let report = build(
            Some(inventory),
            Some(sample),
            Vec::new(),
            Duration::from_secs(60),
        );
        report.validate(&limits).unwrap();
        let inv = report.inventory.as_ref().unwrap();
        assert_eq!(inv.hostname, "h".repeat(1024));
        assert_eq!(inv.interfaces.len(), 512);
        // The uplink survives although it sorts last, and the order stays by name.
        let wan = inv.interfaces.last().unwrap();
        assert_eq!((wan.name.as_str(), wan.default_route), ("wan0", true));
        assert_eq!(wan.addresses.len(), 512);
        assert_eq!(inv.interfaces[0].name, "veth0000");
        assert_eq!(inv.interfaces[510].name, "veth0510");
        assert_eq!(report.sample.as_ref().unwrap().interfaces.len(), 512);
    }

    fn golden() -> Report {
        serde_json::from_str(include_str!("../../protocol/tests/golden/report-v1.json")).unwrap()
    }

    #[test]
    fn control_characters_and_huge_counts_are_fitted_not_refused() {
        // A mount point with a tab (the kernel allows it, /proc/mounts escapes it as \011), a
        // filesystem whose block counts saturate, a CPU ratio a rounding over 1: each alone
        // made the collector refuse the report, and so every report of that machine.
        let mut report = golden();
        let sample = report.sample.as_mut().unwrap();
        sample.filesystems[0].mount_point = "/media/USB\tDISK".into();
        sample.filesystems[0].used_bytes = u64::MAX;
        sample.interfaces[0].name = "eth\n0".into();
        sample.cpu_usage_ratio = Some(1.000_000_1);
        sample.load = Some([f64::NAN, 0.5, 0.25]);
        report.inventory.as_mut().unwrap().hostname = "pc\u{7}".into();
        let limits = Limits::default();
        assert!(report.validate(&limits).is_err());

        let cuts = fit(&mut report, &limits);
        report.validate(&limits).unwrap();
        let sample = report.sample.as_ref().unwrap();
        assert_eq!(sample.filesystems[0].mount_point, "/media/USB\u{fffd}DISK");
        assert_eq!(sample.filesystems[0].used_bytes, i64::MAX as u64);
        assert_eq!(sample.interfaces[0].name, "eth\u{fffd}0");
        assert_eq!(sample.cpu_usage_ratio, Some(1.0));
        assert_eq!(sample.load, Some([0.0, 0.5, 0.25]));
        assert_eq!(report.inventory.as_ref().unwrap().hostname, "pc\u{fffd}");
        assert_eq!(
            cuts.describe(),
            "inventory.hostname: 1 strings shortened or cleaned; \
             sample.filesystems.mount_point: 1 strings shortened or cleaned; \
             sample.interfaces.name: 1 strings shortened or cleaned; \
             sample.cpu_usage_ratio: 1 numbers brought into range; \
             sample.filesystems.used_bytes: 1 numbers brought into range; \
             sample.load: 1 numbers brought into range"
        );
    }

    #[test]
    fn what_would_still_be_refused_is_left_out_and_the_rest_is_sent() {
        let mut report = golden();
        let probes = report.probes.clone();
        report.probes[0].successes = report.probes[0].attempts + 1;
        report.sample.as_mut().unwrap().temperatures[1].celsius = 900.0;
        report.gateway.as_mut().unwrap().rtt_avg_seconds = Some(-1.0);
        let problems = sound(&mut report);
        assert_eq!(problems.len(), 3, "{problems:?}");
        report.validate(&Limits::default()).unwrap();
        // The bad probe and the bad temperature alone; the gateway check, which is not a list
        // item, whole; everything else as it was.
        assert_eq!(report.probes, probes[1..]);
        let golden = golden();
        let temperatures = &report.sample.as_ref().unwrap().temperatures;
        assert_eq!(
            temperatures,
            &golden.sample.as_ref().unwrap().temperatures[..1]
        );
        assert_eq!(report.gateway, None);
        assert_eq!(report.inventory, golden.inventory);
        assert_eq!(report.speed, golden.speed);
        // A sound report is left alone.
        let mut fine = golden.clone();
        assert!(sound(&mut fine).is_empty());
        assert_eq!(fine, golden);
    }

    #[test]
    fn fit_reports_every_cut_and_keeps_what_fits() {
        let limits = Limits {
            max_string_bytes: 5,
            max_items: 2,
            ..Limits::default()
        };
        let probe = |name: &str| ProbeResult {
            name: name.to_owned(),
            kind: hatang_protocol::ProbeKind::Tcp,
            class: hatang_protocol::ProbeClass::Internet,
            target: "a:1".to_owned(),
            attempts: 1,
            successes: 1,
            rtt_min_seconds: None,
            rtt_avg_seconds: None,
            rtt_max_seconds: None,
            jitter_seconds: None,
            error: Some("t\0o".to_owned()),
            http_status: None,
            tls_not_after: None,
        };
        let mut report = build(
            Some(Inventory {
                // "ệ" is three bytes: five bytes would end inside the second one.
                hostname: "ệệx".to_owned(),
                os: hatang_protocol::Os {
                    family: "linux".to_owned(),
                    arch: "arm".to_owned(),
                    ..Default::default()
                },
                disks: vec![Default::default(); 3],
                ..Inventory::default()
            }),
            None,
            Vec::new(),
            Duration::from_secs(60),
        );
        // After `build`, which already fits the report to the default limits.
        report.probes = vec![probe("a"), probe("b"), probe("c")];
        report.agent_version = "0.1.0".to_owned();
        let cuts = fit(&mut report, &limits);
        report.validate(&limits).unwrap();
        let inv = report.inventory.as_ref().unwrap();
        assert_eq!(inv.hostname, "ệ");
        assert_eq!(inv.os.family, "linux");
        assert_eq!(inv.disks.len(), 2);
        let names: Vec<&str> = report.probes.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(report.probes[0].error.as_deref(), Some("to"));
        assert_eq!(
            cuts.describe(),
            "inventory.disks: 1 items dropped; probes: 1 items dropped; \
             inventory.hostname: 1 strings shortened or cleaned; probes.error: 2 strings shortened or cleaned"
        );
        assert!(fit(&mut report, &limits).is_empty());
    }

    #[test]
    fn a_long_software_list_is_cut_to_its_own_bounds() {
        let limits = Limits::default();
        let software: Vec<hatang_protocol::Software> = (0..limits.max_software + 250)
            .map(|i| hatang_protocol::Software {
                // Names and versions as long as the limits allow: the worst case.
                name: format!(
                    "pkg{i:05}-{}",
                    "n".repeat(limits.max_software_text_bytes - 9)
                ),
                version: "1:".to_owned() + &"9".repeat(limits.max_software_text_bytes),
            })
            .collect();
        let mut report = build(
            Some(Inventory {
                software: Some(software),
                monitors: vec![Default::default(); limits.max_items + 1],
                ..Inventory::default()
            }),
            None,
            Vec::new(),
            Duration::from_secs(60),
        );
        report.validate(&limits).unwrap();
        let inv = report.inventory.as_ref().unwrap();
        let software = inv.software.as_ref().unwrap();
        assert_eq!(software.len(), limits.max_software);
        let last = format!("pkg{:05}-", limits.max_software - 1);
        assert!(software.last().unwrap().name.starts_with(&last));
        assert_eq!(
            software[0].version.len(),
            limits.max_software_text_bytes,
            "cut, not dropped"
        );
        assert_eq!(inv.monitors.len(), limits.max_items);
        // Cut already: a second pass finds nothing.
        assert!(fit(&mut report, &limits).is_empty());
        // The worst case the limits allow still fits the collector's default 1 MiB report.
        let json = serde_json::to_vec(&report).unwrap();
        assert!(json.len() < 1 << 20, "{} bytes", json.len());
    }

    #[test]
    fn inventory_goes_when_changed_or_a_day_old() {
        let mut policy = InventoryPolicy::default();
        let t0 = Instant::now();
        let at = |secs: u64| t0 + Duration::from_secs(secs);
        // Every due inventory spooled with its report.
        let mut send = |inv: &Inventory, now: Instant| {
            let due = policy.due(inv, now);
            if let Some(due) = due {
                policy.spooled(due, now);
            }
            due.is_some()
        };
        let mut inv = Inventory {
            hostname: "pc-1".into(),
            ..Inventory::default()
        };
        assert!(send(&inv, t0));
        assert!(!send(&inv, at(60)));
        inv.memory.total_bytes = 8 << 30;
        assert!(send(&inv, at(120)));
        assert!(!send(&inv, at(3600)));
        assert!(send(&inv, at(120) + INVENTORY_REFRESH));
    }

    #[test]
    fn an_inventory_whose_report_was_not_spooled_is_still_due() {
        let mut policy = InventoryPolicy::default();
        let t0 = Instant::now();
        let inv = Inventory::default();
        let due = policy.due(&inv, t0).unwrap();
        // The report could not be written (a full disk): nothing is remembered.
        assert_eq!(policy.due(&inv, t0 + Duration::from_secs(60)), Some(due));
        policy.spooled(due, t0 + Duration::from_secs(60));
        assert_eq!(policy.due(&inv, t0 + Duration::from_secs(120)), None);
    }
}
