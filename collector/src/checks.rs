//! Service checks: the collector itself probes the shared applications the data centre hosts
//! (public-service portal, one-stop system, data-integration platform, e-document exchange…)
//! with the same measurements the agents use ([`hatang_probe`]).
//!
//! Each replica checks on its own and keeps only the latest result per service in memory: a
//! service check is a live observation, like a blackbox exporter's, not evidence to store.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hatang_probe::{ProbeSpec, Target};
use hatang_protocol::ProbeClass;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};

/// One `[[services]]` entry of the collector's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// Short name, the `service` label: `portal`, `one-stop`, `lgsp`, `edoc`.
    pub name: String,
    /// `https://…` / `http://…` (status, latency, certificate expiry) or `host:port` (TCP).
    pub target: String,
    /// Seconds between two checks.
    #[serde(default = "default_interval")]
    pub interval_secs: u32,
    /// Seconds one check may take, looking the target's name up included.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u32,
    /// For an `https://` target: a PEM file of one or more CA certificates trusted for it
    /// besides the platform's roots (a data centre's private CA).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

fn default_interval() -> u32 {
    60
}

fn default_timeout() -> u32 {
    10
}

/// A checked service: what to probe and how often.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub spec: ProbeSpec,
    pub interval: Duration,
}

impl ServiceConfig {
    /// The probe this entry describes, or what is wrong with it.
    pub fn check(&self) -> Result<Service, String> {
        let name = &self.name;
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(format!(
                "services: name {name:?} must be 1-64 letters, digits, '-', '_' or '.'"
            ));
        }
        let kind = match self.target.split_once("://") {
            Some((scheme, _)) => scheme,
            None => "tcp",
        };
        let mut target =
            Target::parse(kind, &self.target).map_err(|e| format!("services.{name}: {e}"))?;
        if let Some(ca_file) = &self.ca_file {
            match &mut target {
                Target::Http { url, extra_roots } if url.scheme() == "https" => {
                    *extra_roots = ca_certificates(ca_file).map_err(|e| {
                        format!("services.{name}: ca_file {}: {e}", ca_file.display())
                    })?;
                }
                _ => {
                    return Err(format!(
                        "services.{name}: ca_file is for https:// targets only"
                    ));
                }
            }
        }
        if !(5..=86_400).contains(&self.interval_secs) {
            return Err(format!(
                "services.{name}: interval_secs must be between 5 and 86400"
            ));
        }
        if !(1..=120).contains(&self.timeout_secs) || self.timeout_secs > self.interval_secs {
            return Err(format!(
                "services.{name}: timeout_secs must be between 1 and 120 and not above interval_secs"
            ));
        }
        Ok(Service {
            spec: ProbeSpec {
                name: name.clone(),
                class: ProbeClass::Datacentre,
                target,
                target_text: self.target.clone(),
                attempts: 1,
                timeout: Duration::from_secs(u64::from(self.timeout_secs)),
            },
            interval: Duration::from_secs(u64::from(self.interval_secs)),
        })
    }
}

/// The certificates in the PEM file at `path`, each one a CA rustls can trust.
fn ca_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = std::fs::read(path).map_err(|e| e.to_string())?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    if certs.is_empty() {
        return Err("no PEM certificate in it".into());
    }
    let mut roots = rustls::RootCertStore::empty();
    for cert in &certs {
        roots
            .add(cert.clone())
            .map_err(|e| format!("not a usable CA certificate: {e}"))?;
    }
    Ok(certs)
}

/// The latest check of one service.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceResult {
    pub name: String,
    pub target: String,
    pub up: bool,
    pub latency_seconds: Option<f64>,
    pub http_status: Option<u16>,
    /// The certificate's `notAfter`, Unix seconds, for `https` targets (read even when the
    /// certificate is not trusted, so an expiring self-signed one is still seen).
    pub tls_not_after: Option<i64>,
    pub error: Option<String>,
    /// Unix seconds.
    pub checked_at: i64,
}

/// The latest result of every configured service, shared by the checkers and the scrapes.
#[derive(Debug, Default, Clone)]
pub struct ServiceStatus(Arc<RwLock<BTreeMap<String, ServiceResult>>>);

