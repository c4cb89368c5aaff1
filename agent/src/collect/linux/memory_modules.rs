//! Installed memory modules from the SMBIOS "memory device" structures (type 17), which the
//! kernel exposes one per slot as `/sys/firmware/dmi/entries/17-N/raw`.
//!
//! Each `raw` file is the structure as the firmware wrote it, decoded by the parser Windows
//! shares ([`smbios::memory_device`]). The files are readable by root only: an agent running as
//! another user lists no modules, which is not an error.

use std::path::Path;

use hatang_protocol::MemoryModule;

use crate::collect::smbios;

pub(crate) fn read(root: &Path) -> Vec<MemoryModule> {
    let Ok(entries) = std::fs::read_dir(root.join("sys/firmware/dmi/entries")) else {
        return Vec::new();
    };
    // Entry directories are `<type>-<instance>`; firmware lists slots in instance order.
    let mut slots: Vec<(u32, std::path::PathBuf)> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let instance = name.strip_prefix("17-")?.parse().ok()?;
            Some((instance, entry.path().join("raw")))
        })
        .collect();
    slots.sort();
    slots
        .into_iter()
        .filter_map(|(_, path)| {
            let raw = std::fs::read(&path).ok()?;
            smbios::memory_device(&raw)
                .inspect_err(|e| tracing::debug!(path = %path.display(), error = %e, "memory device skipped"))
                .ok()?
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::linux::fixture;
    use crate::collect::smbios::build::raw;
    use crate::collect::smbios::tests::{GIB, ddr4, desktop_devices};

    #[test]
    fn desktop_fixture_files_are_what_the_builder_writes() {
        for (instance, device) in desktop_devices() {
            let path =
                fixture("desktop").join(format!("sys/firmware/dmi/entries/17-{instance}/raw"));
            assert_eq!(
                std::fs::read(&path).unwrap(),
                raw(&device),
                "{}",
                path.display()
            );
        }
    }

    #[test]
    fn desktop_fixture_lists_its_modules_in_slot_order() {
        let modules = read(&fixture("desktop"));
        let slots: Vec<(&str, u64)> = modules
            .iter()
            .map(|m| (m.locator.as_str(), m.size_bytes))
            .collect();
        // 17-2 is an empty slot; 17-10 sorts after 17-1 by number, not by text.
        assert_eq!(
            slots,
            [("DIMM1", 8 * GIB), ("DIMM2", 8 * GIB), ("DIMM4", 16 * GIB)]
        );
        assert_eq!(
            modules[0],
            smbios::memory_device(&raw(&ddr4())).unwrap().unwrap()
        );
    }

    #[test]
    fn no_firmware_tables_is_an_empty_list() {
        assert!(read(Path::new("/nonexistent")).is_empty());
        assert!(read(&fixture("vm")).is_empty());
    }
}
