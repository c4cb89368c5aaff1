//! Block devices from `/sys/block`: size, model, serial, rotational and removable.
//!
//! Only devices that stand for storage are listed. Loop, RAM, zram, nbd and device-mapper nodes
//! are views onto other storage (or onto memory) and would double-count it; `md` arrays are kept
//! because on a server the array is the disk the operator thinks in.

use std::path::Path;

use hatang_protocol::Disk;

use super::{read_number, read_text};
use crate::collect::junk;

/// `size` in sysfs counts 512-byte sectors whatever the device's logical block size.
const SECTOR_BYTES: u64 = 512;

pub(crate) fn read(root: &Path) -> Vec<Disk> {
    let Ok(entries) = std::fs::read_dir(root.join("sys/block")) else {
        return Vec::new();
    };
    let mut disks: Vec<Disk> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            is_storage(&name).then(|| read_one(&entry.path(), name))?
        })
        .collect();
    disks.sort_by(|a, b| a.name.cmp(&b.name));
    disks
}

fn read_one(dir: &Path, name: String) -> Option<Disk> {
    // Multipath NVMe exposes each path as a hidden `nvmeXcYnZ` node besides the real `nvmeXnZ`.
    if read_number::<u8>(&dir.join("hidden")) == Some(1) {
        return None;
    }
    let flag = |file: &str| read_number::<u8>(&dir.join(file)).map(|v| v == 1);
    let text = |file: &str| read_text(&dir.join(file)).as_deref().and_then(junk::clean);
    Some(Disk {
        size_bytes: read_number::<u64>(&dir.join("size"))
            .map_or(0, |sectors| sectors.saturating_mul(SECTOR_BYTES)),
        model: text("device/model"),
        // NVMe puts the serial on the controller (`device/serial`), virtio on the block device
        // itself, SCSI and SATA only in the VPD page 0x80 the kernel caches.
        serial: text("device/serial")
            .or_else(|| text("serial"))
            .or_else(|| {
                std::fs::read(dir.join("device/vpd_pg80"))
                    .ok()
                    .and_then(|page| parse_vpd_serial(&page))
            }),
        rotational: flag("queue/rotational"),
        removable: flag("removable"),
        name,
    })
}

fn is_storage(name: &str) -> bool {
    const VIEWS: &[&str] = &["loop", "ram", "zram", "nbd", "dm-"];
    !VIEWS.iter().any(|prefix| name.starts_with(prefix))
}

/// The unit serial number page (SCSI VPD 0x80): a 4-byte header whose last two bytes give the
/// length, then the serial in ASCII, often padded with spaces.
fn parse_vpd_serial(page: &[u8]) -> Option<String> {
    let [_, 0x80, hi, lo, rest @ ..] = page else {
        return None;
    };
    let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(rest.len());
    junk::clean(&String::from_utf8_lossy(&rest[..len]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::linux::fixture;

    const GIB: u64 = 1024 * 1024 * 1024;

    #[test]
    fn views_onto_other_storage_are_skipped() {
        for name in ["sda", "nvme0n1", "vda", "md0", "md127", "mmcblk0", "sr0"] {
            assert!(is_storage(name), "{name}");
        }
        for name in ["loop0", "loop12", "ram0", "zram0", "nbd3", "dm-0"] {
            assert!(!is_storage(name), "{name}");
        }
    }

    #[test]
    fn vpd_page_80() {
        assert_eq!(
            parse_vpd_serial(b"\x00\x80\x00\x14     WD-WCC4N1234567"),
            Some("WD-WCC4N1234567".to_owned())
        );
        // A length longer than the page is cut to what is there.
        assert_eq!(
            parse_vpd_serial(b"\x00\x80\x00\xffS3Z9NB0K123456"),
            Some("S3Z9NB0K123456".to_owned())
        );
        assert_eq!(parse_vpd_serial(b"\x00\x83\x00\x04abcd"), None);
        assert_eq!(parse_vpd_serial(b"\x00\x80"), None);
        assert_eq!(parse_vpd_serial(b"\x00\x80\x00\x00"), None);
    }

    #[test]
    fn desktop_nvme_without_loop_zram_or_dm() {
        assert_eq!(
            read(&fixture("desktop")),
            vec![Disk {
                name: "nvme0n1".to_owned(),
                size_bytes: 500_118_192 * 512,
                model: Some("PC SN730 NVMe WDC 256GB".to_owned()),
                serial: Some("20143X801234".to_owned()),
                rotational: Some(false),
                removable: Some(false),
            }]
        );
    }

    #[test]
    fn server_ssd_and_hdd_serials_from_vpd() {
        assert_eq!(
            read(&fixture("server")),
            vec![
                Disk {
                    name: "sda".to_owned(),
                    size_bytes: 937_703_088 * 512,
                    model: Some("MZ7LH480HAHQ0D3".to_owned()),
                    serial: Some("S45PNA0M123456".to_owned()),
                    rotational: Some(false),
                    removable: Some(false),
                },
                Disk {
                    name: "sdb".to_owned(),
                    size_bytes: 7_814_037_168 * 512,
                    model: Some("MB4000GVYZK".to_owned()),
                    serial: Some("ZC1ABCDE".to_owned()),
                    rotational: Some(true),
                    removable: Some(false),
                },
            ]
        );
    }

    #[test]
    fn vm_virtio_disk_and_empty_cdrom() {
        assert_eq!(
            read(&fixture("vm")),
            vec![
                Disk {
                    name: "sr0".to_owned(),
                    size_bytes: 0,
                    model: Some("QEMU DVD-ROM".to_owned()),
                    serial: None,
                    rotational: Some(true),
                    removable: Some(true),
                },
                Disk {
                    name: "vda".to_owned(),
                    size_bytes: 64 * GIB,
                    model: None,
                    serial: None,
                    rotational: Some(true),
                    removable: Some(false),
                },
            ]
        );
    }

    #[test]
    fn laptop_hides_multipath_nodes() {
        let names: Vec<String> = read(&fixture("laptop"))
            .into_iter()
            .map(|d| d.name)
            .collect();
        assert_eq!(names, ["nvme0n1"]);
    }

    #[test]
    fn no_sys_block_is_empty() {
        assert_eq!(read(Path::new("/nonexistent")), Vec::new());
    }
}
