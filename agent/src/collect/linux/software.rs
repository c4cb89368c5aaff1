//! Installed packages from dpkg's database, `/var/lib/dpkg/status` (Debian, Ubuntu and their
//! derivatives), read only when the agent's `inventory_software` switch is on.
//!
//! The file is a list of stanzas separated by blank lines, each a set of `Field: value` lines
//! (continuation lines start with a space). A package is installed when its `Status` says so:
//! `install ok installed`, or `hold ok installed` for one pinned by the administrator. rpm's
//! database (`rpmdb.sqlite` or Berkeley DB, holding binary headers) is not read: it needs the
//! `rpm` program or a header parser, and the agencies' desktops run dpkg-based systems.

use std::path::Path;

use hatang_protocol::Software;

use super::read_text;

/// The installed packages sorted by name, or `None` when no package database is readable here.
pub(crate) fn read(root: &Path) -> Option<Vec<Software>> {
    read_text(&root.join("var/lib/dpkg/status")).map(|text| parse_dpkg_status(&text))
}

pub(crate) fn parse_dpkg_status(text: &str) -> Vec<Software> {
    let mut packages = Vec::new();
    let (mut name, mut version, mut installed) = (None, None, false);
    // A trailing empty line closes the last stanza.
    for line in text.lines().chain(std::iter::once("")) {
        if line.trim().is_empty() {
            if let (Some(name), Some(version), true) = (name.take(), version.take(), installed) {
                packages.push(Software { name, version });
            }
            installed = false;
            continue;
        }
        if line.starts_with([' ', '\t']) {
            continue;
        }
        let Some((field, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match field {
            "Package" => name = Some(value.to_owned()),
            "Version" => version = Some(value.to_owned()),
            "Status" => {
                let words: Vec<&str> = value.split_whitespace().collect();
                installed = matches!(words[..], ["install" | "hold", "ok", "installed"]);
            }
            _ => {}
        }
    }
    packages.sort();
    packages
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::linux::fixture;

    fn package(name: &str, version: &str) -> Software {
        Software {
            name: name.to_owned(),
            version: version.to_owned(),
        }
    }

    #[test]
    fn only_installed_packages_sorted_by_name() {
        let text = "Package: zlib1g\nStatus: install ok installed\nPriority: required\n\
                    Version: 1:1.2.13.dfsg-1\nDescription: compression library\n \
                    Version: 9.9 (a continuation line, not a field)\n\n\
                    Package: old-kernel\nStatus: deinstall ok config-files\nVersion: 6.1.0-9\n\n\
                    Package: unikey\nStatus: hold ok installed\nVersion: 0.5.2\n\n\n\
                    Package: half\nStatus: install ok half-configured\nVersion: 1\n\n\
                    Package: no-version\nStatus: install ok installed\n\n\
                    Package: bash\r\nStatus: install ok installed\r\nVersion: 5.2.15-2+b2";
        assert_eq!(
            parse_dpkg_status(text),
            [
                package("bash", "5.2.15-2+b2"),
                package("unikey", "0.5.2"),
                package("zlib1g", "1:1.2.13.dfsg-1"),
            ]
        );
        assert!(parse_dpkg_status("").is_empty());
        assert!(parse_dpkg_status("garbage without fields\n\n:::\n").is_empty());
    }

    #[test]
    fn desktop_fixture_excerpt() {
        let software = read(&fixture("desktop")).unwrap();
        let names: Vec<&str> = software.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            ["firefox-esr", "libreoffice-writer", "openssh-server"]
        );
        assert_eq!(software[0].version, "115.6.0esr-1~deb12u1");
        // No dpkg database: unknown, not "nothing installed".
        assert_eq!(read(&fixture("server")), None);
    }
}
