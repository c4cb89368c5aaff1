//! Whether the machine is virtual, and under which hypervisor (or, failing that, container).
//!
//! Evidence, strongest first: the firmware's DMI names (they name the product), Xen's
//! `/sys/hypervisor/type`, the paravirtual clock sources a guest kernel registers, and the CPU's
//! `hypervisor` flag, which says "virtual" without saying whose. Container markers count only when
//! no hypervisor shows: a container on a VM still runs on that VM's hardware picture. We do not
//! execute `cpuid` ourselves (that needs `unsafe` or a new crate); the clock source carries the
//! same answer for the hypervisors agencies run.

use std::path::Path;

use hatang_protocol::Dmi;

use super::read_text;

pub(crate) fn detect(root: &Path, dmi: Option<&Dmi>) -> Option<&'static str> {
    // Xen's control domain sees Xen everywhere, yet it is the physical host.
    let capabilities = read_text(&root.join("proc/xen/capabilities"));
    if capabilities.is_some_and(|c| c.contains("control_d")) {
        return None;
    }
    let clock =
        read_text(&root.join("sys/devices/system/clocksource/clocksource0/available_clocksource"))
            .and_then(|c| from_clocksource(&c));
    if let Some(found) = dmi.and_then(from_dmi) {
        // QEMU's firmware tables read the same with or without KVM acceleration; the kvm-clock
        // tells them apart.
        return Some(if found == "qemu" && clock == Some("kvm") {
            "kvm"
        } else {
            found
        });
    }
    let hypervisor_type = read_text(&root.join("sys/hypervisor/type"));
    if hypervisor_type.is_some_and(|t| t.trim() == "xen") {
        return Some("xen");
    }
    if clock.is_some() {
        return clock;
    }
    let cpuinfo = read_text(&root.join("proc/cpuinfo"));
    if cpuinfo.is_some_and(|c| has_hypervisor_flag(&c)) {
        return Some("other");
    }
    if root.join(".dockerenv").exists() {
        return Some("docker");
    }
    if root.join("run/.containerenv").exists() {
        return Some("podman");
    }
    read_text(&root.join("proc/1/cgroup")).and_then(|c| container_from_cgroup(&c))
}

fn from_dmi(dmi: &Dmi) -> Option<&'static str> {
    let lower = |field: &Option<String>| field.as_deref().unwrap_or("").to_ascii_lowercase();
    let vendor = lower(&dmi.sys_vendor);
    let product = lower(&dmi.product_name);
    if product.contains("kvm") {
        Some("kvm")
    } else if vendor == "qemu" || product.contains("qemu") {
        Some("qemu")
    } else if vendor.contains("vmware") || product.contains("vmware") {
        Some("vmware")
    } else if product == "virtualbox" || vendor.contains("innotek") {
        Some("virtualbox")
    } else if vendor.starts_with("microsoft") && product == "virtual machine" {
        // Surface laptops share the vendor; only Hyper-V guests call themselves this.
        Some("hyperv")
    } else if vendor == "xen" || product.contains("hvm domu") {
        Some("xen")
    } else {
        None
    }
}

/// Paravirtual clocks a guest kernel registers when it finds its hypervisor.
fn from_clocksource(available: &str) -> Option<&'static str> {
    available
        .split_whitespace()
        .find_map(|source| match source {
            "kvm-clock" => Some("kvm"),
            "xen" => Some("xen"),
            s if s.starts_with("hyperv_clocksource") => Some("hyperv"),
            _ => None,
        })
}

fn has_hypervisor_flag(cpuinfo: &str) -> bool {
    cpuinfo.lines().any(|line| {
        line.split_once(':').is_some_and(|(key, value)| {
            key.trim() == "flags" && value.split_whitespace().any(|f| f == "hypervisor")
        })
    })
}

