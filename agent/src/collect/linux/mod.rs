//! What Linux exposes beyond sysinfo, read from `/sys`, `/proc` and `/etc`.
//!
//! Every reader takes the filesystem root it reads under, so tests point it at a fixture tree
//! (`agent/tests/fixtures/<machine>/`) copied from a real machine's layout; the functions here
//! bind those readers to `/`. A file that is missing or unreadable yields `None` or an empty list:
//! virtual machines and containers lack much of `/sys`, and that is not an error.

mod cpu;
mod disks;
mod dmi;
mod gpus;
mod hwmon;
mod memory_modules;
mod monitors;
mod network;
mod os;
mod software;
mod virt;

use std::path::Path;

use hatang_protocol::{Disk, Dmi, Gpu, MemoryModule, Monitor, Software, Temperature};

use super::{DefaultRoute, Link, OsRelease};

const ROOT: &str = "/";

pub(crate) fn dmi() -> Option<Dmi> {
    dmi::read(Path::new(ROOT))
}

pub(crate) fn disks() -> Vec<Disk> {
    disks::read(Path::new(ROOT))
}

pub(crate) fn memory_modules() -> Vec<MemoryModule> {
    memory_modules::read(Path::new(ROOT))
}

pub(crate) fn monitors() -> Vec<Monitor> {
    monitors::read(Path::new(ROOT))
}

pub(crate) fn gpus() -> Vec<Gpu> {
    gpus::read(Path::new(ROOT))
}

pub(crate) fn software() -> Option<Vec<Software>> {
    software::read(Path::new(ROOT))
}

pub(crate) fn os_release() -> OsRelease {
    os::read(Path::new(ROOT))
}

pub(crate) fn link(name: &str) -> Link {
    network::read_link(Path::new(ROOT), name)
}

pub(crate) fn permanent_mac() -> Option<String> {
    network::read_permanent_mac(Path::new(ROOT))
}

pub(crate) fn default_route() -> Option<DefaultRoute> {
    network::read_default_route(Path::new(ROOT))
}

pub(crate) fn virtualization(dmi: Option<&Dmi>) -> Option<String> {
    virt::detect(Path::new(ROOT), dmi).map(str::to_owned)
}

pub(crate) fn cpu_max_frequency_hz() -> Option<u64> {
    cpu::read_max_frequency_hz(Path::new(ROOT))
}

pub(crate) fn temperatures() -> Vec<Temperature> {
    hwmon::read(Path::new(ROOT))
}

/// A sysfs or procfs attribute as text; `None` when absent or unreadable (many attributes are
/// root-only, and some drivers answer a read with `EINVAL`).
fn read_text(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// A sysfs attribute holding one decimal number.
fn read_number<T: std::str::FromStr>(path: &Path) -> Option<T> {
    read_text(path)?.trim().parse().ok()
}

#[cfg(test)]
fn fixture(machine: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(machine)
}
