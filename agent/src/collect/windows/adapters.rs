//! Network adapters as `GetAdaptersAddresses` lists them, turned into protocol interfaces and
//! the default route.
//!
//! sysinfo lists only connected adapters with a hardware address and a link speed (none at all
//! under Wine), so on Windows the adapter table is the interface list: loopback, disconnected
//! Wi-Fi and VPN adapters are inventory too.

use std::net::{IpAddr, Ipv4Addr};

use hatang_protocol::Interface;

use crate::collect::DefaultRoute;

/// `IF_TYPE_SOFTWARE_LOOPBACK` (ipifcons.h).
pub(crate) const SOFTWARE_LOOPBACK: u32 = 24;

/// One adapter, copied out of the `IP_ADAPTER_ADDRESSES` list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Adapter {
    /// `FriendlyName`, e.g. "Ethernet", "Wi-Fi": the name Windows shows and sysinfo uses.
    pub(crate) name: String,
    /// `PhysicalAddress[..PhysicalAddressLength]`.
    pub(crate) hardware_address: Vec<u8>,
    /// `IfType` (IANA ifType).
    pub(crate) if_type: u32,
    /// `OperStatus == IfOperStatusUp`.
    pub(crate) up: bool,
    /// `Mtu`; `u32::MAX` on the loopback adapter.
    pub(crate) mtu: u32,
    /// `TransmitLinkSpeed` and `ReceiveLinkSpeed`, bit/s; `u64::MAX` or 0 when unknown.
    pub(crate) speeds_bps: [u64; 2],
    /// Unicast addresses with their on-link prefix length.
    pub(crate) addresses: Vec<(IpAddr, u8)>,
    pub(crate) gateways: Vec<IpAddr>,
    /// `Ipv4Metric`: Windows routes through the lowest.
    pub(crate) ipv4_metric: u32,
}

impl Adapter {
    fn ipv4_gateway(&self) -> Option<Ipv4Addr> {
        self.gateways.iter().find_map(|gateway| match gateway {
            IpAddr::V4(v4) if !v4.is_unspecified() => Some(*v4),
            _ => None,
        })
    }
}

/// Hardware address as `aa:bb:cc:dd:ee:ff` (as on Linux); none for an empty or all-zero one.
fn mac(bytes: &[u8]) -> Option<String> {
    (bytes.len() == 6 && bytes.iter().any(|&b| b != 0)).then(|| {
        bytes
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    })
}

pub(crate) fn interface(adapter: &Adapter, default_route: bool) -> Interface {
    let mut addresses: Vec<(IpAddr, u8)> = adapter.addresses.clone();
    addresses.sort();
    Interface {
        name: adapter.name.clone(),
        mac: mac(&adapter.hardware_address),
        addresses: addresses
            .iter()
            .map(|(ip, prefix)| format!("{ip}/{prefix}"))
            .collect(),
        up: adapter.up,
        loopback: adapter.if_type == SOFTWARE_LOOPBACK,
        speed_bps: adapter
            .speeds_bps
            .iter()
            .copied()
            .filter(|&s| s != 0 && s != u64::MAX)
            .max(),
        mtu: Some(adapter.mtu).filter(|&m| m != 0 && m != u32::MAX),
        default_route,
    }
}

