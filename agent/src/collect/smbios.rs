//! SMBIOS knowledge every platform shares: what the firmware's codes mean.

/// SMBIOS chassis type code to its name in the SMBIOS specification (DSP0134, table "System Enclosure or Chassis Types"), lower-cased. "Unknown"
/// (2) and codes outside the table are `None`: they say nothing.
pub(crate) fn chassis_name(code: u8) -> Option<String> {
    // Bit 7 is the chassis lock, not part of the type.
    let name = match code & 0x7f {
        1 => "other",
        3 => "desktop",
        4 => "low profile desktop",
        5 => "pizza box",
        6 => "mini tower",
        7 => "tower",
        8 => "portable",
        9 => "laptop",
        10 => "notebook",
        11 => "hand held",
        12 => "docking station",
        13 => "all in one",
        14 => "sub notebook",
        15 => "space-saving",
        16 => "lunch box",
        17 => "main server chassis",
        18 => "expansion chassis",
        19 => "sub chassis",
        20 => "bus expansion chassis",
        21 => "peripheral chassis",
        22 => "raid chassis",
        23 => "rack mount chassis",
        24 => "sealed-case pc",
        25 => "multi-system chassis",
        26 => "compact pci",
        27 => "advanced tca",
        28 => "blade",
        29 => "blade enclosure",
        30 => "tablet",
        31 => "convertible",
        32 => "detachable",
        33 => "iot gateway",
        34 => "embedded pc",
        35 => "mini pc",
        36 => "stick pc",
        _ => return None,
    };
    Some(name.to_owned())
}
