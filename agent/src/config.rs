//! The agent's configuration: defaults < TOML file < `HATANG_*` environment < flags.
//!
//! Most agents need no file at all: `enroll` stores the collector URL in the state directory and
//! every other setting has a default. [`RawConfig`] is what a file says (unknown keys refused);
//! [`Config`] is the checked result, with every problem reported at once.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The annotated example shipped with the agent (`hatang-agent config example`).
pub const EXAMPLE: &str = include_str!("../hatang-agent.example.toml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    /// Collector base URL; normally stored by `enroll` and not needed here.
    pub collector: Option<String>,
    /// Where the agent keeps its key and its spool of unsent reports.
    pub state_dir: Option<PathBuf>,
    /// Seconds between two reports.
    pub interval_secs: u32,
    /// Seconds one HTTP exchange with the collector may take.
    pub timeout_secs: u32,
    /// Unsent reports kept on disk at most; the oldest are dropped beyond it.
    pub spool_max_reports: usize,
}

impl Default for RawConfig {
    fn default() -> Self {
        Self {
            collector: None,
            state_dir: None,
            interval_secs: 60,
            timeout_secs: 15,
            spool_max_reports: 10_000,
        }
    }
}

/// Values from the environment or the command line; `None` keeps the file's value.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub state_dir: Option<PathBuf>,
    pub collector: Option<String>,
}

#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    pub collector: Option<String>,
    pub state_dir: PathBuf,
    pub interval: Duration,
    pub timeout: Duration,
    pub spool_max_reports: usize,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("collector", &self.collector)
            .field("state_dir", &self.state_dir)
            .field("interval", &self.interval)
            .field("timeout", &self.timeout)
            .field("spool_max_reports", &self.spool_max_reports)
            .finish()
    }
}

/// Every problem found, joined for a one-line message.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.join("; "))]
pub struct ConfigError(pub Vec<String>);

/// Where the agent keeps its state when neither the file, `HATANG_STATE_DIR` nor `--state-dir`
/// says.
pub fn default_state_dir() -> PathBuf {
    if cfg!(windows) {
        let base = std::env::var_os("ProgramData").unwrap_or_else(|| r"C:\ProgramData".into());
        PathBuf::from(base).join("hatang")
    } else {
        PathBuf::from("/var/lib/hatang-agent")
    }
}

impl RawConfig {
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError(vec![e.message().to_string()]))
    }

    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(vec![format!("cannot read {}: {e}", path.display())]))?;
        Self::from_toml(&text).map_err(|ConfigError(e)| {
            ConfigError(vec![format!("{}: {}", path.display(), e.join("; "))])
        })
    }

    pub fn check(self, overrides: Overrides) -> Result<Config, ConfigError> {
        let mut errors = Vec::new();
        let collector = overrides.collector.or(self.collector);
        if let Some(url) = &collector
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            errors.push(format!(
                "collector {url:?} must be an http:// or https:// URL"
            ));
        }
        if !(5..=86_400).contains(&self.interval_secs) {
            errors.push(format!(
                "interval_secs = {} must be between 5 and 86400",
                self.interval_secs
            ));
        }
        if !(1..=600).contains(&self.timeout_secs) {
            errors.push(format!(
                "timeout_secs = {} must be between 1 and 600",
                self.timeout_secs
            ));
        }
        if self.spool_max_reports == 0 {
            errors.push("spool_max_reports must be at least 1".into());
        }
        if !errors.is_empty() {
            return Err(ConfigError(errors));
        }
        Ok(Config {
            collector: collector.map(|u| u.trim_end_matches('/').to_string()),
            state_dir: overrides
                .state_dir
                .or(self.state_dir)
                .unwrap_or_else(default_state_dir),
            interval: Duration::from_secs(u64::from(self.interval_secs)),
            timeout: Duration::from_secs(u64::from(self.timeout_secs)),
            spool_max_reports: self.spool_max_reports,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_example_is_valid_and_states_the_defaults() {
        let example = RawConfig::from_toml(EXAMPLE)
            .unwrap()
            .check(Overrides::default());
        let defaults = RawConfig::default().check(Overrides::default());
        assert_eq!(example.unwrap(), defaults.unwrap());
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let raw = RawConfig::from_toml(
            "collector = \"collector:8080\"\ninterval_secs = 1\nspool_max_reports = 0\n",
        )
        .unwrap();
        assert_eq!(
            raw.check(Overrides::default()).unwrap_err().to_string(),
            "collector \"collector:8080\" must be an http:// or https:// URL; \
             interval_secs = 1 must be between 5 and 86400; \
             spool_max_reports must be at least 1"
        );
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = RawConfig::from_toml("intervall_secs = 30\n").unwrap_err();
        assert!(
            err.to_string().contains("unknown field `intervall_secs`"),
            "{err}"
        );
    }

    #[test]
    fn overrides_win_and_trailing_slashes_go() {
        let raw =
            RawConfig::from_toml("collector = \"http://a:1/\"\nstate_dir = \"/x\"\n").unwrap();
        let c = raw
            .check(Overrides {
                state_dir: Some("/y".into()),
                collector: None,
            })
            .unwrap();
        assert_eq!(c.collector.as_deref(), Some("http://a:1"));
        assert_eq!(c.state_dir, PathBuf::from("/y"));
    }
}
