//! Report bodies as agents send them: JSON, gzip, one `report_id` each, varied per machine and
//! per cycle, the inventory in one report of [`INVENTORY_EVERY`] per agent.
//!
//! The starting point is the protocol's golden report (the shape `hatang-agent once --print`
//! produces); each agent gets its own inventory (hostname, OS, CPU, memory, disk, MAC, address,
//! DMI vendor) and each report a sample and probe results drawn from a pool of varied ones.
//!
//! Cost on the client matters here: the generator shares two cores with the collector, and
//! compressing a whole report per request (as one agent does once a minute) would spend a large
//! share of a core at 20,000 reports/s. A body is therefore a multi-member gzip stream, which the
//! collector reads whole (`MultiGzDecoder`, see `collector/src/http/ingest.rs`): a small member
//! made per request (`{"report_id":…,"agent_time":…,`), the agent's inventory member when due,
//! and a sample-and-probes member compressed once at start-up (the head is a stored block: a UUID
//! and a timestamp do not compress). The decompressed JSON is one
//! ordinary report; the bytes on the wire are within a few percent of the agent's single member.

use std::io::Write;
use std::sync::Arc;

use flate2::Compression;
use flate2::write::GzEncoder;
use hatang_protocol::{
    Disk, Dmi, Filesystem, FilesystemUsage, GatewayCheck, Interface, InterfaceCounters, Inventory,
    ProbeClass, ProbeKind, ProbeResult, Report, Sample, SpeedTest, SpoolStats, Temperature,
};
use uuid::Uuid;

use crate::Rng;

/// The golden report of protocol version 1: the template every body starts from.
pub const GOLDEN: &str = include_str!("../../protocol/tests/golden/report-v1.json");

/// One report in this many (per agent) carries the inventory, as an agent on a one-minute
/// interval sends it when something changed and at least daily.
pub const INVENTORY_EVERY: u64 = 60;

/// How many different sample-and-probes members are prepared per OS family.
const TAILS: usize = 512;

/// Prepared pieces of report bodies for a fleet of agents.
#[derive(Debug, Clone)]
pub struct Fleet {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Per agent: its hostname, whether it runs Windows, its gzip'd `"inventory":{…},` member.
    agents: Vec<Machine>,
    /// Per OS family (0 Linux, 1 Windows): gzip'd `"schema_version":…}` members.
    tails: [Vec<Vec<u8>>; 2],
    /// Uncompressed sizes, for the average-size line.
    tail_json_bytes: usize,
    inventory_json_bytes: usize,
}

#[derive(Debug)]
pub struct Machine {
    pub hostname: String,
    windows: bool,
    inventory: Vec<u8>,
}

fn gzip(data: &[u8], level: Compression) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::with_capacity(data.len() / 2 + 32), level);
    gz.write_all(data).expect("writing to a Vec cannot fail");
    gz.finish().expect("writing to a Vec cannot fail")
}

