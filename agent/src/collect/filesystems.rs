//! Which mounts count as the machine's filesystems, and their size and use.
//!
//! sysinfo lists every mount it can `statvfs`; pseudo, memory-backed and image filesystems
//! (tmpfs, overlay, squashfs snaps, …) are not storage an operator can run out of, and bind or
//! stacked mounts repeat a mount point, so both are removed here.
//!
//! Use is counted as `df` counts it, from the block counts of `statvfs`: used = total − free,
//! where free includes the blocks reserved for root. sysinfo only gives total and available
//! (`f_bavail`), and total − available counts the reserved blocks as used: on a large ext4 volume
//! that is many gigabytes of "use" nobody made. So the real mounts are `statvfs`ed again here
//! ([`read_blocks`], I/O) and turned into figures by [`Blocks::usage`] (pure); sysinfo's figures
//! remain the fallback where that fails and on platforms without `statvfs`. Windows answers the
//! same question through `GetDiskFreeSpaceExW`.

use hatang_protocol::{Filesystem, FilesystemUsage};

/// One mount as sysinfo listed it, with the best space figures there are for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mount {
    pub(crate) filesystem: Filesystem,
    pub(crate) space: Space,
}

/// Where a mount's space figures come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Space {
    /// `statvfs` block counts.
    Blocks(Blocks),
    /// sysinfo's bytes an unprivileged user may still write (`f_bavail` on Unix, the caller's
    /// free bytes on Windows), the total being `filesystem.total_bytes`.
    Available(u64),
}

/// What `statvfs` says about a filesystem, in fragments (`f_frsize` bytes each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Blocks {
    pub(crate) fragment_bytes: u64,
    /// `f_blocks`.
    pub(crate) total: u64,
    /// `f_bfree`: free, including the blocks reserved for root.
    pub(crate) free: u64,
    /// `f_bavail`: free for unprivileged users.
    pub(crate) available: u64,
}

impl Blocks {
    fn bytes(&self, blocks: u64) -> u64 {
        blocks.saturating_mul(self.fragment_bytes)
    }

    pub(crate) fn total_bytes(&self) -> u64 {
        self.bytes(self.total)
    }

    /// Use as `df` shows it. Counts above the total (seen on some FUSE mounts) are capped so
    /// used + free is always the total.
    pub(crate) fn usage(&self, mount_point: &str) -> FilesystemUsage {
        let free = self.free.min(self.total);
        FilesystemUsage {
            mount_point: mount_point.to_owned(),
            used_bytes: self.bytes(self.total - free),
            free_bytes: self.bytes(free),
            available_bytes: Some(self.bytes(self.available.min(self.total))),
        }
    }
}

impl Mount {
    pub(crate) fn usage(&self) -> FilesystemUsage {
        let mount_point = &self.filesystem.mount_point;
        match self.space {
            Space::Blocks(blocks) => blocks.usage(mount_point),
            // Without a free-block count the reserved blocks cannot be told apart: free is taken
            // to be what is available, so they count as used (total − available), as before.
            Space::Available(available) => {
                let total = self.filesystem.total_bytes;
                let free = available.min(total);
                FilesystemUsage {
                    mount_point: mount_point.clone(),
                    used_bytes: total - free,
                    free_bytes: free,
                    available_bytes: Some(free),
                }
            }
        }
    }
}

/// Replaces sysinfo's figures with `statvfs`'s where the mount point answers; the inventory's
/// total then comes from the same reading as the use, so used + free = total.
///
/// Only mounts sysinfo already listed get here: it leaves out NFS, CIFS and autofs, whose
/// `statvfs` can hang on a hard mount.
pub(crate) fn read_blocks(mut mount: Mount) -> Mount {
    if let Some(blocks) = statvfs(&mount.filesystem.mount_point) {
        mount.filesystem.total_bytes = blocks.total_bytes();
        mount.space = Space::Blocks(blocks);
    }
    mount
}

