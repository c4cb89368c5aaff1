//! Physical disks (`\\.\PhysicalDriveN`): model, serial and removability from the
//! `STORAGE_DEVICE_DESCRIPTOR` that `IOCTL_STORAGE_QUERY_PROPERTY` (`StorageDeviceProperty`)
//! returns, whether it is rotational from its `DEVICE_SEEK_PENALTY_DESCRIPTOR`
//! (`StorageDeviceSeekPenaltyProperty`: only spinning disks pay to seek), size from
//! `IOCTL_DISK_GET_DRIVE_GEOMETRY_EX`. None of them needs administrator rights.
//!
//! The descriptor is a fixed header followed by NUL-terminated ASCII strings that the header
//! points at by byte offset (0 meaning "none"). Its bytes come from the disk's driver, so
//! [`disk`] checks every offset against the buffer and its declared size, and leaves a string
//! out rather than read past either. The model is the product id alone, as Linux's
//! `device/model` is (the vendor id of an ATA disk is the word `ATA`, not a maker).

use hatang_protocol::Disk;

use crate::collect::junk;

/// The header up to and including `BusType`: the fields read below.
const HEADER: usize = 32;

/// What one `\\.\PhysicalDriveN` answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawDrive {
    /// N.
    pub(crate) index: u32,
    /// The `STORAGE_DEVICE_DESCRIPTOR` bytes as the driver wrote them.
    pub(crate) descriptor: Vec<u8>,
    /// The `DEVICE_SEEK_PENALTY_DESCRIPTOR` bytes; `None` where the driver does not answer (USB
    /// bridges, Wine).
    pub(crate) seek_penalty: Option<Vec<u8>>,
    /// `DISK_GEOMETRY_EX.DiskSize`; `None` when the query failed (no media in a card reader).
    pub(crate) size_bytes: Option<u64>,
}

/// Why a descriptor was not used; the disk is then left out and the reason logged.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum DescriptorError {
    #[error("storage device descriptor of {0} bytes, shorter than its {HEADER}-byte header")]
    TooShort(usize),
    #[error("storage device descriptor declares {0} bytes, less than its header")]
    BadSize(u32),
}

/// The disk a drive's descriptor describes, named `PhysicalDriveN` as Windows names it.
pub(crate) fn disk(drive: &RawDrive) -> Result<Disk, DescriptorError> {
    let raw = drive.descriptor.as_slice();
    if raw.len() < HEADER {
        return Err(DescriptorError::TooShort(raw.len()));
    }
    let dword = |at: usize| u32::from_le_bytes([raw[at], raw[at + 1], raw[at + 2], raw[at + 3]]);
    let declared = dword(4);
    if (declared as usize) < HEADER {
        return Err(DescriptorError::BadSize(declared));
    }
    // A buffer too small for the whole descriptor holds its beginning; a declared size under the
    // buffer's leaves the rest of the buffer out.
    let held = &raw[..raw.len().min(declared as usize)];
    let text = |at: usize| string_at(held, dword(at) as usize).and_then(|s| junk::clean(&s));
    Ok(Disk {
        name: format!("PhysicalDrive{}", drive.index),
        size_bytes: drive.size_bytes.unwrap_or(0),
        model: text(16),
        serial: text(24),
        rotational: drive.seek_penalty.as_deref().and_then(rotational),
        removable: Some(raw[10] != 0),
    })
}

/// `IncursSeekPenalty` (byte 8) of a seek penalty descriptor whose size covers it.
fn rotational(descriptor: &[u8]) -> Option<bool> {
    let size = u32::from_le_bytes(descriptor.get(4..8)?.try_into().ok()?);
    (size >= 9).then(|| descriptor.get(8).map(|&b| b != 0))?
}