fn container_from_cgroup(cgroup: &str) -> Option<&'static str> {
    if cgroup.contains("/docker") || cgroup.contains("docker-") {
        Some("docker")
    } else if cgroup.contains("libpod") {
        Some("podman")
    } else if cgroup.contains("/lxc") {
        Some("lxc")
    } else if cgroup.contains("kubepods") {
        Some("container")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::linux::fixture;

    fn dmi(vendor: &str, product: &str) -> Dmi {
        Dmi {
            sys_vendor: Some(vendor.to_owned()),
            product_name: Some(product.to_owned()),
            ..Dmi::default()
        }
    }

    #[test]
    fn dmi_names() {
        let cases = [
            ("QEMU", "Standard PC (i440FX + PIIX, 1996)", Some("qemu")),
            ("Red Hat", "KVM", Some("kvm")),
            ("VMware, Inc.", "VMware Virtual Platform", Some("vmware")),
            ("VMware, Inc.", "VMware7,1", Some("vmware")),
            ("innotek GmbH", "VirtualBox", Some("virtualbox")),
            ("Oracle Corporation", "VirtualBox", Some("virtualbox")),
            ("Microsoft Corporation", "Virtual Machine", Some("hyperv")),
            ("Microsoft Corporation", "Surface Laptop 4", None),
            ("Xen", "HVM domU", Some("xen")),
            ("Dell Inc.", "OptiPlex 7080", None),
        ];
        for (vendor, product, want) in cases {
            assert_eq!(
                from_dmi(&dmi(vendor, product)),
                want,
                "{vendor} / {product}"
            );
        }
        assert_eq!(from_dmi(&Dmi::default()), None);
    }

    #[test]
    fn clock_sources() {
        assert_eq!(from_clocksource("kvm-clock tsc acpi_pm \n"), Some("kvm"));
        assert_eq!(from_clocksource("tsc kvm-clock\n"), Some("kvm"));
        assert_eq!(
            from_clocksource("tsc hyperv_clocksource_tsc_page acpi_pm\n"),
            Some("hyperv")
        );
        assert_eq!(from_clocksource("xen tsc\n"), Some("xen"));
        assert_eq!(from_clocksource("tsc hpet acpi_pm\n"), None);
    }

    #[test]
    fn cpu_flag_and_cgroups() {
        assert!(has_hypervisor_flag(
            "processor\t: 0\nflags\t\t: fpu vme de pse hypervisor lahf_lm\n"
        ));
        assert!(!has_hypervisor_flag(
            "processor\t: 0\nflags\t\t: fpu vme de pse lahf_lm\nbugs\t\t: hypervisor_x\n"
        ));
        assert_eq!(
            container_from_cgroup("12:pids:/docker/4f1c2a\n0::/system.slice/docker-4f1c2a.scope\n"),
            Some("docker")
        );
        assert_eq!(container_from_cgroup("0::/lxc/web01\n"), Some("lxc"));
        assert_eq!(
            container_from_cgroup("0::/kubepods/besteffort/pod1234\n"),
            Some("container")
        );
        assert_eq!(container_from_cgroup("0::/init.scope\n"), None);
    }

    #[test]
    fn fixtures() {
        let detect_on = |machine: &str| {
            let root = fixture(machine);
            let dmi = crate::collect::linux::dmi::read(&root);
            detect(&root, dmi.as_ref())
        };
        assert_eq!(detect_on("desktop"), None);
        assert_eq!(detect_on("laptop"), None);
        assert_eq!(detect_on("server"), None);
        // QEMU firmware plus kvm-clock: KVM.
        assert_eq!(detect_on("vm"), Some("kvm"));
        assert_eq!(detect(Path::new("/nonexistent"), None), None);
    }

    #[test]
    fn dom0_and_plain_flag() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("proc/xen")).unwrap();
        std::fs::create_dir_all(root.join("sys/hypervisor")).unwrap();
        std::fs::write(root.join("sys/hypervisor/type"), "xen\n").unwrap();
        std::fs::write(root.join("proc/xen/capabilities"), "").unwrap();
        assert_eq!(detect(root, None), Some("xen"));
        std::fs::write(root.join("proc/xen/capabilities"), "control_d\n").unwrap();
        assert_eq!(detect(root, None), None);

        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("proc")).unwrap();
        std::fs::write(root.join("proc/cpuinfo"), "flags\t: fpu hypervisor\n").unwrap();
        assert_eq!(detect(root, None), Some("other"));
        std::fs::remove_file(root.join("proc/cpuinfo")).unwrap();
        std::fs::write(root.join(".dockerenv"), "").unwrap();
        assert_eq!(detect(root, None), Some("docker"));
    }
}
