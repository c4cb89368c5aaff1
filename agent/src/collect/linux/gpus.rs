//! Display controllers from `/sys/bus/pci/devices`: every PCI function of class 0x03 (VGA,
//! XGA, 3D or other display controller), whether or not a DRM driver registered it, so a GPU
//! with no driver loaded is still inventoried. The bound driver is the name of the `driver`
//! symlink's target.

use std::path::Path;

use hatang_protocol::Gpu;

use super::read_text;
use crate::collect::pci;

/// PCI base class of display controllers (the class file reads `0x03SSPP`).
const DISPLAY_CLASS: u32 = 0x03;

pub(crate) fn read(root: &Path) -> Vec<Gpu> {
    let Ok(entries) = std::fs::read_dir(root.join("sys/bus/pci/devices")) else {
        return Vec::new();
    };
    let mut gpus: Vec<Gpu> = entries
        .flatten()
        .filter_map(|entry| {
            let slot = entry.file_name().into_string().ok()?;
            read_one(&entry.path(), slot)
        })
        .collect();
    gpus.sort_by(|a, b| a.pci_slot.cmp(&b.pci_slot));
    gpus
}

fn read_one(dir: &Path, pci_slot: String) -> Option<Gpu> {
    let class = hex(&read_text(&dir.join("class"))?)?;
    if class >> 16 != DISPLAY_CLASS {
        return None;
    }
    let id = |file: &str| {
        let value = hex(&read_text(&dir.join(file))?)?;
        u16::try_from(value).ok()
    };
    let vendor_id = id("vendor")?;
    Some(Gpu {
        pci_slot,
        vendor_id: format!("{vendor_id:04x}"),
        device_id: format!("{:04x}", id("device")?),
        vendor: pci::vendor_name(vendor_id).map(str::to_owned),
        driver: std::fs::read_link(dir.join("driver"))
            .ok()
            .and_then(|target| Some(target.file_name()?.to_string_lossy().into_owned())),
    })
}

/// `0x10de\n` → 0x10de.
fn hex(text: &str) -> Option<u32> {
    let text = text.trim();
    u32::from_str_radix(text.strip_prefix("0x").unwrap_or(text), 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::linux::fixture;

    fn gpu(
        slot: &str,
        vendor_id: &str,
        device_id: &str,
        vendor: &str,
        driver: Option<&str>,
    ) -> Gpu {
        Gpu {
            pci_slot: slot.to_owned(),
            vendor_id: vendor_id.to_owned(),
            device_id: device_id.to_owned(),
            vendor: Some(vendor.to_owned()),
            driver: driver.map(str::to_owned),
        }
    }

    #[test]
    fn desktop_integrated_and_discrete_not_the_other_pci_devices() {
        assert_eq!(
            read(&fixture("desktop")),
            [
                gpu("0000:00:02.0", "8086", "9bc8", "Intel", Some("i915")),
                // No driver bound: still a GPU in the machine.
                gpu("0000:01:00.0", "10de", "1f82", "NVIDIA", None),
            ]
        );
    }

    #[test]
    fn server_bmc_display_and_vm_virtio_gpu() {
        assert_eq!(
            read(&fixture("server")),
            [gpu(
                "0000:01:00.1",
                "102b",
                "0538",
                "Matrox",
                Some("mgag200")
            )]
        );
        assert_eq!(
            read(&fixture("vm")),
            [gpu(
                "0000:00:01.0",
                "1af4",
                "1050",
                "Red Hat",
                Some("virtio-pci")
            )]
        );
        assert!(read(Path::new("/nonexistent")).is_empty());
    }

    #[test]
    fn ids_are_parsed_with_or_without_prefix() {
        assert_eq!(hex("0x030000\n"), Some(0x030000));
        assert_eq!(hex("10de"), Some(0x10de));
        assert_eq!(hex("zz"), None);
    }
}
