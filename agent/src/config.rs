//! The agent's configuration: defaults < TOML file < `HATANG_*` environment < flags.
//!
//! Most agents need no file at all: `enroll` stores the collector URL in the state directory and
//! every other setting has a default. [`RawConfig`] is what a file says (unknown keys refused);
//! [`Config`] is the checked result, with every problem reported at once.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hatang_protocol::ProbeClass;
use serde::Deserialize;

use crate::spool::Bounds;
use crate::tls::TlsFiles;
use hatang_probe::{ProbeSpec, Target};

/// The annotated example shipped with the agent (`hatang-agent config example`).
pub const EXAMPLE: &str = include_str!("../hatang-agent.example.toml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    /// Collector base URL; normally stored by `enroll` and not needed here.
    pub collector: Option<String>,
    /// Where the agent keeps its key and its spool of unsent reports.
    pub state_dir: Option<PathBuf>,
    /// The CA certificate (PEM) the collector's HTTPS certificate must chain to; the only one
    /// trusted. Without it, the operating system's roots. Normally stored by `enroll --ca-file`.
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for a collector that requires one (mutual TLS).
    pub client_cert_file: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    pub client_key_file: Option<PathBuf>,
    /// Seconds between two reports.
    pub interval_secs: u32,
    /// Seconds one HTTP exchange with the collector may take.
    pub timeout_secs: u32,
    /// Unsent reports kept on disk at most; the oldest are dropped beyond it.
    pub spool_max_reports: usize,
    /// Bytes of unsent reports kept on disk at most; the oldest are dropped beyond it.
    pub spool_max_bytes: u64,
    /// Seconds an unsent report is kept at most; older ones are dropped.
    pub spool_max_age_secs: u64,
    /// Reports sent at most in one pass, oldest first; a backlog drains in passes of this size
    /// between two cycles, so it never delays a cycle's collection.
    pub send_batch_reports: usize,
    /// Seconds between two speed tests against the collector; 0 turns them off.
    pub speedtest_interval_secs: u32,
    /// Bytes a speed test moves each way at most (a time limit of 15 s applies too).
    pub speedtest_bytes: u64,
    /// Check every cycle that the default gateway answers (TCP to ports 53, 80, 443).
    pub gateway_probe: bool,
    /// List the installed packages (dpkg) in the inventory.
    pub inventory_software: bool,
    /// Connectivity probes, run every cycle (`[[probes]]` tables).
    pub probes: Vec<RawProbe>,
}

/// One `[[probes]]` table. `kind` and `class` are read as text so that every bad value is
/// reported with the others, not one at a time by the TOML parser.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProbe {
    /// Name in reports and dashboards, unique among the probes.
    pub name: String,
    /// `tcp`, `http`, `https`, `dns` or `icmp`.
    pub kind: String,
    /// `internet`, `gov-wan` or `datacentre`.
    pub class: String,
    /// `host:port` (tcp), a URL (http, https) or a host name or address (dns, icmp).
    pub target: String,
    /// Attempts per cycle, 1 to 20.
    #[serde(default = "RawProbe::default_attempts")]
    pub attempts: u32,
    /// Milliseconds one attempt may take, 100 to 30000.
    #[serde(default = "RawProbe::default_timeout_ms")]
    pub timeout_ms: u32,
}

impl RawProbe {
    fn default_attempts() -> u32 {
        4
    }

    fn default_timeout_ms() -> u32 {
        2000
    }
}

impl Default for RawConfig {
    fn default() -> Self {
        Self {
            collector: None,
            state_dir: None,
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
            interval_secs: 60,
            timeout_secs: 15,
            spool_max_reports: 10_000,
            spool_max_bytes: 64 << 20,
            spool_max_age_secs: 7 * 86_400,
            send_batch_reports: 100,
            speedtest_interval_secs: 3600,
            speedtest_bytes: 4 << 20,
            // Off unless asked: the agent contacts nothing it was not told to.
            gateway_probe: false,
            // Off unless asked: the package list is most of an inventory's size.
            inventory_software: false,
            probes: Vec::new(),
        }
    }
}

/// Values from the environment or the command line; `None` keeps the file's value.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub state_dir: Option<PathBuf>,
    pub collector: Option<String>,
    /// `HATANG_GATEWAY_PROBE`.
    pub gateway_probe: Option<bool>,
    /// `enroll --ca-file`, `--client-cert-file`, `--client-key-file`.
    pub tls: TlsFiles,
}

