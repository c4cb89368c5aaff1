//! Monitors and display adapters from the device registry (`HKLM\SYSTEM\CurrentControlSet\Enum`).
//!
//! Plug and Play keeps one key per device instance it has ever seen: `DISPLAY\<model>\<instance>`
//! for monitors, with the EDID the monitor sent in `Device Parameters\EDID`, and
//! `PCI\VEN_xxxx&DEV_xxxx&…\<instance>` for PCI functions, with the device class, the driver
//! service and the bus location. A monitor unplugged last year keeps its key; only devices
//! present since this boot have the volatile `Control` subkey, so the others are left out.
//!
//! The adapters are read from the PCI instance keys rather than from the display class key
//! (`Control\Class\{4d36e968-…}\NNNN`): the class key holds the driver's description and version
//! but neither the PCI location nor the driver service, which are what the protocol's [`Gpu`]
//! carries on Linux (slot, ids, bound driver).

use hatang_protocol::{Gpu, Monitor};

use crate::collect::{edid, pci};

/// The display adapter device class.
const DISPLAY_CLASS: &str = "{4d36e968-e325-11ce-bfc1-08002be10318}";

/// One monitor instance key under `Enum\DISPLAY`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MonitorKey {
    /// `<model>\<instance>`, e.g. `DELA0F0\5&2f1ac3b0&0&UID4353`: the connection it was seen on.
    pub(crate) instance: String,
    /// It has the `Control` subkey: present since this boot.
    pub(crate) present: bool,
    pub(crate) edid: Option<Vec<u8>>,
}

/// The present monitors whose EDID passes the same checks as on Linux, by instance; the
/// instance path stands for the connector, which Windows does not name.
pub(crate) fn monitors(keys: Vec<MonitorKey>) -> Vec<Monitor> {
    let mut list: Vec<Monitor> = keys
        .into_iter()
        .filter(|key| key.present)
        .filter_map(|key| {
            edid::parse_edid(key.edid.as_deref()?, &key.instance)
                .inspect_err(
                    |e| tracing::debug!(instance = %key.instance, error = %e, "monitor skipped"),
                )
                .ok()
        })
        .collect();
    list.sort_by(|a, b| a.connector.cmp(&b.connector));
    list
}

/// One PCI function instance key under `Enum\PCI`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PciKey {
    /// `VEN_10DE&DEV_1F82&SUBSYS_…&REV_A1`.
    pub(crate) device: String,
    /// The instance below it, e.g. `4&2b8260c3&0&0008`.
    pub(crate) instance: String,
    pub(crate) present: bool,
    pub(crate) class_guid: Option<String>,
    /// `LocationInformation`: `PCI bus 1, device 0, function 0`.
    pub(crate) location: Option<String>,
    /// `Service`: the driver bound to it, e.g. `nvlddmkm`, `igfx`, `BasicDisplay`.
    pub(crate) service: Option<String>,
}

/// The present display adapters, by slot; one whose key names no vendor and device is left
/// out.
pub(crate) fn gpus(keys: Vec<PciKey>) -> Vec<Gpu> {
    let mut list: Vec<Gpu> = keys
        .into_iter()
        .filter(|key| key.present)
        .filter(|key| {
            key.class_guid
                .as_deref()
                .is_some_and(|c| c.eq_ignore_ascii_case(DISPLAY_CLASS))
        })
        .filter_map(|key| {
            let vendor = pci_id(&key.device, "VEN_")?;
            let device = pci_id(&key.device, "DEV_")?;
            Some(Gpu {
                pci_slot: key
                    .location
                    .as_deref()
                    .and_then(pci_slot)
                    .unwrap_or_else(|| format!(r"PCI\{}\{}", key.device, key.instance)),
                vendor_id: format!("{vendor:04x}"),
                device_id: format!("{device:04x}"),
                vendor: pci::vendor_name(vendor).map(str::to_owned),
                driver: key.service.filter(|s| !s.trim().is_empty()),
            })
        })
        .collect();
    list.sort_by(|a, b| a.pci_slot.cmp(&b.pci_slot));
    list
}

