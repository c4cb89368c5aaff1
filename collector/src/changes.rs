//! What changed between two inventories of one machine: the change log planners and IT staff
//! read to see that RAM was removed, a disk swapped or a network card replaced.
//!
//! Only stable hardware and system identity is compared. Addresses, mounts and link state move
//! by themselves (DHCP, USB sticks, cables) and would drown the real changes; so would the
//! installed-software list, which changes with every update.
//!
//! Memory modules, monitors and GPUs are components of their own, compared only where both
//! inventories could have listed them: monitors and GPUs when both come from agents that know
//! these fields (they send a `form_factor`; an older agent's empty lists mean "not reported", and
//! the upgrade must not log every monitor as added); memory modules only when both lists have
//! some, because every machine has memory and an empty list means the firmware tables were not
//! readable (they are root-only on Linux).

use std::collections::BTreeMap;

use hatang_protocol::Inventory;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Added,
    Removed,
    Changed,
}

impl ChangeKind {
    pub const ALL: [ChangeKind; 3] = [ChangeKind::Added, ChangeKind::Removed, ChangeKind::Changed];

    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Added => "added",
            ChangeKind::Removed => "removed",
            ChangeKind::Changed => "changed",
        }
    }
}

/// One difference. `component` is a small fixed set (it labels a metric); `key` names the
/// instance (a disk, an interface) or the property.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub component: &'static str,
    pub key: String,
    pub kind: ChangeKind,
    pub before: Option<String>,
    pub after: Option<String>,
}

/// The components a change can be about.
pub const COMPONENTS: [&str; 9] = [
    "system",
    "os",
    "cpu",
    "memory",
    "disk",
    "network",
    "memory_module",
    "monitor",
    "gpu",
];

fn changed(
    out: &mut Vec<Change>,
    component: &'static str,
    key: &str,
    before: Option<String>,
    after: Option<String>,
) {
    if before != after {
        out.push(Change {
            component,
            key: key.to_string(),
            kind: match (&before, &after) {
                (None, Some(_)) => ChangeKind::Added,
                (Some(_), None) => ChangeKind::Removed,
                _ => ChangeKind::Changed,
            },
            before,
            after,
        });
    }
}

/// Instances keyed by name, compared by a description of each.
fn keyed(
    out: &mut Vec<Change>,
    component: &'static str,
    before: BTreeMap<String, String>,
    mut after: BTreeMap<String, String>,
) {
    for (key, old) in before {
        let new = after.remove(&key);
        changed(out, component, &key, Some(old), new);
    }
    for (key, new) in after {
        changed(out, component, &key, None, Some(new));
    }
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / f64::from(1u32 << 30))
}

pub fn diff(old: &Inventory, new: &Inventory) -> Vec<Change> {
    let mut out = Vec::new();
    changed(
        &mut out,
        "system",
        "hostname",
        Some(old.hostname.clone()),
        Some(new.hostname.clone()),
    );
    let dmi = |inv: &Inventory, f: fn(&hatang_protocol::Dmi) -> &Option<String>| {
        inv.dmi.as_ref().and_then(|d| f(d).clone())
    };
    for (key, field) in [
        (
            "serial",
            (|d| &d.product_serial) as fn(&hatang_protocol::Dmi) -> &Option<String>,
        ),
        ("product", |d| &d.product_name),
        ("board", |d| &d.board_name),
        ("bios_version", |d| &d.bios_version),
    ] {
        changed(&mut out, "system", key, dmi(old, field), dmi(new, field));
    }
    let os = |inv: &Inventory| {
        format!(
            "{} {}",
            inv.os.name.as_deref().unwrap_or(&inv.os.family),
            inv.os.version.as_deref().unwrap_or("")
        )
        .trim()
        .to_string()
    };
    changed(&mut out, "os", "release", Some(os(old)), Some(os(new)));
    changed(
        &mut out,
        "os",
        "kernel",
        old.os.kernel.clone(),
        new.os.kernel.clone(),
    );
    let cpu = |inv: &Inventory| {
        format!(
            "{} ({} threads)",
            inv.cpu.model.as_deref().unwrap_or("unknown model"),
            inv.cpu.threads
        )
    };
    changed(&mut out, "cpu", "cpu", Some(cpu(old)), Some(cpu(new)));
    changed(
        &mut out,
        "memory",
        "total",
        Some(gib(old.memory.total_bytes)),
        Some(gib(new.memory.total_bytes)),
    );
    // A disk is the same disk while its serial is; without a serial, its kernel name.
    let disks = |inv: &Inventory| {
        inv.disks
            .iter()
            .map(|d| {
                let key = d.serial.clone().unwrap_or_else(|| d.name.clone());
                let what = format!(
                    "{} {} {}",
                    d.name,
                    d.model.as_deref().unwrap_or(""),
                    gib(d.size_bytes)
                );
                (key, what.split_whitespace().collect::<Vec<_>>().join(" "))
            })
            .collect()
    };
    keyed(&mut out, "disk", disks(old), disks(new));
    // Network cards by MAC address: a replaced card is one removed and one added.
    let nics = |inv: &Inventory| {
        inv.interfaces
            .iter()
            .filter(|i| !i.loopback)
            .filter_map(|i| i.mac.clone().map(|mac| (mac, i.name.clone())))
            .collect()
    };
    keyed(&mut out, "network", nics(old), nics(new));
    devices(&mut out, old, new);
    out
}

