//! SMBIOS identification from `/sys/class/dmi/id`: vendor, model, serial, BIOS and chassis.
//!
//! `product_serial` and `product_uuid` are readable by root only; an agent running as another
//! user reports them as absent rather than failing.

use std::path::Path;

use hatang_protocol::Dmi;

use super::read_text;
use crate::collect::{junk, smbios};

pub(crate) fn read(root: &Path) -> Option<Dmi> {
    let dir = root.join("sys/class/dmi/id");
    let field = |name: &str| read_text(&dir.join(name)).as_deref().and_then(junk::clean);
    let dmi = Dmi {
        sys_vendor: field("sys_vendor"),
        product_name: field("product_name"),
        product_serial: field("product_serial"),
        product_uuid: field("product_uuid").map(|u| u.to_ascii_lowercase()),
        board_vendor: field("board_vendor"),
        board_name: field("board_name"),
        bios_vendor: field("bios_vendor"),
        bios_version: field("bios_version"),
        bios_date: field("bios_date"),
        chassis_type: read_text(&dir.join("chassis_type")).and_then(|t| chassis_name(&t)),
    };
    (dmi != Dmi::default()).then_some(dmi)
}

/// SMBIOS chassis type code as the kernel prints it (decimal) to its SMBIOS name.
fn chassis_name(code: &str) -> Option<String> {
    smbios::chassis_name(code.trim().parse().ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::linux::fixture;

    fn some(s: &str) -> Option<String> {
        Some(s.to_owned())
    }

    #[test]
    fn chassis_codes_map_to_smbios_names() {
        assert_eq!(chassis_name("3\n"), some("desktop"));
        assert_eq!(chassis_name("10"), some("notebook"));
        assert_eq!(chassis_name("9"), some("laptop"));
        assert_eq!(chassis_name("23"), some("rack mount chassis"));
        assert_eq!(chassis_name("1"), some("other"));
        assert_eq!(chassis_name("35"), some("mini pc"));
        assert_eq!(chassis_name("2"), None);
        assert_eq!(chassis_name("0"), None);
        assert_eq!(chassis_name("99"), None);
        assert_eq!(chassis_name("desktop"), None);
        assert_eq!(chassis_name(""), None);
    }

    #[test]
    fn every_chassis_name_has_a_deliberate_form_factor() {
        use crate::collect::form_factor;
        use hatang_protocol::FormFactor;
        // The names that say nothing about the machine's kind.
        let other = [
            "other",
            "docking station",
            "peripheral chassis",
            "iot gateway",
            "embedded pc",
        ];
        for code in 0..=u8::MAX {
            let Some(name) = chassis_name(&code.to_string()) else {
                continue;
            };
            let got = form_factor::derive(Some(&name), None);
            assert_eq!(
                got == FormFactor::Other,
                other.contains(&name.as_str()),
                "{name}: {got:?}"
            );
        }
    }

    #[test]
    fn desktop_drops_the_placeholder_serial() {
        assert_eq!(
            read(&fixture("desktop")),
            Some(Dmi {
                sys_vendor: some("Dell Inc."),
                product_name: some("OptiPlex 7080"),
                product_serial: None,
                product_uuid: some("4c4c4544-0046-3410-8058-b8c04f4b3933"),
                board_vendor: some("Dell Inc."),
                board_name: some("0J37VM"),
                bios_vendor: some("Dell Inc."),
                bios_version: some("1.14.0"),
                bios_date: some("07/13/2021"),
                chassis_type: some("desktop"),
            })
        );
    }

    #[test]
    fn laptop() {
        assert_eq!(
            read(&fixture("laptop")),
            Some(Dmi {
                sys_vendor: some("LENOVO"),
                product_name: some("20W000ARVN"),
                product_serial: some("PF3KX4Z1"),
                product_uuid: some("5e2b1c80-2f6a-11b2-a85c-d3f1a2b4c6e8"),
                board_vendor: some("LENOVO"),
                board_name: some("20W000ARVN"),
                bios_vendor: some("LENOVO"),
                bios_version: some("N34ET58W (1.58 )"),
                bios_date: some("03/14/2023"),
                chassis_type: some("notebook"),
            })
        );
    }

    #[test]
    fn server() {
        assert_eq!(
            read(&fixture("server")),
            Some(Dmi {
                sys_vendor: some("HPE"),
                product_name: some("ProLiant DL380 Gen10"),
                product_serial: some("CZJ0123ABC"),
                product_uuid: some("36383150-3630-5a43-4a30-313233414243"),
                board_vendor: some("HPE"),
                board_name: some("ProLiant DL380 Gen10"),
                bios_vendor: some("HPE"),
                bios_version: some("U30"),
                bios_date: some("02/23/2023"),
                chassis_type: some("rack mount chassis"),
            })
        );
    }

    #[test]
    fn qemu_vm_has_no_board_and_no_serial() {
        assert_eq!(
            read(&fixture("vm")),
            Some(Dmi {
                sys_vendor: some("QEMU"),
                product_name: some("Standard PC (Q35 + ICH9, 2009)"),
                product_serial: None,
                product_uuid: some("8f3c2a1e-6b4d-4e2a-9c71-0d5e3f2a1b4c"),
                board_vendor: None,
                board_name: None,
                bios_vendor: some("SeaBIOS"),
                bios_version: some("1.16.2-debian-1.16.2-1"),
                bios_date: some("04/01/2014"),
                chassis_type: some("other"),
            })
        );
    }

    #[test]
    fn no_dmi_directory_is_none() {
        assert_eq!(read(Path::new("/nonexistent")), None);
    }
}
