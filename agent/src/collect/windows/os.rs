//! The Windows edition, version and build, from the registry's `CurrentVersion` key.

use crate::collect::OsRelease;

/// The values of `HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion` the agent reads; each may
/// be missing (Windows 7 has no `DisplayVersion`, Wine no `UBR`).
#[derive(Debug, Default)]
pub(crate) struct CurrentVersion {
    /// `ProductName`, e.g. "Windows 10 Pro" (edition included).
    pub(crate) product_name: Option<String>,
    /// `DisplayVersion`, e.g. "23H2" (Windows 10 20H2 and later).
    pub(crate) display_version: Option<String>,
    /// `ReleaseId`, e.g. "1909" (Windows 10 before 20H2).
    pub(crate) release_id: Option<String>,
    /// `CurrentVersion`, e.g. "6.1" (all versions; frozen at "6.3" since Windows 8.1).
    pub(crate) current_version: Option<String>,
    /// `CurrentBuildNumber`, e.g. "22631".
    pub(crate) build: Option<String>,
    /// `UBR`, the update build revision, e.g. 3880.
    pub(crate) update_revision: Option<u32>,
}

/// First build of Windows 11. Microsoft left `ProductName` at "Windows 10 …" on Windows 11, so
/// the build number is what tells them apart.
const WINDOWS_11_BUILD: u32 = 22000;

/// A value, trimmed; `None` when missing or blank.
fn text(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// Name with edition (`Windows 11 Pro`) and version with build (`23H2 (build 22631.3880)`).
pub(crate) fn release(values: &CurrentVersion) -> OsRelease {
    let build = text(&values.build);
    let build_number = build.and_then(|b| b.parse::<u32>().ok());
    let name = text(&values.product_name).map(|name| match build_number {
        Some(n) if n >= WINDOWS_11_BUILD && name.starts_with("Windows 10") => {
            name.replacen("Windows 10", "Windows 11", 1)
        }
        _ => name.to_owned(),
    });
    let build = build.map(|b| match values.update_revision {
        Some(ubr) => format!("{b}.{ubr}"),
        None => b.to_owned(),
    });
    let release = text(&values.display_version)
        .or_else(|| text(&values.release_id))
        .or_else(|| text(&values.current_version));
    let version = match (release, build) {
        (Some(r), Some(b)) => Some(format!("{r} (build {b})")),
        (Some(r), None) => Some(r.to_owned()),
        (None, Some(b)) => Some(format!("build {b}")),
        (None, None) => None,
    };
    OsRelease { name, version }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn some(s: &str) -> Option<String> {
        Some(s.to_owned())
    }

    #[test]
    fn windows_11_is_named_by_its_build() {
        // Recorded from a Windows 11 Pro 23H2 PC: ProductName still says Windows 10.
        let values = CurrentVersion {
            product_name: some("Windows 10 Pro"),
            display_version: some("23H2"),
            release_id: some("2009"),
            current_version: some("6.3"),
            build: some("22631"),
            update_revision: Some(3880),
        };
        assert_eq!(
            release(&values),
            OsRelease {
                name: some("Windows 11 Pro"),
                version: some("23H2 (build 22631.3880)"),
            }
        );
    }

    #[test]
    fn older_windows_fall_back_to_release_id_and_version() {
        let windows_10_1909 = CurrentVersion {
            product_name: some("Windows 10 Enterprise"),
            release_id: some("1909"),
            current_version: some("6.3"),
            build: some("18363"),
            update_revision: Some(1556),
            ..CurrentVersion::default()
        };
        assert_eq!(
            release(&windows_10_1909),
            OsRelease {
                name: some("Windows 10 Enterprise"),
                version: some("1909 (build 18363.1556)"),
            }
        );
        // What Wine 8.0 reports by default: Windows 7, no update revision.
        let wine = CurrentVersion {
            product_name: some("Microsoft Windows 7"),
            current_version: some("6.1"),
            build: some("7601"),
            ..CurrentVersion::default()
        };
        assert_eq!(
            release(&wine),
            OsRelease {
                name: some("Microsoft Windows 7"),
                version: some("6.1 (build 7601)"),
            }
        );
    }

    #[test]
    fn missing_and_blank_values_are_absent() {
        assert_eq!(release(&CurrentVersion::default()), OsRelease::default());
        let blank = CurrentVersion {
            product_name: some("  "),
            build: some("19045"),
            ..CurrentVersion::default()
        };
        assert_eq!(
            release(&blank),
            OsRelease {
                name: None,
                version: some("build 19045"),
            }
        );
    }
}
