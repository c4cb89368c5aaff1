//! The enrolment exchange: an enrolment token and a machine identity in, an agent key out.

use serde::{Deserialize, Serialize};

/// `POST /api/v1/enroll` body.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EnrollRequest {
    /// The enrolment token printed by `hatang-collector token create --unit …`.
    pub token: String,
    /// Stable machine identity: the OS machine id with a hash of hardware evidence, or
    /// `HATANG_MACHINE_ID` (the agent's `identity` module states the rule); at most 128
    /// printable characters without spaces.
    pub machine_id: String,
    pub hostname: String,
}

// Hand-written so the token never reaches a log through `{:?}`.
impl std::fmt::Debug for EnrollRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrollRequest")
            .field("token", &"<redacted>")
            .field("machine_id", &self.machine_id)
            .field("hostname", &self.hostname)
            .finish()
    }
}

/// `201` answer to an enrolment.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EnrollResponse {
    pub agent_id: String,
    /// Secret the agent presents as `Authorization: Bearer <agent_key>`.
    pub agent_key: String,
    /// The unit the agent was enrolled into.
    #[serde(default)]
    pub unit: Option<String>,
    /// `workstation` or `server`.
    #[serde(default)]
    pub role: Option<String>,
}

impl std::fmt::Debug for EnrollResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrollResponse")
            .field("agent_id", &self.agent_id)
            .field("agent_key", &"<redacted>")
            .field("unit", &self.unit)
            .field("role", &self.role)
            .finish()
    }
}