/// Memory modules by slot, monitors by maker and serial (by connector when they have none),
/// GPUs by PCI slot.
fn devices(out: &mut Vec<Change>, old: &Inventory, new: &Inventory) {
    let modules = |inv: &Inventory| {
        inv.memory_modules
            .iter()
            .map(|m| (m.locator.clone(), describe_module(m)))
            .collect()
    };
    if !old.memory_modules.is_empty() && !new.memory_modules.is_empty() {
        keyed(out, "memory_module", modules(old), modules(new));
    }
    let monitors = |inv: &Inventory| {
        inv.monitors
            .iter()
            .map(|m| {
                let name = words(&[m.manufacturer.as_deref(), m.model.as_deref()]);
                let size = m.diagonal_inches.map(|d| format!("{d}\""));
                match &m.serial {
                    // The same monitor on another port is the same monitor.
                    Some(serial) => (
                        words(&[m.manufacturer.as_deref(), Some(serial)]),
                        words(&[Some(&name), size.as_deref()]),
                    ),
                    None => (m.connector.clone(), words(&[Some(&name), size.as_deref()])),
                }
            })
            .collect()
    };
    if !(old.form_factor.is_some() && new.form_factor.is_some()) {
        return;
    }
    keyed(out, "monitor", monitors(old), monitors(new));
    let gpus = |inv: &Inventory| {
        inv.gpus
            .iter()
            .map(|g| {
                let ids = format!("{}:{}", g.vendor_id, g.device_id);
                let driver = g.driver.as_ref().map(|d| format!("({d})"));
                (
                    g.pci_slot.clone(),
                    words(&[g.vendor.as_deref(), Some(&ids), driver.as_deref()]),
                )
            })
            .collect()
    };
    keyed(out, "gpu", gpus(old), gpus(new));
}

/// e.g. `8.0 GiB DDR4 3200 MT/s SK Hynix HMA81GU6DJR8N-XN S/N 3A1B2C4D`.
fn describe_module(m: &hatang_protocol::MemoryModule) -> String {
    let speed = m.speed_mts.map(|s| format!("{s} MT/s"));
    let serial = m.serial.as_ref().map(|s| format!("S/N {s}"));
    words(&[
        Some(&gib(m.size_bytes)),
        m.memory_type.as_deref(),
        speed.as_deref(),
        m.manufacturer.as_deref(),
        m.part_number.as_deref(),
        serial.as_deref(),
    ])
}

