//! What kind of machine this is (desktop, laptop, server, VM), from evidence the agent already
//! has: the SMBIOS chassis type name and the virtualization it detected.
//!
//! Virtualization wins over the chassis: a hypervisor's firmware claims whatever chassis its
//! template says (Hyper-V says "desktop", QEMU "other"). A container does not: it runs on its
//! host's hardware, so the host's chassis says what the machine is.

use hatang_protocol::FormFactor;

/// Virtualization values that name a container rather than a hypervisor (see `linux::virt`).
const CONTAINERS: &[&str] = &["docker", "podman", "lxc", "container"];

/// The form factor for a chassis type name (lower-case, as in [`hatang_protocol::Dmi`]) and a
/// detected virtualization; `Other` when the chassis says nothing usable.
pub(crate) fn derive(chassis_type: Option<&str>, virtualization: Option<&str>) -> FormFactor {
    if virtualization.is_some_and(|v| !CONTAINERS.contains(&v)) {
        return FormFactor::Vm;
    }
    match chassis_type.unwrap_or("") {
        "desktop"
        | "low profile desktop"
        | "pizza box"
        | "mini tower"
        | "tower"
        | "all in one"
        | "space-saving"
        | "lunch box"
        | "sealed-case pc"
        | "mini pc"
        | "stick pc" => FormFactor::Desktop,
        "portable" | "laptop" | "notebook" | "hand held" | "sub notebook" | "tablet"
        | "convertible" | "detachable" => FormFactor::Laptop,
        "main server chassis"
        | "expansion chassis"
        | "sub chassis"
        | "bus expansion chassis"
        | "raid chassis"
        | "rack mount chassis"
        | "multi-system chassis"
        | "compact pci"
        | "advanced tca"
        | "blade"
        | "blade enclosure" => FormFactor::Server,
        _ => FormFactor::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chassis_names_map_to_form_factors() {
        let cases = [
            ("desktop", FormFactor::Desktop),
            ("tower", FormFactor::Desktop),
            ("all in one", FormFactor::Desktop),
            ("mini pc", FormFactor::Desktop),
            ("notebook", FormFactor::Laptop),
            ("laptop", FormFactor::Laptop),
            ("convertible", FormFactor::Laptop),
            ("rack mount chassis", FormFactor::Server),
            ("blade", FormFactor::Server),
            ("main server chassis", FormFactor::Server),
            ("other", FormFactor::Other),
            ("docking station", FormFactor::Other),
            ("iot gateway", FormFactor::Other),
        ];
        for (chassis, want) in cases {
            assert_eq!(derive(Some(chassis), None), want, "{chassis}");
        }
        assert_eq!(derive(None, None), FormFactor::Other);
    }

    #[test]
    fn a_hypervisor_wins_over_the_chassis_a_container_does_not() {
        // Hyper-V's firmware calls every guest a desktop.
        assert_eq!(derive(Some("desktop"), Some("hyperv")), FormFactor::Vm);
        assert_eq!(derive(Some("other"), Some("kvm")), FormFactor::Vm);
        assert_eq!(derive(None, Some("other")), FormFactor::Vm);
        assert_eq!(
            derive(Some("rack mount chassis"), Some("docker")),
            FormFactor::Server
        );
        assert_eq!(derive(None, Some("lxc")), FormFactor::Other);
    }
}
