//! `POST /api/v1/enroll`: an enrolment token and a machine identity in, an agent key out.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use hatang_protocol::{EnrollRequest, EnrollResponse};

use super::{ApiError, AppState, ClientAddr};
use crate::secret::{self, Kind};
use crate::store::EnrolRefusal;

const MAX_MACHINE_ID: usize = 128;
const MAX_HOSTNAME: usize = 255;

fn check(request: &EnrollRequest) -> Result<(), ApiError> {
    let bad = |field: &str, why: &str| {
        Err(ApiError::bad_request(
            "invalid_enrolment",
            format!("{field} {why}"),
        ))
    };
    let id = request.machine_id.trim();
    if id.is_empty() {
        return bad("machine_id", "is empty");
    }
    if id.len() > MAX_MACHINE_ID || id.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return bad(
            "machine_id",
            "must be at most 128 printable characters without spaces",
        );
    }
    if request.hostname.len() > MAX_HOSTNAME || request.hostname.chars().any(char::is_control) {
        return bad("hostname", "must be at most 255 printable characters");
    }
    if !request.token.starts_with(Kind::Enrol.prefix()) {
        return Err(ApiError::unauthorized(format!(
            "this is not an enrolment token (they start with {}; create one with `hatang-collector token create --unit CODE`)",
            Kind::Enrol.prefix()
        )));
    }
    Ok(())
}

pub(super) async fn enroll(
    State(state): State<AppState>,
    address: ClientAddr,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<EnrollResponse>), ApiError> {
    // Every attempt counts, successful or not: an address enrolling hundreds of machines a
    // minute is a script, and each attempt costs a key generation and a database write.
    if let Err(e) = state.limits().address(address) {
        state.metrics().enrolment("rate_limited");
        tracing::debug!(address = ?address.0, "enrolment rate-limited");
        return Err(e);
    }
    let request = super::json_content_type(&headers)
        .and_then(|()| super::body_bytes(body))
        .and_then(|body| super::json::<EnrollRequest>(&body))
        .and_then(|request| check(&request).map(|()| request));
    let request = match request {
        Ok(r) => r,
        Err(e) => {
            state.metrics().enrolment("refused");
            return Err(e);
        }
    };
    let key = secret::generate(Kind::Agent).map_err(|e| {
        tracing::error!(error = %e, "no randomness for an agent key");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_randomness",
            "try again later",
        )
    })?;
    let outcome = state
        .store()
        .enroll(
            &secret::digest(&request.token),
            request.machine_id.trim(),
            &request.hostname,
            &key.digest,
            crate::now(),
        )
        .await?;
    let enrolled = match outcome {
        Ok(e) => e,
        Err(refusal) => {
            state.metrics().enrolment("refused");
            tracing::warn!(machine_id = %request.machine_id, hostname = %request.hostname, reason = ?refusal, "enrolment refused");
            return Err(match refusal {
                EnrolRefusal::UnknownToken => ApiError::unauthorized("unknown enrolment token"),
                EnrolRefusal::Expired => ApiError::new(
                    StatusCode::FORBIDDEN,
                    "token_expired",
                    "the enrolment token has expired",
                ),
                EnrolRefusal::Revoked => ApiError::new(
                    StatusCode::FORBIDDEN,
                    "token_revoked",
                    "the enrolment token was revoked",
                ),
                EnrolRefusal::UsedUp => ApiError::new(
                    StatusCode::FORBIDDEN,
                    "token_used_up",
                    "the enrolment token has made all the enrolments it allows; ask for a new one",
                ),
                EnrolRefusal::UnitRetired => ApiError::new(
                    StatusCode::FORBIDDEN,
                    "unit_retired",
                    "the token's unit is no longer in the unit tree; ask for a token of the new unit",
                ),
            });
        }
    };
    state.metrics().enrolment(if enrolled.reused {
        "reenrolled"
    } else {
        "enrolled"
    });
    tracing::info!(
        agent = %enrolled.agent_id,
        unit = %enrolled.unit_code,
        role = enrolled.role.as_str(),
        hostname = %request.hostname,
        reused = enrolled.reused,
        "agent enrolled"
    );
    Ok((
        StatusCode::CREATED,
        Json(EnrollResponse {
            agent_id: enrolled.agent_id,
            agent_key: key.plain,
            unit: Some(enrolled.unit_code),
            role: Some(enrolled.role.as_str().to_string()),
        }),
    ))
}
