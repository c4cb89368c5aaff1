//! This machine, read: the platform functions `collect` calls, binding the API calls in
//! [`super::sys`] and the registry to the pure mappers.

use hatang_protocol::{Disk, Dmi, Gpu, Interface, MemoryModule, Monitor, Software};
use windows_registry::{Key, LOCAL_MACHINE, USERS};

use super::adapters::{self, Adapter};
use super::cpu::{self, SystemTimes};
use super::display::{self, MonitorKey, PciKey};
use super::drives;
use super::os::{self, CurrentVersion};
use super::physical_disks;
use super::rsmb;
use super::software::{self, UninstallEntry};
use super::sys;
pub(crate) use crate::collect::absent::{permanent_mac, temperatures};
use crate::collect::filesystems::{Blocks, Mount};
use crate::collect::{DefaultRoute, OsRelease, junk};

const CURRENT_VERSION: &str = r"SOFTWARE\Microsoft\Windows NT\CurrentVersion";
const CRYPTOGRAPHY: &str = r"SOFTWARE\Microsoft\Cryptography";
const UNINSTALL: &str = r"SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall";
const ENUM: &str = r"SYSTEM\CurrentControlSet\Enum";
/// 32-bit programs' entries, as a 64-bit process sees them.
const UNINSTALL_32: &str = r"SOFTWARE\WOW6432Node\Microsoft\Windows\CurrentVersion\Uninstall";

/// SMBIOS identification and chassis from the firmware table, where Windows hands it over.
pub(crate) fn dmi() -> Option<Dmi> {
    smbios(rsmb::parse_rsmb).filter(|dmi| *dmi != Dmi::default())
}

/// The installed memory modules from the same table's memory device structures.
pub(crate) fn memory_modules() -> Vec<MemoryModule> {
    smbios(rsmb::memory_modules).unwrap_or_default()
}

/// The firmware's SMBIOS table through `decode`; `None` where there is none or it is damaged.
fn smbios<T>(decode: fn(&[u8]) -> Result<T, rsmb::SmbiosError>) -> Option<T> {
    decode(&sys::smbios_table()?)
        .inspect_err(|e| tracing::debug!(error = %e, "unreadable SMBIOS table"))
        .ok()
}

/// Highest `\\.\PhysicalDriveN` tried. Numbers are not always contiguous (a removed USB disk
/// leaves a gap), so each is tried; opening one that does not exist costs microseconds.
const MAX_PHYSICAL_DRIVES: u32 = 64;

/// Physical disks with model and serial; volumes are reported as filesystems.
pub(crate) fn disks() -> Vec<Disk> {
    (0..MAX_PHYSICAL_DRIVES)
        .filter_map(sys::physical_drive)
        .filter_map(|drive| {
            physical_disks::disk(&drive)
                .inspect_err(|e| tracing::debug!(index = drive.index, error = %e, "disk skipped"))
                .ok()
        })
        .collect()
}

pub(crate) fn os_release() -> OsRelease {
    let Ok(key) = LOCAL_MACHINE.open(CURRENT_VERSION) else {
        return OsRelease::default();
    };
    let text = |name: &str| key.get_string(name).ok();
    os::release(&CurrentVersion {
        product_name: text("ProductName"),
        display_version: text("DisplayVersion"),
        release_id: text("ReleaseId"),
        current_version: text("CurrentVersion"),
        build: text("CurrentBuildNumber"),
        update_revision: key.get_u32("UBR").ok(),
    })
}

fn adapter_table() -> Vec<Adapter> {
    sys::adapters().unwrap_or_else(|e| {
        tracing::debug!(error = %e, "cannot list network adapters");
        Vec::new()
    })
}

/// Every network adapter (sysinfo lists only connected hardware ones, and none under Wine).
pub(crate) fn interfaces(default_route: Option<&str>) -> Vec<Interface> {
    adapter_table()
        .iter()
        .map(|a| adapters::interface(a, default_route == Some(a.name.as_str())))
        .collect()
}

pub(crate) fn default_route() -> Option<DefaultRoute> {
    adapters::default_route(&adapter_table())
}

/// Not detected on Windows yet (the Linux rules read `/sys` and `/proc`).
pub(crate) fn virtualization(_dmi: Option<&Dmi>) -> Option<String> {
    None
}

/// sysinfo reads the CPU frequency on Windows itself.
pub(crate) fn cpu_max_frequency_hz() -> Option<u64> {
    None
}

/// The fixed drives, for when sysinfo lists no volumes (as under Wine).
pub(crate) fn fixed_drives() -> Vec<Mount> {
    drives::roots(sys::logical_drives())
        .iter()
        .filter_map(|root| drives::mount(sys::drive(root)))
        .collect()
}

/// Space on the volume holding `path`, counted as `df` counts it.
pub(crate) fn volume_blocks(path: &str) -> Option<Blocks> {
    sys::free_space(path).and_then(drives::blocks)
}

