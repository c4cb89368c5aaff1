//! Collects this machine's inventory and resource samples as protocol types.
//!
//! sysinfo supplies the portable part (CPU, memory, uptime, load, mounts, interface counters and
//! addresses); a platform module (`linux`, `windows`, or `other` elsewhere) supplies what sysinfo
//! does not know (DMI, physical disks, memory modules, monitors, GPUs, installed software,
//! temperatures, link details, the default route, virtualization), each as a plain function.
//! The parsers of what both Linux and Windows hand over raw (SMBIOS structures, EDID blocks) are
//! shared here (`smbios`, `edid`, `pci`). On Windows the platform module also supplies the
//! interface list, CPU use and, where sysinfo lists none, the drives. Anything unreadable is
//! reported as absent, never as an error: the agent runs on VMs, containers and locked-down PCs
//! alike.

#[cfg(any(target_os = "linux", windows, test))]
mod edid;
mod filesystems;
mod form_factor;
pub(crate) mod junk;
#[cfg(any(target_os = "linux", windows, test))]
mod pci;
#[cfg(any(target_os = "linux", windows, test))]
mod smbios;

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
use linux as platform;

// Built on every platform under test: its mappers are pure and their tests run on Linux too.
#[cfg(any(windows, test))]
mod windows;
#[cfg(windows)]
use windows as platform;

#[cfg(not(target_os = "linux"))]
mod absent;
#[cfg(not(any(target_os = "linux", windows)))]
mod other;
#[cfg(not(any(target_os = "linux", windows)))]
use other as platform;

/// This machine's identity on Windows: the registry's `MachineGuid`.
#[cfg(windows)]
pub(crate) use windows::machine_guid;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use hatang_protocol::{Cpu, Interface, InterfaceCounters, Inventory, Memory, Os, Sample};
use sysinfo::{DiskRefreshKind, Disks, MINIMUM_CPU_UPDATE_INTERVAL, NetworkData, Networks, System};

use filesystems::Mount;

/// Reuses one sysinfo handle across cycles (CPU usage needs the previous refresh).
pub struct Collector {
    /// `None` only where sysinfo cannot run at all; every figure it would give is then absent.
    system: Option<System>,
    disks: Option<Disks>,
    networks: Option<Networks>,
    /// When the CPU counters the next usage figure is measured from were read.
    cpu_baseline: Option<Instant>,
    /// List installed software in the inventory (`inventory_software` in the configuration).
    software: bool,
    /// Windows CPU use comes from `GetSystemTimes`, not sysinfo (see `windows::cpu`).
    #[cfg(windows)]
    cpu_meter: platform::CpuMeter,
}

impl fmt::Debug for Collector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // sysinfo's own Debug output lists every CPU, disk and interface: too much for a log line.
        f.debug_struct("Collector")
            .field("cpus", &self.system.as_ref().map_or(0, |s| s.cpus().len()))
            .field("cpu_baseline", &self.cpu_baseline)
            .field("software", &self.software)
            .finish_non_exhaustive()
    }
}

impl Default for Collector {
    fn default() -> Self {
        Self::new()
    }
}

impl Collector {
    /// Opens the sysinfo handles and reads the CPU list and the counters the first sample's CPU
    /// usage is measured from. Never fails: what cannot be read is absent later.
    pub fn new() -> Self {
        let system = System::new().ok().map(|mut system| {
            // The first CPU refresh lists the CPUs (brand, frequency) and reads the counters the
            // first sample's usage is measured from.
            #[cfg(not(windows))]
            system.refresh_cpu_all();
            #[cfg(windows)]
            system.refresh_cpu_specifics(sysinfo::CpuRefreshKind::nothing().with_frequency());
            system
        });
        #[cfg(windows)]
        let mut cpu_meter = platform::CpuMeter::default();
        #[cfg(windows)]
        let _ = cpu_meter.busy_ratio();
        Self {
            cpu_baseline: system.as_ref().map(|_| Instant::now()),
            system,
            disks: Disks::new().ok(),
            networks: Networks::new().ok(),
            software: false,
            #[cfg(windows)]
            cpu_meter,
        }
    }

