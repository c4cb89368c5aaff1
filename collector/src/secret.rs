//! Secrets: enrolment tokens, agent keys and API tokens.
//!
//! Every secret is 256 random bits with a short prefix that says what it is for (so a token pasted
//! in the wrong place gets a helpful error, and secret scanners can find leaked ones). Only the
//! SHA-256 digest is stored. A plain hash is enough because the secrets are random, not chosen
//! by people: there is no dictionary to attack, so a slow password hash would only cost CPU on
//! every report.
//!
//! A secret's public name is its *fingerprint*: the first 12 hex digits (48 bits) of its digest.
//! It is what `token list` and the admin API show and what `token revoke` takes; knowing it
//! gives nothing towards the secret (it is part of a SHA-256 of 256 random bits).

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What a secret is for; its prefix is part of the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Enrols machines into one unit.
    Enrol,
    /// Authenticates one agent's reports.
    Agent,
    /// Reads (viewer) or administers (admin) through the API and the web UI.
    Api,
}

impl Kind {
    pub fn prefix(self) -> &'static str {
        match self {
            Kind::Enrol => "hte_",
            Kind::Agent => "hta_",
            Kind::Api => "htu_",
        }
    }
}

/// A freshly generated secret; shown once, then only its digest is kept.
pub struct Secret {
    pub plain: String,
    pub digest: Vec<u8>,
}

// Hand-written so the secret never reaches a log through `{:?}`.
impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

pub fn generate(kind: Kind) -> Result<Secret, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    let plain = format!("{}{}", kind.prefix(), hex::encode(bytes));
    let digest = digest(&plain);
    Ok(Secret { plain, digest })
}

pub fn digest(plain: &str) -> Vec<u8> {
    Sha256::digest(plain.as_bytes()).to_vec()
}

/// Hex digits in a [`fingerprint`].
pub const FINGERPRINT_LEN: usize = 12;

/// The public name of the secret whose digest this is.
pub fn fingerprint(digest: &[u8]) -> String {
    let mut hex = hex::encode(&digest[..digest.len().min(FINGERPRINT_LEN / 2)]);
    hex.truncate(FINGERPRINT_LEN);
    hex
}

/// `text` as a fingerprint (12 hex digits, either case), lower-cased; `None` if it is not one.
pub fn parse_fingerprint(text: &str) -> Option<String> {
    (text.len() == FINGERPRINT_LEN && text.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| text.to_ascii_lowercase())
}

impl Kind {
    /// The kind a plain secret's prefix names.
    pub fn of(plain: &str) -> Option<Kind> {
        [Kind::Enrol, Kind::Agent, Kind::Api]
            .into_iter()
            .find(|k| plain.starts_with(k.prefix()))
    }
}

/// Compares two digests without an early exit on the first differing byte.
pub fn same(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_prefixed_random_and_hashed() {
        let a = generate(Kind::Agent).unwrap();
        let b = generate(Kind::Agent).unwrap();
        assert!(a.plain.starts_with("hta_"));
        assert_eq!(a.plain.len(), 4 + 64);
        assert_ne!(a.plain, b.plain);
        assert_eq!(a.digest, digest(&a.plain));
        assert!(same(&a.digest, &digest(&a.plain)));
        assert!(!same(&a.digest, &b.digest));
        assert!(!format!("{a:?}").contains(&a.plain));
    }

    #[test]
    fn a_fingerprint_is_the_start_of_the_digest_never_of_the_secret() {
        let s = generate(Kind::Enrol).unwrap();
        let f = fingerprint(&s.digest);
        assert_eq!(f.len(), FINGERPRINT_LEN);
        assert_eq!(f, hex::encode(&s.digest)[..FINGERPRINT_LEN]);
        assert!(!s.plain.contains(&f));
        assert_eq!(parse_fingerprint(&f.to_uppercase()), Some(f.clone()));
        for bad in ["", "abc", "0123456789abg", "0123456789ab0", "htu_01234567"] {
            assert_eq!(parse_fingerprint(bad), None, "{bad}");
        }
        assert_eq!(Kind::of(&s.plain), Some(Kind::Enrol));
        assert_eq!(Kind::of("nope"), None);
    }
}
