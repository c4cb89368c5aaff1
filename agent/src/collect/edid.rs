//! Monitors from their EDID, the block every display hands its source over DDC: Linux's DRM
//! drivers expose it as a file, Windows keeps it in the monitor's device registry key.
//!
//! The parser ([`parse_edid`]) is a
//! pure function over the bytes, following VESA E-EDID 1.3/1.4: the 128-byte base block holds the
//! manufacturer's PNP id, product code, numeric serial, week/year of manufacture, the image size
//! in centimetres and four 18-byte descriptors, among them the monitor name (tag 0xFC), the serial
//! text (0xFF) and detailed timings that carry the image size in millimetres. Extension blocks
//! (CEA-861 and others) are not needed for any of that. A block whose checksum fails is refused
//! on every platform: its fields cannot be trusted.

use std::fmt;

use hatang_protocol::Monitor;

use crate::collect::junk;

const BLOCK: usize = 128;
const HEADER: [u8; 8] = [0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x00];
const MM_PER_INCH: f64 = 25.4;

/// Why an EDID block was not used; the monitor is then left out and the reason logged.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum EdidError {
    TooShort(usize),
    BadHeader,
    /// The 128 bytes do not sum to 0 mod 256: a corrupted read, whose fields cannot be trusted.
    BadChecksum,
}

impl fmt::Display for EdidError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EdidError::TooShort(n) => write!(f, "EDID of {n} bytes, a base block has {BLOCK}"),
            EdidError::BadHeader => f.write_str("not an EDID (header mismatch)"),
            EdidError::BadChecksum => f.write_str("EDID base block checksum mismatch"),
        }
    }
}

/// The monitor an EDID describes, plugged into `connector`.
pub(crate) fn parse_edid(edid: &[u8], connector: &str) -> Result<Monitor, EdidError> {
    let Some(base) = edid.get(..BLOCK) else {
        return Err(EdidError::TooShort(edid.len()));
    };
    if base[..8] != HEADER {
        return Err(EdidError::BadHeader);
    }
    if base.iter().fold(0u8, |sum, &b| sum.wrapping_add(b)) != 0 {
        return Err(EdidError::BadChecksum);
    }
    let mut monitor = Monitor {
        connector: connector.to_owned(),
        manufacturer: pnp_id(u16::from_be_bytes([base[8], base[9]])),
        product_code: Some(u16::from_le_bytes([base[10], base[11]])),
        ..Monitor::default()
    };
    let numeric_serial = u32::from_le_bytes([base[12], base[13], base[14], base[15]]);
    // Byte 17 counts from 1990; byte 16 = 0xFF makes it a model year, which still dates it.
    monitor.year_of_manufacture = (base[17] > 0).then(|| 1990 + u16::from(base[17]));
    let mut timing_size = None;
    for descriptor in base[54..126].chunks_exact(18) {
        if descriptor[0] != 0 || descriptor[1] != 0 {
            // A detailed timing: bytes 12-14 hold the image size in millimetres.
            if timing_size.is_none() {
                let width = u32::from(descriptor[12]) | (u32::from(descriptor[14] >> 4) << 8);
                let height = u32::from(descriptor[13]) | (u32::from(descriptor[14] & 0x0F) << 8);
                timing_size = (width > 0 && height > 0).then_some((width, height));
            }
            continue;
        }
        let text = || descriptor_text(&descriptor[5..18]);
        match descriptor[3] {
            0xFC => monitor.model = text(),
            0xFF => monitor.serial = text(),
            _ => {}
        }
    }
    if monitor.serial.is_none() && numeric_serial != 0 {
        monitor.serial = Some(numeric_serial.to_string());
    }
    // Bytes 21-22: the image size in centimetres; 0 in either is an aspect ratio or a projector.
    let centimetres = (base[21] > 0 && base[22] > 0)
        .then(|| (u32::from(base[21]) * 10, u32::from(base[22]) * 10));
    if let Some((width, height)) = timing_size.or(centimetres) {
        monitor.width_mm = Some(width);
        monitor.height_mm = Some(height);
        let diagonal = f64::from(width).hypot(f64::from(height)) / MM_PER_INCH;
        monitor.diagonal_inches = Some((diagonal * 10.0).round() / 10.0);
    }
    Ok(monitor)
}

