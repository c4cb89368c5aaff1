//! Tokens as operators manage them, alike from the command line and the admin API: making one
//! (its secret shown once, then only its digest is kept), listing them by fingerprint, and
//! naming the one to revoke.

use std::fmt::Write as _;

use crate::figures::Role;
use crate::present::when;
use crate::secret::{self, Kind, Secret};
use crate::store::{ApiRole, Store, StoreError, TokenInfo, TokenKind};

/// The longest unit code a request may name (codes are GSO numbers or short local codes).
const MAX_UNIT_LEN: usize = 64;

/// What to make: an enrolment token (with `unit`) or an API token (`role` viewer or admin).
/// The body of `POST /api/v1/tokens`, and the flags of `token create`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// The unit an enrolment token enrols machines into.
    pub unit: Option<String>,
    /// `workstation` (default) or `server` with a unit; `viewer` or `admin` without.
    pub role: Option<String>,
    /// The token stops working this many days from now (default: never).
    pub expires_days: Option<u32>,
    /// Enrolments the token allows (enrolment tokens; default: any number).
    pub max_uses: Option<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The request does not describe a token that can be made or named.
    #[error("{0}")]
    Invalid(String),
    #[error("unit {0} is not in the current tree (see `hatang-collector units list`)")]
    UnknownUnit(String),
    #[error("no randomness to make a token from")]
    Random(#[source] getrandom::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A token just made: the secret (to show once) and what `token list` will say of it.
#[derive(Debug)]
pub struct Created {
    pub secret: Secret,
    pub info: TokenInfo,
}

/// The longest life a token can be given, in days.
const MAX_EXPIRES_DAYS: u32 = 36_500;

/// Makes and stores the token `request` describes.
pub async fn create(
    store: &dyn Store,
    request: &TokenRequest,
    now: i64,
) -> Result<Created, TokenError> {
    let invalid = |m: &str| TokenError::Invalid(m.to_string());
    let expires_at = request.expires_days.map(|d| now + i64::from(d) * 86_400);
    if request.max_uses == Some(0) {
        return Err(invalid("max_uses must be at least 1"));
    }
    // A token that is expired the moment it is shown is a typo, not a request; so is one that
    // expires after every reader of `token list` (whose dates end at the year 9999).
    if !request
        .expires_days
        .is_none_or(|d| (1..=MAX_EXPIRES_DAYS).contains(&d))
    {
        return Err(invalid(&format!(
            "expires_days must be from 1 to {MAX_EXPIRES_DAYS} (100 years); leave it out for a \
             token that does not expire"
        )));
    }
    let (secret, kind, unit, role) = match request.unit.as_deref() {
        Some(unit) => {
            if unit.is_empty() || unit.chars().count() > MAX_UNIT_LEN {
                return Err(invalid("unit must be a unit code (1 to 64 characters)"));
            }
            let role = match request.role.as_deref() {
                None => Role::Workstation,
                Some(r) => Role::parse(r).ok_or_else(|| {
                    TokenError::Invalid(format!(
                        "role {:?} with a unit must be workstation or server",
                        shorten(r)
                    ))
                })?,
            };
            let secret = secret::generate(Kind::Enrol).map_err(TokenError::Random)?;
            store
                .create_enrol_token(
                    &secret.digest,
                    unit,
                    role,
                    now,
                    expires_at,
                    request.max_uses,
                )
                .await
                .map_err(|e| match e {
                    StoreError::NotFound(_) => TokenError::UnknownUnit(unit.to_string()),
                    other => other.into(),
                })?;
            (secret, TokenKind::Enrol, Some(unit), role.as_str())
        }
        None => {
            let Some(r) = request.role.as_deref() else {
                return Err(invalid(
                    "say what the token is for: a unit (an enrolment token) or the role viewer or admin (an API token)",
                ));
            };
            let role = ApiRole::parse(r).ok_or_else(|| {
                TokenError::Invalid(format!(
                    "role {:?} without a unit must be viewer or admin",
                    shorten(r)
                ))
            })?;
            if request.max_uses.is_some() {
                return Err(invalid(
                    "max_uses limits enrolments: it needs a unit (an enrolment token)",
                ));
            }
            let secret = secret::generate(Kind::Api).map_err(TokenError::Random)?;
            store
                .create_api_token(&secret.digest, role, now, expires_at)
                .await?;
            (secret, TokenKind::Api, None, role.as_str())
        }
    };
    let info = TokenInfo {
        fingerprint: secret::fingerprint(&secret.digest),
        kind,
        unit: unit.map(str::to_string),
        role: role.to_string(),
        created_at: now,
        expires_at,
        uses: (kind == TokenKind::Enrol).then_some(0),
        max_uses: request.max_uses.map(i64::from),
        revoked_at: None,
    };
    tracing::info!(
        fingerprint = %info.fingerprint,
        kind = kind.as_str(),
        unit = info.unit.as_deref().unwrap_or(""),
        role = %info.role,
        "token created"
    );
    Ok(Created { secret, info })
}

/// At most 32 characters of what a caller sent, to quote back in an error.
fn shorten(s: &str) -> String {
    s.chars().take(32).collect()
}

/// The fingerprint `token revoke` acts on: a fingerprint as given (12 hex digits), or the
/// fingerprint of a whole enrolment or API token.
pub fn fingerprint_of(given: &str) -> Result<String, TokenError> {
    let given = given.trim();
    if let Some(f) = secret::parse_fingerprint(given) {
        return Ok(f);
    }
    match Kind::of(given) {
        Some(Kind::Enrol | Kind::Api) => Ok(secret::fingerprint(&secret::digest(given))),
        Some(Kind::Agent) => Err(TokenError::Invalid(
            "that is an agent key; revoke its agent with `hatang-collector agent revoke AGENT_ID`"
                .into(),
        )),
        None => Err(TokenError::Invalid(
            "give a token's fingerprint (12 hex digits, see `hatang-collector token list`) or the token itself"
                .into(),
        )),
    }
}

/// The table `token list` prints: one line per token, oldest first; never a secret.
pub fn table(tokens: &[TokenInfo]) -> String {
    let mut out = String::new();
    let line = |out: &mut String, cells: [&str; 7]| {
        let [f, k, who, c, e, u, r] = cells;
        let _ = writeln!(
            out,
            "{f:<12}  {k:<5}  {who:<24}  {c:<16}  {e:<16}  {u:<9}  {r}"
        );
    };
    line(
        &mut out,
        [
            "FINGERPRINT",
            "KIND",
            "FOR",
            "CREATED",
            "EXPIRES",
            "USES",
            "REVOKED",
        ],
    );
    for t in tokens {
        let who = match &t.unit {
            Some(unit) => format!("{unit} {}", t.role),
            None => t.role.clone(),
        };
        let uses = match (t.uses, t.max_uses) {
            (Some(n), Some(max)) => format!("{n}/{max}"),
            (Some(n), None) => n.to_string(),
            (None, _) => "-".to_string(),
        };
        line(
            &mut out,
            [
                &t.fingerprint,
                t.kind.as_str(),
                &who,
                &when(t.created_at),
                &t.expires_at.map_or("never".to_string(), when),
                &uses,
                &t.revoked_at.map_or("-".to_string(), when),
            ],
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_named_by_its_fingerprint_or_by_itself() {
        let s = secret::generate(Kind::Api).unwrap();
        let f = secret::fingerprint(&s.digest);
        assert_eq!(fingerprint_of(&s.plain).unwrap(), f);
        assert_eq!(
            fingerprint_of(&format!(" {} ", f.to_uppercase())).unwrap(),
            f
        );
        let agent = secret::generate(Kind::Agent).unwrap();
        let err = fingerprint_of(&agent.plain).unwrap_err().to_string();
        assert!(err.contains("agent revoke"), "{err}");
        assert!(!err.contains(&agent.plain));
        assert!(fingerprint_of("nonsense").is_err());
    }

    #[test]
    fn the_table_shows_uses_limits_and_revocation() {
        let enrol = TokenInfo {
            fingerprint: "0123456789ab".into(),
            kind: TokenKind::Enrol,
            unit: Some("4351".into()),
            role: "workstation".into(),
            created_at: 1_735_689_600, // 2025-01-01 00:00 UTC
            expires_at: None,
            uses: Some(2),
            max_uses: Some(5),
            revoked_at: Some(1_735_693_200),
        };
        let api = TokenInfo {
            fingerprint: "ba9876543210".into(),
            kind: TokenKind::Api,
            unit: None,
            role: "viewer".into(),
            uses: None,
            max_uses: None,
            revoked_at: None,
            expires_at: Some(1_735_776_000),
            ..enrol.clone()
        };
        let text = table(&[enrol, api]);
        let rows: Vec<Vec<&str>> = text
            .lines()
            .map(|l| {
                l.split("  ")
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .collect()
            })
            .collect();
        assert_eq!(
            rows,
            [
                vec![
                    "FINGERPRINT",
                    "KIND",
                    "FOR",
                    "CREATED",
                    "EXPIRES",
                    "USES",
                    "REVOKED"
                ],
                vec![
                    "0123456789ab",
                    "enrol",
                    "4351 workstation",
                    "2025-01-01 00:00",
                    "never",
                    "2/5",
                    "2025-01-01 01:00"
                ],
                vec![
                    "ba9876543210",
                    "api",
                    "viewer",
                    "2025-01-01 00:00",
                    "2025-01-02 00:00",
                    "-",
                    "-"
                ],
            ]
        );
    }
}
