//! Drive letters and their space, from `GetLogicalDrives`, `GetDriveTypeW`,
//! `GetVolumeInformationW` and `GetDiskFreeSpaceExW`, for when sysinfo lists no volumes (as
//! under Wine).

use hatang_protocol::Filesystem;

use crate::collect::filesystems::{Blocks, Mount, Space};

/// `DRIVE_FIXED`: a local disk. Removable media, network shares, CD drives and RAM disks are
/// not the machine's storage, as on Linux.
pub(crate) const DRIVE_FIXED: u32 = 3;

/// The root path of every drive letter set in a `GetLogicalDrives` mask (bit 0 is `A:`).
pub(crate) fn roots(mask: u32) -> Vec<String> {
    (b'A'..=b'Z')
        .zip(0..26u32)
        .filter(|&(_, bit)| mask & (1 << bit) != 0)
        .map(|(letter, _)| format!("{}:\\", char::from(letter)))
        .collect()
}

/// What `GetDiskFreeSpaceExW` says about one volume, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FreeSpace {
    /// `lpFreeBytesAvailableToCaller`: within the caller's quota.
    pub(crate) available: u64,
    pub(crate) total: u64,
    /// `lpTotalNumberOfFreeBytes`.
    pub(crate) free: u64,
}

/// As [`Blocks`] of one byte each, so Windows use is counted as `df` counts it on Linux.
pub(crate) fn blocks(space: FreeSpace) -> Option<Blocks> {
    (space.total > 0).then_some(Blocks {
        fragment_bytes: 1,
        total: space.total,
        free: space.free,
        available: space.available,
    })
}

/// One drive letter as read: its root, type, volume label and filesystem name, and space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Drive {
    pub(crate) root: String,
    pub(crate) drive_type: u32,
    pub(crate) label: Option<String>,
    pub(crate) fs_type: Option<String>,
    pub(crate) space: Option<FreeSpace>,
}

/// A fixed drive with a size as a mount (`C:\`, its label or root as the device); anything
/// else is not the machine's storage.
pub(crate) fn mount(drive: Drive) -> Option<Mount> {
    if drive.drive_type != DRIVE_FIXED {
        return None;
    }
    let blocks = blocks(drive.space?)?;
    Some(Mount {
        filesystem: Filesystem {
            device: drive
                .label
                .filter(|l| !l.trim().is_empty())
                .unwrap_or_else(|| drive.root.clone()),
            mount_point: drive.root,
            fs_type: drive.fs_type.unwrap_or_default(),
            total_bytes: blocks.total_bytes(),
        },
        space: Space::Blocks(blocks),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_bits_are_drive_letters() {
        // Wine's default prefix: C: (drive_c) and Z: (the Unix root).
        assert_eq!(roots((1 << 2) | (1 << 25)), ["C:\\", "Z:\\"]);
        assert_eq!(roots(0), Vec::<String>::new());
        assert_eq!(roots(u32::MAX).len(), 26, "bits above Z: are not drives");
    }

    fn drive(root: &str, drive_type: u32, space: Option<FreeSpace>) -> Drive {
        Drive {
            root: root.into(),
            drive_type,
            label: None,
            fs_type: Some("NTFS".into()),
            space,
        }
    }

    #[test]
    fn fixed_drives_become_mounts_counted_like_df() {
        let space = FreeSpace {
            available: 40 << 30,
            total: 237 << 30,
            free: 41 << 30,
        };
        let mut c = drive("C:\\", DRIVE_FIXED, Some(space));
        c.label = Some("Windows".into());
        let mount = mount(c).unwrap();
        assert_eq!(
            mount.filesystem,
            Filesystem {
                mount_point: "C:\\".into(),
                device: "Windows".into(),
                fs_type: "NTFS".into(),
                total_bytes: 237 << 30,
            }
        );
        let usage = mount.usage();
        assert_eq!(usage.used_bytes, 196 << 30);
        assert_eq!(usage.free_bytes, 41 << 30);
        assert_eq!(usage.available_bytes, Some(40 << 30));
        let unlabelled = super::mount(drive("D:\\", DRIVE_FIXED, Some(space))).unwrap();
        assert_eq!(unlabelled.filesystem.device, "D:\\");
    }

    #[test]
    fn other_drives_and_unreadable_space_are_left_out() {
        let space = Some(FreeSpace {
            available: 1,
            total: 2,
            free: 1,
        });
        // DRIVE_REMOVABLE, DRIVE_REMOTE, DRIVE_CDROM, DRIVE_RAMDISK.
        for other in [2, 4, 5, 6] {
            assert_eq!(mount(drive("E:\\", other, space)), None, "type {other}");
        }
        assert_eq!(mount(drive("C:\\", DRIVE_FIXED, None)), None);
        let empty = FreeSpace {
            available: 0,
            total: 0,
            free: 0,
        };
        assert_eq!(mount(drive("C:\\", DRIVE_FIXED, Some(empty))), None);
    }
}