/// The four hex digits after `field` in a PCI device key name (`VEN_10DE&DEV_1F82&…`).
fn pci_id(device: &str, field: &str) -> Option<u16> {
    let value = device
        .split('&')
        .find_map(|part| part.strip_prefix(field))?;
    (value.len() == 4)
        .then(|| u16::from_str_radix(value, 16).ok())
        .flatten()
}

/// `LocationInformation` as Linux writes the address, `0000:01:00.0` (Windows gives no segment
/// here; PCs and most servers have only segment 0). Windows 7 stores the plain text, `PCI bus 1,
/// device 0, function 0`; Windows 10 an indirect string with the numbers at its end,
/// `@System32\drivers\pci.sys,#65536;PCI bus %1, device %2, function %3;(1,0,0)`.
fn pci_slot(location: &str) -> Option<String> {
    let numbers: Vec<&str> = match location.rsplit_once(";(") {
        Some((_, tuple)) => tuple.strip_suffix(')')?.split(',').collect(),
        None => {
            let rest = location.strip_prefix("PCI bus ")?;
            let (bus, rest) = rest.split_once(", device ")?;
            let (device, function) = rest.split_once(", function ")?;
            vec![bus, device, function]
        }
    };
    let [bus, device, function] = numbers[..] else {
        return None;
    };
    let number = |text: &str| text.trim().parse::<u8>().ok();
    let (bus, device, function) = (number(bus)?, number(device)?, number(function)?);
    (device < 32 && function < 8).then(|| format!("0000:{bus:02x}:{device:02x}.{function}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::edid::build::base_block;
    use crate::collect::edid::tests::{dell, panel};

    fn monitor_key(instance: &str, present: bool, edid: Option<Vec<u8>>) -> MonitorKey {
        MonitorKey {
            instance: instance.to_owned(),
            present,
            edid,
        }
    }

    /// A desktop's `Enum\DISPLAY` as recorded: the Dell on DisplayPort, the laptop panel that
    /// was plugged in once (no `Control` key), a monitor with a damaged EDID, and the generic
    /// monitor Windows adds when no EDID was read.
    #[test]
    fn present_monitors_with_a_good_edid() {
        let mut damaged = base_block(&dell());
        damaged[30] ^= 0xff;
        let keys = vec![
            monitor_key(
                r"DELA0F0\5&2f1ac3b0&0&UID4353",
                true,
                Some(base_block(&dell())),
            ),
            monitor_key(
                r"AUO403D\4&1a2b3c4d&0&UID265988",
                false,
                Some(base_block(&panel())),
            ),
            monitor_key(r"SAM0F9C\5&2f1ac3b0&0&UID4355", true, Some(damaged)),
            monitor_key(r"Default_Monitor\1&8713bca&0&UID0", true, None),
        ];
        assert_eq!(
            monitors(keys),
            [edid::parse_edid(&base_block(&dell()), r"DELA0F0\5&2f1ac3b0&0&UID4353").unwrap()]
        );
        assert!(monitors(Vec::new()).is_empty());
    }

    fn pci_key(device: &str, location: Option<&str>, service: Option<&str>) -> PciKey {
        PciKey {
            device: device.to_owned(),
            instance: "4&2b8260c3&0&0008".to_owned(),
            present: true,
            class_guid: Some("{4d36e968-e325-11ce-bfc1-08002be10318}".to_owned()),
            location: location.map(str::to_owned),
            service: service.map(str::to_owned),
        }
    }

    /// An office desktop's `Enum\PCI` keys as recorded: integrated Intel and a discrete NVIDIA,
    /// the GPU it had before (no `Control` key), and a network card (another class).
    #[test]
    fn present_display_adapters_as_linux_reports_them() {
        let keys = vec![
            pci_key(
                "VEN_10DE&DEV_1F82&SUBSYS_40191458&REV_A1",
                Some(
                    r"@System32\drivers\pci.sys,#65536;PCI bus %1, device %2, function %3;(1,0,0)",
                ),
                Some("nvlddmkm"),
            ),
            PciKey {
                // Windows writes the class GUID upper-case.
                class_guid: Some("{4D36E968-E325-11CE-BFC1-08002BE10318}".to_owned()),
                ..pci_key(
                    "VEN_8086&DEV_9BC8&SUBSYS_09A41028&REV_03",
                    Some("PCI bus 0, device 2, function 0"),
                    Some("igfx"),
                )
            },
            PciKey {
                present: false,
                ..pci_key(
                    "VEN_1002&DEV_6779&SUBSYS_00000000&REV_00",
                    Some("PCI bus 1, device 0, function 0"),
                    Some("amdkmdag"),
                )
            },
            PciKey {
                class_guid: Some("{4d36e972-e325-11ce-bfc1-08002be10318}".to_owned()),
                ..pci_key(
                    "VEN_10EC&DEV_8168&SUBSYS_0A6C1028&REV_15",
                    Some("PCI bus 2, device 0, function 0"),
                    Some("rt640x64"),
                )
            },
        ];
        let gpu = |slot: &str, vendor_id: &str, device_id: &str, vendor: &str, driver: &str| Gpu {
            pci_slot: slot.to_owned(),
            vendor_id: vendor_id.to_owned(),
            device_id: device_id.to_owned(),
            vendor: Some(vendor.to_owned()),
            driver: Some(driver.to_owned()),
        };
        assert_eq!(
            gpus(keys),
            [
                gpu("0000:00:02.0", "8086", "9bc8", "Intel", "igfx"),
                gpu("0000:01:00.0", "10de", "1f82", "NVIDIA", "nvlddmkm"),
            ]
        );
    }

    #[test]
    fn a_gpu_without_location_or_driver_keeps_its_instance_path() {
        let gpus = gpus(vec![pci_key(
            "VEN_1414&DEV_008E&SUBSYS_00000000&REV_00",
            None,
            Some(" "),
        )]);
        assert_eq!(
            gpus,
            [Gpu {
                pci_slot: r"PCI\VEN_1414&DEV_008E&SUBSYS_00000000&REV_00\4&2b8260c3&0&0008"
                    .to_owned(),
                vendor_id: "1414".to_owned(),
                device_id: "008e".to_owned(),
                vendor: Some("Microsoft".to_owned()),
                driver: None,
            }]
        );
        // A key name without both ids says nothing.
        assert!(super::gpus(vec![pci_key("VEN_10DE&SUBSYS_1", None, None)]).is_empty());
    }

    #[test]
    fn pci_ids_and_locations() {
        assert_eq!(
            pci_id("VEN_10DE&DEV_1F82&SUBSYS_40191458", "DEV_"),
            Some(0x1f82)
        );
        assert_eq!(pci_id("VEN_10DE&DEV_1F8", "DEV_"), None);
        assert_eq!(pci_id("VEN_ZZZZ&DEV_1F82", "VEN_"), None);
        assert_eq!(
            pci_slot("PCI bus 0, device 31, function 6"),
            Some("0000:00:1f.6".into())
        );
        assert_eq!(
            pci_slot("PCI bus 200, device 0, function 0"),
            Some("0000:c8:00.0".into())
        );
        assert_eq!(pci_slot("PCI bus 1, device 40, function 0"), None);
        assert_eq!(
            pci_slot("PCI Slot 2 (PCI bus 1, device 0, function 0)"),
            None
        );
        assert_eq!(
            pci_slot(
                r"@System32\drivers\pci.sys,#65536;PCI bus %1, device %2, function %3;(1,0,0)"
            ),
            Some("0000:01:00.0".into())
        );
        assert_eq!(
            pci_slot(r"@System32\drivers\pci.sys,#65536;PCI bus %1"),
            None
        );
        assert_eq!(pci_slot(r"@pci.sys,#65536;(1,0)"), None);
    }
}
