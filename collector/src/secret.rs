//! Secrets: enrolment tokens, agent keys and API tokens.
//!
//! Every secret is 256 random bits with a short prefix that says what it is for (so a token pasted
//! in the wrong place gets a helpful error, and secret scanners can find leaked ones). Only the
//! SHA-256 digest is stored. A plain hash is enough because the secrets are random, not chosen
//! by people: there is no dictionary to attack, so a slow password hash would only cost CPU on
//! every report.

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
}