/// The registry's `MachineGuid`, written once at installation (and again by sysprep), lower
/// case; `None` when missing or junk.
pub(crate) fn machine_guid() -> Option<String> {
    let guid = LOCAL_MACHINE
        .open(CRYPTOGRAPHY)
        .and_then(|key| key.get_string("MachineGuid"))
        .ok()?;
    junk::clean(guid.trim_matches(['{', '}']))
        .filter(|g| g.chars().all(|c| c.is_ascii_hexdigit() || c == '-'))
        .map(|g| g.to_ascii_lowercase())
}

/// Installed programs from the machine's Uninstall keys and those of every loaded user hive (the
/// users logged on now); `None` when the machine-wide key is unreadable.
pub(crate) fn software() -> Option<Vec<Software>> {
    let mut entries = uninstall_entries(&LOCAL_MACHINE.open(UNINSTALL).ok()?);
    if let Ok(key) = LOCAL_MACHINE.open(UNINSTALL_32) {
        entries.extend(uninstall_entries(&key));
    }
    // `<SID>_Classes` hives hold file associations, never Uninstall keys.
    let users = USERS.keys().into_iter().flatten();
    for user in users.filter(|sid| !sid.ends_with("_Classes")) {
        if let Ok(key) = USERS.open(format!(r"{user}\{UNINSTALL}")) {
            entries.extend(uninstall_entries(&key));
        }
    }
    Some(software::software(entries))
}

/// The listing values of every subkey of one Uninstall key.
fn uninstall_entries(uninstall: &Key) -> Vec<UninstallEntry> {
    let names = uninstall.keys().into_iter().flatten();
    names
        .filter_map(|name| uninstall.open(name).ok())
        .map(|entry| UninstallEntry {
            display_name: entry.get_string("DisplayName").ok(),
            display_version: entry.get_string("DisplayVersion").ok(),
            system_component: entry.get_u32("SystemComponent").ok(),
            parent_key_name: entry.get_string("ParentKeyName").ok(),
        })
        .collect()
}

/// Every instance key under `Enum\<bus>`: its device key's name, its instance's name, the
/// instance key, and whether it has the `Control` subkey of a device present since boot.
fn device_instances(bus: &str) -> Vec<(String, String, Key, bool)> {
    let Ok(root) = LOCAL_MACHINE.open(format!(r"{ENUM}\{bus}")) else {
        return Vec::new();
    };
    let mut list = Vec::new();
    for device in root.keys().into_iter().flatten() {
        let Ok(device_key) = root.open(&device) else {
            continue;
        };
        for instance in device_key.keys().into_iter().flatten() {
            if let Ok(key) = device_key.open(&instance) {
                let present = key.open("Control").is_ok();
                list.push((device.clone(), instance, key, present));
            }
        }
    }
    list
}

/// Monitors present since boot, from the EDID Windows keeps for each.
pub(crate) fn monitors() -> Vec<Monitor> {
    let keys = device_instances("DISPLAY")
        .into_iter()
        .map(|(model, instance, key, present)| MonitorKey {
            instance: format!(r"{model}\{instance}"),
            present,
            edid: key
                .open("Device Parameters")
                .and_then(|parameters| parameters.get_value("EDID"))
                .ok()
                .map(|value| value.to_vec()),
        })
        .collect();
    display::monitors(keys)
}

/// Display adapters present since boot, from their PCI device keys.
pub(crate) fn gpus() -> Vec<Gpu> {
    let keys = device_instances("PCI")
        .into_iter()
        .map(|(device, instance, key, present)| PciKey {
            class_guid: key.get_string("ClassGUID").ok(),
            location: key.get_string("LocationInformation").ok(),
            service: key.get_string("Service").ok(),
            device,
            instance,
            present,
        })
        .collect();
    display::gpus(keys)
}

/// CPU use between calls, from `GetSystemTimes` (see [`cpu`]).
#[derive(Debug, Default)]
pub(crate) struct CpuMeter {
    last: Option<SystemTimes>,
}

