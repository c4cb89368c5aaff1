//! The report, schema version 1: one agent's evidence at one moment.
//!
//! A report carries a `sample` every cycle, an `inventory` when the hardware or software picture
//! may have changed, and the results of the connectivity `probes` that ran. Every hardware field a
//! machine may not expose (virtual machines have no DMI, many have no sensors) is optional: absent
//! means "not readable here", never "zero".

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// One report as pushed to `POST /api/v1/reports`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Report {
    pub schema_version: u32,
    /// Idempotency key: the collector stores a given id once. UUID v7 (time-ordered) from the agent.
    pub report_id: Uuid,
    /// The agent's clock when the report was made; the collector records skew, it does not trust it.
    #[serde(with = "time::serde::rfc3339")]
    pub agent_time: OffsetDateTime,
    /// How often this agent reports, so the collector can tell online from stale.
    pub interval_secs: u32,
    /// `hatang-agent` version that made the report.
    pub agent_version: String,
    #[serde(default)]
    pub inventory: Option<Inventory>,
    #[serde(default)]
    pub sample: Option<Sample>,
    #[serde(default)]
    pub probes: Vec<ProbeResult>,
    /// Whether the default gateway answered; absent when no gateway is known.
    #[serde(default)]
    pub gateway: Option<GatewayCheck>,
    /// Throughput to and from the collector, in the reports where a speed test ran.
    #[serde(default)]
    pub speed: Option<SpeedTest>,
    /// The agent's spool when the report was made: what is lost and what is still waiting.
    #[serde(default)]
    pub spool: Option<SpoolStats>,
}

/// What the machine is: changes rarely.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Inventory {
    pub hostname: String,
    pub os: Os,
    pub cpu: Cpu,
    pub memory: Memory,
    #[serde(default)]
    pub disks: Vec<Disk>,
    #[serde(default)]
    pub filesystems: Vec<Filesystem>,
    #[serde(default)]
    pub interfaces: Vec<Interface>,
    /// The IPv4 default gateway, where the routing table shows one.
    #[serde(default)]
    pub default_gateway: Option<IpAddr>,
    /// SMBIOS/DMI identification; absent on machines that do not expose it.
    #[serde(default)]
    pub dmi: Option<Dmi>,
    /// Hypervisor when the machine is virtual (`kvm`, `vmware`, `hyperv`, …).
    #[serde(default)]
    pub virtualization: Option<String>,
    /// What kind of machine this is, from the SMBIOS chassis type and the virtualization; absent
    /// in reports from agents older than the field.
    #[serde(default)]
    pub form_factor: Option<FormFactor>,
    /// Installed memory modules (SMBIOS type 17); empty where the firmware tables are not
    /// readable (they are root-only on Linux) or list none, as on most virtual machines.
    #[serde(default)]
    pub memory_modules: Vec<MemoryModule>,
    /// Connected monitors, from their EDID.
    #[serde(default)]
    pub monitors: Vec<Monitor>,
    /// Display controllers on the PCI bus.
    #[serde(default)]
    pub gpus: Vec<Gpu>,
    /// Installed packages, sorted by name; `None` when the agent's `inventory_software` switch is
    /// off (the default) or no package database it knows is readable.
    #[serde(default)]
    pub software: Option<Vec<Software>>,
}

/// The kind of machine, as planners count them.
///
/// A value this crate does not know (a later agent's) reads as `other`, so adding a kind never
/// makes an older collector refuse a whole report.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum FormFactor {
    Desktop,
    Laptop,
    Server,
    Vm,
    #[serde(other)]
    Other,
}

impl FormFactor {
    pub fn as_str(self) -> &'static str {
        match self {
            FormFactor::Desktop => "desktop",
            FormFactor::Laptop => "laptop",
            FormFactor::Server => "server",
            FormFactor::Vm => "vm",
            FormFactor::Other => "other",
        }
    }
}

/// One installed memory module (an SMBIOS type 17 "memory device" with a module in it), junk
/// placeholders ("SerNum0", "Unknown", all zeros) already removed by the agent.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct MemoryModule {
    /// The slot as the firmware names it, e.g. `DIMM_A1`, `ChannelA-DIMM0`.
    pub locator: String,
    /// The bank or channel, e.g. `BANK 0`, `P0 CHANNEL A`.
    #[serde(default)]
    pub bank: Option<String>,
    pub size_bytes: u64,
    /// Memory technology, e.g. `DDR4`, `LPDDR5`.
    #[serde(default)]
    pub memory_type: Option<String>,
    /// Rated speed in megatransfers per second.
    #[serde(default)]
    pub speed_mts: Option<u32>,
    /// Speed the firmware configured, in megatransfers per second.
    #[serde(default)]
    pub configured_speed_mts: Option<u32>,
    #[serde(default)]
    pub manufacturer: Option<String>,
    #[serde(default)]
    pub part_number: Option<String>,
    #[serde(default)]
    pub serial: Option<String>,
}

