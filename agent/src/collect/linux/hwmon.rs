//! Temperature sensors from the kernel's hwmon class (`/sys/class/hwmon/hwmon*/temp*_input`).
//!
//! Each chip directory has a `name` (the driver: `coretemp`, `k10temp`, `nvme`, `acpitz`, …) and
//! per sensor an input in millidegrees Celsius with an optional `_label` ("Package id 0",
//! "Composite"). A sensor is named `chip/label` (or `chip/tempN` without a label) so the name
//! survives reboots and can be a label value on the collector. Two chips of one driver (two NVMe
//! drives) are told apart by their order among that driver's chips, `nvme`, `nvme#2`, …: hwmon
//! numbers follow probe order, which is stable for the same hardware.
//!
//! Virtual machines have no hwmon chips at all; a sensor that cannot be read right now (some
//! answer `ENODATA` while the device sleeps) or that reads an impossible value (a disconnected
//! probe) is left out of that sample.

use std::collections::HashMap;
use std::path::Path;

use hatang_protocol::Temperature;

use super::{read_number, read_text};

pub(crate) fn read(root: &Path) -> Vec<Temperature> {
    let Ok(entries) = std::fs::read_dir(root.join("sys/class/hwmon")) else {
        return Vec::new();
    };
    let mut chips: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter_map(|dir| {
            let number: u32 = dir
                .file_name()?
                .to_str()?
                .strip_prefix("hwmon")?
                .parse()
                .ok()?;
            Some((number, dir))
        })
        .collect();
    chips.sort();
    let mut seen: HashMap<String, u32> = HashMap::new();
    let mut out = Vec::new();
    for (_, dir) in chips {
        let Some(name) = read_text(&dir.join("name")).map(|n| n.trim().to_owned()) else {
            continue;
        };
        let ordinal = seen.entry(name.clone()).or_default();
        *ordinal += 1;
        let chip = if *ordinal == 1 {
            name
        } else {
            format!("{name}#{ordinal}")
        };
        out.extend(chip_sensors(&dir, &chip));
    }
    out
}

fn chip_sensors(dir: &Path, chip: &str) -> Vec<Temperature> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut indices: Vec<u32> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let file = e.file_name();
            file.to_str()?
                .strip_prefix("temp")?
                .strip_suffix("_input")?
                .parse()
                .ok()
        })
        .collect();
    indices.sort_unstable();
    indices
        .into_iter()
        .filter_map(|n| {
            let millidegrees: i64 = read_number(&dir.join(format!("temp{n}_input")))?;
            // Exact: millidegrees are far below f64's 2^53 integer limit.
            #[allow(clippy::cast_precision_loss)]
            let celsius = millidegrees as f64 / 1000.0;
            if !Temperature::PLAUSIBLE_CELSIUS.contains(&celsius) {
                return None;
            }
            let label = read_text(&dir.join(format!("temp{n}_label")))
                .map(|l| l.trim().to_owned())
                .filter(|l| !l.is_empty())
                .unwrap_or_else(|| format!("temp{n}"));
            Some(Temperature {
                sensor: format!("{chip}/{label}"),
                celsius,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::linux::fixture;

    #[test]
    fn server_sensors_are_named_by_chip_and_label() {
        let got: Vec<(String, f64)> = read(&fixture("server"))
            .into_iter()
            .map(|t| (t.sensor, t.celsius))
            .collect();
        assert_eq!(
            got,
            [
                ("acpitz/temp1".to_owned(), 27.8),
                ("coretemp/Package id 0".to_owned(), 52.0),
                ("coretemp/Core 0".to_owned(), 49.0),
                ("nvme/Composite".to_owned(), 38.85),
                // The second NVMe drive; its second sensor was asleep (no readable input).
                ("nvme#2/Composite".to_owned(), 41.85),
                // The Super I/O chip's disconnected probe (-128 °C is its "no sensor") is kept:
                // odd but possible; its 2^31 millidegree reading is not.
                ("nct6775/SYSTIN".to_owned(), -128.0),
            ]
        );
    }

    #[test]
    fn machines_without_hwmon_have_no_sensors() {
        assert!(read(&fixture("vm")).is_empty());
    }
}