    /// Whether inventories list the installed software (off by default: it is the bulk of an
    /// inventory and not every province wants it collected).
    pub fn with_software(mut self, on: bool) -> Self {
        self.software = on;
        self
    }

    /// Hardware/software picture: hatang_protocol::Inventory. Reads `/sys` and friends afresh
    /// each call; meant for start-up and the occasional re-inventory, not every cycle.
    pub fn inventory(&mut self) -> Inventory {
        let memory = self.system.as_mut().map_or_else(Memory::default, |system| {
            system.refresh_memory();
            Memory {
                total_bytes: system.total_memory(),
                swap_total_bytes: system.total_swap(),
            }
        });
        let route = platform::default_route();
        let dmi = platform::dmi();
        let virtualization = platform::virtualization(dmi.as_ref());
        Inventory {
            hostname: hostname(),
            os: os(),
            cpu: self.cpu(),
            memory,
            disks: platform::disks(),
            filesystems: self
                .mounts()
                .into_iter()
                .map(|mount| mount.filesystem)
                .collect(),
            interfaces: self.interfaces(route.as_ref().map(|r| r.interface.as_str())),
            default_gateway: route.and_then(|r| r.gateway).map(IpAddr::V4),
            form_factor: Some(form_factor::derive(
                dmi.as_ref().and_then(|d| d.chassis_type.as_deref()),
                virtualization.as_deref(),
            )),
            virtualization,
            dmi,
            memory_modules: platform::memory_modules(),
            monitors: platform::monitors(),
            gpus: platform::gpus(),
            software: self.software.then(platform::software).flatten(),
        }
    }

    /// Resource use now: hatang_protocol::Sample. CPU usage covers the time since the previous
    /// sample (or since `new` for the first one) and is `None` when that is under sysinfo's
    /// `MINIMUM_CPU_UPDATE_INTERVAL`.
    pub fn sample(&mut self) -> Sample {
        let cpu_usage_ratio = self.cpu_usage_ratio();
        let (memory_used_bytes, memory_available_bytes, swap_used_bytes) =
            self.system.as_mut().map_or((0, None, 0), |system| {
                system.refresh_memory();
                let available = (system.total_memory() > 0).then(|| system.available_memory());
                (system.used_memory(), available, system.used_swap())
            });
        let mut interfaces: Vec<InterfaceCounters> = self
            .refreshed_networks()
            .map(|(name, data)| InterfaceCounters {
                name,
                rx_bytes: data.total_received(),
                tx_bytes: data.total_transmitted(),
                rx_errors: data.total_errors_on_received(),
                tx_errors: data.total_errors_on_transmitted(),
            })
            .collect();
        interfaces.sort_by(|a, b| a.name.cmp(&b.name));
        Sample {
            uptime_secs: System::uptime().unwrap_or(0),
            cpu_usage_ratio,
            load: System::load_average()
                .ok()
                .map(|l| [l.one, l.five, l.fifteen])
                .filter(|l| l.iter().all(|v| v.is_finite() && *v >= 0.0)),
            memory_used_bytes,
            memory_available_bytes,
            swap_used_bytes,
            filesystems: self.mounts().iter().map(Mount::usage).collect(),
            interfaces,
            temperatures: platform::temperatures(),
        }
    }