/// Reads an on/off environment value (`true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`).
pub fn switch(name: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(ConfigError(vec![format!(
            "{name}={value:?} must be true or false"
        )])),
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    pub collector: Option<String>,
    pub state_dir: PathBuf,
    /// TLS files from the file and the command line; `enroll` stores them, and stored ones fill
    /// in what these leave unset.
    pub tls: TlsFiles,
    pub interval: Duration,
    pub timeout: Duration,
    pub spool_max_reports: usize,
    pub spool_max_bytes: u64,
    pub spool_max_age: Duration,
    pub send_batch_reports: usize,
    /// `None`: speed tests are off.
    pub speedtest_interval: Option<Duration>,
    pub speedtest_bytes: u64,
    pub gateway_probe: bool,
    pub inventory_software: bool,
    pub probes: Vec<ProbeSpec>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("collector", &self.collector)
            .field("state_dir", &self.state_dir)
            .field("tls", &self.tls)
            .field("interval", &self.interval)
            .field("timeout", &self.timeout)
            .field("spool_max_reports", &self.spool_max_reports)
            .field("spool_max_bytes", &self.spool_max_bytes)
            .field("spool_max_age", &self.spool_max_age)
            .field("send_batch_reports", &self.send_batch_reports)
            .field("speedtest_interval", &self.speedtest_interval)
            .field("speedtest_bytes", &self.speedtest_bytes)
            .field("gateway_probe", &self.gateway_probe)
            .field("inventory_software", &self.inventory_software)
            .field("probes", &self.probes)
            .finish()
    }
}

impl Config {
    pub fn spool_bounds(&self) -> Bounds {
        Bounds {
            max_reports: self.spool_max_reports,
            max_bytes: self.spool_max_bytes,
            max_age: self.spool_max_age,
        }
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
        toml::from_str(text)
            .map_err(|e| ConfigError(vec![hatang_protocol::located(text, e.span(), e.message())]))
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
            && let Some(problem) = collector_problem(url)
        {
            errors.push(format!("collector {url:?} {problem}"));
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
        // A report must fit, and an age under an hour would empty the spool of a machine whose
        // link merely hiccups.
        if self.spool_max_bytes < 1 << 20 {
            errors.push(format!(
                "spool_max_bytes = {} must be at least 1048576 (1 MiB)",
                self.spool_max_bytes
            ));
        }
        if self.spool_max_age_secs < 3600 {
            errors.push(format!(
                "spool_max_age_secs = {} must be at least 3600 (an hour)",
                self.spool_max_age_secs
            ));
        }
        if !(1..=10_000).contains(&self.send_batch_reports) {
            errors.push(format!(
                "send_batch_reports = {} must be between 1 and 10000",
                self.send_batch_reports
            ));
        }
        if !(self.speedtest_interval_secs == 0
            || (300..=604_800).contains(&self.speedtest_interval_secs))
        {
            errors.push(format!(
                "speedtest_interval_secs = {} must be 0 (off) or between 300 and 604800",
                self.speedtest_interval_secs
            ));
        }
        if !(64 << 10..=crate::speed::MAX_BYTES).contains(&self.speedtest_bytes) {
            errors.push(format!(
                "speedtest_bytes = {} must be between 65536 and {}",
                self.speedtest_bytes,
                crate::speed::MAX_BYTES
            ));
        }
        let tls = overrides.tls.or(&TlsFiles {
            ca_file: self.ca_file,
            client_cert_file: self.client_cert_file,
            client_key_file: self.client_key_file,
        });
        tls.check(&mut errors);
        let probes = check_probes(&self.probes, &mut errors);
        if !errors.is_empty() {
            return Err(ConfigError(errors));
        }
        Ok(Config {
            collector: collector.map(|u| u.trim_end_matches('/').to_string()),
            state_dir: overrides
                .state_dir
                .or(self.state_dir)
                .unwrap_or_else(default_state_dir),
            tls,
            interval: Duration::from_secs(u64::from(self.interval_secs)),
            timeout: Duration::from_secs(u64::from(self.timeout_secs)),
            spool_max_reports: self.spool_max_reports,
            spool_max_bytes: self.spool_max_bytes,
            spool_max_age: Duration::from_secs(self.spool_max_age_secs),
            send_batch_reports: self.send_batch_reports,
            speedtest_interval: (self.speedtest_interval_secs > 0)
                .then(|| Duration::from_secs(u64::from(self.speedtest_interval_secs))),
            speedtest_bytes: self.speedtest_bytes,
            gateway_probe: overrides.gateway_probe.unwrap_or(self.gateway_probe),
            inventory_software: self.inventory_software,
            probes,
        })
    }
}

/// Why `url` cannot be the collector's base address, if it cannot. Checked here rather than
/// left to the first send, which failed every cycle with a reason about something else.
fn collector_problem(url: &str) -> Option<String> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Some("must be an http:// or https:// URL".into());
    }
    match reqwest::Url::parse(url) {
        Err(e) => Some(format!("is not a URL: {e}")),
        // The endpoints' paths are appended to it: a query or fragment would swallow them.
        Ok(u) if u.query().is_some() || u.fragment().is_some() => {
            Some("must be the collector's address without ?query or #fragment".into())
        }
        Ok(_) => None,
    }
}

