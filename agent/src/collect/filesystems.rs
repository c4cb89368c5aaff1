//! Which mounts count as the machine's filesystems, and their size and use.
//!
//! sysinfo lists every mount it can `statvfs`; pseudo, memory-backed and image filesystems
//! (tmpfs, overlay, squashfs snaps, …) are not storage an operator can run out of, and bind or
//! stacked mounts repeat a mount point, so both are removed here.

use hatang_protocol::{Filesystem, FilesystemUsage};

/// One mount as sysinfo saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mount {
    pub(crate) filesystem: Filesystem,
    /// Bytes an unprivileged user may still write (`f_bavail`).
    pub(crate) available_bytes: u64,
}

impl Mount {
    /// Use as the operator sees it: the root-reserved blocks count as used, so used + free is
    /// the total (sysinfo gives no separate `f_bfree`).
    pub(crate) fn usage(&self) -> FilesystemUsage {
        FilesystemUsage {
            mount_point: self.filesystem.mount_point.clone(),
            used_bytes: self
                .filesystem
                .total_bytes
                .saturating_sub(self.available_bytes),
            free_bytes: self.available_bytes.min(self.filesystem.total_bytes),
        }
    }
}

/// Real filesystems only, one per mount point (the last mounted, the one visible there), sorted
/// by mount point.
pub(crate) fn real(mounts: impl IntoIterator<Item = Mount>) -> Vec<Mount> {
    let mut by_point = std::collections::BTreeMap::new();
    for mount in mounts {
        if is_real(&mount.filesystem) {
            by_point.insert(mount.filesystem.mount_point.clone(), mount);
        }
    }
    by_point.into_values().collect()
}

fn is_real(fs: &Filesystem) -> bool {
    const PSEUDO: &[&str] = &[
        // Kernel interfaces dressed as filesystems.
        "proc",
        "sysfs",
        "devtmpfs",
        "devpts",
        "cgroup",
        "cgroup2",
        "mqueue",
        "debugfs",
        "tracefs",
        "securityfs",
        "pstore",
        "bpf",
        "configfs",
        "fusectl",
        "binfmt_misc",
        "efivarfs",
        "rpc_pipefs",
        "nsfs",
        "autofs",
        // Memory-backed, layered or read-only images: not storage that fills up.
        "tmpfs",
        "ramfs",
        "hugetlbfs",
        "overlay",
        "aufs",
        "squashfs",
        "iso9660",
        "udf",
        // FUSE helpers that mirror other filesystems.
        "fuse.lxcfs",
        "fuse.gvfsd-fuse",
        "fuse.portal",
        "fuse.snapfuse",
    ];
    const PSEUDO_POINTS: &[&str] = &["/proc", "/sys", "/dev", "/run", "/snap"];
    let under = |prefix: &str| {
        fs.mount_point == prefix
            || fs
                .mount_point
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('/'))
    };
    fs.total_bytes > 0
        && !PSEUDO.iter().any(|t| fs.fs_type.eq_ignore_ascii_case(t))
        && !PSEUDO_POINTS.iter().any(|p| under(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(point: &str, device: &str, fs_type: &str, total: u64, available: u64) -> Mount {
        Mount {
            filesystem: Filesystem {
                mount_point: point.to_owned(),
                device: device.to_owned(),
                fs_type: fs_type.to_owned(),
                total_bytes: total,
            },
            available_bytes: available,
        }
    }

    #[test]
    fn pseudo_filesystems_and_mount_points_are_dropped() {
        let kept = real([
            mount("/", "/dev/nvme0n1p2", "ext4", 500, 200),
            mount("/boot/efi", "/dev/nvme0n1p1", "vfat", 5, 4),
            mount("/dev/shm", "tmpfs", "tmpfs", 10, 10),
            mount("/snap/core22/1380", "/dev/loop0", "squashfs", 7, 0),
            mount("/var/lib/docker/overlay2/m", "overlay", "overlay", 500, 200),
            mount("/run/user/1000", "tmpfs", "tmpfs", 3, 3),
            mount("/runway", "/dev/sdb1", "xfs", 30, 10),
            mount("/media/usb", "/dev/sdc1", "exfat", 0, 0),
            mount("C:\\", "C:\\", "NTFS", 900, 100),
        ]);
        let points: Vec<&str> = kept
            .iter()
            .map(|m| m.filesystem.mount_point.as_str())
            .collect();
        assert_eq!(points, ["/", "/boot/efi", "/runway", "C:\\"]);
    }

    #[test]
    fn one_entry_per_mount_point_the_last_wins() {
        let kept = real([
            mount("/home", "/dev/sda1", "ext4", 100, 50),
            mount("/", "/dev/vda", "ext4", 500, 200),
            mount("/home", "/dev/mapper/home", "xfs", 300, 100),
        ]);
        assert_eq!(
            kept,
            [
                mount("/", "/dev/vda", "ext4", 500, 200),
                mount("/home", "/dev/mapper/home", "xfs", 300, 100),
            ]
        );
    }

    #[test]
    fn usage_adds_up_to_total() {
        assert_eq!(
            mount("/", "/dev/vda", "ext4", 500, 200).usage(),
            FilesystemUsage {
                mount_point: "/".to_owned(),
                used_bytes: 300,
                free_bytes: 200,
            }
        );
        // A filesystem reporting more available than total (seen on some FUSE mounts).
        assert_eq!(mount("/x", "d", "ext4", 5, 9).usage().used_bytes, 0);
        assert_eq!(mount("/x", "d", "ext4", 5, 9).usage().free_bytes, 5);
    }
}