#[cfg(unix)]
fn statvfs(mount_point: &str) -> Option<Blocks> {
    match rustix::fs::statvfs(mount_point) {
        Ok(st) if st.f_frsize > 0 && st.f_blocks > 0 => Some(Blocks {
            fragment_bytes: st.f_frsize,
            total: st.f_blocks,
            free: st.f_bfree,
            available: st.f_bavail,
        }),
        Ok(_) => None,
        Err(e) => {
            tracing::debug!(mount_point, error = %e, "statvfs failed; using sysinfo's figures");
            None
        }
    }
}

/// `GetDiskFreeSpaceExW` gives the same three figures (total, free, free to this user) in bytes.
#[cfg(windows)]
fn statvfs(mount_point: &str) -> Option<Blocks> {
    super::platform::volume_blocks(mount_point)
}

#[cfg(not(any(unix, windows)))]
fn statvfs(_mount_point: &str) -> Option<Blocks> {
    None
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
            space: Space::Available(available),
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

    /// The figures of a 270 GB ext4 root whose reserved blocks are most of its free space:
    /// `stat -f /` said 66053021 blocks of 4096 bytes, 62564204 free, 20332655 available, and
    /// `df -B1 /` said 14290194432 used.
    #[test]
    fn block_counts_give_the_use_df_shows() {
        let blocks = Blocks {
            fragment_bytes: 4096,
            total: 66_053_021,
            free: 62_564_204,
            available: 20_332_655,
        };
        assert_eq!(blocks.total_bytes(), 270_553_174_016);
        assert_eq!(
            blocks.usage("/"),
            FilesystemUsage {
                mount_point: "/".to_owned(),
                used_bytes: 14_290_194_432,
                free_bytes: 256_262_979_584,
                available_bytes: Some(83_282_554_880),
            }
        );
        let mut m = mount("/", "/dev/vda", "ext4", 270_553_174_016, 83_282_554_880);
        m.space = Space::Blocks(blocks);
        assert_eq!(m.usage(), blocks.usage("/"));
    }

    #[test]
    fn block_counts_above_the_total_are_capped() {
        let blocks = Blocks {
            fragment_bytes: 512,
            total: 10,
            free: 12,
            available: 11,
        };
        let usage = blocks.usage("/x");
        assert_eq!(
            (usage.used_bytes, usage.free_bytes, usage.available_bytes),
            (0, 5120, Some(5120))
        );
        let huge = Blocks {
            fragment_bytes: 1 << 20,
            total: u64::MAX,
            free: 0,
            available: 0,
        };
        assert_eq!(huge.usage("/y").used_bytes, u64::MAX);
    }

    #[test]
    fn without_block_counts_the_reserve_counts_as_used() {
        assert_eq!(
            mount("/", "/dev/vda", "ext4", 500, 200).usage(),
            FilesystemUsage {
                mount_point: "/".to_owned(),
                used_bytes: 300,
                free_bytes: 200,
                available_bytes: Some(200),
            }
        );
        // A filesystem reporting more available than total (seen on some FUSE mounts).
        let odd = mount("/x", "d", "ext4", 5, 9).usage();
        assert_eq!((odd.used_bytes, odd.free_bytes), (0, 5));
    }

    #[cfg(unix)]
    #[test]
    fn statvfs_reads_the_root_and_fails_quietly_elsewhere() {
        let root = read_blocks(mount("/", "d", "ext4", 1, 0));
        let Space::Blocks(blocks) = root.space else {
            panic!("no block counts for /: {root:?}");
        };
        assert_eq!(root.filesystem.total_bytes, blocks.total_bytes());
        assert!(blocks.free <= blocks.total, "{blocks:?}");
        let missing = mount("/no/such/mount/point", "d", "ext4", 5, 2);
        assert_eq!(read_blocks(missing.clone()), missing);
    }
}
