//! Platforms without a dedicated module: everything beyond sysinfo is reported as absent.
//!
//! A Windows module (WMI/SMBIOS, `GetIfTable2`, the registry) replaces this file for Windows by
//! providing the same functions; nothing else in `collect` changes.

use hatang_protocol::{Disk, Dmi, MemoryModule};

pub(crate) use super::absent::{gpus, monitors, permanent_mac, software, temperatures};
use super::{DefaultRoute, Link, OsRelease};

pub(crate) fn dmi() -> Option<Dmi> {
    None
}

pub(crate) fn disks() -> Vec<Disk> {
    Vec::new()
}

pub(crate) fn memory_modules() -> Vec<MemoryModule> {
    Vec::new()
}

pub(crate) fn os_release() -> OsRelease {
    OsRelease::default()
}

pub(crate) fn link(_name: &str) -> Link {
    Link::default()
}

pub(crate) fn default_route() -> Option<DefaultRoute> {
    None
}

pub(crate) fn virtualization(_dmi: Option<&Dmi>) -> Option<String> {
    None
}

pub(crate) fn cpu_max_frequency_hz() -> Option<u64> {
    None
}
