//! This machine's identity: the `machine_id` that `enroll` sends, by which the collector tells a
//! re-enrolled machine (same record) from a new one.
//!
//! The rule, in order:
//! 1. `HATANG_MACHINE_ID`, when set, is the identity as given (tests run several agents on one
//!    machine with it; operators can pin one).
//! 2. Otherwise the operating system's machine id (`/etc/machine-id`, else
//!    `/var/lib/dbus/machine-id`; on Windows the registry's `MachineGuid`) combined with one piece of hardware evidence, the first of:
//!    the SMBIOS product UUID, the product serial, the permanent MAC address of the first physical
//!    network card (by interface name; not loopback, bridges or other virtual links, and not a
//!    random or administrator-set address). Junk values never count: all zeros, all `F`, the
//!    placeholder UUID `03000200-0400-0500-0006-000700080009` that many AMI boards ship with,
//!    "To be filled by O.E.M." and the like. The identity is then
//!    `<machine-id>.<kind>-<16 hex digits>` (kind `uuid`, `serial` or `mac`; the digits begin the
//!    SHA-256 of the value), e.g. `0f1e…f0.uuid-5c2a9e0d41b7c3f8`: a fixed length with no spaces,
//!    which the collector requires, whatever the serial looks like.
//!    Why both halves: a cloned disk image carries its machine id to every clone, so the machine
//!    id alone would make a whole room of PCs one computer; the hardware alone is junk on many
//!    white-box boards and the same for every VM of a careless template. Together they differ
//!    between clones whenever either does.
//! 3. Without hardware evidence, the machine id alone; without a machine id, `<kind>-<digits>`
//!    alone; without either there is no identity and `enroll` says so.
//!
//! Agents enrolled before this rule keep their identity: their stored enrolment has no
//! `machine_id`, and enrolling such a state directory again sends the plain machine id it was
//! first enrolled with, so the collector keeps its record ([`for_enrolment`]). `run` and `once`
//! never send the identity at all; they authenticate with the stored agent key.
//!
//! The SMBIOS UUID and serial are readable by root only on Linux, so an agent enrolled as root
//! and checked as another user sees different evidence; [`comparable`] tells that apart from a
//! real change of hardware.

use sha2::{Digest, Sha256};

use crate::collect::{self, junk};
use crate::state::Enrolment;

/// Hardware facts that tell one machine from another, as the platform read them (`None`:
/// absent or unreadable here).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Evidence {
    pub product_uuid: Option<String>,
    pub product_serial: Option<String>,
    /// The permanent MAC address of the first physical network card.
    pub permanent_mac: Option<String>,
}

/// Which piece of evidence an identity was made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Uuid,
    Serial,
    Mac,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Uuid, Kind::Serial, Kind::Mac];

    fn as_str(self) -> &'static str {
        match self {
            Kind::Uuid => "uuid",
            Kind::Serial => "serial",
            Kind::Mac => "mac",
        }
    }
}

/// The identity for a machine id and the hardware evidence (rule 2 and 3 of the module doc);
/// `None` when neither gives anything.
pub fn derive(machine_id: Option<&str>, evidence: &Evidence) -> Option<String> {
    let machine_id = machine_id.and_then(parse_machine_id);
    let hardware = hardware(evidence).map(|(kind, value)| {
        let digest = Sha256::digest(value.as_bytes());
        let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        format!("{}-{hex}", kind.as_str())
    });
    match (machine_id, hardware) {
        (Some(id), Some(hw)) => Some(format!("{id}.{hw}")),
        (id, hw) => id.or(hw),
    }
}

/// The strongest usable piece of evidence, normalised (UUIDs and MACs lower-case).
fn hardware(evidence: &Evidence) -> Option<(Kind, String)> {
    let uuid = evidence
        .product_uuid
        .as_deref()
        .and_then(junk::clean)
        .map(|u| (Kind::Uuid, u.to_ascii_lowercase()));
    let serial = || {
        let serial = evidence.product_serial.as_deref().and_then(junk::clean)?;
        Some((Kind::Serial, serial))
    };
    let mac = || {
        let mac = evidence.permanent_mac.as_deref().and_then(unicast_mac)?;
        Some((Kind::Mac, mac))
    };
    uuid.or_else(serial).or_else(mac)
}

