//! The SMBIOS table as Windows hands it over (`GetSystemFirmwareTable('RSMB')`), decoded.
//!
//! Linux exposes the decoded fields in `/sys/class/dmi/id`; Windows gives the raw structure
//! table, which [`parse_rsmb`] turns into the same [`Dmi`], with the same placeholder rules
//! ([`junk::clean`]) and the UUID written as the Linux kernel writes it, so one machine reports
//! one identity whichever OS it boots. Its memory device structures (type 17) go through the
//! parser Linux uses for the same structures ([`smbios::memory_device`]).

use hatang_protocol::{Dmi, MemoryModule};

use crate::collect::junk;
use crate::collect::smbios::{self, chassis_name};

/// Why an SMBIOS table could not be read; the agent then reports no DMI, never fails.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum SmbiosError {
    #[error("the firmware table is {0} bytes, shorter than its 8-byte header")]
    NoHeader(usize),
    #[error("the firmware table says {declared} bytes of structures but holds {held}")]
    Truncated { declared: usize, held: usize },
    #[error("structure {index} has a formatted length of {length}, under the 4-byte minimum")]
    BadStructure { index: usize, length: u8 },
}

/// One SMBIOS structure: its type, its formatted area (header included, so offsets match the
/// specification's tables), its strings, and all of it as the firmware wrote it.
struct Structure<'a> {
    kind: u8,
    formatted: &'a [u8],
    strings: Vec<&'a [u8]>,
    raw: &'a [u8],
}

impl Structure<'_> {
    fn byte(&self, offset: usize) -> Option<u8> {
        self.formatted.get(offset).copied()
    }

    /// The string a formatted-area byte points at (1-based; 0 means none), cleaned of
    /// placeholders.
    fn text(&self, offset: usize) -> Option<String> {
        let index = usize::from(self.byte(offset)?).checked_sub(1)?;
        let raw = self.strings.get(index)?;
        junk::clean(&String::from_utf8_lossy(raw))
    }
}

/// The `RawSMBIOSData` block `GetSystemFirmwareTable('RSMB', 0, ..)` fills: a header (calling
/// method, major, minor, revision, table length) followed by the structure table.
pub(crate) fn parse_rsmb(raw: &[u8]) -> Result<Dmi, SmbiosError> {
    let (version, list) = split_rsmb(raw)?;
    Ok(decode(&list, version))
}

/// The installed memory modules of an RSMB block, in table order (the firmware's slot order);
/// a damaged memory device structure is left out, as on Linux.
pub(crate) fn memory_modules(raw: &[u8]) -> Result<Vec<MemoryModule>, SmbiosError> {
    let (_, list) = split_rsmb(raw)?;
    Ok(list
        .iter()
        .filter(|s| s.kind == 17)
        .filter_map(|s| {
            smbios::memory_device(s.raw)
                .inspect_err(|e| tracing::debug!(error = %e, "memory device skipped"))
                .ok()?
        })
        .collect())
}

/// The SMBIOS version and the structures of an RSMB block.
fn split_rsmb(raw: &[u8]) -> Result<((u8, u8), Vec<Structure<'_>>), SmbiosError> {
    let header: [u8; 8] = raw
        .get(..8)
        .and_then(|h| h.try_into().ok())
        .ok_or(SmbiosError::NoHeader(raw.len()))?;
    let version = (header[1], header[2]);
    let declared = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
    let table = raw
        .get(8..8usize.saturating_add(declared))
        .ok_or(SmbiosError::Truncated {
            declared,
            held: raw.len() - 8,
        })?;
    Ok((version, structures(table)?))
}

