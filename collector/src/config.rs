//! The collector's configuration: a TOML file, then `HATANG_*` environment variables, then
//! command-line flags, each overriding the one before.
//!
//! Loading is two steps: [`RawConfig`] is what the file says (unknown keys refused), [`Config`]
//! is what was checked, with every problem reported at once.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::Deserialize;

/// The shortest report retention: longer than an agent keeps a report in its spool (7 days by
/// default, `spool_max_age_secs`), so every report an agent may still resend is recognised.
pub const MIN_RETENTION_DAYS: u32 = 8;

/// The annotated example shipped with the collector (`hatang-collector config example`).
pub const EXAMPLE: &str = include_str!("../hatang-collector.example.toml");

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    /// Address and port the HTTP server listens on.
    pub listen: String,
    /// `sqlite://PATH` (embedded, the default) or `postgres://USER:PASSWORD@HOST/DB` (an existing
    /// database several collector replicas may share).
    pub database: String,
    /// A workstation counts as equipment if it reported within this many days.
    pub equipment_window_days: u32,
    /// How long computed figures are reused before the database is asked again.
    pub figures_cache_secs: u64,
    /// Stored reports older than this many days are deleted (0 keeps them all).
    pub report_retention_days: u32,
    /// Keep each report's whole JSON body, not just its id (for forensics; about 2.5 KB each).
    pub keep_report_bodies: bool,
    /// Largest report body accepted, in bytes, before and after decompression.
    pub max_report_bytes: usize,
    /// Target equipment ratio (0..1) per level name, e.g. `province = 0.98`.
    pub targets: BTreeMap<String, f64>,
    /// A probe success counts as connectivity for this many seconds.
    pub broadband_window_secs: u32,
    /// Slowest measured download, in Mbit/s, that still counts as broadband.
    pub broadband_min_mbps: f64,
    /// Rate limits and the clock-skew bound of ingest.
    pub limits: LimitsConfig,
    /// Shared applications the collector checks itself (`[[services]]`).
    pub services: Vec<crate::checks::ServiceConfig>,
    /// Serve HTTPS with these files (`[tls]`); without it, plain HTTP.
    pub tls: Option<TlsConfig>,
    /// A file holding the bearer token `GET /metrics` and `GET /metrics/detail` then require;
    /// without it, both are open.
    pub metrics_token_file: Option<PathBuf>,
    /// The collector's local time as an offset from UTC, `+HH:MM`; the daily figure snapshots
    /// are dated by it and the web UI shows times in it (CSV downloads stay UTC). Vietnam is
    /// `+07:00` all year (no daylight saving time).
    pub utc_offset: String,
    /// The address browsers reach the web UI by when a reverse proxy stands in front of the
    /// collector (`https://hatang.example.gov.vn`): sign-in forms must come from it, and with
    /// `https://` the session cookie is `Secure` although the collector itself speaks HTTP.
    pub public_url: Option<String>,
    /// Load balancers and reverse proxies in front of the collector, as addresses or networks
    /// (`["10.0.0.5", "10.0.1.0/24"]`). A request from one of them is taken to come from the
    /// address it names last in `X-Forwarded-For` (past any others of them), so the limits per
    /// address count each office rather than the proxy. Without it the header is ignored: any
    /// client could write one.
    pub trusted_proxies: Vec<String>,
}

/// The `[tls]` table: PEM files, re-read on SIGHUP and when they change.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The collector's certificate chain, its own certificate first.
    pub cert_file: PathBuf,
    /// The certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// CA certificate(s) that sign the agents' client certificates. When set, the agents'
    /// endpoints (enrolment, reports, speed test) refuse a client without such a certificate.
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
}

/// The `[limits]` table: what one agent or one address may send, and how far an agent's clock
/// may be from the collector's. 0 disables each.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Reports one agent may send per minute (a minute's worth at once, then evenly), duplicates
    /// included; past it, `429` with `Retry-After`.
    pub reports_per_minute_per_agent: u32,
    /// Requests one client address (IPv6: one /64) may make per minute that count against it:
    /// enrolments and reports whose key was refused.
    pub requests_per_minute_per_address: u32,
    /// A report whose `agent_time` is further than this from the collector's clock is refused
    /// (422 `clock_skew`); nearer, it is accepted and its skew recorded.
    pub max_clock_skew_days: u32,
    /// Seconds a client has to send a request's headers, counted from the connection's start or
    /// the end of the previous answer on it; past it, the connection is closed. Longer than an
    /// agent keeps an idle connection (90 s), so the collector never closes one an agent is
    /// about to reuse, and longer than a load balancer's idle upstream connections (60 s in
    /// nginx), for the same reason.
    pub header_read_timeout_secs: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            reports_per_minute_per_agent: 60,
            requests_per_minute_per_address: 600,
            max_clock_skew_days: 365,
            header_read_timeout_secs: 120,
        }
    }
}