/// A connected monitor, from its EDID block.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Monitor {
    /// Where it is plugged in, e.g. `HDMI-A-1`, `DP-2`, `eDP-1` (a laptop's own panel).
    pub connector: String,
    /// Three-letter PNP manufacturer id, e.g. `DEL`, `SAM`, `AUO`.
    #[serde(default)]
    pub manufacturer: Option<String>,
    /// The manufacturer's product code.
    #[serde(default)]
    pub product_code: Option<u16>,
    /// Model name from the EDID's monitor-name descriptor, e.g. `DELL P2419H`.
    #[serde(default)]
    pub model: Option<String>,
    /// Serial number: the serial descriptor's text, else the numeric serial when it is set.
    #[serde(default)]
    pub serial: Option<String>,
    #[serde(default)]
    pub year_of_manufacture: Option<u16>,
    /// Visible image size in millimetres.
    #[serde(default)]
    pub width_mm: Option<u32>,
    #[serde(default)]
    pub height_mm: Option<u32>,
    /// Diagonal of the visible image in inches, to one decimal.
    #[serde(default)]
    pub diagonal_inches: Option<f64>,
}

/// A display controller (PCI class 0x03).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Gpu {
    /// PCI address, e.g. `0000:01:00.0`.
    pub pci_slot: String,
    /// PCI vendor id as four lower-case hex digits, e.g. `10de`.
    pub vendor_id: String,
    /// PCI device id as four lower-case hex digits.
    pub device_id: String,
    /// The vendor's name where the agent knows the id, e.g. `NVIDIA`.
    #[serde(default)]
    pub vendor: Option<String>,
    /// The kernel driver bound to it, e.g. `i915`, `amdgpu`, `nvidia`.
    #[serde(default)]
    pub driver: Option<String>,
}

/// One installed software package.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Software {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Os {
    /// Family, e.g. `linux`, `windows`.
    pub family: String,
    /// Distribution or product name, e.g. `Debian GNU/Linux`, `Windows 11 Pro`.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub kernel: Option<String>,
    /// CPU architecture, e.g. `x86_64`.
    pub arch: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Cpu {
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub vendor: Option<String>,
    /// Physical cores, where the OS tells them apart from threads.
    #[serde(default)]
    pub cores: Option<u32>,
    /// Logical CPUs (hardware threads).
    pub threads: u32,
    #[serde(default)]
    pub frequency_hz: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Memory {
    pub total_bytes: u64,
    pub swap_total_bytes: u64,
}

/// A physical (or virtual) block device.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Disk {
    /// Kernel name, e.g. `sda`, `nvme0n1`, `vda`.
    pub name: String,
    pub size_bytes: u64,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub serial: Option<String>,
    #[serde(default)]
    pub rotational: Option<bool>,
    #[serde(default)]
    pub removable: Option<bool>,
}

/// A mounted filesystem.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Filesystem {
    pub mount_point: String,
    pub device: String,
    pub fs_type: String,
    pub total_bytes: u64,
}

/// A network interface.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    #[serde(default)]
    pub mac: Option<String>,
    /// Addresses in CIDR notation, e.g. `192.168.1.20/24`.
    #[serde(default)]
    pub addresses: Vec<String>,
    /// Operationally up (link and administratively up).
    pub up: bool,
    pub loopback: bool,
    /// Negotiated link speed in bits per second, where the driver reports it.
    #[serde(default)]
    pub speed_bps: Option<u64>,
    #[serde(default)]
    pub mtu: Option<u32>,
    /// The default route leaves through this interface.
    #[serde(default)]
    pub default_route: bool,
}

/// SMBIOS identification, junk values ("To be filled by O.E.M.") already removed by the agent.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Dmi {
    #[serde(default)]
    pub sys_vendor: Option<String>,
    #[serde(default)]
    pub product_name: Option<String>,
    #[serde(default)]
    pub product_serial: Option<String>,
    #[serde(default)]
    pub product_uuid: Option<String>,
    #[serde(default)]
    pub board_vendor: Option<String>,
    #[serde(default)]
    pub board_name: Option<String>,
    #[serde(default)]
    pub bios_vendor: Option<String>,
    #[serde(default)]
    pub bios_version: Option<String>,
    #[serde(default)]
    pub bios_date: Option<String>,
    /// SMBIOS chassis type name, e.g. `desktop`, `notebook`, `rack mount chassis`.
    #[serde(default)]
    pub chassis_type: Option<String>,
}

/// How the machine is doing: taken every cycle.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Sample {
    pub uptime_secs: u64,
    /// Share of all CPUs busy since the previous sample, 0..=1.
    #[serde(default)]
    pub cpu_usage_ratio: Option<f64>,
    /// 1, 5 and 15 minute load averages (absent where the OS has none).
    #[serde(default)]
    pub load: Option<[f64; 3]>,
    pub memory_used_bytes: u64,
    #[serde(default)]
    pub memory_available_bytes: Option<u64>,
    pub swap_used_bytes: u64,
    #[serde(default)]
    pub filesystems: Vec<FilesystemUsage>,
    #[serde(default)]
    pub interfaces: Vec<InterfaceCounters>,
    /// Hardware temperature sensors, where the machine exposes any (virtual machines do not).
    #[serde(default)]
    pub temperatures: Vec<Temperature>,
}