    fn cpu(&self) -> Cpu {
        let cpus = self.system.as_ref().map_or(&[][..], |s| s.cpus());
        let first = cpus.first();
        let text = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        Cpu {
            model: first.and_then(|c| text(c.brand())),
            vendor: first.and_then(|c| text(c.vendor_id())),
            cores: System::physical_core_count()
                .ok()
                .and_then(|n| u32::try_from(n).ok())
                .filter(|&n| n > 0),
            threads: match u32::try_from(cpus.len()) {
                Ok(n) if n > 0 => n,
                // sysinfo could not read the CPU list; the scheduler's view is the next best.
                _ => std::thread::available_parallelism()
                    .map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX)),
            },
            frequency_hz: platform::cpu_max_frequency_hz().or_else(|| {
                first
                    .map(|c| c.frequency())
                    .filter(|&mhz| mhz > 0)
                    .map(|mhz| mhz.saturating_mul(1_000_000))
            }),
        }
    }

    /// Share of all CPUs busy since the previous reading, or `None` when there is no earlier
    /// reading far enough back: sysinfo ignores refreshes closer together than
    /// `MINIMUM_CPU_UPDATE_INTERVAL`, and its very first figure covers the time since boot.
    fn cpu_usage_ratio(&mut self) -> Option<f64> {
        self.system.as_ref()?;
        let ready = self
            .cpu_baseline
            .is_some_and(|at| at.elapsed() >= MINIMUM_CPU_UPDATE_INTERVAL);
        if !ready && self.cpu_baseline.is_some() {
            // Too soon: keep the baseline so the next sample measures a full interval.
            return None;
        }
        let ratio = self.busy_ratio_since_last()?;
        self.cpu_baseline = Some(Instant::now());
        (ready && ratio.is_finite()).then(|| ratio.clamp(0.0, 1.0))
    }

    #[cfg(not(windows))]
    fn busy_ratio_since_last(&mut self) -> Option<f64> {
        let system = self.system.as_mut()?;
        system.refresh_cpu_usage();
        Some(f64::from(system.global_cpu_usage()) / 100.0)
    }

    #[cfg(windows)]
    fn busy_ratio_since_last(&mut self) -> Option<f64> {
        self.cpu_meter.busy_ratio()
    }

    fn mounts(&mut self) -> Vec<Mount> {
        let Some(disks) = self.disks.as_mut() else {
            return Vec::new();
        };
        disks.refresh_specifics(true, DiskRefreshKind::nothing().with_storage());
        // sysinfo lists no volumes under Wine; the drive letters are read directly then.
        #[cfg(windows)]
        if disks.iter().next().is_none() {
            return filesystems::real(platform::fixed_drives());
        }
        filesystems::real(disks.iter().map(|disk| Mount {
            filesystem: hatang_protocol::Filesystem {
                mount_point: disk.mount_point().to_string_lossy().into_owned(),
                device: disk.name().to_string_lossy().into_owned(),
                fs_type: disk.file_system().to_string_lossy().into_owned(),
                total_bytes: disk.total_space(),
            },
            space: filesystems::Space::Available(disk.available_space()),
        }))
        .into_iter()
        .map(filesystems::read_blocks)
        .collect()
    }

    /// Interfaces by name after a refresh of the list, counters and addresses.
    fn refreshed_networks(&mut self) -> impl Iterator<Item = (String, &NetworkData)> {
        let networks = self.networks.as_mut().map(|networks| {
            networks.refresh(true);
            &*networks
        });
        networks
            .into_iter()
            .flat_map(|networks| networks.iter())
            .map(|(name, data)| (name.to_string_lossy().into_owned(), data))
    }

    /// Windows: the adapter table, which also lists what sysinfo leaves out (loopback,
    /// disconnected and virtual adapters; under Wine, all of them).
    #[cfg(windows)]
    fn interfaces(&mut self, default_route: Option<&str>) -> Vec<Interface> {
        let mut interfaces = platform::interfaces(default_route);
        interfaces.sort_by(|a, b| a.name.cmp(&b.name));
        interfaces
    }

    #[cfg(not(windows))]
    fn interfaces(&mut self, default_route: Option<&str>) -> Vec<Interface> {
        let mut interfaces: Vec<Interface> = self
            .refreshed_networks()
            .map(|(name, data)| {
                let mut networks = data.ip_networks().to_vec();
                networks.sort();
                let link = platform::link(&name);
                Interface {
                    mac: link.mac.or_else(|| {
                        let mac = data.mac_address();
                        (!mac.is_unspecified()).then(|| mac.to_string())
                    }),
                    up: link.up.unwrap_or(
                        data.operational_state() == sysinfo::InterfaceOperationalState::Up,
                    ),
                    loopback: link.loopback.unwrap_or_else(|| {
                        !networks.is_empty() && networks.iter().all(|n| n.addr.is_loopback())
                    }),
                    // Not sysinfo's link speed: it is Mbit/s on Linux and bit/s elsewhere.
                    speed_bps: link.speed_bps,
                    mtu: link
                        .mtu
                        .or_else(|| u32::try_from(data.mtu()).ok().filter(|&m| m > 0)),
                    default_route: default_route == Some(name.as_str()),
                    addresses: networks.iter().map(ToString::to_string).collect(),
                    name,
                }
            })
            .collect();
        interfaces.sort_by(|a, b| a.name.cmp(&b.name));
        interfaces
    }
}