impl LimitsConfig {
    /// `max_clock_skew_days` in seconds; `None` when disabled.
    pub fn max_clock_skew_secs(&self) -> Option<i64> {
        (self.max_clock_skew_days > 0).then(|| i64::from(self.max_clock_skew_days) * 86_400)
    }

    /// `header_read_timeout_secs`; `None` when disabled.
    pub fn header_read_timeout(&self) -> Option<std::time::Duration> {
        (self.header_read_timeout_secs > 0)
            .then(|| std::time::Duration::from_secs(self.header_read_timeout_secs.into()))
    }
}

impl Default for RawConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            database: "sqlite://hatang.db".into(),
            equipment_window_days: 30,
            figures_cache_secs: 2,
            report_retention_days: 30,
            keep_report_bodies: false,
            max_report_bytes: 1024 * 1024,
            // The province's plan: 98% of province-level staff, 91% district, 88% commune.
            targets: [("province", 0.98), ("district", 0.91), ("commune", 0.88)]
                .into_iter()
                .map(|(l, t)| (l.to_string(), t))
                .collect(),
            broadband_window_secs: 3600,
            broadband_min_mbps: 2.0,
            limits: LimitsConfig::default(),
            services: Vec::new(),
            tls: None,
            metrics_token_file: None,
            utc_offset: "+07:00".into(),
            public_url: None,
            trusted_proxies: Vec::new(),
        }
    }
}

impl fmt::Debug for RawConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawConfig")
            .field("listen", &self.listen)
            .field("database", &crate::store::redact_url(&self.database))
            .finish_non_exhaustive()
    }
}

/// A checked configuration.
#[derive(Clone, PartialEq)]
pub struct Config {
    pub listen: SocketAddr,
    pub database: String,
    pub equipment_window_secs: i64,
    pub figures_cache_secs: u64,
    /// `None`: reports are kept for ever.
    pub report_retention_secs: Option<i64>,
    pub keep_report_bodies: bool,
    pub max_report_bytes: usize,
    pub targets: BTreeMap<String, f64>,
    pub broadband_window_secs: i64,
    pub broadband_min_bps: f64,
    pub limits: LimitsConfig,
    pub services: Vec<crate::checks::Service>,
    pub tls: Option<TlsConfig>,
    /// SHA-256 digest of the token `/metrics` and `/metrics/detail` require, if any.
    pub metrics_token: Option<Vec<u8>>,
    pub utc_offset: time::UtcOffset,
    pub public_url: Option<PublicUrl>,
    pub trusted_proxies: Vec<IpNet>,
}

/// The checked `public_url`: its origin as a browser's `Origin` header names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    /// `scheme://host[:port]`, lower case, the scheme's default port left out.
    origin: String,
}

impl PublicUrl {
    /// An absolute `http://` or `https://` address with no path beyond `/`, query or fragment.
    pub fn parse(text: &str) -> Result<Self, String> {
        let wrong = || {
            format!(
                "public_url {text:?} must be the address browsers use, such as \
                 \"https://hatang.example.gov.vn\" (scheme and host, no path)"
            )
        };
        let uri: axum::http::Uri = text.parse().map_err(|_| wrong())?;
        let (scheme, default_port) = match uri.scheme_str().map(str::to_ascii_lowercase) {
            Some(s) if s == "https" => ("https", 443),
            Some(s) if s == "http" => ("http", 80),
            _ => return Err(wrong()),
        };
        let authority = uri.authority().ok_or_else(wrong)?;
        if authority.as_str().contains('@')
            || !matches!(uri.path(), "" | "/")
            || uri.query().is_some()
            || text.contains('#')
        {
            return Err(wrong());
        }
        let host = authority.host().to_ascii_lowercase();
        // A port that is written must be one: `https://h:99999` is a mistake, not `https://h`
        // (the `http` crate's own port reading says nothing of a port it cannot read).
        let written = authority.as_str().strip_prefix(authority.host());
        let port = match written.map(|rest| (rest, rest.strip_prefix(':'))) {
            Some(("", _)) => default_port,
            Some((_, Some(port))) => match port.parse::<u16>() {
                Ok(n) if n > 0 => n,
                _ => return Err(wrong()),
            },
            _ => return Err(wrong()),
        };
        let origin = if port == default_port {
            format!("{scheme}://{host}")
        } else {
            format!("{scheme}://{host}:{port}")
        };
        Ok(Self { origin })
    }

