//! gzip request bodies (RFC 1952), every member of them, inflated within a size limit.
//!
//! The framing (header, CRC-32, length) is read here and only the deflate data goes through
//! zlib-rs, with one inflate state per thread reset between bodies. `flate2`'s gzip reader
//! allocated and zeroed a fresh state (its 32 KiB window included) for every report and checked
//! the CRC with a table-driven loop; at full ingest load those two were about 3 % of the
//! collector's CPU (`perf`), where `crc32fast`'s carry-less multiply and a reused state cost
//! next to nothing.

use std::cell::RefCell;

use flate2::{Decompress, FlushDecompress, Status};

/// Why a body could not be inflated.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum GunzipError {
    /// Not a well-formed gzip stream; says what is wrong.
    Invalid(&'static str),
    /// It inflates to more than the limit.
    TooLarge,
}

thread_local! {
    /// Raw deflate (no zlib header), reset for every member.
    static INFLATE: RefCell<Decompress> = RefCell::new(Decompress::new(false));
}

const FHCRC: u8 = 0x02;
const FEXTRA: u8 = 0x04;
const FNAME: u8 = 0x08;
const FCOMMENT: u8 = 0x10;
const RESERVED: u8 = 0xe0;

/// The first output reservation, as a multiple of the compressed size (JSON reports inflate to
/// about 2-4 times theirs).
const FIRST_GUESS: usize = 4;

/// The concatenation of every member of `body`, at most `limit` bytes of it: a larger result
/// (a gzip bomb) is refused once `limit + 1` bytes have come out, never buffered whole.
pub(super) fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>, GunzipError> {
    let most = limit.saturating_add(1);
    let mut out = Vec::with_capacity(body.len().saturating_mul(FIRST_GUESS).min(most));
    let mut rest = body;
    loop {
        let deflate = skip_header(rest).map_err(|e| match e {
            // Something that is not gzip after a whole member: say so, not that the body's
            // header (which was fine) is wrong.
            GunzipError::Invalid("invalid gzip header") if rest.len() < body.len() => {
                GunzipError::Invalid("data after the last gzip member")
            }
            e => e,
        })?;
        let start = out.len();
        let used = INFLATE.with_borrow_mut(|state| inflate(state, deflate, &mut out, most))?;
        let Some((trailer, next)) = deflate[used..].split_first_chunk::<8>() else {
            return Err(GunzipError::Invalid("truncated trailer"));
        };
        let [crc @ .., _, _, _, _] = *trailer;
        let [_, _, _, _, size @ ..] = *trailer;
        if u32::from_le_bytes(crc) != crc32fast::hash(&out[start..]) {
            return Err(GunzipError::Invalid("CRC mismatch"));
        }
        // ISIZE is the length modulo 2^32.
        if u32::from_le_bytes(size) != (out.len() - start) as u32 {
            return Err(GunzipError::Invalid("length mismatch"));
        }
        if next.is_empty() {
            return Ok(out);
        }
        rest = next;
    }
}

/// The data after a member's header.
fn skip_header(member: &[u8]) -> Result<&[u8], GunzipError> {
    const TRUNCATED: GunzipError = GunzipError::Invalid("truncated header");
    let Some(([0x1f, 0x8b, method, flags, ..], _)) = member.split_first_chunk::<10>() else {
        return Err(
            if member.len() < 10 && [0x1f, 0x8b].starts_with(&member[..member.len().min(2)]) {
                TRUNCATED
            } else {
                GunzipError::Invalid("invalid gzip header")
            },
        );
    };
    if *method != 8 {
        return Err(GunzipError::Invalid("unsupported compression method"));
    }
    if flags & RESERVED != 0 {
        return Err(GunzipError::Invalid("reserved header flags set"));
    }
    let mut at = 10;
    if flags & FEXTRA != 0 {
        let Some(&[lo, hi]) = member.get(at..at + 2) else {
            return Err(TRUNCATED);
        };
        at += 2 + usize::from(u16::from_le_bytes([lo, hi]));
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            let text = member.get(at..).ok_or(TRUNCATED)?;
            at += 1 + memchr::memchr(0, text).ok_or(TRUNCATED)?;
        }
    }
    if flags & FHCRC != 0 {
        let header = member.get(..at).ok_or(TRUNCATED)?;
        let Some(&[lo, hi]) = member.get(at..at + 2) else {
            return Err(TRUNCATED);
        };
        // The low 16 bits of the CRC-32 of the header before it.
        if u16::from_le_bytes([lo, hi]) != crc32fast::hash(header) as u16 {
            return Err(GunzipError::Invalid("header CRC mismatch"));
        }
        at += 2;
    }
    member.get(at..).ok_or(TRUNCATED)
}