/// `aa:bb:cc:dd:ee:ff` lower-case, when it is six hex octets of a unicast address other than
/// all zeros (multicast and broadcast addresses name no card).
fn unicast_mac(text: &str) -> Option<String> {
    let octets: Vec<u8> = text
        .trim()
        .split(':')
        .map(|o| {
            (o.len() == 2)
                .then(|| u8::from_str_radix(o, 16).ok())
                .flatten()
        })
        .collect::<Option<_>>()?;
    let valid = octets.len() == 6 && octets[0] & 1 == 0 && octets.iter().any(|&o| o != 0);
    valid.then(|| text.trim().to_ascii_lowercase())
}

/// Whether two identities were made from the same kind of evidence, so that their difference
/// means different hardware (or a different machine id) rather than evidence one of the
/// processes could not read.
pub fn comparable(a: &str, b: &str) -> bool {
    let kind = |id: &str| {
        Kind::ALL
            .iter()
            .copied()
            .find(|k| id.contains(&format!("{}-", k.as_str())))
    };
    kind(a) == kind(b)
}

/// `HATANG_MACHINE_ID`, trimmed, when set and not blank.
fn pinned() -> Option<String> {
    let id = std::env::var("HATANG_MACHINE_ID").ok()?;
    Some(id.trim().to_owned()).filter(|id| !id.is_empty())
}

/// The operating system's machine id, where it has one: on Windows the registry's
/// `MachineGuid`, elsewhere `/etc/machine-id`.
fn os_machine_id() -> Option<String> {
    #[cfg(windows)]
    {
        collect::machine_guid().and_then(|guid| parse_machine_id(&guid))
    }
    #[cfg(not(windows))]
    {
        ["/etc/machine-id", "/var/lib/dbus/machine-id"]
            .iter()
            .find_map(|path| parse_machine_id(&std::fs::read_to_string(path).ok()?))
    }
}

/// This machine's identity by the current rule.
pub fn current() -> Result<String, String> {
    if let Some(id) = pinned() {
        return Ok(id);
    }
    derive(os_machine_id().as_deref(), &collect::identity_evidence()).ok_or_else(no_identity)
}

/// Where [`os_machine_id`] reads, as an administrator would look it up.
const OS_MACHINE_ID_SOURCE: &str = if cfg!(windows) {
    r"the registry value HKLM\SOFTWARE\Microsoft\Cryptography\MachineGuid"
} else {
    "/etc/machine-id"
};

/// Why [`current`] found no identity, naming what this platform reads.
fn no_identity() -> String {
    format!(
        "no machine identity: {OS_MACHINE_ID_SOURCE} is missing or empty and no hardware identity \
         is readable; set HATANG_MACHINE_ID"
    )
}

/// The identity `enroll` sends, given the enrolment already in the state directory: an
/// enrolment made before the hardware rule (none stored) keeps its plain machine id.
pub fn for_enrolment(previous: Option<&Enrolment>) -> Result<String, String> {
    if pinned().is_none()
        && previous.is_some_and(|e| e.machine_id.is_none())
        && let Some(id) = os_machine_id()
    {
        return Ok(id);
    }
    current()
}

/// Longest OS machine id taken: with `.serial-` and 16 digits after it the identity stays within
/// the 128 characters the collector accepts.
const MAX_MACHINE_ID: usize = 96;

