//! Connected monitors from the EDID blocks the kernel's DRM drivers expose as
//! `/sys/class/drm/card<N>-<connector>/edid`, decoded by the parser Windows shares
//! ([`edid::parse_edid`]).
//!
//! The file is empty for a connector with nothing plugged in.

use std::path::Path;

use hatang_protocol::Monitor;

use crate::collect::edid;

pub(crate) fn read(root: &Path) -> Vec<Monitor> {
    let Ok(entries) = std::fs::read_dir(root.join("sys/class/drm")) else {
        return Vec::new();
    };
    let mut monitors: Vec<Monitor> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let connector = connector_name(&name)?;
            let path = entry.path().join("edid");
            let edid = std::fs::read(&path).ok().filter(|b| !b.is_empty())?;
            edid::parse_edid(&edid, connector)
                .inspect_err(
                    |e| tracing::debug!(path = %path.display(), error = %e, "monitor skipped"),
                )
                .ok()
        })
        .collect();
    monitors.sort_by(|a, b| a.connector.cmp(&b.connector));
    monitors
}

/// `card0-HDMI-A-1` → `HDMI-A-1`; `card0`, `renderD128` and `version` are no connectors.
fn connector_name(entry: &str) -> Option<&str> {
    let (card, connector) = entry.split_once('-')?;
    let index = card.strip_prefix("card")?;
    (!index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()) && !connector.is_empty())
        .then_some(connector)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::edid::build::base_block;
    use crate::collect::edid::parse_edid;
    use crate::collect::edid::tests::{dell, panel};
    use crate::collect::linux::fixture;

    #[test]
    fn connector_names() {
        assert_eq!(connector_name("card0-HDMI-A-1"), Some("HDMI-A-1"));
        assert_eq!(connector_name("card1-eDP-1"), Some("eDP-1"));
        assert_eq!(connector_name("card0"), None);
        assert_eq!(connector_name("renderD128"), None);
        assert_eq!(connector_name("version"), None);
        assert_eq!(connector_name("cardX-DP-1"), None);
    }

    #[test]
    fn fixture_files_are_what_the_builder_writes() {
        for (machine, connector, edid) in [
            ("desktop", "card0-DP-1", dell()),
            ("laptop", "card1-eDP-1", panel()),
        ] {
            let path = fixture(machine)
                .join("sys/class/drm")
                .join(connector)
                .join("edid");
            assert_eq!(
                std::fs::read(&path).unwrap(),
                base_block(&edid),
                "{}",
                path.display()
            );
        }
    }

    #[test]
    fn fixtures_list_connected_monitors_only() {
        let desktop = read(&fixture("desktop"));
        // HDMI-A-1 is present with an empty edid: nothing plugged in.
        assert_eq!(desktop, [parse_edid(&base_block(&dell()), "DP-1").unwrap()]);
        let laptop = read(&fixture("laptop"));
        assert_eq!(laptop.len(), 1);
        assert_eq!(laptop[0].connector, "eDP-1");
        assert_eq!(laptop[0].manufacturer.as_deref(), Some("AUO"));
        assert!(read(&fixture("server")).is_empty());
        assert!(read(Path::new("/nonexistent")).is_empty());
    }
}