/// The NUL-terminated string at `offset` inside `held`; `None` for offset 0, an offset into the
/// header or past the end, or a string the buffer cuts before its NUL.
fn string_at(held: &[u8], offset: usize) -> Option<String> {
    if offset < HEADER {
        return None;
    }
    let rest = held.get(offset..)?;
    let end = rest.iter().position(|&b| b == 0)?;
    Some(String::from_utf8_lossy(&rest[..end]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A descriptor laid out as storage drivers write it: the 36-byte header (ending in
    /// `RawPropertiesLength` and one byte of raw properties), then the strings; `None` is offset
    /// 0.
    fn descriptor(
        removable: bool,
        bus_type: u32,
        vendor: Option<&str>,
        product: Option<&str>,
        revision: Option<&str>,
        serial: Option<&str>,
    ) -> Vec<u8> {
        let mut strings = Vec::new();
        let mut offsets = [0u32; 4];
        for (slot, text) in [vendor, product, revision, serial].into_iter().enumerate() {
            if let Some(text) = text {
                offsets[slot] = u32::try_from(36 + strings.len()).unwrap();
                strings.extend_from_slice(text.as_bytes());
                strings.push(0);
            }
        }
        let size = u32::try_from(36 + strings.len()).unwrap();
        let mut out = Vec::new();
        out.extend_from_slice(&1u32.to_le_bytes()); // Version: sizeof(STORAGE_DEVICE_DESCRIPTOR)
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&[0x00, 0x00, u8::from(removable), 1]);
        for offset in offsets {
            out.extend_from_slice(&offset.to_le_bytes());
        }
        out.extend_from_slice(&bus_type.to_le_bytes());
        out.extend_from_slice(&[0; 4]); // RawPropertiesLength
        out.extend_from_slice(&strings);
        out
    }

    fn drive(index: u32, descriptor: Vec<u8>, size_bytes: Option<u64>) -> RawDrive {
        RawDrive {
            index,
            descriptor,
            seek_penalty: None,
            size_bytes,
        }
    }

    /// A `DEVICE_SEEK_PENALTY_DESCRIPTOR` as drivers fill it: version and size 12, the flag.
    fn seek_penalty(incurs: bool) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&12u32.to_le_bytes());
        out.extend_from_slice(&12u32.to_le_bytes());
        out.extend_from_slice(&[u8::from(incurs), 0, 0, 0]);
        out
    }

    #[test]
    fn spinning_disks_incur_a_seek_penalty() {
        let with = |penalty: Option<Vec<u8>>| {
            disk(&RawDrive {
                seek_penalty: penalty,
                ..drive(1, samsung(), None)
            })
            .unwrap()
            .rotational
        };
        assert_eq!(with(Some(seek_penalty(false))), Some(false));
        assert_eq!(with(Some(seek_penalty(true))), Some(true));
        assert_eq!(with(None), None);
        // Cut before the flag, or a size that does not cover it: unknown.
        assert_eq!(with(Some(seek_penalty(true)[..8].to_vec())), None);
        let mut small = seek_penalty(true);
        small[4..8].copy_from_slice(&8u32.to_le_bytes());
        assert_eq!(with(Some(small)), None);
    }

    /// A SATA SSD as Windows 10 describes it: vendor id absent, product id the model, the
    /// serial padded with spaces (BusTypeSata = 11).
    fn samsung() -> Vec<u8> {
        descriptor(
            false,
            11,
            None,
            Some("Samsung SSD 860 EVO 500GB"),
            Some("RVT04B6Q"),
            Some("S3Z2NB0K123456A     "),
        )
    }

    #[test]
    fn a_sata_ssd_with_model_serial_and_size() {
        assert_eq!(
            disk(&RawDrive {
                seek_penalty: Some(seek_penalty(false)),
                ..drive(0, samsung(), Some(500_107_862_016))
            }),
            Ok(Disk {
                name: "PhysicalDrive0".to_owned(),
                size_bytes: 500_107_862_016,
                model: Some("Samsung SSD 860 EVO 500GB".to_owned()),
                serial: Some("S3Z2NB0K123456A".to_owned()),
                rotational: Some(false),
                removable: Some(false),
            })
        );
    }

    #[test]
    fn a_usb_stick_keeps_its_product_not_its_vendor_and_drops_a_junk_serial() {
        // BusTypeUsb = 7; a cheap stick's serial of zeros identifies nothing.
        let stick = descriptor(
            true,
            7,
            Some("SanDisk "),
            Some("Ultra           "),
            Some("1.00"),
            Some("0000000000000000"),
        );
        let disk = disk(&drive(2, stick, None)).unwrap();
        assert_eq!(disk.name, "PhysicalDrive2");
        assert_eq!(disk.model.as_deref(), Some("Ultra"));
        assert_eq!(disk.serial, None);
        assert_eq!(disk.removable, Some(true));
        assert_eq!(disk.size_bytes, 0, "no media: size unknown");
    }

    #[test]
    fn a_virtual_disk_without_a_serial() {
        // Hyper-V's virtual disk: VendorId "Msft", no serial (BusTypeScsi = 1).
        let vhd = descriptor(
            false,
            1,
            Some("Msft    "),
            Some("Virtual Disk    "),
            Some("1.0 "),
            None,
        );
        let disk = disk(&drive(0, vhd, Some(137_438_953_472))).unwrap();
        assert_eq!(
            (disk.model.as_deref(), disk.serial),
            (Some("Virtual Disk"), None)
        );
    }

    #[test]
    fn truncated_and_damaged_descriptors() {
        let full = samsung();
        assert_eq!(
            disk(&drive(0, full[..20].to_vec(), None)),
            Err(DescriptorError::TooShort(20))
        );
        // A buffer cut inside the serial: the model is whole, the serial is left out.
        let cut = full.len() - 5;
        let partial = disk(&drive(0, full[..cut].to_vec(), None)).unwrap();
        assert_eq!(partial.model.as_deref(), Some("Samsung SSD 860 EVO 500GB"));
        assert_eq!(partial.serial, None);
        // A declared size shorter than the buffer hides what lies past it.
        let mut short = full.clone();
        short[4..8].copy_from_slice(&40u32.to_le_bytes());
        assert_eq!(disk(&drive(0, short, None)).unwrap().model, None);
        let mut bad = full.clone();
        bad[4..8].copy_from_slice(&8u32.to_le_bytes());
        assert_eq!(disk(&drive(0, bad, None)), Err(DescriptorError::BadSize(8)));
        // Offsets into the header or far past the end are no strings.
        let mut wild = full;
        wild[16..20].copy_from_slice(&4u32.to_le_bytes());
        wild[24..28].copy_from_slice(&u32::MAX.to_le_bytes());
        let wild = disk(&drive(0, wild, None)).unwrap();
        assert_eq!((wild.model, wild.serial), (None, None));
        assert_eq!(
            DescriptorError::TooShort(3).to_string(),
            "storage device descriptor of 3 bytes, shorter than its 32-byte header"
        );
    }

    proptest::proptest! {
        /// Whatever a driver writes, the descriptor gives a disk or an error, never a panic.
        #[test]
        fn any_descriptor_bytes_never_panic(
            flips in proptest::collection::vec((0usize..100, proptest::num::u8::ANY), 0..16),
            cut in 0usize..100,
        ) {
            let bytes = crate::collect::damaged(samsung(), &flips, cut);
            if let Ok(disk) = disk(&drive(7, bytes, None)) {
                proptest::prop_assert_eq!(disk.name, "PhysicalDrive7");
            }
        }
    }
}