    /// Whether a request's `Origin` header names this address.
    pub fn is_origin_of(&self, origin: &str) -> bool {
        origin.eq_ignore_ascii_case(&self.origin)
    }

    pub fn is_https(&self) -> bool {
        self.origin.starts_with("https://")
    }
}

impl Config {
    /// Whether the agents' endpoints require a client certificate.
    pub fn requires_client_certificate(&self) -> bool {
        self.tls
            .as_ref()
            .is_some_and(|t| t.client_ca_file.is_some())
    }
}

// The database URL may carry a password.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("database", &crate::store::redact_url(&self.database))
            .field("equipment_window_secs", &self.equipment_window_secs)
            .field("figures_cache_secs", &self.figures_cache_secs)
            .field("report_retention_secs", &self.report_retention_secs)
            .field("keep_report_bodies", &self.keep_report_bodies)
            .field("max_report_bytes", &self.max_report_bytes)
            .field("targets", &self.targets)
            .field("broadband_window_secs", &self.broadband_window_secs)
            .field("broadband_min_bps", &self.broadband_min_bps)
            .field("limits", &self.limits)
            .field("services", &self.services)
            .field("tls", &self.tls)
            .field(
                "metrics_token",
                &self.metrics_token.as_ref().map(|_| "<redacted>"),
            )
            .field("utc_offset", &self.utc_offset)
            .field("public_url", &self.public_url)
            .field("trusted_proxies", &self.trusted_proxies)
            .finish()
    }
}

/// Every problem found in a configuration, one per line.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.join("; "))]
pub struct ConfigError(pub Vec<String>);

/// Values given on the command line or in the environment; `None` keeps the file's value.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<String>,
    pub database: Option<String>,
}