/// Three letters, five bits each ('A' = 1), packed big-endian into bits 14-0.
fn pnp_id(packed: u16) -> Option<String> {
    let letter = |shift: u16| {
        let code = u8::try_from((packed >> shift) & 0x1F).ok()?;
        (1..=26).contains(&code).then(|| char::from(b'@' + code))
    };
    Some([letter(10)?, letter(5)?, letter(0)?].iter().collect())
}

/// A display descriptor's 13 bytes of text: ends at a line feed, padded with spaces.
fn descriptor_text(bytes: &[u8]) -> Option<String> {
    let end = bytes
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(bytes.len());
    junk::clean(&String::from_utf8_lossy(&bytes[..end]))
}

/// Builds EDID base blocks byte by byte; the Linux fixture files were written with it (see
/// `agent/tests/fixtures/README.md`) and the Windows tests record registry values with it.
#[cfg(test)]
pub(crate) mod build {
    #[derive(Default)]
    pub(crate) struct Edid<'a> {
        pub(crate) manufacturer: &'a str,
        pub(crate) product_code: u16,
        pub(crate) serial: u32,
        pub(crate) week: u8,
        pub(crate) year: u16,
        pub(crate) width_cm: u8,
        pub(crate) height_cm: u8,
        /// Image size in the first detailed timing; (0, 0) leaves the timing out.
        pub(crate) timing_mm: (u16, u16),
        pub(crate) name: &'a str,
        pub(crate) serial_text: &'a str,
    }

    pub(crate) fn base_block(e: &Edid<'_>) -> Vec<u8> {
        let mut b = vec![0u8; super::BLOCK];
        b[..8].copy_from_slice(&super::HEADER);
        let letters: Vec<u16> = e
            .manufacturer
            .bytes()
            .map(|c| u16::from(c - b'@'))
            .collect();
        let packed = (letters[0] << 10) | (letters[1] << 5) | letters[2];
        b[8..10].copy_from_slice(&packed.to_be_bytes());
        b[10..12].copy_from_slice(&e.product_code.to_le_bytes());
        b[12..16].copy_from_slice(&e.serial.to_le_bytes());
        b[16] = e.week;
        b[17] = u8::try_from(e.year - 1990).unwrap();
        b[18..20].copy_from_slice(&[1, 4]); // EDID 1.4
        b[20] = 0xA5; // digital input, 8 bits per colour, DisplayPort
        b[21] = e.width_cm;
        b[22] = e.height_cm;
        let mut slots = b[54..126].chunks_exact_mut(18);
        if e.timing_mm != (0, 0) {
            let t = slots.next().unwrap();
            // 1920x1080 at 60 Hz, 148.5 MHz: enough of a timing to be one.
            t[..2].copy_from_slice(&14850u16.to_le_bytes());
            t[2] = 0x80;
            t[4] = 0x71;
            t[5] = 0x38;
            t[7] = 0x40;
            let (w, h) = e.timing_mm;
            t[12] = (w & 0xFF) as u8;
            t[13] = (h & 0xFF) as u8;
            t[14] = (((w >> 8) as u8) << 4) | ((h >> 8) as u8);
        }
        for (tag, text) in [(0xFCu8, e.name), (0xFF, e.serial_text)] {
            if text.is_empty() {
                continue;
            }
            let d = slots.next().unwrap();
            d[3] = tag;
            let mut field = [b' '; 13];
            field[..text.len()].copy_from_slice(text.as_bytes());
            if text.len() < 13 {
                field[text.len()] = b'\n';
            }
            d[5..].copy_from_slice(&field);
        }
        for d in slots {
            d[3] = 0x10; // dummy descriptor
        }
        let sum = b[..127].iter().fold(0u8, |s, &x| s.wrapping_add(x));
        b[127] = 0u8.wrapping_sub(sum);
        b
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::build::{Edid, base_block};
    use super::*;

    /// A Dell P2419H as its EDID describes it: name and serial descriptors, a 527 x 296 mm
    /// image in the detailed timing, 53 x 30 cm in the base block.
    pub(crate) fn dell<'a>() -> Edid<'a> {
        Edid {
            manufacturer: "DEL",
            product_code: 0xA0F0,
            serial: 0x4C4B_3832,
            week: 12,
            year: 2021,
            width_cm: 53,
            height_cm: 30,
            timing_mm: (527, 296),
            name: "DELL P2419H",
            serial_text: "CFV9N97G0ABL",
        }
    }

    /// A laptop panel (AU Optronics): no name or serial descriptor, numeric serial 0.
    pub(crate) fn panel<'a>() -> Edid<'a> {
        Edid {
            manufacturer: "AUO",
            product_code: 0x403D,
            week: 0,
            year: 2020,
            width_cm: 31,
            height_cm: 17,
            timing_mm: (309, 174),
            ..Edid::default()
        }
    }

    #[test]
    fn a_desktop_monitor_with_name_and_serial_descriptors() {
        assert_eq!(
            parse_edid(&base_block(&dell()), "DP-1"),
            Ok(Monitor {
                connector: "DP-1".into(),
                manufacturer: Some("DEL".into()),
                product_code: Some(0xA0F0),
                model: Some("DELL P2419H".into()),
                serial: Some("CFV9N97G0ABL".into()),
                year_of_manufacture: Some(2021),
                width_mm: Some(527),
                height_mm: Some(296),
                diagonal_inches: Some(23.8),
            })
        );
    }

    #[test]
    fn without_descriptors_the_numeric_serial_and_centimetres_serve() {
        let blob = base_block(&Edid {
            serial: 123_456,
            timing_mm: (0, 0),
            ..panel()
        });
        let m = parse_edid(&blob, "eDP-1").unwrap();
        assert_eq!((m.model, m.serial.as_deref()), (None, Some("123456")));
        assert_eq!((m.width_mm, m.height_mm), (Some(310), Some(170)));
        // 310 x 170 mm: 13.9 inches.
        assert_eq!(m.diagonal_inches, Some(13.9));
        let m = parse_edid(&base_block(&panel()), "eDP-1").unwrap();
        assert_eq!((m.serial, m.diagonal_inches), (None, Some(14.0)));
    }

    #[test]
    fn a_projector_has_no_size() {
        let m = parse_edid(
            &base_block(&Edid {
                width_cm: 0,
                height_cm: 0,
                timing_mm: (0, 0),
                ..dell()
            }),
            "HDMI-A-1",
        )
        .unwrap();
        assert_eq!((m.width_mm, m.diagonal_inches), (None, None));
    }

    #[test]
    fn extension_blocks_are_ignored_and_damage_is_an_error() {
        let mut blob = base_block(&dell());
        blob.extend_from_slice(&[0x02; BLOCK]); // a CEA-861 extension, say
        assert_eq!(
            parse_edid(&blob, "DP-1").unwrap().model.as_deref(),
            Some("DELL P2419H")
        );
        assert_eq!(
            parse_edid(&blob[..100], "DP-1"),
            Err(EdidError::TooShort(100))
        );
        let mut bad = base_block(&dell());
        bad[20] ^= 1;
        assert_eq!(parse_edid(&bad, "DP-1"), Err(EdidError::BadChecksum));
        bad[0] = 1;
        assert_eq!(parse_edid(&bad, "DP-1"), Err(EdidError::BadHeader));
        assert_eq!(
            EdidError::TooShort(3).to_string(),
            "EDID of 3 bytes, a base block has 128"
        );
    }

    #[test]
    fn pnp_ids() {
        assert_eq!(pnp_id(0x10AC).as_deref(), Some("DEL"));
        assert_eq!(pnp_id(0x4C2D).as_deref(), Some("SAM"));
        assert_eq!(pnp_id(0), None);
    }

    proptest::proptest! {
        /// Any base block that passes the checksum parses, with a size the protocol accepts.
        #[test]
        fn any_checksummed_block_parses(
            flips in proptest::collection::vec((8usize..127, proptest::num::u8::ANY), 0..24),
        ) {
            let mut blob = base_block(&dell());
            for (at, value) in flips {
                blob[at] = value;
            }
            let sum = blob[..127].iter().fold(0u8, |s, &x| s.wrapping_add(x));
            blob[127] = 0u8.wrapping_sub(sum);
            let monitor = parse_edid(&blob, "DP-1").unwrap();
            if let Some(d) = monitor.diagonal_inches {
                proptest::prop_assert!(d.is_finite() && (0.0..=1000.0).contains(&d), "{}", d);
            }
        }
    }
}
