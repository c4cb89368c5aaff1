//! Tells real identification strings from the placeholders firmware and drivers leave behind.
//!
//! SMBIOS tables on cheap or white-box boards keep the vendor template's text ("To be filled by
//! O.E.M.", "Default string", "System Serial Number") and some disks report all-zero serials. Such
//! a value identifies nothing, and reporting it would make thousands of machines share one
//! "serial", so the agent drops it here, once, for every platform.

/// Placeholders seen in the field, compared case-insensitively after trimming.
const PLACEHOLDERS: &[&str] = &[
    "to be filled by o.e.m.",
    "to be filled by oem",
    "default string",
    "system serial number",
    "system product name",
    "system manufacturer",
    "system version",
    "chassis serial number",
    "base board serial number",
    "not specified",
    "not applicable",
    "not available",
    "none",
    "n/a",
    "na",
    "null",
    "unknown",
    "invalid",
    "oem",
    "o.e.m.",
    "0123456789",
    "123456789",
    "1234567890",
    "type1productconfigid",
    // The UUID AMI's BIOS templates ship with; many boards never overwrite it.
    "03000200-0400-0500-0006-000700080009",
];

/// The trimmed value, or `None` when it is empty, a known placeholder or a filler such as all
/// zeros or all `F`s. Control characters (sysfs pads some fields with NULs) are removed first.
pub(crate) fn clean(raw: &str) -> Option<String> {
    let text: String = raw.chars().filter(|c| !c.is_control()).collect();
    let text = text.trim();
    if text.is_empty() || PLACEHOLDERS.iter().any(|p| text.eq_ignore_ascii_case(p)) {
        return None;
    }
    let filler = |fill: char| {
        text.chars()
            .all(|c| c.eq_ignore_ascii_case(&fill) || c == '-' || c == ' ')
    };
    if filler('0') || filler('f') || filler('x') {
        return None;
    }
    Some(text.to_owned())
}

/// Template texts that firmware writers number per slot ("SerNum0", "Array1_PartNumber3",
/// "Manufacturer00"), compared without their numbers; memory-module tables are full of them.
const NUMBERED_TEMPLATES: &[&str] = &[
    "manufacturer",
    "sernum",
    "serialnumber",
    "partnum",
    "partnumber",
    "assettagnum",
    "assettag",
    "undefined",
    "no dimm",
    "[empty]",
    "empty",
];

/// [`clean`], and also `None` for numbered template texts such as `SerNum0`, `PartNum12`,
/// `Array1_PartNumber0` or `Manufacturer00`.
pub(crate) fn clean_numbered(raw: &str) -> Option<String> {
    let text = clean(raw)?;
    let lower = text.to_ascii_lowercase();
    let stem = lower.trim_end_matches(|c: char| c.is_ascii_digit() || c == ' ' || c == '_');
    // "Array1_PartNumber0": the array prefix goes too.
    let stem = stem
        .strip_prefix("array")
        .and_then(|rest| {
            rest.trim_start_matches(|c: char| c.is_ascii_digit())
                .strip_prefix('_')
        })
        .unwrap_or(stem);
    (!NUMBERED_TEMPLATES.contains(&stem)).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::{clean, clean_numbered};

    #[test]
    fn numbered_templates_are_dropped() {
        for junk in [
            "SerNum0",
            "SerNum00",
            "PartNum12",
            "Manufacturer00",
            "Array1_PartNumber0",
            "Array2_SerialNumber13",
            "AssetTagNum3",
            "NO DIMM",
            "[Empty]",
            "Undefined",
            "Unknown",
            "00000000",
        ] {
            assert_eq!(clean_numbered(junk), None, "{junk:?} should be dropped");
        }
        for real in [
            "HMA81GU6DJR8N-XN",
            "Samsung",
            "80AD000080AD",
            "3A1B2C4D",
            "CT8G4SFRA32A.C4FE",
        ] {
            assert_eq!(clean_numbered(real).as_deref(), Some(real));
        }
    }

    #[test]
    fn placeholders_are_dropped() {
        for junk in [
            "To be filled by O.E.M.",
            "To Be Filled By O.E.M.\n",
            "Default string",
            "System Serial Number",
            "System Product Name",
            "Not Specified",
            "None",
            "0123456789",
            "",
            "   \n",
            "\0\0\0\0",
            "0",
            "00000000",
            "00000000-0000-0000-0000-000000000000",
            "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF",
            "xxxxxxxxxxxx",
            "03000200-0400-0500-0006-000700080009",
        ] {
            assert_eq!(clean(junk), None, "{junk:?} should be dropped");
        }
    }

    #[test]
    fn real_values_are_kept_trimmed() {
        assert_eq!(clean("Dell Inc.\n"), Some("Dell Inc.".to_owned()));
        assert_eq!(clean("  5CG1234XYZ  "), Some("5CG1234XYZ".to_owned()));
        assert_eq!(
            clean("WD-WCC4N1234567\0\0"),
            Some("WD-WCC4N1234567".to_owned())
        );
        assert_eq!(
            clean("N34ET58W (1.58 )"),
            Some("N34ET58W (1.58 )".to_owned())
        );
        // A serial that merely contains zeros is real.
        assert_eq!(clean("0000A1"), Some("0000A1".to_owned()));
        // "None" only as the whole value.
        assert_eq!(clean("Nonesuch"), Some("Nonesuch".to_owned()));
    }
}
