//! This machine, read: the platform functions `collect` calls, binding the API calls in
//! [`super::sys`] and the registry to the pure mappers.

use hatang_protocol::{Disk, Dmi, Interface, MemoryModule};

use super::adapters::{self, Adapter};
use super::cpu::{self, SystemTimes};
use super::drives;
use super::os::{self, CurrentVersion};
use super::physical_disks;
use super::rsmb;
use super::sys;
pub(crate) use crate::collect::absent::{gpus, monitors, permanent_mac, software, temperatures};
use crate::collect::filesystems::{Blocks, Mount};
use crate::collect::{DefaultRoute, OsRelease, junk};

const CURRENT_VERSION: &str = r"SOFTWARE\Microsoft\Windows NT\CurrentVersion";
const CRYPTOGRAPHY: &str = r"SOFTWARE\Microsoft\Cryptography";

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
    let Ok(key) = windows_registry::LOCAL_MACHINE.open(CURRENT_VERSION) else {
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
    let guid = windows_registry::LOCAL_MACHINE
        .open(CRYPTOGRAPHY)
        .and_then(|key| key.get_string("MachineGuid"))
        .ok()?;
    junk::clean(guid.trim_matches(['{', '}']))
        .filter(|g| g.chars().all(|c| c.is_ascii_hexdigit() || c == '-'))
        .map(|g| g.to_ascii_lowercase())
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
}
