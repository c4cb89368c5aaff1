//! What changed between two inventories of one machine: the change log planners and IT staff
//! read to see that RAM was removed, a disk swapped or a network card replaced.
//!
//! Only stable hardware and system identity is compared. Addresses, mounts and link state move
//! by themselves (DHCP, USB sticks, cables) and would drown the real changes.

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
pub const COMPONENTS: [&str; 6] = ["system", "os", "cpu", "memory", "disk", "network"];

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
    out
}

#[cfg(test)]
mod tests {
    use hatang_protocol::{Disk, Dmi, Interface};

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

    #[test]
    fn components_are_the_documented_set() {
        let mut new = base();
        new.hostname = "ub-02".into();
        new.cpu.threads = 16;
        new.os.kernel = Some("10.0.19045".into());
        for c in diff(&base(), &new) {
            assert!(COMPONENTS.contains(&c.component), "{}", c.component);
        }
    }
}
