//! Installed software from the registry's Uninstall keys, the list "Apps & features" shows, read
//! only when the agent's `inventory_software` switch is on.
//!
//! Every installer writes one subkey under `SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall`:
//! in HKLM for 64-bit and machine-wide programs, under `WOW6432Node` for 32-bit ones, and in each
//! user's hive for per-user installs. Subkeys that the control panel hides are left out as it
//! leaves them out: `SystemComponent` = 1 (parts of another product), a `ParentKeyName` (updates
//! and patches of a product already listed), and entries without a `DisplayName`. A program
//! registered in more than one place is listed once.

use hatang_protocol::Software;

/// The values of one Uninstall subkey that decide whether and how it is listed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct UninstallEntry {
    pub(crate) display_name: Option<String>,
    pub(crate) display_version: Option<String>,
    pub(crate) system_component: Option<u32>,
    pub(crate) parent_key_name: Option<String>,
}

/// The programs the entries list, sorted by name and version, each once. A program without a
/// `DisplayVersion` is listed with an empty version: it is installed all the same.
pub(crate) fn software(entries: impl IntoIterator<Item = UninstallEntry>) -> Vec<Software> {
    let mut list: Vec<Software> = entries
        .into_iter()
        .filter(|e| e.system_component != Some(1))
        .filter(|e| {
            e.parent_key_name
                .as_deref()
                .is_none_or(|p| p.trim().is_empty())
        })
        .filter_map(|e| {
            let name = e.display_name?.trim().to_owned();
            (!name.is_empty()).then(|| Software {
                name,
                version: e.display_version.unwrap_or_default().trim().to_owned(),
            })
        })
        .collect();
    list.sort();
    list.dedup();
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, version: Option<&str>) -> UninstallEntry {
        UninstallEntry {
            display_name: Some(name.to_owned()),
            display_version: version.map(str::to_owned),
            ..UninstallEntry::default()
        }
    }

    fn program(name: &str, version: &str) -> Software {
        Software {
            name: name.to_owned(),
            version: version.to_owned(),
        }
    }

    /// Values recorded from a Windows 10 office PC's three Uninstall keys (64-bit, WOW6432Node,
    /// the user's), in registry order.
    #[test]
    fn lists_what_apps_and_features_shows() {
        let entries = vec![
            entry("7-Zip 23.01 (x64)", Some("23.01")),
            entry("Microsoft Edge", Some("119.0.2151.72")),
            // The Visual C++ runtime's parts: hidden, the runtime bundle itself is listed.
            UninstallEntry {
                system_component: Some(1),
                ..entry(
                    "Microsoft Visual C++ 2022 X64 Minimum Runtime - 14.36.32532",
                    Some("14.36.32532"),
                )
            },
            entry(
                "Microsoft Visual C++ 2015-2022 Redistributable (x64) - 14.36.32532",
                Some("14.36.32532.0"),
            ),
            // An Office update: it names the product it patches.
            UninstallEntry {
                parent_key_name: Some("OFFICE15.PROPLUS".to_owned()),
                ..entry(
                    "Update for Microsoft Office 2013 (KB4484119) 32-Bit Edition",
                    None,
                )
            },
            // A key with no DisplayName (an installer's leftovers) and a blank one.
            UninstallEntry::default(),
            entry("  ", Some("1.0")),
            // WOW6432Node: the 32-bit Foxit and UniKey, and Edge registered there too.
            entry("Foxit PDF Reader", Some(" 12.1.2.15332 ")),
            entry("UniKey", None),
            entry("Microsoft Edge", Some("119.0.2151.72")),
            // The user's hive: Zalo, installed per user; SystemComponent = 0 is listed.
            UninstallEntry {
                system_component: Some(0),
                parent_key_name: Some(String::new()),
                ..entry("Zalo", Some("23.11.1"))
            },
        ];
        assert_eq!(
            software(entries),
            [
                program("7-Zip 23.01 (x64)", "23.01"),
                program("Foxit PDF Reader", "12.1.2.15332"),
                program("Microsoft Edge", "119.0.2151.72"),
                program(
                    "Microsoft Visual C++ 2015-2022 Redistributable (x64) - 14.36.32532",
                    "14.36.32532.0"
                ),
                program("UniKey", ""),
                program("Zalo", "23.11.1"),
            ]
        );
    }

    #[test]
    fn two_versions_of_one_program_are_both_listed() {
        assert_eq!(
            software([
                entry("Java 8 Update 391", Some("8.0.3910.13")),
                entry("Java 8 Update 391", Some("8.0.3910.12")),
            ]),
            [
                program("Java 8 Update 391", "8.0.3910.12"),
                program("Java 8 Update 391", "8.0.3910.13"),
            ]
        );
        assert!(software([]).is_empty());
    }
}