/// The hardware facts [`crate::identity`] tells machines apart by; what is unreadable is absent.
pub(crate) fn identity_evidence() -> crate::identity::Evidence {
    let dmi = platform::dmi();
    crate::identity::Evidence {
        product_uuid: dmi.as_ref().and_then(|d| d.product_uuid.clone()),
        product_serial: dmi.and_then(|d| d.product_serial),
        permanent_mac: platform::permanent_mac(),
    }
}

/// This machine's name, best effort: sysinfo's (`gethostname`), else the environment, else
/// `unknown`. Never panics.
pub fn hostname() -> String {
    let clean = |name: String| Some(name.trim().to_owned()).filter(|n| !n.is_empty());
    System::host_name()
        .ok()
        .and_then(clean)
        .or_else(|| std::env::var("COMPUTERNAME").ok().and_then(clean))
        .or_else(|| std::env::var("HOSTNAME").ok().and_then(clean))
        .unwrap_or_else(|| "unknown".to_owned())
}

fn os() -> Os {
    let release = platform::os_release();
    Os {
        family: std::env::consts::OS.to_owned(),
        name: release.name.or_else(|| System::name().ok()),
        version: release.version.or_else(|| System::os_version().ok()),
        kernel: System::kernel_version().ok(),
        arch: System::cpu_arch(),
    }
}

/// The distribution's own name and version, where the platform keeps them apart from sysinfo's.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct OsRelease {
    pub(crate) name: Option<String>,
    pub(crate) version: Option<String>,
}

/// What the platform knows about one network link; `None` where it could not tell. Windows lists
/// whole interfaces instead.
#[cfg(not(windows))]
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Link {
    pub(crate) mac: Option<String>,
    pub(crate) up: Option<bool>,
    pub(crate) loopback: Option<bool>,
    pub(crate) speed_bps: Option<u64>,
    pub(crate) mtu: Option<u32>,
}

/// The IPv4 default route: the interface it leaves through and its gateway, if it has one.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct DefaultRoute {
    pub(crate) interface: String,
    pub(crate) gateway: Option<Ipv4Addr>,
}

