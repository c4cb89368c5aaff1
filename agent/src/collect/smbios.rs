//! SMBIOS knowledge every platform shares: what the firmware's codes mean, and the memory device
//! structures (type 17) that Linux hands over one per file and Windows inside the whole table.
//!
//! A type 17 structure is a formatted area (its length is byte 1) followed by the string table,
//! NUL-terminated strings that the formatted area refers to by 1-based index, ended by an empty
//! string. Offsets below are those of the SMBIOS specification (DSP0134, "Memory Device (Type
//! 17)"); a field beyond the structure's length was added by a later SMBIOS version than the
//! firmware's and is absent. Empty slots (size 0) and ROM or flash devices are left out.

use std::fmt;

use hatang_protocol::MemoryModule;

use crate::collect::junk;

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

const TYPE_MEMORY_DEVICE: u8 = 17;
const MIB: u64 = 1 << 20;

/// Why a type 17 structure could not be read; the module is then left out and the reason
/// logged at debug level.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum MemoryDeviceError {
    /// Shorter than its header says, or than the SMBIOS 2.1 fields every version has.
    Truncated { have: usize, need: usize },
    /// A structure of another type in a type 17 file.
    WrongType(u8),
}

impl fmt::Display for MemoryDeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MemoryDeviceError::Truncated { have, need } => {
                write!(f, "structure truncated: {have} bytes, need {need}")
            }
            MemoryDeviceError::WrongType(t) => write!(f, "structure of type {t}, expected 17"),
        }
    }
}

/// One type 17 structure: `Ok(None)` for an empty slot, a non-RAM device or an unknown size.
pub(crate) fn memory_device(raw: &[u8]) -> Result<Option<MemoryModule>, MemoryDeviceError> {
    // Up to Device Locator and Bank Locator (SMBIOS 2.1): less is not a memory device.
    const MINIMUM: usize = 0x15;
    let need = |need: usize| MemoryDeviceError::Truncated {
        have: raw.len(),
        need,
    };
    let (&kind, &len) = match raw {
        [kind, len, ..] => (kind, len),
        _ => return Err(need(2)),
    };
    if kind != TYPE_MEMORY_DEVICE {
        return Err(MemoryDeviceError::WrongType(kind));
    }
    let len = usize::from(len);
    if len < MINIMUM {
        return Err(need(MINIMUM));
    }
    if raw.len() < len {
        return Err(need(len));
    }
    let (formatted, table) = raw.split_at(len);
    let strings: Vec<&[u8]> = table.split(|&b| b == 0).collect();
    let byte = |at: usize| formatted.get(at).copied();
    let word = |at: usize| Some(u16::from_le_bytes([byte(at)?, byte(at + 1)?]));
    let dword = |at: usize| {
        Some(u32::from_le_bytes([
            byte(at)?,
            byte(at + 1)?,
            byte(at + 2)?,
            byte(at + 3)?,
        ]))
    };
    let text = |at: usize| {
        let index = usize::from(byte(at)?);
        let bytes = strings.get(index.checked_sub(1)?)?;
        junk::clean_numbered(&String::from_utf8_lossy(bytes))
    };
    let memory_type = byte(0x12);
    // ROM, flash, EEPROM, FEPROM, EPROM: firmware storage some tables list beside the RAM.
    if memory_type.is_some_and(|t| (0x08..=0x0C).contains(&t)) {
        return Ok(None);
    }
    let Some(size_bytes) = size(word(0x0C), dword(0x1C)) else {
        return Ok(None);
    };
    let speed = |at: usize, extended: usize| match word(at)? {
        0 => None,
        0xFFFF => dword(extended).filter(|&s| s > 0),
        s => Some(u32::from(s)),
    };
    // A slot without a name could not be told apart from the others: name it by its handle.
    let locator = text(0x10).unwrap_or_else(|| format!("handle 0x{:04x}", word(0x02).unwrap_or(0)));
    Ok(Some(MemoryModule {
        locator,
        bank: text(0x11),
        size_bytes,
        memory_type: memory_type.and_then(type_name).map(str::to_owned),
        speed_mts: speed(0x15, 0x54),
        configured_speed_mts: speed(0x20, 0x58),
        manufacturer: text(0x17),
        serial: text(0x18),
        part_number: text(0x1A),
    }))
}

