//! Link facts from `/sys/class/net/<if>` and the IPv4 default route from `/proc/net/route`.
//!
//! sysinfo lists the interfaces and their addresses; it cannot tell a loopback from an Ethernet
//! port, and on Linux it passes sysfs's link speed through in Mbit/s while documenting bit/s, so
//! these come from sysfs directly.

use std::net::Ipv4Addr;
use std::path::Path;

use super::{read_number, read_text};
use crate::collect::{DefaultRoute, Link};

/// `IFF_UP` and `IFF_LOOPBACK` from `<linux/if.h>`.
const IFF_UP: u32 = 0x1;
const IFF_LOOPBACK: u32 = 0x8;
/// `ARPHRD_ETHER` from `<linux/if_arp.h>`: Ethernet and Wi-Fi links.
const ARPHRD_ETHER: u16 = 1;
/// `NET_ADDR_PERM` from `<linux/netdevice.h>`: the address is the card's own.
const NET_ADDR_PERM: u8 = 0;
/// `RTF_UP` from `<linux/route.h>`: the route is usable.
const RTF_UP: u32 = 0x1;

pub(crate) fn read_link(root: &Path, name: &str) -> Link {
    let dir = root.join("sys/class/net").join(name);
    let flags = read_text(&dir.join("flags")).and_then(|t| parse_flags(&t));
    let operstate = read_text(&dir.join("operstate"));
    Link {
        mac: read_text(&dir.join("address")).and_then(|t| parse_mac(&t)),
        up: operstate.map(|state| is_up(&state, flags)),
        loopback: flags.map(|f| f & IFF_LOOPBACK != 0),
        speed_bps: read_text(&dir.join("speed")).and_then(|t| parse_speed_bps(&t)),
        mtu: read_number(&dir.join("mtu")),
    }
}

/// The address of the first physical network card by interface name, when it is the card's own
/// (`addr_assign_type` 0, `NET_ADDR_PERM`) rather than random or set by an administrator.
/// Physical means backed by a device (`device` link) of type Ethernet (`type` 1, Wi-Fi
/// included) that is not a bridge; loopback, bridges, veths, tunnels and bonds have no device.
pub(crate) fn read_permanent_mac(root: &Path) -> Option<String> {
    let mut names: Vec<String> = std::fs::read_dir(root.join("sys/class/net"))
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names.into_iter().find_map(|name| {
        let dir = root.join("sys/class/net").join(name);
        let physical = dir.join("device").symlink_metadata().is_ok()
            && !dir.join("bridge").exists()
            && read_number::<u16>(&dir.join("type")) == Some(ARPHRD_ETHER)
            && read_number::<u8>(&dir.join("addr_assign_type")).is_none_or(|t| t == NET_ADDR_PERM);
        if !physical {
            return None;
        }
        read_text(&dir.join("address")).and_then(|t| parse_mac(&t))
    })
}

pub(crate) fn read_default_route(root: &Path) -> Option<DefaultRoute> {
    parse_default_route(&read_text(&root.join("proc/net/route"))?)
}

/// `flags` is hexadecimal with a `0x` prefix, e.g. `0x1003`.
fn parse_flags(text: &str) -> Option<u32> {
    let text = text.trim();
    u32::from_str_radix(text.strip_prefix("0x").unwrap_or(text), 16).ok()
}

/// Lower-case `aa:bb:…`; `None` for interfaces without a hardware address (all zeros on
/// loopback, empty on tunnels).
fn parse_mac(text: &str) -> Option<String> {
    let mac = text.trim().to_ascii_lowercase();
    let has_nonzero_digit = mac.chars().any(|c| c.is_ascii_hexdigit() && c != '0');
    has_nonzero_digit.then_some(mac)
}

/// Operational state as RFC 2863 names it. Loopback and some virtual drivers never report one
/// (`unknown`); for them the administrative `IFF_UP` flag is the best evidence there is.
fn is_up(operstate: &str, flags: Option<u32>) -> bool {
    match operstate.trim() {
        "up" => true,
        "unknown" => flags.is_some_and(|f| f & IFF_UP != 0),
        _ => false,
    }
}

/// sysfs gives Mbit/s; `-1` (or a read error, for wireless and virtual links) means unknown.
fn parse_speed_bps(text: &str) -> Option<u64> {
    let mbps: i64 = text.trim().parse().ok()?;
    u64::try_from(mbps)
        .ok()
        .filter(|&m| m > 0)
        .map(|m| m.saturating_mul(1_000_000))
}