/// The parts that are there, separated by single spaces.
fn words(parts: &[Option<&str>]) -> String {
    parts
        .iter()
        .flatten()
        .flat_map(|p| p.split_whitespace())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use hatang_protocol::{Disk, Dmi, FormFactor, Gpu, Interface, MemoryModule, Monitor};

    use super::*;

    fn base() -> Inventory {
        let mut inv = Inventory {
            hostname: "ub-01".into(),
            ..Inventory::default()
        };
        inv.os.family = "windows".into();
        inv.os.name = Some("Windows 10 Pro".into());
        inv.os.version = Some("22H2".into());
        inv.cpu.model = Some("Intel Core i5-10400".into());
        inv.cpu.threads = 12;
        inv.memory.total_bytes = 8 << 30;
        inv.disks = vec![Disk {
            name: "sda".into(),
            size_bytes: 256 << 30,
            model: Some("KINGSTON SA400".into()),
            serial: Some("S1".into()),
            ..Disk::default()
        }];
        inv.interfaces = vec![
            Interface {
                name: "lo".into(),
                loopback: true,
                ..Interface::default()
            },
            Interface {
                name: "eth0".into(),
                mac: Some("3c:7c:3f:00:00:01".into()),
                addresses: vec!["10.0.0.5/24".into()],
                ..Interface::default()
            },
        ];
        inv.dmi = Some(Dmi {
            product_serial: Some("7XK2LD3".into()),
            ..Dmi::default()
        });
        inv
    }

    fn summary(changes: &[Change]) -> Vec<String> {
        changes
            .iter()
            .map(|c| {
                format!(
                    "{} {} {}: {} -> {}",
                    c.component,
                    c.key,
                    c.kind.as_str(),
                    c.before.as_deref().unwrap_or("-"),
                    c.after.as_deref().unwrap_or("-")
                )
            })
            .collect()
    }

    #[test]
    fn the_same_inventory_has_no_changes_even_with_new_addresses() {
        let mut new = base();
        new.interfaces[1].addresses = vec!["10.0.0.77/24".into()];
        new.interfaces[1].up = !new.interfaces[1].up;
        assert!(diff(&base(), &new).is_empty());
    }

    #[test]
    fn ram_removed_and_disk_swapped() {
        let mut new = base();
        new.memory.total_bytes = 4 << 30;
        new.disks[0].serial = Some("S2".into());
        new.disks[0].model = Some("Samsung 870".into());
        assert_eq!(
            summary(&diff(&base(), &new)),
            [
                "memory total changed: 8.0 GiB -> 4.0 GiB",
                "disk S1 removed: sda KINGSTON SA400 256.0 GiB -> -",
                "disk S2 added: - -> sda Samsung 870 256.0 GiB",
            ]
        );
    }

    #[test]
    fn nic_replaced_os_upgraded_and_serial_changed() {
        let mut new = base();
        new.interfaces[1].mac = Some("3c:7c:3f:00:00:02".into());
        new.os.name = Some("Windows 11 Pro".into());
        new.dmi = None;
        assert_eq!(
            summary(&diff(&base(), &new)),
            [
                "system serial removed: 7XK2LD3 -> -",
                "os release changed: Windows 10 Pro 22H2 -> Windows 11 Pro 22H2",
                "network 3c:7c:3f:00:00:01 removed: eth0 -> -",
                "network 3c:7c:3f:00:00:02 added: - -> eth0",
            ]
        );
    }

    fn with_devices() -> Inventory {
        let mut inv = base();
        inv.form_factor = Some(FormFactor::Desktop);
        let dimm = |slot: &str, serial: &str| MemoryModule {
            locator: slot.into(),
            size_bytes: 8 << 30,
            memory_type: Some("DDR4".into()),
            speed_mts: Some(3200),
            manufacturer: Some("SK Hynix".into()),
            part_number: Some("HMA81GU6DJR8N-XN".into()),
            serial: Some(serial.into()),
            ..MemoryModule::default()
        };
        inv.memory_modules = vec![dimm("DIMM_A1", "3A1B2C4D"), dimm("DIMM_B1", "3A1B2C5E")];
        inv.monitors = vec![Monitor {
            connector: "DP-1".into(),
            manufacturer: Some("DEL".into()),
            model: Some("DELL P2419H".into()),
            serial: Some("CFV9N97G0ABL".into()),
            diagonal_inches: Some(23.8),
            ..Monitor::default()
        }];
        inv.gpus = vec![Gpu {
            pci_slot: "0000:00:02.0".into(),
            vendor_id: "8086".into(),
            device_id: "9bc8".into(),
            vendor: Some("Intel".into()),
            driver: Some("i915".into()),
        }];
        inv
    }

    #[test]
    fn memory_module_removed_monitor_gone_gpu_added() {
        let mut new = with_devices();
        new.memory_modules.remove(1);
        new.monitors.clear();
        new.gpus.push(Gpu {
            pci_slot: "0000:01:00.0".into(),
            vendor_id: "10de".into(),
            device_id: "1f82".into(),
            vendor: Some("NVIDIA".into()),
            driver: None,
        });
        assert_eq!(
            summary(&diff(&with_devices(), &new)),
            [
                "memory_module DIMM_B1 removed: \
                 8.0 GiB DDR4 3200 MT/s SK Hynix HMA81GU6DJR8N-XN S/N 3A1B2C5E -> -",
                "monitor DEL CFV9N97G0ABL removed: DEL DELL P2419H 23.8\" -> -",
                "gpu 0000:01:00.0 added: - -> NVIDIA 10de:1f82",
            ]
        );
    }

    #[test]
    fn a_module_swapped_in_its_slot_and_a_monitor_moved_to_another_port() {
        let mut new = with_devices();
        new.memory_modules[0].serial = Some("77AA88BB".into());
        new.memory_modules[0].size_bytes = 16 << 30;
        new.monitors[0].connector = "HDMI-A-1".into();
        new.gpus[0].driver = Some("xe".into());
        assert_eq!(
            summary(&diff(&with_devices(), &new)),
            [
                "memory_module DIMM_A1 changed: \
                 8.0 GiB DDR4 3200 MT/s SK Hynix HMA81GU6DJR8N-XN S/N 3A1B2C4D -> \
                 16.0 GiB DDR4 3200 MT/s SK Hynix HMA81GU6DJR8N-XN S/N 77AA88BB",
                "gpu 0000:00:02.0 changed: Intel 8086:9bc8 (i915) -> Intel 8086:9bc8 (xe)",
            ]
        );
        // Without a serial a monitor is known by its port.
        let mut old = with_devices();
        old.monitors[0].serial = None;
        let mut moved = old.clone();
        moved.monitors[0].connector = "HDMI-A-1".into();
        assert_eq!(
            summary(&diff(&old, &moved)),
            [
                "monitor DP-1 removed: DEL DELL P2419H 23.8\" -> -",
                "monitor HDMI-A-1 added: - -> DEL DELL P2419H 23.8\"",
            ]
        );
    }

    #[test]
    fn software_updates_are_not_inventory_changes() {
        let mut new = with_devices();
        new.software = Some(vec![hatang_protocol::Software {
            name: "firefox-esr".into(),
            version: "128.5.0esr-1".into(),
        }]);
        assert!(diff(&with_devices(), &new).is_empty());
    }

    #[test]
    fn lists_that_could_not_have_been_reported_are_not_changes() {
        // An agent upgraded to one that reports devices: nothing was added.
        let old = base();
        assert!(diff(&old, &with_devices()).is_empty());
        // Memory tables unreadable this time (an agent run without root): no module removed.
        let mut unreadable = with_devices();
        unreadable.memory_modules.clear();
        assert!(diff(&with_devices(), &unreadable).is_empty());
    }

    #[test]
    fn components_are_the_documented_set() {
        let mut new = base();
        new.hostname = "ub-02".into();
        new.cpu.threads = 16;
        new.os.kernel = Some("10.0.19045".into());
        let mut devices = with_devices();
        devices.memory_modules.pop();
        devices.monitors.clear();
        devices.gpus.clear();
        let changes: Vec<Change> = diff(&base(), &new)
            .into_iter()
            .chain(diff(&with_devices(), &devices))
            .collect();
        let seen: Vec<&str> = changes.iter().map(|c| c.component).collect();
        for device in ["memory_module", "monitor", "gpu"] {
            assert!(seen.contains(&device), "{seen:?}");
        }
        for c in changes {
            assert!(COMPONENTS.contains(&c.component), "{}", c.component);
        }
    }
}