/// The Size field: 0 no module, 0xFFFF unknown, 0x7FFF "see Extended Size" (MiB in bits 0-30),
/// otherwise bits 0-14 in KiB when bit 15 is set, else in MiB.
fn size(size: Option<u16>, extended: Option<u32>) -> Option<u64> {
    match size? {
        0 | 0xFFFF => None,
        0x7FFF => extended
            .map(|mib| u64::from(mib & 0x7FFF_FFFF) * MIB)
            .filter(|&b| b > 0),
        s if s & 0x8000 != 0 => Some(u64::from(s & 0x7FFF) * 1024),
        s => Some(u64::from(s) * MIB),
    }
}

/// Memory Type names (DSP0134 table "Memory Device — Type"); Other and Unknown say nothing.
fn type_name(code: u8) -> Option<&'static str> {
    Some(match code {
        0x03 => "DRAM",
        0x04 => "EDRAM",
        0x05 => "VRAM",
        0x06 => "SRAM",
        0x07 => "RAM",
        0x0D => "CDRAM",
        0x0E => "3DRAM",
        0x0F => "SDRAM",
        0x10 => "SGRAM",
        0x11 => "RDRAM",
        0x12 => "DDR",
        0x13 => "DDR2",
        0x14 => "DDR2 FB-DIMM",
        0x18 => "DDR3",
        0x19 => "FBD2",
        0x1A => "DDR4",
        0x1B => "LPDDR",
        0x1C => "LPDDR2",
        0x1D => "LPDDR3",
        0x1E => "LPDDR4",
        0x1F => "Logical non-volatile device",
        0x20 => "HBM",
        0x21 => "HBM2",
        0x22 => "DDR5",
        0x23 => "LPDDR5",
        0x24 => "HBM3",
        _ => return None,
    })
}

