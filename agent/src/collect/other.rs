//! Platforms without a dedicated module: everything beyond sysinfo is reported as absent.
//!
//! The Linux and Windows modules provide the same functions with what those systems expose;
//! nothing else in `collect` changes from one platform to another.

use hatang_protocol::{Disk, Dmi, Gpu, MemoryModule, Monitor, Software};

pub(crate) use super::absent::{permanent_mac, temperatures};
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

pub(crate) fn software() -> Option<Vec<Software>> {
    None
}

pub(crate) fn monitors() -> Vec<Monitor> {
    Vec::new()
}

pub(crate) fn gpus() -> Vec<Gpu> {
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