impl ServiceStatus {
    pub fn snapshot(&self) -> Vec<ServiceResult> {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    fn record(&self, result: ServiceResult) {
        self.0
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(result.name.clone(), result);
    }
}

/// Checks one service now and records the result.
pub async fn check_once(service: &Service, status: &ServiceStatus) {
    let deadline = tokio::time::Instant::now() + service.spec.timeout + Duration::from_secs(1);
    let probe = hatang_probe::run(&service.spec, deadline).await;
    let up = probe.successes > 0;
    if !up {
        tracing::warn!(
            service = %probe.name,
            target = %probe.target,
            error = probe.error.as_deref().unwrap_or("no answer"),
            "service check failed"
        );
    }
    status.record(ServiceResult {
        up,
        latency_seconds: probe.rtt_avg_seconds,
        http_status: probe.http_status,
        tls_not_after: probe.tls_not_after.map(|t| t.unix_timestamp()),
        error: probe.error,
        checked_at: crate::now(),
        name: probe.name,
        target: probe.target,
    });
}

/// Starts checking `services` on a thread of their own; they stop when the returned handle is
/// dropped.
///
/// A thread with its own single-threaded runtime, not a task on the server's: the probes'
/// futures are not `Send` (they borrow their prober across attempts), and a thread also keeps
/// slow or hanging targets from ever occupying the API's workers.
pub fn spawn(services: Vec<Service>, status: ServiceStatus) -> std::io::Result<Checks> {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    if services.is_empty() {
        return Ok(Checks { _stop: stop });
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("service-checks".into())
        .spawn(move || {
            runtime.block_on(async {
                tokio::select! {
                    () = run(services, status) => {}
                    _ = stopped => {}
                }
            });
        })?;
    Ok(Checks { _stop: stop })
}

/// Running service checks; dropping it stops them.
#[derive(Debug)]
pub struct Checks {
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// Checks every service on its interval, forever.
async fn run(services: Vec<Service>, status: ServiceStatus) {
    let checkers = services.into_iter().map(|service| {
        let status = status.clone();
        async move {
            let mut ticker = tokio::time::interval(service.interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                check_once(&service, &status).await;
            }
        }
    });
    futures_util::future::join_all(checkers).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, target: &str) -> ServiceConfig {
        ServiceConfig {
            name: name.into(),
            target: target.into(),
            interval_secs: 60,
            timeout_secs: 10,
            ca_file: None,
        }
    }

    #[test]
    fn the_kind_follows_the_target() {
        let https = entry("portal", "https://dichvucong.phutho.gov.vn/")
            .check()
            .unwrap();
        assert!(matches!(https.spec.target, Target::Http { .. }));
        let tcp = entry("lgsp", "10.25.0.8:8243").check().unwrap();
        assert_eq!(
            tcp.spec.target,
            Target::Tcp {
                host: "10.25.0.8".into(),
                port: 8243
            }
        );
        assert_eq!(tcp.interval, Duration::from_secs(60));
    }

    #[test]
    fn bad_entries_say_what_is_wrong() {
        assert_eq!(
            entry("portal", "dichvucong.phutho.gov.vn")
                .check()
                .unwrap_err(),
            "services.portal: target \"dichvucong.phutho.gov.vn\" must be host:port (e.g. portal.gov.vn:443)"
        );
        assert!(
            entry("cổng", "a:1")
                .check()
                .unwrap_err()
                .contains("must be 1-64 letters")
        );
        let mut slow = entry("edoc", "edoc:443");
        slow.timeout_secs = 120;
        assert!(
            slow.check()
                .unwrap_err()
                .contains("not above interval_secs")
        );
    }

    #[test]
    fn a_ca_file_must_hold_a_certificate_and_go_with_https() {
        let dir = tempfile::tempdir().unwrap();
        let with_ca = |target: &str, file: &str| {
            let mut e = entry("portal", target);
            e.ca_file = Some(dir.path().join(file));
            e.check().map(|s| s.spec.target)
        };
        let missing = dir.path().join("absent.pem");
        let err = with_ca("https://portal.example.gov.vn/", "absent.pem").unwrap_err();
        assert!(
            err.starts_with(&format!("services.portal: ca_file {}: ", missing.display())),
            "{err}"
        );
        std::fs::write(dir.path().join("empty.pem"), "not a certificate\n").unwrap();
        assert!(
            with_ca("https://portal.example.gov.vn/", "empty.pem")
                .unwrap_err()
                .ends_with("empty.pem: no PEM certificate in it")
        );
        std::fs::write(
            dir.path().join("junk.pem"),
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        assert!(
            with_ca("https://portal.example.gov.vn/", "junk.pem")
                .unwrap_err()
                .contains("junk.pem: not a usable CA certificate")
        );
        for target in ["http://portal.example.gov.vn/", "portal.example.gov.vn:443"] {
            assert_eq!(
                with_ca(target, "absent.pem").unwrap_err(),
                "services.portal: ca_file is for https:// targets only",
                "{target}"
            );
        }
    }
}