/// `bytes` with the byte at each `(offset, value)` of `flips` overwritten (offsets past the end
/// are ignored), cut to `cut` bytes: how the parsers' property tests damage recorded input.
#[cfg(test)]
pub(crate) fn damaged(mut bytes: Vec<u8>, flips: &[(usize, u8)], cut: usize) -> Vec<u8> {
    for &(at, value) in flips {
        if let Some(b) = bytes.get_mut(at) {
            *b = value;
        }
    }
    bytes.truncate(cut);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The real machine the tests run on: only facts every machine has.
    #[test]
    fn collects_this_machine() {
        let mut collector = Collector::new();
        let inventory = collector.inventory();
        assert!(!inventory.hostname.is_empty());
        assert_eq!(inventory.hostname, hostname());
        assert_eq!(inventory.os.family, std::env::consts::OS);
        assert!(!inventory.os.arch.is_empty());
        assert!(inventory.cpu.threads >= 1);
        assert!(inventory.memory.total_bytes > 0);
        assert!(inventory.form_factor.is_some());
        assert_eq!(
            inventory.software, None,
            "the software list is off by default"
        );
        assert!(
            inventory
                .interfaces
                .iter()
                .any(|i| i.loopback && i.up && i.addresses.iter().any(|a| a.starts_with("127."))),
            "no loopback interface in {:?}",
            inventory.interfaces
        );
        assert!(
            inventory
                .interfaces
                .iter()
                .filter(|i| i.default_route)
                .count()
                <= 1
        );
        let mut points: Vec<&str> = inventory
            .filesystems
            .iter()
            .map(|f| f.mount_point.as_str())
            .collect();
        points.dedup();
        assert_eq!(points.len(), inventory.filesystems.len());
        assert!(inventory.filesystems.iter().all(|f| f.fs_type != "tmpfs"));

        let sample = collector.sample();
        assert!(sample.memory_used_bytes <= inventory.memory.total_bytes);
        assert!(sample.memory_available_bytes.is_some());
        assert!(sample.uptime_secs > 0);
        let sampled: Vec<&str> = sample.interfaces.iter().map(|i| i.name.as_str()).collect();
        let listed: Vec<&str> = inventory
            .interfaces
            .iter()
            .map(|i| i.name.as_str())
            .collect();
        if cfg!(windows) {
            // sysinfo counts traffic only on connected hardware adapters (none under Wine); the
            // inventory lists every adapter.
            assert!(
                sampled.iter().all(|name| listed.contains(name)),
                "{sampled:?} not all in {listed:?}"
            );
        } else {
            assert_eq!(sampled, listed);
        }
        assert_eq!(
            sample.filesystems.len(),
            inventory.filesystems.len(),
            "{:?}",
            sample.filesystems
        );
        for fs in &sample.filesystems {
            assert!(fs.used_bytes + fs.free_bytes > 0, "{fs:?}");
        }
    }

    #[test]
    fn cpu_usage_needs_an_interval() {
        // Straight after start the only baseline is the start itself: too recent to measure
        // from. (Checked only when this thread was not stalled past the interval, so the test
        // cannot flake on a loaded machine.)
        let started = Instant::now();
        let mut collector = Collector::new();
        let first = collector.sample().cpu_usage_ratio;
        if started.elapsed() < MINIMUM_CPU_UPDATE_INTERVAL {
            assert_eq!(first, None);
        }
        std::thread::sleep(MINIMUM_CPU_UPDATE_INTERVAL);
        let second = collector.sample().cpu_usage_ratio;
        assert!(
            second.is_some_and(|r| (0.0..=1.0).contains(&r)),
            "{second:?}"
        );
        let sampled = Instant::now();
        let third = collector.sample().cpu_usage_ratio;
        if sampled.elapsed() < MINIMUM_CPU_UPDATE_INTERVAL {
            assert_eq!(third, None);
        }
    }

    #[test]
    fn collector_debug_is_short() {
        let text = format!("{:?}", Collector::new());
        assert!(text.starts_with("Collector {"), "{text}");
        assert!(text.len() < 200, "{text}");
    }

    #[test]
    fn the_software_switch_adds_the_package_list() {
        let inventory = Collector::new().with_software(true).inventory();
        if cfg!(windows) {
            // Every Windows has the Uninstall key; a fresh Wine prefix lists nothing in it.
            assert!(inventory.software.is_some());
        } else {
            // On a dpkg system the list is there (and never empty: dpkg itself is a package).
            assert_eq!(
                inventory.software.as_ref().map(Vec::is_empty),
                platform::software().map(|_| false)
            );
        }
    }
}
