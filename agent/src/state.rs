//! The agent's state directory: who this agent is to the collector, and this machine's identity.
//!
//! `agent.json` holds the collector URL, the agent id, the agent key, the machine identity it
//! was enrolled with (see [`crate::identity`]) and the TLS files enrolment was given (paths, not
//! their contents). It is written to a
//! temporary file, synced and renamed over the old one, so a crash leaves either the old or the
//! new enrolment, never half of one; on Unix it is readable by its owner only.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::tls::TlsFiles;

const FILE: &str = "agent.json";

/// What `enroll` stored.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Enrolment {
    pub collector: String,
    pub agent_id: String,
    pub agent_key: String,
    #[serde(default)]
    pub unit: Option<String>,
    #[serde(default)]
    pub role: Option<String>,
    /// The identity `enroll` sent; absent in enrolments made before it was stored, which keep
    /// the plain machine id when enrolled again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_id: Option<String>,
    /// The TLS files `enroll` was given, so `run` and `once` need no configuration file.
    #[serde(default, skip_serializing_if = "TlsFiles::is_empty")]
    pub tls: TlsFiles,
}

impl fmt::Debug for Enrolment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Enrolment")
            .field("collector", &self.collector)
            .field("agent_id", &self.agent_id)
            .field("agent_key", &"<redacted>")
            .field("unit", &self.unit)
            .field("role", &self.role)
            .field("machine_id", &self.machine_id)
            .field("tls", &self.tls)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(
        "this machine is not enrolled (no {0}); run `hatang-agent enroll --collector URL --token TOKEN` first"
    )]
    NotEnrolled(PathBuf),
    #[error("{path} is damaged ({reason}); enrol again")]
    Damaged { path: PathBuf, reason: String },
    /// The reason is part of the message, so not a `#[source]` too: `{:#}` said it twice.
    #[error("cannot use the state directory {path}: {error}")]
    Io { path: PathBuf, error: io::Error },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> StateError + '_ {
    move |error| StateError::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// Creates the state directory if it does not exist, closed to other users: mode 0700 on
/// Unix, on Windows an access list for SYSTEM, Administrators and its owner only (`acl.rs`).
pub fn ensure_dir(dir: &Path) -> Result<(), StateError> {
    fs::create_dir_all(dir).map_err(io_error(dir))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io_error(dir))?;
    }
    #[cfg(windows)]
    crate::acl::restrict(dir).map_err(io_error(dir))?;
    Ok(())
}

pub fn load(dir: &Path) -> Result<Enrolment, StateError> {
    let path = dir.join(FILE);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(StateError::NotEnrolled(path)),
        Err(e) => return Err(io_error(&path)(e)),
    };
    serde_json::from_str(&text).map_err(|e| StateError::Damaged {
        path,
        reason: e.to_string(),
    })
}

pub fn save(dir: &Path, enrolment: &Enrolment) -> Result<(), StateError> {
    ensure_dir(dir)?;
    let path = dir.join(FILE);
    let tmp = dir.join(format!("{FILE}.tmp"));
    let text = serde_json::to_vec_pretty(enrolment).map_err(|e| StateError::Damaged {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    write_synced(&tmp, &text).map_err(io_error(&tmp))?;
    fs::rename(&tmp, &path).map_err(io_error(&path))?;
    sync_dir(dir).map_err(io_error(dir))
}

/// Writes `bytes` to a new file readable by its owner only and flushes it to the disk.
pub(crate) fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Makes a rename in `dir` durable (a no-op where directories cannot be synced).
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        fs::File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Enrolment {
        Enrolment {
            collector: "http://127.0.0.1:8080".into(),
            agent_id: "a1".into(),
            agent_key: "hta_secret".into(),
            unit: Some("17-SYT".into()),
            role: Some("workstation".into()),
            machine_id: Some("0f1e2d3c4b5a69788796a5b4c3d2e1f0.mac-0123456789abcdef".into()),
            tls: TlsFiles::default(),
        }
    }

    #[test]
    fn enrolment_round_trips_and_replaces_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        assert!(matches!(load(&state), Err(StateError::NotEnrolled(_))));
        save(&state, &sample()).unwrap();
        let mut second = sample();
        second.agent_key = "hta_other".into();
        save(&state, &second).unwrap();
        assert_eq!(load(&state).unwrap(), second);
        assert!(!state.join("agent.json.tmp").exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(state.join("agent.json"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn an_enrolment_from_before_the_stored_identity_still_loads() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("agent.json"),
            r#"{"collector": "http://c:8080", "agent_id": "a1", "agent_key": "hta_k"}"#,
        )
        .unwrap();
        let old = load(dir.path()).unwrap();
        assert_eq!((old.agent_id.as_str(), old.machine_id), ("a1", None));
    }

    #[test]
    fn damaged_state_is_reported_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("agent.json"), "{\"collector\": ").unwrap();
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("is damaged") && err.contains("enrol again"),
            "{err}"
        );
    }

    #[test]
    fn debug_never_shows_the_key() {
        assert!(!format!("{:?}", sample()).contains("hta_secret"));
    }
}