/// Splits a structure table; a structure cut off at the end of the table ends the list.
fn structures(mut table: &[u8]) -> Result<Vec<Structure<'_>>, SmbiosError> {
    let mut list = Vec::new();
    while table.len() >= 4 {
        let whole = table;
        let (kind, length) = (table[0], table[1]);
        if length < 4 {
            return Err(SmbiosError::BadStructure {
                index: list.len(),
                length,
            });
        }
        let Some((formatted, rest)) = table.split_at_checked(usize::from(length)) else {
            break;
        };
        // The string set ends with two NULs (just two when the structure has no strings).
        let Some(end) = rest.windows(2).position(|w| w == [0, 0]) else {
            break;
        };
        let strings = if end == 0 {
            Vec::new()
        } else {
            rest[..end].split(|&b| b == 0).collect()
        };
        list.push(Structure {
            kind,
            formatted,
            strings,
            raw: &whole[..usize::from(length) + end + 2],
        });
        table = &rest[end + 2..];
        if kind == 127 {
            break;
        }
    }
    Ok(list)
}

/// The fields the agent reports, from the first BIOS (0), system (1), baseboard (2) and chassis
/// (3) structures. Offsets are those of DSP0134.
fn decode(list: &[Structure<'_>], version: (u8, u8)) -> Dmi {
    let first = |kind: u8| list.iter().find(|s| s.kind == kind);
    let text = |kind: u8, offset: usize| first(kind).and_then(|s| s.text(offset));
    Dmi {
        sys_vendor: text(1, 4),
        product_name: text(1, 5),
        product_serial: text(1, 7),
        product_uuid: first(1)
            .and_then(|s| s.formatted.get(8..24))
            .and_then(|bytes| uuid_text(bytes, version)),
        board_vendor: text(2, 4),
        board_name: text(2, 5),
        bios_vendor: text(0, 4),
        bios_version: text(0, 5),
        bios_date: text(0, 8),
        chassis_type: first(3).and_then(|s| s.byte(5)).and_then(chassis_name),
    }
}

/// The system UUID as Linux prints it (`/sys/class/dmi/id/product_uuid`): from SMBIOS 2.6 on
/// the first three fields are little-endian; before, all bytes are in order. All-zero and
/// all-FF UUIDs mean "not set" and are dropped.
fn uuid_text(bytes: &[u8], (major, minor): (u8, u8)) -> Option<String> {
    let mut b: [u8; 16] = bytes.try_into().ok()?;
    if (major, minor) >= (2, 6) {
        b[..4].reverse();
        b[4..6].reverse();
        b[6..8].reverse();
    }
    let hex = |range: std::ops::Range<usize>| -> String {
        b[range].iter().map(|x| format!("{x:02x}")).collect()
    };
    let text = format!(
        "{}-{}-{}-{}-{}",
        hex(0..4),
        hex(4..6),
        hex(6..8),
        hex(8..10),
        hex(10..16)
    );
    junk::clean(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn some(s: &str) -> Option<String> {
        Some(s.to_owned())
    }

    /// One structure as firmware lays it out: type, length, handle, the rest of the formatted
    /// area, then the string set.
    fn structure(kind: u8, handle: u16, body: &[u8], strings: &[&str]) -> Vec<u8> {
        let mut out = vec![kind, u8::try_from(body.len() + 4).unwrap()];
        out.extend_from_slice(&handle.to_le_bytes());
        out.extend_from_slice(body);
        for s in strings {
            out.extend_from_slice(s.as_bytes());
            out.push(0);
        }
        if strings.is_empty() {
            out.push(0);
        }
        out.push(0);
        out
    }

    fn rsmb(version: (u8, u8), structures: &[Vec<u8>]) -> Vec<u8> {
        let table: Vec<u8> = structures.concat();
        let mut out = vec![0, version.0, version.1, 0];
        out.extend_from_slice(&u32::try_from(table.len()).unwrap().to_le_bytes());
        out.extend_from_slice(&table);
        out
    }

    /// The Dell OptiPlex 7080 of the Linux fixture `desktop`, as its SMBIOS 3.2 table holds it.
    fn optiplex() -> Vec<u8> {
        optiplex_with(&[])
    }

    /// The OptiPlex's table with `memory` (whole type 17 structures) before its end marker.
    fn optiplex_with(memory: &[Vec<u8>]) -> Vec<u8> {
        let bios = structure(
            0,
            0,
            &[1, 2, 0, 0xf0, 3, 0xff],
            &["Dell Inc.", "1.14.0", "07/13/2021"],
        );
        let mut system = vec![1, 2, 3, 4];
        // UUID 4c4c4544-0046-3410-8058-b8c04f4b3933 ("DELL" first), first three fields LE.
        system.extend_from_slice(&[
            0x44, 0x45, 0x4c, 0x4c, 0x46, 0x00, 0x10, 0x34, 0x80, 0x58, 0xb8, 0xc0, 0x4f, 0x4b,
            0x39, 0x33,
        ]);
        system.extend_from_slice(&[6, 5, 6]);
        let system = structure(
            1,
            0x100,
            &system,
            &[
                "Dell Inc.",
                "OptiPlex 7080",
                "Not Specified",
                "To Be Filled By O.E.M.",
                "SKU",
                "Family",
            ],
        );
        let board = structure(
            2,
            0x200,
            &[1, 2, 3, 4],
            &["Dell Inc.", "0J37VM", "A00", ".7B2LQG3.CNFCW0012300JP."],
        );
        // No version string: index 0 (an empty string would end the string set early).
        let chassis = structure(3, 0x300, &[1, 3, 0, 2, 0], &["Dell Inc.", "7B2LQG3"]);
        let end = structure(127, 0xfeff, &[], &[]);
        let mut list = vec![bios, system, board, chassis];
        list.extend_from_slice(memory);
        list.push(end);
        rsmb((3, 2), &list)
    }

    #[test]
    fn decodes_a_desktop_like_the_linux_kernel() {
        assert_eq!(
            parse_rsmb(&optiplex()),
            Ok(Dmi {
                sys_vendor: some("Dell Inc."),
                product_name: some("OptiPlex 7080"),
                // "To Be Filled By O.E.M.": the same placeholder rule as on Linux.
                product_serial: None,
                product_uuid: some("4c4c4544-0046-3410-8058-b8c04f4b3933"),
                board_vendor: some("Dell Inc."),
                board_name: some("0J37VM"),
                bios_vendor: some("Dell Inc."),
                bios_version: some("1.14.0"),
                bios_date: some("07/13/2021"),
                chassis_type: some("desktop"),
            })
        );
    }

    #[test]
    fn old_tables_keep_the_uuid_bytes_in_order_and_junk_uuids_are_dropped() {
        let uuid: Vec<u8> = (0x10..0x20).collect();
        let system = |uuid: &[u8]| {
            let mut body = vec![0, 0, 0, 0];
            body.extend_from_slice(uuid);
            structure(1, 1, &body, &[])
        };
        let parsed = |version, uuid: &[u8]| parse_rsmb(&rsmb(version, &[system(uuid)])).unwrap();
        assert_eq!(
            parsed((2, 5), &uuid).product_uuid,
            some("10111213-1415-1617-1819-1a1b1c1d1e1f")
        );
        assert_eq!(
            parsed((2, 6), &uuid).product_uuid,
            some("13121110-1514-1716-1819-1a1b1c1d1e1f")
        );
        assert_eq!(parsed((3, 0), &[0; 16]).product_uuid, None);
        assert_eq!(parsed((3, 0), &[0xff; 16]).product_uuid, None);
        // A system structure too short to hold a UUID (SMBIOS 2.0) has none.
        assert_eq!(
            parse_rsmb(&rsmb(
                (2, 0),
                &[structure(1, 1, &[1, 2, 0, 0], &["HP", "t520"])]
            ))
            .unwrap(),
            Dmi {
                sys_vendor: some("HP"),
                product_name: some("t520"),
                ..Dmi::default()
            }
        );
    }

    #[test]
    fn chassis_lock_bit_is_ignored_and_unknown_types_say_nothing() {
        let chassis = |code| rsmb((3, 0), &[structure(3, 1, &[0, code], &[])]);
        assert_eq!(
            parse_rsmb(&chassis(0x80 | 10)).unwrap().chassis_type,
            some("notebook")
        );
        assert_eq!(parse_rsmb(&chassis(2)).unwrap().chassis_type, None);
        assert_eq!(parse_rsmb(&chassis(0x7f)).unwrap().chassis_type, None);
    }

    #[test]
    fn damaged_tables_are_errors_or_stop_early_never_panics() {
        assert_eq!(parse_rsmb(&[0, 3]), Err(SmbiosError::NoHeader(2)));
        let mut short = optiplex();
        short.truncate(40);
        assert!(matches!(
            parse_rsmb(&short),
            Err(SmbiosError::Truncated { held: 32, .. })
        ));
        assert_eq!(
            parse_rsmb(&rsmb((3, 0), &[vec![1, 2, 0, 0, 0, 0]])),
            Err(SmbiosError::BadStructure {
                index: 0,
                length: 2
            })
        );
        // A string index past the string set, and a table cut inside a structure.
        let dangling = structure(1, 1, &[9, 0, 0, 0], &["only one"]);
        let mut cut = structure(0, 2, &[1, 2], &["Vendor"]);
        cut.truncate(7);
        assert_eq!(
            parse_rsmb(&rsmb((3, 0), &[dangling, cut])),
            Ok(Dmi::default())
        );
        // Every prefix of a real table parses or fails cleanly.
        let table = optiplex();
        for len in 0..table.len() {
            let _ = parse_rsmb(&table[..len]);
        }
        let empty = rsmb((3, 0), &[]);
        assert_eq!(parse_rsmb(&empty), Ok(Dmi::default()));
    }

    /// The desktop's memory as its table holds it: the Linux fixture's devices (two DDR4 modules,
    /// an empty slot, a larger module) and a structure too short to be a memory device.
    fn desktop_memory() -> Vec<Vec<u8>> {
        use crate::collect::smbios::build::raw;
        use crate::collect::smbios::tests::desktop_devices;
        let mut list: Vec<Vec<u8>> = desktop_devices().iter().map(|(_, d)| raw(d)).collect();
        list.insert(3, structure(17, 0x0044, &[0; 8], &["short"]));
        list
    }

    #[test]
    fn memory_modules_come_from_the_type_17_structures_through_the_shared_parser() {
        use crate::collect::smbios::build::raw;
        use crate::collect::smbios::tests::{GIB, ddr4};
        let table = optiplex_with(&desktop_memory());
        let modules = memory_modules(&table).unwrap();
        let slots: Vec<(&str, u64, Option<&str>)> = modules
            .iter()
            .map(|m| (m.locator.as_str(), m.size_bytes, m.serial.as_deref()))
            .collect();
        assert_eq!(
            slots,
            [
                ("DIMM1", 8 * GIB, Some("3A1B2C4D")),
                ("DIMM2", 8 * GIB, Some("3A1B2C5E")),
                ("DIMM4", 16 * GIB, Some("E1F2A3B4"))
            ]
        );
        // Field for field what Linux reports for the same structure.
        assert_eq!(
            Some(&modules[0]),
            smbios::memory_device(&raw(&ddr4())).unwrap().as_ref()
        );
        // The identification beside them still decodes.
        assert_eq!(parse_rsmb(&table), parse_rsmb(&optiplex()));
        assert_eq!(memory_modules(&optiplex()), Ok(Vec::new()));
        assert_eq!(memory_modules(&[1, 2]), Err(SmbiosError::NoHeader(2)));
    }

    proptest::proptest! {
        /// A damaged table with memory devices in it gives modules or an error, never a panic.
        #[test]
        fn damaged_memory_tables_never_panic(
            flips in proptest::collection::vec((0usize..600, proptest::num::u8::ANY), 0..16),
            cut in 0usize..600,
        ) {
            let table = crate::collect::damaged(optiplex_with(&desktop_memory()), &flips, cut);
            if let Ok(modules) = memory_modules(&table) {
                proptest::prop_assert!(modules.iter().all(|m| !m.locator.is_empty()));
            }
            let _ = parse_rsmb(&table);
        }
    }
}
