//! Agent keys seen to be good, so that a report's key costs a hash lookup instead of a query.
//!
//! Only a cache for authentication, never the authority: a report is stored only if, in the
//! transaction that stores it, its agent is not revoked and still has the key the report came
//! with (see [`crate::store::Incoming::key_digest`]). A key revoked or replaced since it was
//! cached gets its report refused there, and is forgotten here. Keys are cached by their
//! SHA-256 digest, the form the database holds; the lookup compares digests, never keys.

use std::collections::HashMap;
use std::sync::RwLock;

/// Beyond this many keys the cache starts over. Entries are added only for keys the database
/// accepted, so this bounds what keys replaced by re-enrolment can leave behind; a province has
/// tens of thousands of agents, the whole country about a million and a half across replicas.
const MAX_KEYS: usize = 1 << 20;

/// Key digest → the id of the agent it names.
#[derive(Debug, Default)]
pub(super) struct KnownKeys {
    agents: RwLock<HashMap<Vec<u8>, String>>,
}

impl KnownKeys {
    pub(super) fn agent(&self, digest: &[u8]) -> Option<String> {
        let agents = self.agents.read().unwrap_or_else(|e| e.into_inner());
        agents.get(digest).cloned()
    }

    pub(super) fn remember(&self, digest: Vec<u8>, agent: &str) {
        let mut agents = self.agents.write().unwrap_or_else(|e| e.into_inner());
        if agents.len() >= MAX_KEYS {
            agents.clear();
        }
        agents.insert(digest, agent.to_string());
    }

    pub(super) fn forget(&self, digest: &[u8]) {
        let mut agents = self.agents.write().unwrap_or_else(|e| e.into_inner());
        agents.remove(digest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_known_from_being_remembered_until_it_is_forgotten() {
        let keys = KnownKeys::default();
        assert_eq!(keys.agent(b"d1"), None);
        keys.remember(b"d1".to_vec(), "agent-1");
        keys.remember(b"d2".to_vec(), "agent-2");
        assert_eq!(keys.agent(b"d1").as_deref(), Some("agent-1"));
        keys.forget(b"d1");
        assert_eq!(keys.agent(b"d1"), None);
        assert_eq!(keys.agent(b"d2").as_deref(), Some("agent-2"));
    }
}
