//! What no platform module but Linux's reads yet, reported as absent: the Windows module and the
//! fallback for other systems both take these.
//!
//! On Windows: memory modules are in the SMBIOS table (type 17) the module already reads, monitors'
//! EDID in the registry, GPUs in the device registry, installed software in the Uninstall keys,
//! temperatures in WMI (`MSAcpi_ThermalZoneTemperature`, administrators only); and
//! `GetAdaptersAddresses` gives each adapter's current address, which its settings can change,
//! not the burned-in one, so no permanent MAC goes into the identity there (it rests on the
//! `MachineGuid` and the SMBIOS UUID or serial).

use hatang_protocol::{Gpu, Monitor, Software, Temperature};

pub(crate) fn monitors() -> Vec<Monitor> {
    Vec::new()
}

pub(crate) fn gpus() -> Vec<Gpu> {
    Vec::new()
}

pub(crate) fn software() -> Option<Vec<Software>> {
    None
}

pub(crate) fn permanent_mac() -> Option<String> {
    None
}

pub(crate) fn temperatures() -> Vec<Temperature> {
    Vec::new()
}