/// The most probes one agent runs; each is a few connections every cycle.
const MAX_PROBES: usize = 64;

/// Checks every `[[probes]]` table, adding each problem to `errors` with the probe it is in.
fn check_probes(raw: &[RawProbe], errors: &mut Vec<String>) -> Vec<ProbeSpec> {
    if raw.len() > MAX_PROBES {
        errors.push(format!(
            "{} probes configured; at most {MAX_PROBES}",
            raw.len()
        ));
    }
    let mut specs = Vec::new();
    for (i, p) in raw.iter().enumerate() {
        let at = format!("probes[{i}] ({:?})", p.name);
        let mut fail = |problem: String| errors.push(format!("{at}: {problem}"));
        if p.name.trim().is_empty() || p.name.len() > 64 || p.name.chars().any(char::is_control) {
            fail("name must be 1 to 64 printable characters".into());
        } else if raw[..i].iter().any(|q| q.name == p.name) {
            fail("name is used by an earlier probe".into());
        }
        let class = match p.class.as_str() {
            "internet" => Some(ProbeClass::Internet),
            "gov-wan" => Some(ProbeClass::GovWan),
            "datacentre" => Some(ProbeClass::Datacentre),
            other => {
                fail(format!(
                    "class {other:?} is not one of internet, gov-wan, datacentre"
                ));
                None
            }
        };
        let target = Target::parse(&p.kind, &p.target).map_err(&mut fail).ok();
        if !(1..=20).contains(&p.attempts) {
            fail(format!(
                "attempts = {} must be between 1 and 20",
                p.attempts
            ));
        }
        if !(100..=30_000).contains(&p.timeout_ms) {
            fail(format!(
                "timeout_ms = {} must be between 100 and 30000",
                p.timeout_ms
            ));
        }
        if let (Some(class), Some(target)) = (class, target) {
            specs.push(ProbeSpec {
                name: p.name.clone(),
                class,
                target,
                target_text: p.target.clone(),
                attempts: p.attempts,
                timeout: Duration::from_millis(u64::from(p.timeout_ms)),
            });
        }
    }
    specs
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

    /// Each of these passed the check (it starts with `http://`) and failed only when a report
    /// was sent, every cycle, with a reason about something else: `http://` had reqwest look up
    /// a host called `api`, a query swallowed the endpoint's path into `?x=1/api/v1/reports`.
    #[test]
    fn a_collector_url_that_leads_nowhere_is_refused_up_front() {
        for (url, reason) in [
            ("http://", "empty host"),
            ("http://[::1", "invalid IPv6 address"),
            ("https://collector:99999", "invalid port number"),
            (
                "https://exa mple.gov.vn",
                "invalid international domain name",
            ),
            ("https://collector?x=1", "without ?query or #fragment"),
            ("https://collector/#top", "without ?query or #fragment"),
        ] {
            let raw = RawConfig::from_toml(&format!("collector = {url:?}\n")).unwrap();
            let said = raw.check(Overrides::default()).unwrap_err().to_string();
            assert!(
                said.starts_with(&format!("collector {url:?} ")) && said.contains(reason),
                "{url}: {said}"
            );
        }
        for url in [
            "http://127.0.0.1:8080",
            "https://hatang.example.gov.vn/agents/",
        ] {
            let raw = RawConfig::from_toml(&format!("collector = {url:?}\n")).unwrap();
            assert!(raw.check(Overrides::default()).is_ok(), "{url}");
        }
    }

    #[test]
    fn spool_bounds_are_checked_and_reach_the_spool() {
        let bad = RawConfig::from_toml(
            "spool_max_bytes = 1000\nspool_max_age_secs = 60\nsend_batch_reports = 0\n",
        )
        .unwrap();
        assert_eq!(
            bad.check(Overrides::default()).unwrap_err().0,
            [
                "spool_max_bytes = 1000 must be at least 1048576 (1 MiB)",
                "spool_max_age_secs = 60 must be at least 3600 (an hour)",
                "send_batch_reports = 0 must be between 1 and 10000",
            ]
        );
        let c = RawConfig::from_toml("spool_max_reports = 5\nspool_max_age_secs = 7200\n")
            .unwrap()
            .check(Overrides::default())
            .unwrap();
        assert_eq!(
            c.spool_bounds(),
            Bounds {
                max_reports: 5,
                max_bytes: 64 << 20,
                max_age: Duration::from_secs(7200),
            }
        );
        assert_eq!(c.send_batch_reports, 100);
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
    fn probes_are_read_with_their_defaults() {
        let c = RawConfig::from_toml(
            "[[probes]]\nname = \"portal\"\nkind = \"https\"\nclass = \"datacentre\"\n\
             target = \"https://dichvucong.gov.vn/\"\n\n\
             [[probes]]\nname = \"dns\"\nkind = \"dns\"\nclass = \"internet\"\n\
             target = \"vnexpress.net\"\nattempts = 2\ntimeout_ms = 500\n",
        )
        .unwrap()
        .check(Overrides::default())
        .unwrap();
        assert_eq!(c.probes.len(), 2);
        let (portal, dns) = (&c.probes[0], &c.probes[1]);
        assert_eq!(
            (portal.attempts, portal.timeout),
            (4, Duration::from_secs(2))
        );
        assert_eq!(portal.class, ProbeClass::Datacentre);
        assert_eq!(portal.target_text, "https://dichvucong.gov.vn/");
        assert_eq!(
            dns.target,
            Target::Dns {
                name: "vnexpress.net".into()
            }
        );
        assert_eq!((dns.attempts, dns.timeout), (2, Duration::from_millis(500)));
        assert_eq!(c.speedtest_interval, Some(Duration::from_secs(3600)));
        assert_eq!(c.speedtest_bytes, 4 << 20);
        assert!(!c.inventory_software, "off by default");
    }

    #[test]
    fn the_software_switch_is_read_and_checked() {
        let on = RawConfig::from_toml("inventory_software = true\n")
            .unwrap()
            .check(Overrides::default())
            .unwrap();
        assert!(on.inventory_software);
        let err = RawConfig::from_toml("inventory_software = \"yes\"\n").unwrap_err();
        assert!(err.to_string().contains("invalid type"), "{err}");
    }

    #[test]
    fn every_probe_problem_is_reported_at_once() {
        let raw = RawConfig::from_toml(
            "speedtest_interval_secs = 10\nspeedtest_bytes = 1000000000\n\
             [[probes]]\nname = \"a\"\nkind = \"udp\"\nclass = \"internet\"\ntarget = \"x:1\"\n\
             [[probes]]\nname = \"b\"\nkind = \"tcp\"\nclass = \"lan\"\ntarget = \"portal.gov.vn\"\n\
             [[probes]]\nname = \"a\"\nkind = \"icmp\"\nclass = \"gov-wan\"\ntarget = \"10.0.0.1\"\n\
             attempts = 0\ntimeout_ms = 50\n",
        )
        .unwrap();
        assert_eq!(
            raw.check(Overrides::default()).unwrap_err().0,
            [
                "speedtest_interval_secs = 10 must be 0 (off) or between 300 and 604800",
                "speedtest_bytes = 1000000000 must be between 65536 and 33554432",
                "probes[0] (\"a\"): kind \"udp\" is not one of tcp, http, https, dns, icmp",
                "probes[1] (\"b\"): class \"lan\" is not one of internet, gov-wan, datacentre",
                "probes[1] (\"b\"): target \"portal.gov.vn\" must be host:port (e.g. portal.gov.vn:443)",
                "probes[2] (\"a\"): name is used by an earlier probe",
                "probes[2] (\"a\"): attempts = 0 must be between 1 and 20",
                "probes[2] (\"a\"): timeout_ms = 50 must be between 100 and 30000",
            ]
        );
    }

    #[test]
    fn unknown_probe_keys_are_refused() {
        let err = RawConfig::from_toml(
            "[[probes]]\nname = \"a\"\nkind = \"tcp\"\nclass = \"internet\"\ntarget = \"x:1\"\nport = 1\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown field `port`"), "{err}");
    }

    #[test]
    fn tls_files_come_from_the_file_and_the_command_line() {
        let raw = RawConfig::from_toml(
            "ca_file = \"/etc/hatang/ca.pem\"\nclient_cert_file = \"/etc/hatang/me.crt\"\n\
             client_key_file = \"/etc/hatang/me.key\"\n",
        )
        .unwrap();
        let c = raw
            .check(Overrides {
                tls: TlsFiles {
                    ca_file: Some("/tmp/other-ca.pem".into()),
                    ..TlsFiles::default()
                },
                ..Overrides::default()
            })
            .unwrap();
        assert_eq!(c.tls.ca_file, Some(PathBuf::from("/tmp/other-ca.pem")));
        assert_eq!(
            c.tls.client_key_file,
            Some(PathBuf::from("/etc/hatang/me.key"))
        );
        let half = RawConfig::from_toml("client_key_file = \"me.key\"\n").unwrap();
        assert_eq!(
            half.check(Overrides::default()).unwrap_err().to_string(),
            "client_key_file needs client_cert_file"
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
                gateway_probe: Some(false),
                tls: TlsFiles::default(),
            })
            .unwrap();
        assert_eq!(c.collector.as_deref(), Some("http://a:1"));
        assert_eq!(c.state_dir, PathBuf::from("/y"));
        assert!(!c.gateway_probe);
    }
}