/// The adapter IPv4 traffic to elsewhere leaves through: among the adapters that are up and
/// have an IPv4 gateway, the one with the lowest metric (the first listed on a tie).
pub(crate) fn default_route(adapters: &[Adapter]) -> Option<DefaultRoute> {
    adapters
        .iter()
        .filter(|a| a.up)
        .filter_map(|a| Some((a, a.ipv4_gateway()?)))
        .min_by_key(|(a, _)| a.ipv4_metric)
        .map(|(a, gateway)| DefaultRoute {
            interface: a.name.clone(),
            gateway: Some(gateway),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Windows 10 office PC as `GetAdaptersAddresses` listed it: wired LAN with a gateway,
    /// Wi-Fi switched off, a VPN adapter with a gateway of its own but a higher metric, loopback.
    fn office_pc() -> Vec<Adapter> {
        vec![
            Adapter {
                name: "Ethernet".into(),
                hardware_address: vec![0x3c, 0x52, 0x82, 0x5a, 0x11, 0x0b],
                if_type: 6,
                up: true,
                mtu: 1500,
                speeds_bps: [1_000_000_000, 1_000_000_000],
                addresses: vec![
                    ("fe80::5d1:9a2c:7f3e:1b2a".parse().unwrap(), 64),
                    ("10.17.4.23".parse().unwrap(), 24),
                ],
                gateways: vec!["10.17.4.1".parse().unwrap()],
                ipv4_metric: 25,
            },
            Adapter {
                name: "Wi-Fi".into(),
                hardware_address: vec![0xa4, 0x4e, 0x31, 0x0c, 0x9d, 0x72],
                if_type: 71,
                up: false,
                mtu: 1500,
                speeds_bps: [u64::MAX, u64::MAX],
                ipv4_metric: 5,
                gateways: vec!["192.168.1.1".parse().unwrap()],
                ..Adapter::default()
            },
            Adapter {
                name: "VPN tinh".into(),
                if_type: 53,
                up: true,
                mtu: 1400,
                speeds_bps: [100_000_000, 0],
                addresses: vec![("172.16.9.4".parse().unwrap(), 32)],
                gateways: vec!["0.0.0.0".parse().unwrap(), "172.16.9.1".parse().unwrap()],
                ipv4_metric: 35,
                ..Adapter::default()
            },
            Adapter {
                name: "Loopback Pseudo-Interface 1".into(),
                if_type: SOFTWARE_LOOPBACK,
                up: true,
                mtu: u32::MAX,
                speeds_bps: [1_073_741_824, 1_073_741_824],
                addresses: vec![
                    ("127.0.0.1".parse().unwrap(), 8),
                    ("::1".parse().unwrap(), 128),
                ],
                ipv4_metric: 75,
                ..Adapter::default()
            },
        ]
    }

    #[test]
    fn adapters_become_interfaces() {
        let pc = office_pc();
        assert_eq!(
            interface(&pc[0], true),
            Interface {
                name: "Ethernet".into(),
                mac: Some("3c:52:82:5a:11:0b".into()),
                addresses: vec!["10.17.4.23/24".into(), "fe80::5d1:9a2c:7f3e:1b2a/64".into()],
                up: true,
                loopback: false,
                speed_bps: Some(1_000_000_000),
                mtu: Some(1500),
                default_route: true,
            }
        );
        let wifi = interface(&pc[1], false);
        assert!(!wifi.up);
        assert_eq!(wifi.speed_bps, None, "u64::MAX is 'unknown'");
        assert_eq!(wifi.mac.as_deref(), Some("a4:4e:31:0c:9d:72"));
        let vpn = interface(&pc[2], false);
        assert_eq!((vpn.mac, vpn.speed_bps), (None, Some(100_000_000)));
        let loopback = interface(&pc[3], false);
        assert!(loopback.loopback && loopback.up);
        assert_eq!(loopback.mtu, None, "the loopback adapter's MTU is u32::MAX");
        assert_eq!(loopback.addresses, ["127.0.0.1/8", "::1/128"]);
    }

    #[test]
    fn default_route_is_the_lowest_metric_adapter_that_is_up_with_a_gateway() {
        let mut pc = office_pc();
        assert_eq!(
            default_route(&pc),
            Some(DefaultRoute {
                interface: "Ethernet".into(),
                gateway: Some("10.17.4.1".parse().unwrap()),
            })
        );
        // Cable out: the VPN's real gateway, not its 0.0.0.0 placeholder, and never the Wi-Fi
        // that is down though its metric is lowest.
        pc[0].up = false;
        assert_eq!(
            default_route(&pc),
            Some(DefaultRoute {
                interface: "VPN tinh".into(),
                gateway: Some("172.16.9.1".parse().unwrap()),
            })
        );
        pc[2].up = false;
        assert_eq!(default_route(&pc), None);
    }

    #[test]
    fn junk_hardware_addresses_are_absent() {
        assert_eq!(mac(&[0; 6]), None);
        assert_eq!(mac(&[]), None);
        assert_eq!(mac(&[1, 2, 3, 4, 5, 6, 7, 8]), None, "not an Ethernet MAC");
    }
}