/// The usable default route (destination and mask 0) with the lowest metric. Columns are
/// `Iface Destination Gateway Flags RefCnt Use Metric Mask …`; addresses are the kernel's
/// network-order `u32` printed as a host integer, i.e. byte-reversed hex on little-endian machines.
fn parse_default_route(text: &str) -> Option<DefaultRoute> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let [
                iface,
                destination,
                gateway,
                flags,
                _refcnt,
                _use,
                metric,
                mask,
                ..,
            ] = cols[..]
            else {
                return None;
            };
            let flags = u32::from_str_radix(flags, 16).ok()?;
            let default = destination == "00000000" && mask == "00000000" && flags & RTF_UP != 0;
            if !default {
                return None;
            }
            let gateway = u32::from_str_radix(gateway, 16).ok()?;
            let gateway = Ipv4Addr::from(gateway.to_ne_bytes());
            let metric: u32 = metric.parse().ok()?;
            Some((
                metric,
                DefaultRoute {
                    interface: iface.to_owned(),
                    // An on-link default route (PPP, some VPNs) has no gateway.
                    gateway: (!gateway.is_unspecified()).then_some(gateway),
                },
            ))
        })
        .min_by_key(|(metric, _)| *metric)
        .map(|(_, route)| route)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::linux::fixture;

    #[test]
    fn speed_is_converted_to_bits_and_unknown_dropped() {
        assert_eq!(parse_speed_bps("1000\n"), Some(1_000_000_000));
        assert_eq!(parse_speed_bps("10000"), Some(10_000_000_000));
        assert_eq!(parse_speed_bps("-1\n"), None);
        assert_eq!(parse_speed_bps("0"), None);
        assert_eq!(parse_speed_bps(""), None);
    }

    #[test]
    fn operational_state() {
        assert!(is_up("up\n", Some(0x1003)));
        assert!(!is_up("down\n", Some(0x1003)));
        assert!(!is_up("lowerlayerdown", Some(0x1003)));
        assert!(!is_up("dormant", Some(0x1003)));
        assert!(is_up("unknown\n", Some(0x9)));
        assert!(!is_up("unknown", Some(0x8)));
        assert!(!is_up("unknown", None));
    }

    #[test]
    fn flags_and_mac() {
        assert_eq!(parse_flags("0x1003\n"), Some(0x1003));
        assert_eq!(parse_flags("0x9"), Some(0x9));
        assert_eq!(parse_flags("junk"), None);
        assert_eq!(
            parse_mac("D8:9E:F3:12:AB:CD\n"),
            Some("d8:9e:f3:12:ab:cd".to_owned())
        );
        assert_eq!(parse_mac("00:00:00:00:00:00\n"), None);
        assert_eq!(parse_mac("\n"), None);
    }

    #[test]
    fn default_route_with_lowest_metric_wins() {
        let text = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                    enp0s31f6\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
                    wlp0s20f3\t00000000\t012BA8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n\
                    enp0s31f6\t0001A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n";
        assert_eq!(
            parse_default_route(text),
            Some(DefaultRoute {
                interface: "enp0s31f6".to_owned(),
                gateway: Some(Ipv4Addr::new(192, 168, 1, 1)),
            })
        );
    }

    #[test]
    fn routes_that_are_not_a_usable_default() {
        let header =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n";
        // Only a subnet route.
        let subnet =
            format!("{header}eth0\t0001A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n");
        assert_eq!(parse_default_route(&subnet), None);
        // A default route that is not up.
        let down = format!("{header}eth0\t00000000\t0101A8C0\t0002\t0\t0\t0\t00000000\t0\t0\t0\n");
        assert_eq!(parse_default_route(&down), None);
        // On-link default route (PPP): interface but no gateway.
        let ppp = format!("{header}ppp0\t00000000\t00000000\t0001\t0\t0\t0\t00000000\t0\t0\t0\n");
        assert_eq!(
            parse_default_route(&ppp),
            Some(DefaultRoute {
                interface: "ppp0".to_owned(),
                gateway: None,
            })
        );
        assert_eq!(parse_default_route(header), None);
        assert_eq!(parse_default_route("eth0 garbage\n"), None);
    }

    #[test]
    fn route_fixtures() {
        let route = |machine: &str| read_default_route(&fixture(machine));
        assert_eq!(
            route("desktop"),
            Some(DefaultRoute {
                interface: "eno1".to_owned(),
                gateway: Some(Ipv4Addr::new(192, 168, 1, 1)),
            })
        );
        assert_eq!(
            route("laptop"),
            Some(DefaultRoute {
                interface: "wlp0s20f3".to_owned(),
                gateway: Some(Ipv4Addr::new(192, 168, 43, 1)),
            })
        );
        assert_eq!(
            route("server"),
            Some(DefaultRoute {
                interface: "eno1".to_owned(),
                gateway: Some(Ipv4Addr::new(10, 10, 0, 1)),
            })
        );
        assert_eq!(
            route("vm"),
            Some(DefaultRoute {
                interface: "enp1s0".to_owned(),
                gateway: Some(Ipv4Addr::new(192, 168, 122, 1)),
            })
        );
        assert_eq!(read_default_route(Path::new("/nonexistent")), None);
    }

    #[test]
    fn desktop_links() {
        let root = fixture("desktop");
        assert_eq!(
            read_link(&root, "eno1"),
            Link {
                mac: Some("d8:9e:f3:12:ab:cd".to_owned()),
                up: Some(true),
                loopback: Some(false),
                speed_bps: Some(1_000_000_000),
                mtu: Some(1500),
            }
        );
        assert_eq!(
            read_link(&root, "lo"),
            Link {
                mac: None,
                up: Some(true),
                loopback: Some(true),
                speed_bps: None,
                mtu: Some(65536),
            }
        );
    }

    #[test]
    fn laptop_wifi_has_no_speed_and_unplugged_port_is_down() {
        let root = fixture("laptop");
        assert_eq!(
            read_link(&root, "wlp0s20f3"),
            Link {
                mac: Some("3c:58:c2:9a:10:7f".to_owned()),
                up: Some(true),
                loopback: Some(false),
                speed_bps: None,
                mtu: Some(1500),
            }
        );
        assert_eq!(
            read_link(&root, "enp0s31f6"),
            Link {
                mac: Some("8c:8c:aa:41:22:e0".to_owned()),
                up: Some(false),
                loopback: Some(false),
                speed_bps: None,
                mtu: Some(1500),
            }
        );
    }

    #[test]
    fn server_ten_gigabit_and_vm_unknown_speed() {
        let server = read_link(&fixture("server"), "eno1");
        assert_eq!(server.speed_bps, Some(10_000_000_000));
        assert_eq!(server.mtu, Some(9000));
        let vm = read_link(&fixture("vm"), "enp1s0");
        assert_eq!(vm.speed_bps, None);
        assert_eq!(vm.up, Some(true));
        assert_eq!(vm.mac.as_deref(), Some("52:54:00:6b:3c:1d"));
    }

    #[test]
    fn missing_interface_knows_nothing() {
        assert_eq!(read_link(&fixture("desktop"), "eth9"), Link::default());
    }

    #[test]
    fn the_first_physical_cards_own_address() {
        let mac = |machine: &str| read_permanent_mac(&fixture(machine));
        assert_eq!(mac("desktop").as_deref(), Some("d8:9e:f3:12:ab:cd"));
        // docker0 sorts first but is a bridge; the wired port sorts before the Wi-Fi.
        assert_eq!(mac("laptop").as_deref(), Some("8c:8c:aa:41:22:e0"));
        assert_eq!(mac("server").as_deref(), Some("94:40:c9:3a:5b:10"));
        assert_eq!(mac("vm").as_deref(), Some("52:54:00:6b:3c:1d"));
        assert_eq!(read_permanent_mac(Path::new("/nonexistent")), None);
    }

    #[test]
    fn random_and_virtual_addresses_are_no_identity() {
        let dir = tempfile::tempdir().unwrap();
        let net = dir.path().join("sys/class/net");
        let nic = |name: &str, kind: &str, assign: &str, device: bool, mac: &str| {
            let d = net.join(name);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("type"), kind).unwrap();
            std::fs::write(d.join("addr_assign_type"), assign).unwrap();
            std::fs::write(d.join("address"), mac).unwrap();
            if device {
                std::os::unix::fs::symlink("../../../0000:00:14.3", d.join("device")).unwrap();
            }
        };
        nic("veth0", "1\n", "1\n", false, "ee:11:22:33:44:55\n");
        nic("wlan0", "1\n", "1\n", true, "a2:11:22:33:44:55\n");
        assert_eq!(read_permanent_mac(dir.path()), None, "random Wi-Fi address");
        nic("ib0", "32\n", "0\n", true, "80:00:02:08:fe:80\n");
        assert_eq!(read_permanent_mac(dir.path()), None, "not Ethernet");
        nic("wwan0", "1\n", "0\n", true, "00:00:00:00:00:00\n");
        assert_eq!(read_permanent_mac(dir.path()), None, "no address");
        nic("wlan1", "1\n", "0\n", true, "3C:58:C2:9A:10:7F\n");
        assert_eq!(
            read_permanent_mac(dir.path()).as_deref(),
            Some("3c:58:c2:9a:10:7f")
        );
    }
}
