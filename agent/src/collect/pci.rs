//! PCI knowledge every platform shares: display controllers' vendors by id.

/// Vendors of the display controllers agencies' PCs, servers and VMs have; others keep their
/// id only (the PCI id database is 1.5 MB, too much to ship for a label).
pub(crate) fn vendor_name(id: u16) -> Option<&'static str> {
    Some(match id {
        0x8086 => "Intel",
        0x1002 | 0x1022 => "AMD",
        0x10de => "NVIDIA",
        0x102b => "Matrox",
        0x1a03 => "ASPEED",
        0x19e5 => "Huawei",
        0x1106 => "VIA",
        0x5333 => "S3",
        0x15ad => "VMware",
        0x1234 => "QEMU",
        0x1af4 | 0x1b36 => "Red Hat",
        0x80ee => "VirtualBox",
        0x1414 => "Microsoft",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::vendor_name;

    #[test]
    fn known_vendors_by_name_others_by_id_only() {
        assert_eq!(vendor_name(0x8086), Some("Intel"));
        assert_eq!(vendor_name(0x10de), Some("NVIDIA"));
        assert_eq!(vendor_name(0xabcd), None);
    }
}