impl CpuMeter {
    /// Busy share since the previous call; `None` on the first call or when unreadable.
    pub(crate) fn busy_ratio(&mut self) -> Option<f64> {
        let now = sys::system_times()?;
        let before = self.last.replace(now)?;
        cpu::busy_ratio(before, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What every Windows machine (and Wine) has: a MachineGuid, a named OS, a system drive and
    /// the physical disk under it, a loopback adapter and readable CPU times.
    #[test]
    fn reads_this_windows_machine() {
        let guid = machine_guid().expect("a MachineGuid");
        assert_eq!(guid.len(), 36, "{guid}");
        assert_eq!(guid.matches('-').count(), 4, "{guid}");
        assert!(os_release().name.is_some_and(|n| n.contains("Windows")));
        let drives = fixed_drives();
        let system = drives
            .iter()
            .find(|d| d.filesystem.mount_point == "C:\\")
            .unwrap_or_else(|| panic!("no C: in {drives:?}"));
        let usage = system.usage();
        assert!(usage.used_bytes + usage.free_bytes == system.filesystem.total_bytes);
        assert!(system.filesystem.total_bytes > 0);
        assert_eq!(
            volume_blocks("C:\\").map(|b| b.total_bytes()),
            Some(system.filesystem.total_bytes)
        );
        let disks = disks();
        assert!(
            disks
                .iter()
                .any(|d| d.name == "PhysicalDrive0" && d.size_bytes > 0),
            "{disks:?}"
        );
        let interfaces = interfaces(None);
        assert!(
            interfaces
                .iter()
                .any(|i| i.loopback && i.addresses.iter().any(|a| a == "127.0.0.1/8")),
            "{interfaces:?}"
        );
        let mut meter = CpuMeter::default();
        assert_eq!(
            meter.busy_ratio(),
            None,
            "the first reading is the baseline"
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert!(meter.busy_ratio().is_some_and(|r| (0.0..=1.0).contains(&r)));
    }

    /// A per-user install and a hidden component, written to this user's hive (which is one of
    /// the loaded hives under HKEY_USERS), are read back as Apps & features would show them.
    #[test]
    fn reads_the_uninstall_keys() {
        let base = format!("hatang-test-{}", std::process::id());
        let uninstall = windows_registry::CURRENT_USER.create(UNINSTALL).unwrap();
        let shown = uninstall.create(format!("{base}-shown")).unwrap();
        shown.set_string("DisplayName", &base).unwrap();
        shown.set_string("DisplayVersion", "1.2.3").unwrap();
        let hidden = uninstall.create(format!("{base}-hidden")).unwrap();
        hidden
            .set_string("DisplayName", format!("{base} component"))
            .unwrap();
        hidden.set_u32("SystemComponent", 1).unwrap();
        let listed = software();
        for key in ["shown", "hidden"] {
            uninstall.remove_tree(format!("{base}-{key}")).unwrap();
        }
        let ours: Vec<Software> = listed
            .expect("the machine-wide Uninstall key")
            .into_iter()
            .filter(|s| s.name.starts_with(&base))
            .collect();
        assert_eq!(
            ours,
            [Software {
                name: base,
                version: "1.2.3".to_owned()
            }]
        );
    }

    /// A monitor and a display adapter written as Plug and Play writes them are read back, and
    /// the same keys without `Control` (devices seen once, gone since) are not. Only under Wine,
    /// whose `Enum` key the test may write; on Windows only the system writes there.
    #[test]
    fn reads_the_device_registry_under_wine() {
        if LOCAL_MACHINE.open(r"SOFTWARE\Wine").is_err() {
            eprintln!("skipped: not under Wine, Enum is the system's own");
            return;
        }
        use crate::collect::edid::build::base_block;
        use crate::collect::edid::tests::dell;
        let id = std::process::id();
        let monitor = format!(r"{ENUM}\DISPLAY\HTG{id:04X}");
        let adapter = format!(r"{ENUM}\PCI\VEN_10DE&DEV_1F82&SUBSYS_{id:08X}&REV_A1");
        let write = |present: bool| {
            let instance = LOCAL_MACHINE.create(format!(r"{monitor}\1")).unwrap();
            instance
                .create("Device Parameters")
                .unwrap()
                .set_bytes("EDID", windows_registry::Type::Bytes, &base_block(&dell()))
                .unwrap();
            let gpu = LOCAL_MACHINE.create(format!(r"{adapter}\1")).unwrap();
            gpu.set_string("ClassGUID", "{4D36E968-E325-11CE-BFC1-08002BE10318}")
                .unwrap();
            gpu.set_string("LocationInformation", "PCI bus 7, device 0, function 0")
                .unwrap();
            gpu.set_string("Service", "nvlddmkm").unwrap();
            if present {
                instance.create("Control").unwrap();
                gpu.create("Control").unwrap();
            }
        };
        let read = || {
            let monitors: Vec<Monitor> = monitors()
                .into_iter()
                .filter(|m| m.connector.starts_with("HTG"))
                .collect();
            let gpus: Vec<Gpu> = gpus()
                .into_iter()
                .filter(|g| g.pci_slot == "0000:07:00.0")
                .collect();
            (monitors, gpus)
        };
        let remove = || {
            for key in [&monitor, &adapter] {
                let _ = LOCAL_MACHINE.remove_tree(key);
            }
        };
        write(false);
        let gone = read();
        write(true);
        let present = read();
        remove();
        assert_eq!(gone, (Vec::new(), Vec::new()));
        let (monitors, gpus) = present;
        assert_eq!(monitors.len(), 1, "{monitors:?}");
        assert_eq!(monitors[0].connector, format!(r"HTG{id:04X}\1"));
        assert_eq!(monitors[0].model.as_deref(), Some("DELL P2419H"));
        assert_eq!(
            gpus,
            [Gpu {
                pci_slot: "0000:07:00.0".to_owned(),
                vendor_id: "10de".to_owned(),
                device_id: "1f82".to_owned(),
                vendor: Some("NVIDIA".to_owned()),
                driver: Some("nvlddmkm".to_owned()),
            }]
        );
    }
}