/// `data` as one gzip member holding a single stored (uncompressed) deflate block.
///
/// For the per-request head: ~110 bytes of UUID and timestamp that no compression level would
/// shrink, while setting up a deflate compressor per request costs this program tens of
/// microseconds (its state is hundreds of kilobytes) that the collector under test would lose.
pub fn stored_gzip(data: &[u8]) -> Vec<u8> {
    let len = u16::try_from(data.len()).expect("a head is far below 64 KiB");
    let mut crc = flate2::Crc::new();
    crc.update(data);
    let mut out = Vec::with_capacity(data.len() + 23);
    // magic, deflate, no flags, no mtime, no extra flags, OS unknown
    out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
    // final block, stored; its length and the length's complement
    out.push(1);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&(!len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

fn template() -> Report {
    static TEMPLATE: std::sync::OnceLock<Report> = std::sync::OnceLock::new();
    TEMPLATE
        .get_or_init(|| serde_json::from_str(GOLDEN).expect("the golden report parses"))
        .clone()
}

/// The golden inventory, made into machine `index` of `unit`.
pub fn inventory(rng: &mut Rng, unit: &str, index: usize) -> (Inventory, bool) {
    let mut inv = template()
        .inventory
        .expect("the golden report has an inventory");
    // Most agency PCs run Windows; the data centre and some offices run Linux.
    let windows = rng.chance(0.8);
    let n = index + 1;
    if windows {
        inv.hostname = format!("PC-{unit}-{n:03}");
        inv.os.family = "windows".into();
        let (name, version, kernel) = rng.pick(&[
            ("Windows 10 Pro", "22H2", "10.0.19045"),
            ("Windows 11 Pro", "23H2", "10.0.22631"),
            ("Windows 11 Pro", "24H2", "10.0.26100"),
            ("Windows 10 Home Single Language", "22H2", "10.0.19045"),
        ]);
        inv.os.name = Some((*name).into());
        inv.os.version = Some((*version).into());
        inv.os.kernel = Some((*kernel).into());
        inv.disks = vec![Disk {
            name: "PhysicalDrive0".into(),
            size_bytes: *rng.pick(&[128u64, 256, 512, 1000]) * 1_000_000_000,
            model: Some(
                (*rng.pick(&[
                    "KINGSTON SA400S37240G",
                    "WDC WD10EZEX-08WN4A0",
                    "Samsung SSD 870 EVO 500GB",
                    "ST1000DM010-2EP102",
                ]))
                .into(),
            ),
            serial: Some(format!("{:016X}", rng.next_u64())),
            rotational: None,
            removable: Some(false),
        }];
        inv.filesystems = vec![Filesystem {
            mount_point: "C:\\".into(),
            device: "C:".into(),
            fs_type: "NTFS".into(),
            total_bytes: inv.disks[0].size_bytes - 600_000_000,
        }];
    } else {
        inv.hostname = format!("ub-{}-{n:02}", unit.to_ascii_lowercase());
        let (name, version) = rng.pick(&[
            ("Debian GNU/Linux", "12"),
            ("Ubuntu", "22.04"),
            ("Ubuntu", "24.04"),
        ]);
        inv.os.name = Some((*name).into());
        inv.os.version = Some((*version).into());
    }
    let cpu = rng.pick(&[
        (
            "Intel(R) Core(TM) i5-10400 CPU @ 2.90GHz",
            "GenuineIntel",
            6,
            12,
        ),
        (
            "Intel(R) Core(TM) i3-10105 CPU @ 3.70GHz",
            "GenuineIntel",
            4,
            8,
        ),
        ("Intel(R) Core(TM) i5-12400", "GenuineIntel", 6, 12),
        (
            "Intel(R) Pentium(R) CPU G4560 @ 3.50GHz",
            "GenuineIntel",
            2,
            4,
        ),
        (
            "AMD Ryzen 5 5600G with Radeon Graphics",
            "AuthenticAMD",
            6,
            12,
        ),
    ]);
    inv.cpu.model = Some(cpu.0.into());
    inv.cpu.vendor = Some(cpu.1.into());
    inv.cpu.cores = Some(cpu.2);
    inv.cpu.threads = cpu.3;
    inv.memory.total_bytes = *rng.pick(&[4u64, 8, 8, 16]) * 1024 * 1024 * 1024 - 200 * 1024 * 1024;
    let (b, c, d) = (rng.range(1, 250), rng.range(1, 250), rng.range(2, 250));
    let mac = rng.next_u64().to_be_bytes();
    for i in &mut inv.interfaces {
        if !i.loopback {
            if windows {
                i.name = "Ethernet".into();
            }
            i.mac = Some(format!(
                "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                mac[0] & 0xfe,
                mac[1],
                mac[2],
                mac[3],
                mac[4],
                mac[5]
            ));
            i.addresses = vec![format!("10.{b}.{c}.{d}/24")];
            i.speed_bps = Some(*rng.pick(&[100_000_000u64, 1_000_000_000]));
        }
    }
    // Some offices also have Wi-Fi adapters that are down.
    if rng.chance(0.3) {
        inv.interfaces.push(Interface {
            name: if windows {
                "Wi-Fi".into()
            } else {
                "wlp3s0".into()
            },
            mac: Some(format!(
                "a4:c3:f0:{:02x}:{:02x}:{:02x}",
                mac[6], mac[7], mac[0]
            )),
            addresses: Vec::new(),
            up: false,
            loopback: false,
            speed_bps: None,
            mtu: Some(1500),
            default_route: false,
        });
    }
    inv.default_gateway = format!("10.{b}.{c}.1").parse().ok();
    // One in ten has no readable DMI (a VM, or junk values the agent removed).
    inv.dmi = if rng.chance(0.1) {
        None
    } else {
        let (vendor, product) = rng.pick(&[
            ("Dell Inc.", "OptiPlex 3080"),
            ("HP", "ProDesk 400 G7 Microtower PC"),
            ("LENOVO", "ThinkCentre M70s"),
            ("ASUSTeK COMPUTER INC.", "ExpertCenter D500MA"),
            ("FPT", "Elead S985i"),
        ]);
        Some(Dmi {
            sys_vendor: Some((*vendor).into()),
            product_name: Some((*product).into()),
            product_serial: Some(format!("{:08X}", rng.next_u64() as u32)),
            product_uuid: Some(Uuid::from_u64_pair(rng.next_u64(), rng.next_u64()).to_string()),
            board_vendor: Some((*vendor).into()),
            board_name: None,
            bios_vendor: Some((*vendor).into()),
            bios_version: Some(format!("{}.{}.0", rng.range(1, 3), rng.range(0, 20))),
            bios_date: Some("05/12/2023".into()),
            chassis_type: Some("desktop".into()),
        })
    };
    (inv, windows)
}

/// A report of one cycle without identity or inventory: sample, probes, gateway, spool, and now
/// and then a speed test.
pub fn cycle(rng: &mut Rng, windows: bool) -> Report {
    let mut r = template();
    r.inventory = None;
    let total_fs = 250_438_021_120u64;
    let used = rng.range(20, 90) * total_fs / 100;
    let mem_total = 8_246_337_536u64;
    let mem_used = rng.range(25, 95) * mem_total / 100;
    let nic = if windows { "Ethernet" } else { "enp2s0" };
    r.sample = Some(Sample {
        uptime_secs: rng.range(300, 30 * 86_400),
        cpu_usage_ratio: Some((rng.unit() * 1000.0).round() / 1000.0),
        load: (!windows).then(|| {
            let l = rng.unit() * 4.0;
            [l, l * 0.8, l * 0.6].map(|x| (x * 100.0).round() / 100.0)
        }),
        memory_used_bytes: mem_used,
        memory_available_bytes: Some(mem_total - mem_used),
        swap_used_bytes: if rng.chance(0.3) {
            rng.range(0, 1 << 30)
        } else {
            0
        },
        filesystems: vec![FilesystemUsage {
            mount_point: if windows { "C:\\".into() } else { "/".into() },
            used_bytes: used,
            free_bytes: total_fs - used,
            available_bytes: Some(total_fs - used - if windows { 0 } else { total_fs / 20 }),
        }],
        interfaces: vec![InterfaceCounters {
            name: nic.into(),
            rx_bytes: rng.range(1 << 20, 1 << 40),
            tx_bytes: rng.range(1 << 20, 1 << 38),
            rx_errors: if rng.chance(0.05) {
                rng.range(1, 100)
            } else {
                0
            },
            tx_errors: 0,
        }],
        // Desktops on Linux expose the CPU package sensor; Windows has no portable reading.
        temperatures: if windows {
            Vec::new()
        } else {
            vec![Temperature {
                sensor: "coretemp/Package id 0".into(),
                celsius: f64::from(rng.range(35, 80) as u32),
            }]
        },
    });
    let mut probe = |name: &str, kind: ProbeKind, class: ProbeClass, target: &str, base: f64| {
        let attempts = 4;
        let failed = rng.chance(0.03);
        let successes = if failed {
            rng.range(0, 4) as u32
        } else {
            attempts
        };
        let min = base * (0.8 + rng.unit() * 0.4);
        let avg = min * (1.0 + rng.unit() * 0.5);
        let round = |x: f64| (x * 1e6).round() / 1e6;
        ProbeResult {
            name: name.into(),
            kind,
            class,
            target: target.into(),
            attempts,
            successes,
            rtt_min_seconds: (successes > 0).then(|| round(min)),
            rtt_avg_seconds: (successes > 0).then(|| round(avg)),
            rtt_max_seconds: (successes > 0).then(|| round(avg * 1.3)),
            jitter_seconds: (successes > 1).then(|| round((avg - min) / 2.0)),
            error: failed.then(|| "connection timed out".into()),
            http_status: (kind == ProbeKind::Http && successes > 0).then_some(200),
            tls_not_after: None,
        }
    };
    r.probes = vec![
        probe(
            "portal",
            ProbeKind::Http,
            ProbeClass::Datacentre,
            "https://dichvucong.phutho.gov.vn/",
            0.045,
        ),
        probe(
            "national-portal",
            ProbeKind::Tcp,
            ProbeClass::GovWan,
            "dichvucong.gov.vn:443",
            0.018,
        ),
        probe(
            "internet-dns",
            ProbeKind::Dns,
            ProbeClass::Internet,
            "vnexpress.net",
            0.025,
        ),
    ];
    if let Some(p) = r.probes.first_mut() {
        p.tls_not_after = time::OffsetDateTime::from_unix_timestamp(1_800_000_000).ok();
    }
    r.gateway = Some(GatewayCheck {
        address: "10.17.4.1".parse().expect("an address"),
        attempts: 4,
        successes: 4,
        rtt_avg_seconds: Some((rng.unit() * 2000.0).round() / 1e6),
        error: None,
    });
    // The agent's default speed test runs hourly: one report in sixty.
    r.speed = rng.chance(1.0 / 60.0).then(|| SpeedTest {
        download_bits_per_second: Some(rng.range(5, 200) as f64 * 1e6),
        upload_bits_per_second: Some(rng.range(2, 100) as f64 * 1e6),
        bytes: 8_388_608,
        duration_seconds: (rng.unit() * 5.0 * 100.0).round() / 100.0 + 0.2,
        error: None,
    });
    r.spool = Some(SpoolStats {
        dropped_reports: 0,
        waiting_reports: if rng.chance(0.02) {
            rng.range(1, 50)
        } else {
            0
        },
    });
    r
}

/// The JSON of `report` less `report_id`, `agent_time` and `inventory`, without its opening
/// brace: the last piece of a body.
fn tail_json(report: &Report) -> String {
    let mut value = serde_json::to_value(report).expect("a report serialises");
    let map = value.as_object_mut().expect("a report is an object");
    for key in ["report_id", "agent_time", "inventory"] {
        map.remove(key);
    }
    let text = serde_json::to_string(&value).expect("a report serialises");
    text[1..].to_string()
}

/// The first piece of a body: identity and clock, made per request.
pub fn head_json(report_id: Uuid, agent_time: time::OffsetDateTime) -> String {
    let t = agent_time
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "2026-01-01T00:00:00Z".into());
    format!(r#"{{"report_id":"{report_id}","agent_time":"{t}","#)
}

impl Fleet {
    /// Prepares bodies for agents in `units` (unit code per agent).
    pub fn new(units: &[String], seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let mut per_unit: std::collections::HashMap<&str, usize> = Default::default();
        let mut inventory_json_bytes = 0;
        let agents = units
            .iter()
            .map(|unit| {
                let index = per_unit.entry(unit.as_str()).or_default();
                let (inv, windows) = inventory(&mut rng, unit, *index);
                *index += 1;
                let json = format!(
                    r#""inventory":{},"#,
                    serde_json::to_string(&inv).expect("an inventory serialises")
                );
                inventory_json_bytes += json.len();
                Machine {
                    hostname: inv.hostname,
                    windows,
                    inventory: gzip(json.as_bytes(), Compression::default()),
                }
            })
            .collect::<Vec<_>>();
        let mut tail_json_bytes = 0;
        let tails = [false, true].map(|windows| {
            (0..TAILS)
                .map(|_| {
                    let json = tail_json(&cycle(&mut rng, windows));
                    tail_json_bytes += json.len();
                    gzip(json.as_bytes(), Compression::default())
                })
                .collect::<Vec<_>>()
        });
        Self {
            inner: Arc::new(Inner {
                inventory_json_bytes: inventory_json_bytes / agents.len().max(1),
                agents,
                tails,
                tail_json_bytes: tail_json_bytes / (2 * TAILS),
            }),
        }
    }

    pub fn agents(&self) -> &[Machine] {
        &self.inner.agents
    }

    /// The gzip body of report number `seq` of agent `agent`; `pick` chooses its cycle data.
    pub fn body(&self, agent: usize, seq: u64, pick: u64) -> Vec<u8> {
        let machine = &self.inner.agents[agent];
        let tails = &self.inner.tails[usize::from(machine.windows)];
        let tail = &tails[(pick % tails.len() as u64) as usize];
        let head = head_json(Uuid::now_v7(), time::OffsetDateTime::now_utc());
        let head = stored_gzip(head.as_bytes());
        let with_inventory = seq.is_multiple_of(INVENTORY_EVERY);
        let mut body = Vec::with_capacity(
            head.len()
                + tail.len()
                + if with_inventory {
                    machine.inventory.len()
                } else {
                    0
                },
        );
        body.extend_from_slice(&head);
        if with_inventory {
            body.extend_from_slice(&machine.inventory);
        }
        body.extend_from_slice(tail);
        body
    }

    /// Average uncompressed JSON size of a report without and with inventory, in bytes.
    pub fn json_sizes(&self) -> (usize, usize) {
        let head = 110;
        (
            head + self.inner.tail_json_bytes,
            head + self.inner.tail_json_bytes + self.inner.inventory_json_bytes,
        )
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use flate2::read::MultiGzDecoder;
    use hatang_protocol::Limits;

    use super::*;

    fn decode(body: &[u8]) -> Report {
        let mut text = String::new();
        MultiGzDecoder::new(body).read_to_string(&mut text).unwrap();
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    }

    #[test]
    fn a_stored_member_is_plain_gzip() {
        let mut text = String::new();
        flate2::read::GzDecoder::new(&stored_gzip(b"{\"a\":1}")[..])
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "{\"a\":1}");
    }

    #[test]
    fn bodies_are_valid_varied_reports_with_the_inventory_now_and_then() {
        let units: Vec<String> = ["10001", "10001", "25-VPUB"].map(String::from).to_vec();
        let fleet = Fleet::new(&units, 3);
        let hosts: Vec<&str> = fleet.agents().iter().map(|m| m.hostname.as_str()).collect();
        assert_eq!(hosts.len(), 3);
        assert_ne!(hosts[0], hosts[1], "two machines of a unit differ");
        let mut ids = std::collections::HashSet::new();
        let mut samples = std::collections::HashSet::new();
        for seq in 0..(2 * INVENTORY_EVERY) {
            for (agent, host) in hosts.iter().enumerate() {
                let r = decode(&fleet.body(agent, seq, crate::mix(agent as u64, seq)));
                r.validate(&Limits::default())
                    .unwrap_or_else(|e| panic!("{e:?}"));
                assert!(ids.insert(r.report_id), "report ids are unique");
                assert_eq!(r.inventory.is_some(), seq % INVENTORY_EVERY == 0);
                if let Some(inv) = &r.inventory {
                    assert_eq!(&inv.hostname, host);
                }
                let skew = (r.agent_time - time::OffsetDateTime::now_utc()).whole_seconds();
                assert!(skew.abs() < 5, "agent_time is now");
                samples.insert(r.sample.unwrap().uptime_secs);
            }
        }
        assert!(samples.len() > 50, "samples vary: {}", samples.len());
        let (plain, with_inventory) = fleet.json_sizes();
        assert!(
            plain > 1000 && with_inventory > plain + 1000,
            "{plain} {with_inventory}"
        );
    }
}