/// Builds type 17 structures byte by byte, as firmware lays them out; the Linux fixture files
/// and the Windows RSMB tables of the tests are written with it (see `agent/tests/fixtures/README.md`).
#[cfg(test)]
pub(crate) mod build {
    /// The fields a test sets; strings are given as text and stored in the string table.
    #[derive(Default)]
    pub(crate) struct Device<'a> {
        /// Formatted-area length: 0x28 is SMBIOS 2.8, 0x5C is 3.3 (extended speeds).
        pub(crate) length: u8,
        pub(crate) handle: u16,
        pub(crate) size: u16,
        pub(crate) extended_size_mib: u32,
        pub(crate) memory_type: u8,
        pub(crate) speed: u16,
        pub(crate) configured_speed: u16,
        pub(crate) extended_speed: u32,
        pub(crate) locator: &'a str,
        pub(crate) bank: &'a str,
        pub(crate) manufacturer: &'a str,
        pub(crate) serial: &'a str,
        pub(crate) part_number: &'a str,
    }

    pub(crate) fn raw(d: &Device<'_>) -> Vec<u8> {
        let mut f = vec![0u8; usize::from(d.length)];
        let mut strings: Vec<&str> = Vec::new();
        let put = |f: &mut Vec<u8>, at: usize, value: &[u8]| {
            if at + value.len() <= f.len() {
                f[at..at + value.len()].copy_from_slice(value);
            }
        };
        put(&mut f, 0, &[super::TYPE_MEMORY_DEVICE, d.length]);
        put(&mut f, 0x02, &d.handle.to_le_bytes());
        put(&mut f, 0x08, &64u16.to_le_bytes()); // total width
        put(&mut f, 0x0A, &64u16.to_le_bytes()); // data width
        put(&mut f, 0x0C, &d.size.to_le_bytes());
        put(&mut f, 0x0E, &[0x09]); // DIMM
        put(&mut f, 0x12, &[d.memory_type]);
        put(&mut f, 0x15, &d.speed.to_le_bytes());
        put(&mut f, 0x1C, &d.extended_size_mib.to_le_bytes());
        put(&mut f, 0x20, &d.configured_speed.to_le_bytes());
        put(&mut f, 0x54, &d.extended_speed.to_le_bytes());
        for (at, value) in [
            (0x10, d.locator),
            (0x11, d.bank),
            (0x17, d.manufacturer),
            (0x18, d.serial),
            (0x1A, d.part_number),
        ] {
            let index = if value.is_empty() {
                0
            } else {
                strings.push(value);
                u8::try_from(strings.len()).unwrap()
            };
            put(&mut f, at, &[index]);
        }
        for s in &strings {
            f.extend_from_slice(s.as_bytes());
            f.push(0);
        }
        if strings.is_empty() {
            f.push(0);
        }
        f.push(0);
        f
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::build::{Device, raw};
    use super::*;

    pub(crate) const GIB: u64 = 1 << 30;

    /// A DDR4 DIMM with every field set: the Linux fixture's first module.
    pub(crate) fn ddr4<'a>() -> Device<'a> {
        Device {
            length: 0x28,
            handle: 0x0040,
            size: 8192,
            memory_type: 0x1A,
            speed: 3200,
            configured_speed: 2666,
            locator: "DIMM1",
            bank: "BANK 0",
            manufacturer: "SK Hynix",
            serial: "3A1B2C4D",
            part_number: "HMA81GU6DJR8N-XN",
            ..Device::default()
        }
    }

    /// The desktop's memory devices by SMBIOS instance N: the Linux fixture's
    /// `sys/firmware/dmi/entries/17-N/raw` files, and the Windows test's RSMB table.
    pub(crate) fn desktop_devices<'a>() -> Vec<(u32, Device<'a>)> {
        vec![
            (0, ddr4()),
            (
                1,
                Device {
                    handle: 0x0041,
                    locator: "DIMM2",
                    serial: "3A1B2C5E",
                    ..ddr4()
                },
            ),
            (
                2,
                Device {
                    handle: 0x0042,
                    size: 0,
                    locator: "DIMM3",
                    manufacturer: "Not Specified",
                    serial: "Not Specified",
                    part_number: "Not Specified",
                    memory_type: 0x02,
                    speed: 0,
                    configured_speed: 0,
                    ..ddr4()
                },
            ),
            (
                10,
                Device {
                    handle: 0x0043,
                    size: 16384,
                    locator: "DIMM4",
                    manufacturer: "Kingston",
                    serial: "E1F2A3B4",
                    part_number: "KF432C16BB/16",
                    ..ddr4()
                },
            ),
        ]
    }

    #[test]
    fn a_ddr4_module_with_every_field() {
        assert_eq!(
            memory_device(&raw(&ddr4())),
            Ok(Some(MemoryModule {
                locator: "DIMM1".into(),
                bank: Some("BANK 0".into()),
                size_bytes: 8 * GIB,
                memory_type: Some("DDR4".into()),
                speed_mts: Some(3200),
                configured_speed_mts: Some(2666),
                manufacturer: Some("SK Hynix".into()),
                part_number: Some("HMA81GU6DJR8N-XN".into()),
                serial: Some("3A1B2C4D".into()),
            }))
        );
    }

    #[test]
    fn sizes_in_kib_mib_and_extended() {
        assert_eq!(size(Some(0x8000 | 512), None), Some(512 * 1024));
        assert_eq!(size(Some(16384), None), Some(16 * GIB));
        assert_eq!(size(Some(0x7FFF), Some(65536)), Some(64 * GIB));
        assert_eq!(size(Some(0x7FFF), None), None);
        assert_eq!(size(Some(0), None), None);
        assert_eq!(size(Some(0xFFFF), None), None);
    }

    #[test]
    fn extended_speed_and_size_of_an_smbios_3_3_ddr5_module() {
        let module = memory_device(&raw(&Device {
            length: 0x5C,
            size: 0x7FFF,
            extended_size_mib: 32768,
            memory_type: 0x22,
            speed: 0xFFFF,
            extended_speed: 70_000,
            configured_speed: 4800,
            ..ddr4()
        }))
        .unwrap()
        .unwrap();
        assert_eq!(module.size_bytes, 32 * GIB);
        assert_eq!(module.memory_type.as_deref(), Some("DDR5"));
        assert_eq!(module.speed_mts, Some(70_000));
        assert_eq!(module.configured_speed_mts, Some(4800));
    }

    #[test]
    fn an_smbios_2_3_structure_has_no_configured_speed() {
        let module = memory_device(&raw(&Device {
            length: 0x1B,
            ..ddr4()
        }))
        .unwrap()
        .unwrap();
        assert_eq!(module.speed_mts, Some(3200));
        assert_eq!(module.configured_speed_mts, None);
        assert_eq!(module.part_number.as_deref(), Some("HMA81GU6DJR8N-XN"));
    }

    #[test]
    fn empty_slots_flash_and_placeholders() {
        assert_eq!(memory_device(&raw(&Device { size: 0, ..ddr4() })), Ok(None));
        assert_eq!(
            memory_device(&raw(&Device {
                memory_type: 0x09,
                ..ddr4()
            })),
            Ok(None)
        );
        let module = memory_device(&raw(&Device {
            locator: "",
            manufacturer: "Manufacturer00",
            serial: "SerNum0",
            part_number: "Array1_PartNumber0",
            memory_type: 0x02,
            speed: 0,
            ..ddr4()
        }))
        .unwrap()
        .unwrap();
        assert_eq!(module.locator, "handle 0x0040");
        assert_eq!(
            (module.manufacturer, module.serial, module.part_number),
            (None, None, None)
        );
        assert_eq!((module.memory_type, module.speed_mts), (None, None));
    }

    #[test]
    fn damaged_structures_are_errors_not_panics() {
        let good = raw(&ddr4());
        assert_eq!(
            memory_device(&good[..0x20]),
            Err(MemoryDeviceError::Truncated {
                have: 0x20,
                need: 0x28
            })
        );
        assert_eq!(
            memory_device(&[17, 4, 0, 0]),
            Err(MemoryDeviceError::Truncated {
                have: 4,
                need: 0x15
            })
        );
        assert_eq!(
            memory_device(&[17]),
            Err(MemoryDeviceError::Truncated { have: 1, need: 2 })
        );
        let mut other = good.clone();
        other[0] = 16;
        assert_eq!(memory_device(&other), Err(MemoryDeviceError::WrongType(16)));
        // A string index past the table is no string, not a panic.
        let mut dangling = good;
        dangling[0x17] = 40;
        assert_eq!(
            memory_device(&dangling).unwrap().unwrap().manufacturer,
            None
        );
        assert_eq!(
            MemoryDeviceError::WrongType(16).to_string(),
            "structure of type 16, expected 17"
        );
    }

    proptest::proptest! {
        /// Damaged or hostile tables (a firmware bug, a fuzzed file) give an error or a module,
        /// never a panic, and a module always fits the protocol's integer column.
        #[test]
        fn any_bytes_parse_without_panic(
            flips in proptest::collection::vec((0usize..200, proptest::num::u8::ANY), 0..12),
            cut in 0usize..200,
        ) {
            let bytes = crate::collect::damaged(raw(&Device { length: 0x5C, ..ddr4() }), &flips, cut);
            if let Ok(Some(module)) = memory_device(&bytes) {
                proptest::prop_assert!(i64::try_from(module.size_bytes).is_ok());
                proptest::prop_assert!(!module.locator.is_empty());
            }
        }
    }
}