impl RawConfig {
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text)
            .map_err(|e| ConfigError(vec![hatang_protocol::located(text, e.span(), e.message())]))
    }

    /// Reads `path` if given; without a file, the defaults.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(vec![format!("cannot read {}: {e}", path.display())]))?;
        Self::from_toml(&text).map_err(|ConfigError(errors)| {
            ConfigError(
                errors
                    .into_iter()
                    .map(|e| format!("{}: {e}", path.display()))
                    .collect(),
            )
        })
    }

    pub fn check(self, overrides: &Overrides) -> Result<Config, ConfigError> {
        let mut errors = Vec::new();
        let listen_text = overrides.listen.as_ref().unwrap_or(&self.listen);
        let listen = listen_text.parse::<SocketAddr>().unwrap_or_else(|_| {
            errors.push(format!(
                "listen {listen_text:?} is not an address such as 0.0.0.0:8080"
            ));
            SocketAddr::from(([127, 0, 0, 1], 0))
        });
        let database = overrides.database.clone().unwrap_or(self.database);
        if !(database.starts_with("sqlite:") || database.starts_with("postgres")) {
            errors.push(format!(
                "database {:?} must start with sqlite:// or postgres://",
                crate::store::redact_url(&database)
            ));
        }
        if self.equipment_window_days == 0 {
            errors.push("equipment_window_days must be at least 1".into());
        }
        if (1..MIN_RETENTION_DAYS).contains(&self.report_retention_days) {
            errors.push(format!(
                "report_retention_days must be 0 (keep every report) or at least {MIN_RETENTION_DAYS}: \
                 an agent resends a report from its spool for up to 7 days, and the collector must \
                 still have it then to answer \"duplicate\" instead of storing it twice"
            ));
        }
        if self.max_report_bytes < 4096 {
            errors.push("max_report_bytes must be at least 4096".into());
        }
        for (level, target) in &self.targets {
            if !(target.is_finite() && (0.0..=1.0).contains(target)) {
                errors.push(format!(
                    "targets.{level} = {target} must be a ratio between 0 and 1 (98% is 0.98)"
                ));
            }
        }
        if self.broadband_window_secs < 60 {
            errors.push("broadband_window_secs must be at least 60".into());
        }
        if !(self.broadband_min_mbps.is_finite() && self.broadband_min_mbps >= 0.0) {
            errors.push("broadband_min_mbps must be a number of Mbit/s, 0 or more".into());
        }
        // Real offsets run from -12:00 to +14:00; the parser alone would take up to ±25:59.
        let utc_offset = time::UtcOffset::parse(
            &self.utc_offset,
            time::macros::format_description!("[offset_hour sign:mandatory]:[offset_minute]"),
        )
        .ok()
        .filter(|o| (-12 * 3600..=14 * 3600).contains(&o.whole_seconds()))
        .unwrap_or_else(|| {
            errors.push(format!(
                "utc_offset {:?} must be an offset such as \"+07:00\"",
                self.utc_offset
            ));
            time::UtcOffset::UTC
        });
        let mut services = Vec::new();
        for entry in &self.services {
            if services
                .iter()
                .any(|s: &crate::checks::Service| s.spec.name == entry.name)
            {
                errors.push(format!("services: the name {:?} appears twice", entry.name));
                continue;
            }
            match entry.check() {
                Ok(service) => services.push(service),
                Err(e) => errors.push(e),
            }
        }
        let metrics_token = self
            .metrics_token_file
            .as_deref()
            .and_then(|path| read_token(path).map_err(|e| errors.push(e)).ok());
        let public_url = self
            .public_url
            .as_deref()
            .and_then(|text| PublicUrl::parse(text).map_err(|e| errors.push(e)).ok());
        let trusted_proxies = self
            .trusted_proxies
            .iter()
            .filter_map(|text| parse_proxy(text).map_err(|e| errors.push(e)).ok())
            .collect();
        if !errors.is_empty() {
            return Err(ConfigError(errors));
        }
        Ok(Config {
            listen,
            database,
            equipment_window_secs: i64::from(self.equipment_window_days) * 86_400,
            figures_cache_secs: self.figures_cache_secs,
            report_retention_secs: (self.report_retention_days > 0)
                .then(|| i64::from(self.report_retention_days) * 86_400),
            keep_report_bodies: self.keep_report_bodies,
            max_report_bytes: self.max_report_bytes,
            targets: self.targets,
            broadband_window_secs: i64::from(self.broadband_window_secs),
            broadband_min_bps: self.broadband_min_mbps * 1e6,
            limits: self.limits,
            services,
            tls: self.tls,
            metrics_token,
            utc_offset,
            public_url,
            trusted_proxies,
        })
    }
}

/// One `trusted_proxies` entry: an address (the one machine) or a network in CIDR notation.
fn parse_proxy(text: &str) -> Result<IpNet, String> {
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map(|net| net.trunc())
        .map_err(|_| {
            format!(
                "trusted_proxies: {text:?} is neither an address nor a network \
                 (such as \"10.0.0.5\" or \"10.0.1.0/24\")"
            )
        })
}