/// A machine-id file holds 32 hex digits and a newline; all zeros means "not initialised".
fn parse_machine_id(text: &str) -> Option<String> {
    let id = text.trim();
    let valid = !id.is_empty()
        && id.len() <= MAX_MACHINE_ID
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && id.chars().any(|c| c != '0' && c != '-');
    valid.then(|| id.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MACHINE: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";

    #[test]
    fn the_missing_identity_error_names_what_this_platform_reads() {
        let message = no_identity();
        assert!(message.contains("set HATANG_MACHINE_ID"), "{message}");
        if cfg!(windows) {
            assert!(
                message.contains(r"HKLM\SOFTWARE\Microsoft\Cryptography\MachineGuid"),
                "{message}"
            );
            assert!(!message.contains("/etc"), "{message}");
        } else {
            assert!(message.contains("/etc/machine-id is missing"), "{message}");
        }
    }

    fn evidence(uuid: Option<&str>, serial: Option<&str>, mac: Option<&str>) -> Evidence {
        Evidence {
            product_uuid: uuid.map(str::to_owned),
            product_serial: serial.map(str::to_owned),
            permanent_mac: mac.map(str::to_owned),
        }
    }

    fn kind_of(id: &str) -> &str {
        id.rsplit_once('.')
            .map_or(id, |(_, hw)| hw)
            .split('-')
            .next()
            .unwrap()
    }

    #[test]
    fn clones_with_one_machine_id_get_different_identities() {
        let a = derive(
            Some(MACHINE),
            &evidence(Some("4C4C4544-0046-3410-8058-B8C04F4B3933"), None, None),
        );
        let b = derive(
            Some(MACHINE),
            &evidence(Some("4c4c4544-0046-3410-8058-b8c04f4b3934"), None, None),
        );
        let a = a.unwrap();
        assert_ne!(Some(&a), b.as_ref());
        assert!(a.starts_with(&format!("{MACHINE}.uuid-")), "{a}");
        assert_eq!(a.len(), MACHINE.len() + ".uuid-".len() + 16);
        // The same machine gets the same identity every time, whatever the case of its UUID.
        assert_eq!(
            derive(
                Some(MACHINE),
                &evidence(Some("4c4c4544-0046-3410-8058-b8c04f4b3933"), None, None)
            ),
            Some(a)
        );
    }

    #[test]
    fn junk_evidence_falls_through_to_the_next() {
        for junk_uuid in [
            "00000000-0000-0000-0000-000000000000",
            "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF",
            "03000200-0400-0500-0006-000700080009",
        ] {
            let id = derive(
                Some(MACHINE),
                &evidence(Some(junk_uuid), Some("7XK2LD3"), None),
            )
            .unwrap();
            assert_eq!(kind_of(&id), "serial", "{junk_uuid}");
        }
        let id = derive(
            Some(MACHINE),
            &evidence(
                None,
                Some("To be filled by O.E.M."),
                Some("D8:9E:F3:12:AB:CD"),
            ),
        )
        .unwrap();
        assert_eq!(kind_of(&id), "mac");
        assert_eq!(
            Some(id),
            derive(
                Some(MACHINE),
                &evidence(None, None, Some("d8:9e:f3:12:ab:cd"))
            )
        );
        // Nothing usable: the machine id alone.
        for mac in [
            "00:00:00:00:00:00",
            "ff:ff:ff:ff:ff:ff",
            "01:00:5e:00:00:01",
            "d8:9e:f3",
            "zz:9e:f3:12:ab:cd",
        ] {
            assert_eq!(
                derive(
                    Some(MACHINE),
                    &evidence(Some("0"), Some("0000000"), Some(mac))
                ),
                Some(MACHINE.to_owned()),
                "{mac}"
            );
        }
    }

    #[test]
    fn either_half_alone_and_neither() {
        let hw = derive(None, &evidence(None, Some("CZJ0123ABC"), None)).unwrap();
        assert!(
            hw.starts_with("serial-") && hw.len() == "serial-".len() + 16,
            "{hw}"
        );
        assert_eq!(derive(Some("0000000000000000"), &Evidence::default()), None);
        assert_eq!(derive(None, &Evidence::default()), None);
        assert_eq!(derive(Some("  \n"), &evidence(None, None, None)), None);
        // A serial with spaces still gives an identity without any.
        let spaced = derive(Some(MACHINE), &evidence(None, Some("SGH 123 4X5"), None)).unwrap();
        assert!(!spaced.contains(char::is_whitespace), "{spaced}");
    }

    #[test]
    fn evidence_of_different_kinds_is_not_compared() {
        let uuid = derive(
            Some(MACHINE),
            &evidence(Some("5e2b1c80-2f6a-11b2-a85c-d3f1a2b4c6e8"), None, None),
        )
        .unwrap();
        let mac = derive(
            Some(MACHINE),
            &evidence(None, None, Some("8c:8c:aa:41:22:e0")),
        )
        .unwrap();
        let other_mac = derive(
            Some(MACHINE),
            &evidence(None, None, Some("8c:8c:aa:41:22:e1")),
        )
        .unwrap();
        assert!(!comparable(&uuid, &mac));
        assert!(comparable(&mac, &other_mac));
        assert!(comparable(MACHINE, MACHINE));
        assert!(!comparable(MACHINE, &mac));
    }

    #[test]
    fn machine_ids_are_checked() {
        assert_eq!(
            parse_machine_id("0F1E2D3C4B5A69788796A5B4C3D2E1F0\n").as_deref(),
            Some(MACHINE)
        );
        assert_eq!(parse_machine_id("\n"), None);
        assert_eq!(parse_machine_id("00000000000000000000000000000000"), None);
        assert_eq!(parse_machine_id("not an id"), None);
        assert_eq!(parse_machine_id(&"a".repeat(MAX_MACHINE_ID + 1)), None);
    }
}
