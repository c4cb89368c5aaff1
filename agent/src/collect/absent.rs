//! What no platform module but Linux's reads, reported as absent: the Windows module and the
//! fallback for other systems both take these.
//!
//! On Windows, temperatures are in WMI (`MSAcpi_ThermalZoneTemperature`, administrators only and
//! unfilled on most desktops), and `GetAdaptersAddresses` gives each adapter's current address,
//! which its settings can change, not the burned-in one, so no permanent MAC goes into the
//! identity there (it rests on the `MachineGuid` and the SMBIOS UUID or serial). Everything else
//! the Linux module reports, the Windows one reads too (see `windows/mod.rs`).

use hatang_protocol::Temperature;

pub(crate) fn permanent_mac() -> Option<String> {
    None
}

pub(crate) fn temperatures() -> Vec<Temperature> {
    Vec::new()
}