/// The digest of the token in `path`: one line of printable ASCII without spaces, 16 to 256
/// characters (`openssl rand -hex 32` makes a good one).
fn read_token(path: &Path) -> Result<Vec<u8>, String> {
    let at = |problem: &str| format!("metrics_token_file {}: {problem}", path.display());
    let text = std::fs::read_to_string(path).map_err(|e| at(&e.to_string()))?;
    let token = text.trim();
    if !(16..=256).contains(&token.len()) || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(at(
            "must hold one token of 16 to 256 printable characters without spaces",
        ));
    }
    Ok(crate::secret::digest(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_example_is_valid_and_states_the_defaults() {
        let example = RawConfig::from_toml(EXAMPLE).unwrap();
        let defaults = RawConfig::default();
        let checked = example.check(&Overrides::default()).unwrap();
        assert_eq!(checked, defaults.check(&Overrides::default()).unwrap());
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let raw = RawConfig::from_toml(
            "listen = \"nowhere\"\nequipment_window_days = 0\n[targets]\ncommune = 88\n",
        )
        .unwrap();
        let err = raw.check(&Overrides::default()).unwrap_err().to_string();
        assert_eq!(
            err,
            "listen \"nowhere\" is not an address such as 0.0.0.0:8080; \
             equipment_window_days must be at least 1; \
             targets.commune = 88 must be a ratio between 0 and 1 (98% is 0.98)"
        );
    }

    #[test]
    fn the_utc_offset_is_hours_and_minutes_with_a_sign() {
        let offset = |text: &str| {
            RawConfig::from_toml(&format!("utc_offset = \"{text}\"\n"))
                .unwrap()
                .check(&Overrides::default())
                .map(|c| c.utc_offset.whole_seconds())
                .map_err(|e| e.to_string())
        };
        assert_eq!(offset("+07:00"), Ok(7 * 3600));
        assert_eq!(offset("-03:30"), Ok(-(3 * 3600 + 1800)));
        assert_eq!(offset("+00:00"), Ok(0));
        for bad in ["7", "+7", "UTC+7", "Asia/Ho_Chi_Minh", "+25:00"] {
            assert_eq!(
                offset(bad),
                Err(format!(
                    "utc_offset {bad:?} must be an offset such as \"+07:00\""
                )),
                "{bad}"
            );
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = RawConfig::from_toml("listne = \"0.0.0.0:80\"\n")
            .err()
            .unwrap();
        assert!(err.to_string().contains("unknown field `listne`"), "{err}");
    }

    #[test]
    fn a_bad_value_is_named_by_its_line_and_key() {
        let text = "listen = \"127.0.0.1:9000\"\n\n[limits]\nmax_clock_skew_days = \"365\"\n";
        let err = RawConfig::from_toml(text).err().unwrap();
        assert_eq!(
            err.to_string(),
            "line 4 (max_clock_skew_days = \"365\"): invalid type: string \"365\", expected u32"
        );
        let err = RawConfig::from_toml("listen = \"a\"\nlisten = \"b\"\n")
            .err()
            .unwrap();
        assert_eq!(err.to_string(), "line 2 (listen = \"b\"): duplicate key");
    }

    #[test]
    fn overrides_win_over_the_file() {
        let raw = RawConfig::from_toml("listen = \"0.0.0.0:9000\"\n").unwrap();
        let c = raw
            .check(&Overrides {
                listen: Some("127.0.0.1:7000".into()),
                database: Some("sqlite:///tmp/x.db".into()),
            })
            .unwrap();
        assert_eq!(c.listen.port(), 7000);
        assert_eq!(c.database, "sqlite:///tmp/x.db");
    }

    #[test]
    fn report_retention_is_off_or_longer_than_an_agent_spool() {
        let check = |text: &str| {
            RawConfig::from_toml(text)
                .unwrap()
                .check(&Overrides::default())
        };
        assert_eq!(
            check("").unwrap().report_retention_secs,
            Some(30 * 86_400),
            "a month by default"
        );
        assert_eq!(
            check("report_retention_days = 0\n")
                .unwrap()
                .report_retention_secs,
            None
        );
        assert_eq!(
            check("report_retention_days = 8\n")
                .unwrap()
                .report_retention_secs,
            Some(8 * 86_400)
        );
        let refused = check("report_retention_days = 7\n")
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("report_retention_days must be 0 (keep every report) or at least 8"),
            "{refused}"
        );
    }

    #[test]
    fn limits_are_read_from_their_table_and_zero_disables() {
        let raw = RawConfig::from_toml(
            "[limits]\nreports_per_minute_per_agent = 0\nmax_clock_skew_days = 0\n\
             header_read_timeout_secs = 0\n",
        )
        .unwrap();
        let limits = raw.check(&Overrides::default()).unwrap().limits;
        assert_eq!(
            limits,
            LimitsConfig {
                reports_per_minute_per_agent: 0,
                requests_per_minute_per_address: 600,
                max_clock_skew_days: 0,
                header_read_timeout_secs: 0,
            }
        );
        assert_eq!(limits.max_clock_skew_secs(), None);
        assert_eq!(limits.header_read_timeout(), None);
        assert_eq!(
            LimitsConfig::default().header_read_timeout(),
            Some(std::time::Duration::from_secs(120))
        );
        assert_eq!(
            LimitsConfig::default().max_clock_skew_secs(),
            Some(365 * 86_400)
        );
        let err = RawConfig::from_toml("[limits]\nreports_per_minute = 5\n")
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .contains("unknown field `reports_per_minute`"),
            "{err}"
        );
        let err = RawConfig::from_toml("[limits]\nreports_per_minute_per_agent = -1\n")
            .err()
            .unwrap();
        assert!(err.to_string().contains("invalid value"), "{err}");
    }

    #[test]
    fn tls_and_the_metrics_token_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("metrics.token");
        std::fs::write(&token, "s3cret-metrics-token-0123\n").unwrap();
        let text = format!(
            "metrics_token_file = {token:?}\n[tls]\ncert_file = \"/etc/hatang/cert.pem\"\n\
             key_file = \"/etc/hatang/key.pem\"\n"
        );
        let c = RawConfig::from_toml(&text)
            .unwrap()
            .check(&Overrides::default())
            .unwrap();
        assert_eq!(
            c.metrics_token,
            Some(crate::secret::digest("s3cret-metrics-token-0123"))
        );
        assert!(!format!("{c:?}").contains("s3cret"));
        let tls = c.tls.as_ref().unwrap();
        assert_eq!(tls.key_file, PathBuf::from("/etc/hatang/key.pem"));
        assert!(!c.requires_client_certificate());

        std::fs::write(&token, "short\n").unwrap();
        let missing = dir.path().join("absent.token");
        for (file, problem) in [
            (
                &token,
                "must hold one token of 16 to 256 printable characters",
            ),
            (&missing, "No such file"),
        ] {
            let raw = RawConfig::from_toml(&format!("metrics_token_file = {file:?}\n")).unwrap();
            let err = raw.check(&Overrides::default()).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("metrics_token_file {}: ", file.display()))
                    && err.contains(problem),
                "{err}"
            );
        }
        let err = RawConfig::from_toml("[tls]\ncert_file = \"c.pem\"\n")
            .err()
            .unwrap();
        assert!(
            err.to_string().contains("missing field `key_file`"),
            "{err}"
        );
    }

    #[test]
    fn debug_hides_database_passwords() {
        let c = RawConfig::default()
            .check(&Overrides {
                database: Some("postgres://u:hunter2@db/h".into()),
                ..Overrides::default()
            })
            .unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn trusted_proxies_are_addresses_or_networks() {
        let raw = RawConfig::from_toml(
            "trusted_proxies = [\"10.0.0.5\", \"10.0.1.7/24\", \"2001:db8::/48\"]\n",
        )
        .unwrap();
        let config = raw.check(&Overrides::default()).unwrap();
        let nets: Vec<String> = config
            .trusted_proxies
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(nets, ["10.0.0.5/32", "10.0.1.0/24", "2001:db8::/48"]);
        let raw =
            RawConfig::from_toml("trusted_proxies = [\"proxy.local\", \"10.0.0.0/33\"]\n").unwrap();
        let ConfigError(errors) = raw.check(&Overrides::default()).unwrap_err();
        assert_eq!(
            errors,
            [
                "trusted_proxies: \"proxy.local\" is neither an address nor a network (such as \"10.0.0.5\" or \"10.0.1.0/24\")",
                "trusted_proxies: \"10.0.0.0/33\" is neither an address nor a network (such as \"10.0.0.5\" or \"10.0.1.0/24\")",
            ]
        );
    }

    #[test]
    fn the_public_url_is_kept_as_the_origin_a_browser_sends() {
        for (text, origin) in [
            (
                "https://Hatang.Example.gov.vn",
                "https://hatang.example.gov.vn",
            ),
            (
                "https://hatang.example.gov.vn:443/",
                "https://hatang.example.gov.vn",
            ),
            ("http://10.0.0.5:8080", "http://10.0.0.5:8080"),
            ("https://[::1]:8443", "https://[::1]:8443"),
        ] {
            assert_eq!(PublicUrl::parse(text).map(|u| u.origin), Ok(origin.into()));
        }
        assert!(PublicUrl::parse("https://h.example").unwrap().is_https());
        assert!(!PublicUrl::parse("http://h.example").unwrap().is_https());
        for wrong in [
            "hatang.example.gov.vn",
            "ftp://hatang.example.gov.vn",
            "https://hatang.example.gov.vn/hatang",
            "https://hatang.example.gov.vn/?a=1",
            "https://user@hatang.example.gov.vn",
            "https://hatang.example.gov.vn/#top",
            "https://hatang.example.gov.vn:99999",
            "https://hatang.example.gov.vn:0",
        ] {
            let e = PublicUrl::parse(wrong).unwrap_err();
            assert!(
                e.starts_with(&format!("public_url {wrong:?} must be")),
                "{e}"
            );
        }
        let raw = RawConfig::from_toml("public_url = \"hatang.example.gov.vn\"\n").unwrap();
        let err = raw.check(&Overrides::default()).unwrap_err().to_string();
        assert!(
            err.starts_with("public_url \"hatang.example.gov.vn\" must be"),
            "{err}"
        );
    }
}