/// One member's deflate data inflated onto `out`, which must stay shorter than `most` bytes;
/// how many bytes of `data` it took.
fn inflate(
    state: &mut Decompress,
    data: &[u8],
    out: &mut Vec<u8>,
    most: usize,
) -> Result<usize, GunzipError> {
    state.reset(false);
    loop {
        if out.len() >= most {
            return Err(GunzipError::TooLarge);
        }
        if out.len() == out.capacity() {
            // Double, but never past `most`: the byte that reaches it tells a bomb.
            let more = out.capacity().max(1024).min(most - out.len());
            out.reserve_exact(more);
        }
        let (took, made) = (state.total_in(), out.len());
        let status = state
            .decompress_vec(&data[took as usize..], out, FlushDecompress::None)
            .map_err(|_| GunzipError::Invalid("corrupt deflate stream"))?;
        match status {
            Status::StreamEnd if out.len() >= most => return Err(GunzipError::TooLarge),
            Status::StreamEnd => return Ok(state.total_in() as usize),
            // Neither input taken nor output made, with room left: the data stops mid-stream.
            _ if state.total_in() == took && out.len() == made && out.len() < out.capacity() => {
                return Err(GunzipError::Invalid("truncated deflate stream"));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use flate2::Compression;
    use flate2::read::MultiGzDecoder;
    use flate2::write::GzEncoder;
    use proptest::prelude::*;

    use super::{GunzipError, gunzip};

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut z = GzEncoder::new(Vec::new(), Compression::default());
        z.write_all(data).unwrap();
        z.finish().unwrap()
    }

    /// `flate2`'s reader, the reference: the inflated bytes, or `None` for an error.
    fn reference(body: &[u8], limit: usize) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        MultiGzDecoder::new(body)
            .take(limit as u64 + 1)
            .read_to_end(&mut out)
            .ok()?;
        (out.len() <= limit).then_some(out)
    }

    #[test]
    fn every_member_and_every_header_field_is_read() {
        let mut body = flate2::GzBuilder::new()
            .filename("report.json")
            .comment("from an agent")
            .extra(vec![1, 2, 3])
            .write(Vec::new(), Compression::fast());
        body.write_all(b"{\"a\":").unwrap();
        let mut body = body.finish().unwrap();
        // A header CRC: flags byte gains FHCRC, the CRC of the header follows it.
        let mut with_hcrc = vec![0x1f, 0x8b, 8, super::FHCRC, 0, 0, 0, 0, 0, 255];
        let crc = crc32fast::hash(&with_hcrc) as u16;
        with_hcrc.extend(crc.to_le_bytes());
        let mut second = gzip(b"1}");
        with_hcrc.extend(second.split_off(10));
        body.extend(with_hcrc);
        assert_eq!(gunzip(&body, 100).unwrap(), b"{\"a\":1}");
        assert_eq!(reference(&body, 100).unwrap(), b"{\"a\":1}");
    }

    #[test]
    fn damage_is_named() {
        let body = gzip(b"{\"agent_version\":\"0.1.0\"}");
        let cases: [(&str, Vec<u8>, GunzipError); 7] = [
            (
                "plain text",
                b"{}".to_vec(),
                GunzipError::Invalid("invalid gzip header"),
            ),
            (
                "cut in the header",
                body[..6].to_vec(),
                GunzipError::Invalid("truncated header"),
            ),
            (
                "cut in the data",
                body[..body.len() - 12].to_vec(),
                GunzipError::Invalid("truncated deflate stream"),
            ),
            (
                "cut in the trailer",
                body[..body.len() - 3].to_vec(),
                GunzipError::Invalid("truncated trailer"),
            ),
            (
                "a wrong CRC",
                {
                    let mut b = body.clone();
                    let at = b.len() - 8;
                    b[at] ^= 1;
                    b
                },
                GunzipError::Invalid("CRC mismatch"),
            ),
            (
                "garbage after the member",
                [body.as_slice(), b"junk"].concat(),
                GunzipError::Invalid("data after the last gzip member"),
            ),
            (
                "zero padding after the member",
                [body.as_slice(), &[0; 16]].concat(),
                GunzipError::Invalid("data after the last gzip member"),
            ),
        ];
        for (what, damaged, expected) in cases {
            assert_eq!(gunzip(&damaged, 1 << 20), Err(expected), "{what}");
            assert_eq!(
                reference(&damaged, 1 << 20),
                None,
                "{what}: flate2 accepts it"
            );
        }
    }

    #[test]
    fn the_limit_is_exact_and_a_bomb_stops_at_it() {
        let data = vec![b'x'; 10_000];
        let body = gzip(&data);
        assert_eq!(gunzip(&body, 10_000).unwrap(), data);
        // No limit at all: nothing overflows.
        assert_eq!(gunzip(&body, usize::MAX).unwrap(), data);
        assert_eq!(gunzip(&body, 9_999), Err(GunzipError::TooLarge));
        // Two members whose sum, not either alone, is over the limit.
        let two = [body.as_slice(), body.as_slice()].concat();
        assert_eq!(gunzip(&two, 15_000), Err(GunzipError::TooLarge));
        let bomb = gzip(&vec![0; 50 << 20]);
        assert_eq!(gunzip(&bomb, 1 << 20), Err(GunzipError::TooLarge));
    }

    proptest! {
        /// Whatever the bytes, the same verdict and the same output as `flate2`'s reader.
        #[test]
        fn agrees_with_flate2_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            prop_assert_eq!(gunzip(&bytes, 1 << 16).ok(), reference(&bytes, 1 << 16));
        }

        /// Real streams, one or more members, then damaged at one byte or cut short: the same
        /// verdict and output as `flate2`'s reader.
        #[test]
        fn agrees_with_flate2_on_damaged_streams(
            parts in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..2000), 1..4),
            flip in any::<(usize, u8)>(),
            cut in any::<usize>(),
            limit in 0usize..5000,
        ) {
            let body: Vec<u8> = parts.iter().flat_map(|p| gzip(p)).collect();
            prop_assert_eq!(gunzip(&body, limit).ok(), reference(&body, limit));
            let mut flipped = body.clone();
            let at = flip.0 % flipped.len();
            flipped[at] ^= flip.1;
            prop_assert_eq!(gunzip(&flipped, 1 << 16).ok(), reference(&flipped, 1 << 16));
            let short = &body[..cut % body.len()];
            prop_assert_eq!(gunzip(short, 1 << 16).ok(), reference(short, 1 << 16));
        }
    }
}