/// One temperature sensor's reading.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Temperature {
    /// `chip/sensor`, e.g. `coretemp/Package id 0` or `nvme/Composite`: stable across reboots,
    /// so it can be a label value.
    pub sensor: String,
    pub celsius: f64,
}

impl Temperature {
    /// Readings a working sensor can give: below absolute zero or hotter than any chip survives
    /// means a broken sensor (some report -273.15 or 2^31 millidegrees when unplugged).
    pub const PLAUSIBLE_CELSIUS: std::ops::RangeInclusive<f64> = -273.15..=500.0;
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct FilesystemUsage {
    pub mount_point: String,
    /// Blocks in use (total minus free), as `df` counts them.
    pub used_bytes: u64,
    /// Free blocks, including those reserved for the superuser.
    pub free_bytes: u64,
    /// Free blocks an unprivileged user may use; `None` where the OS does not tell them apart.
    #[serde(default)]
    pub available_bytes: Option<u64>,
}

/// Cumulative counters since boot.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct InterfaceCounters {
    pub name: String,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
}

/// How a probe reached its target.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ProbeKind {
    Tcp,
    Http,
    Dns,
    Icmp,
}

/// What a probe target stands for; connectivity is reported per class.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum ProbeClass {
    Internet,
    GovWan,
    Datacentre,
}

/// The outcome of one probe: several attempts against one target.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProbeResult {
    /// Operator-chosen name, e.g. `portal`.
    pub name: String,
    pub kind: ProbeKind,
    pub class: ProbeClass,
    /// `host:port`, URL or name, as configured.
    pub target: String,
    pub attempts: u32,
    pub successes: u32,
    #[serde(default)]
    pub rtt_min_seconds: Option<f64>,
    #[serde(default)]
    pub rtt_avg_seconds: Option<f64>,
    #[serde(default)]
    pub rtt_max_seconds: Option<f64>,
    /// Mean absolute difference between consecutive round-trip times.
    #[serde(default)]
    pub jitter_seconds: Option<f64>,
    /// Last failure, for humans.
    #[serde(default)]
    pub error: Option<String>,
    /// HTTP status of the last answer (`http` probes).
    #[serde(default)]
    pub http_status: Option<u16>,
    /// When the server's TLS certificate expires (`https://` targets), whether or not it is
    /// trusted: an expired or self-signed certificate is evidence too.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub tls_not_after: Option<OffsetDateTime>,
}

/// Reachability of the default gateway: the LAN half of connectivity.
///
/// Kept apart from `probes` because it has no [`ProbeClass`] (it is the office's own network,
/// not the internet, the gov-wan or the data centre); a new class would make collectors that do
/// not know it refuse whole reports.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GatewayCheck {
    pub address: IpAddr,
    pub attempts: u32,
    /// Attempts the gateway answered (a refused connection is an answer).
    pub successes: u32,
    #[serde(default)]
    pub rtt_avg_seconds: Option<f64>,
    /// Last failure, for humans.
    #[serde(default)]
    pub error: Option<String>,
}

/// One speed test against the collector. Each direction stops at the agent's configured size or
/// its time limit, whichever comes first, so a thin link is not held for minutes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SpeedTest {
    /// Collector to agent; absent when that transfer failed.
    #[serde(default)]
    pub download_bits_per_second: Option<f64>,
    /// Agent to collector; absent when that transfer failed.
    #[serde(default)]
    pub upload_bits_per_second: Option<f64>,
    /// Bytes moved, both directions together.
    pub bytes: u64,
    /// Time both transfers took together.
    pub duration_seconds: f64,
    /// Why a direction has no figure, for humans.
    #[serde(default)]
    pub error: Option<String>,
}

/// The agent's spool of unsent reports as it stood when a report was made.
///
/// `dropped_reports` is cumulative since the agent was installed (it is kept in the agent's state
/// directory), so the latest report tells the whole story even if earlier ones were lost: the
/// collector compares it with the previous value rather than adding reports' counts up.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SpoolStats {
    /// Reports this agent made that no collector will ever have: dropped oldest first from a full
    /// or expired spool, found damaged on disk, or refused for good by the collector.
    pub dropped_reports: u64,
    /// Older reports still waiting to be sent when this one was made.
    pub waiting_reports: u64,
}

impl ProbeResult {
    /// Share of attempts that failed, 0..=1.
    pub fn loss_ratio(&self) -> f64 {
        if self.attempts == 0 {
            return 1.0;
        }
        1.0 - f64::from(self.successes.min(self.attempts)) / f64::from(self.attempts)
    }
}
