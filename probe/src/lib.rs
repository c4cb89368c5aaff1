//! Connectivity measurements shared by the agent's probes and the collector's service checks:
//! TCP connect, HTTP(S) with status and certificate expiry, DNS and ICMP, each run as several
//! attempts against one target, and the default-gateway check.
//!
//! A probe makes several attempts against one target, one after another with a short gap, and
//! its result is the arithmetic over their round-trip times ([`Stats`]): loss, min/avg/max and
//! jitter. All probes of a cycle run concurrently under one deadline, so a dead target costs
//! the cycle its timeout once, not once per attempt per probe; attempts the deadline leaves no
//! room for are not made, and the result says so. Nothing here panics on what the network does:
//! every failure becomes an attempt's error text.

mod dns;
mod http;
#[cfg(not(windows))]
mod icmp;
// surge-ping's sockets do not work on Windows; the ICMP helper API does, unprivileged.
#[cfg(windows)]
#[path = "icmp_windows.rs"]
mod icmp;
mod tcp;
#[cfg(feature = "testing")]
pub mod testing;

/// When a DER certificate expires (`notAfter`); the collector reads its own certificate with it.
pub use http::{is_ca as tls_is_ca, not_after as tls_not_after};

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hatang_protocol::{GatewayCheck, ProbeClass, ProbeKind, ProbeResult, SpeedTest};
use rustls::pki_types::CertificateDer;
use time::OffsetDateTime;
use tokio::time::Instant;

/// Pause between two attempts of one probe: back-to-back attempts would measure one burst.
const ATTEMPT_GAP: Duration = Duration::from_millis(100);

/// Longest error text kept from one attempt; the rest of a long error chain is noise.
const MAX_ERROR_BYTES: usize = 200;

/// The gateway gets this many attempts, each this long: a LAN gateway answers in milliseconds.
const GATEWAY_ATTEMPTS: u32 = 4;
const GATEWAY_TIMEOUT: Duration = Duration::from_secs(1);

/// Ports a gateway is asked on: DNS forwarder, web admin page. Routers rarely drop all three.
const GATEWAY_PORTS: [u16; 3] = [53, 80, 443];

/// What a probe reaches, parsed from `kind` and `target` in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Connect time to `host:port`.
    Tcp { host: String, port: u16 },
    /// Time to the response headers of a GET; `https://` URLs also report certificate expiry.
    Http {
        url: reqwest::Url,
        /// CA certificates trusted for this target besides the platform's roots (a private
        /// CA's); none from [`Target::parse`].
        extra_roots: Vec<CertificateDer<'static>>,
    },
    /// Time to resolve a name.
    Dns { name: String },
    /// ICMP echo where the process may send it, else a TCP connect (see [`icmp`]).
    Icmp { host: String },
}

impl Target {
    /// Parses a configured `kind` and `target`; the error says what is wrong, for the config
    /// error list.
    pub fn parse(kind: &str, target: &str) -> Result<Self, String> {
        match kind {
            "tcp" => {
                let (host, port) = split_host_port(target).ok_or_else(|| {
                    format!("target {target:?} must be host:port (e.g. portal.gov.vn:443)")
                })?;
                Ok(Self::Tcp { host, port })
            }
            "http" | "https" => {
                let url = reqwest::Url::parse(target)
                    .map_err(|e| format!("target {target:?} is not a URL: {e}"))?;
                if url.scheme() != kind {
                    return Err(format!(
                        "target {target:?} must be an {kind}:// URL for kind {kind:?}"
                    ));
                }
                if url.host_str().is_none_or(str::is_empty) {
                    return Err(format!("target {target:?} has no host"));
                }
                Ok(Self::Http {
                    url,
                    extra_roots: Vec::new(),
                })
            }
            "dns" | "icmp" => {
                let host = target.trim();
                if host.is_empty() || host.contains(['/', ' ']) || split_host_port(host).is_some() {
                    return Err(format!(
                        "target {target:?} must be a host name or address, without port or path"
                    ));
                }
                let host = host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned();
                Ok(if kind == "dns" {
                    Self::Dns { name: host }
                } else {
                    Self::Icmp { host }
                })
            }
            other => Err(format!(
                "kind {other:?} is not one of tcp, http, https, dns, icmp"
            )),
        }
    }

    fn kind(&self) -> ProbeKind {
        match self {
            Self::Tcp { .. } => ProbeKind::Tcp,
            Self::Http { .. } => ProbeKind::Http,
            Self::Dns { .. } => ProbeKind::Dns,
            Self::Icmp { .. } => ProbeKind::Icmp,
        }
    }
}

/// `host:port` or `[v6]:port` with a non-zero port; a bare IPv6 address is not one.
fn split_host_port(text: &str) -> Option<(String, u16)> {
    let (host, port) = text.rsplit_once(':')?;
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.strip_suffix(']')?,
        None if host.contains(':') => return None,
        None => host,
    };
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    (!host.is_empty()).then(|| (host.to_owned(), port))
}

/// One configured probe, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSpec {
    pub name: String,
    pub class: ProbeClass,
    pub target: Target,
    /// The target as written in the configuration, reported back verbatim.
    pub target_text: String,
    pub attempts: u32,
    pub timeout: Duration,
}

/// How long one cycle's probes may take: half the interval, at most a minute, so that a dead
/// target never delays the next report.
pub fn budget(interval: Duration) -> Duration {
    (interval / 2).min(Duration::from_secs(60))
}

/// What a cycle's probing found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evidence {
    pub probes: Vec<ProbeResult>,
    pub gateway: Option<GatewayCheck>,
}

/// Runs every probe, and the gateway check when a gateway is known, concurrently; returns by
/// `budget` plus at most one attempt's bookkeeping, whatever the targets do.
pub async fn gather(specs: &[ProbeSpec], gateway: Option<IpAddr>, budget: Duration) -> Evidence {
    let deadline = Instant::now() + budget;
    let probes = futures_util::future::join_all(specs.iter().map(|s| run(s, deadline)));
    let gateway = async {
        match gateway {
            Some(address) => Some(check_gateway(address, deadline).await),
            None => None,
        }
    };
    let (probes, gateway) = tokio::join!(probes, gateway);
    Evidence { probes, gateway }
}

/// One line for a person: `LAN ok, internet ok, 23 Mbit/s down / 9.5 up to the data centre,
/// loss 0%`. `lan` is whether an interface is up with the default route; internet is "ok" when
/// any internet-class probe got an answer; loss counts every attempt of every probe and the
/// gateway.
pub fn verdict(lan: bool, evidence: &Evidence, speed: Option<&SpeedTest>) -> String {
    let mut parts = Vec::new();
    parts.push(match (&evidence.gateway, lan) {
        (_, false) => "no LAN (no interface up with a default route)".to_owned(),
        (Some(g), true) if g.successes == 0 => format!("LAN up but gateway {} silent", g.address),
        (_, true) => "LAN ok".to_owned(),
    });
    let internet: Vec<_> = evidence
        .probes
        .iter()
        .filter(|p| p.class == ProbeClass::Internet)
        .collect();
    parts.push(if internet.is_empty() {
        "internet not probed".to_owned()
    } else if internet.iter().any(|p| p.successes > 0) {
        "internet ok".to_owned()
    } else {
        "internet down".to_owned()
    });
    if let Some(s) = speed {
        let mbit = |bps: Option<f64>| bps.map_or_else(|| "?".to_owned(), mbit_per_second);
        parts.push(
            if s.download_bits_per_second.is_none() && s.upload_bits_per_second.is_none() {
                "speed test to the data centre failed".to_owned()
            } else {
                format!(
                    "{} Mbit/s down / {} up to the data centre",
                    mbit(s.download_bits_per_second),
                    mbit(s.upload_bits_per_second)
                )
            },
        );
    }
    let (attempts, successes) = evidence
        .probes
        .iter()
        .map(|p| (p.attempts, p.successes))
        .chain(evidence.gateway.iter().map(|g| (g.attempts, g.successes)))
        .fold((0u64, 0u64), |(a, s), (pa, ps)| {
            (a + u64::from(pa), s + u64::from(ps))
        });
    if attempts > 0 {
        let loss = 100.0 * (attempts - successes.min(attempts)) as f64 / attempts as f64;
        parts.push(format!("loss {loss:.0}%"));
    }
    parts.join(", ")
}

/// `23`, `9.5`: whole megabits from 10 Mbit/s up, one decimal below.
pub fn mbit_per_second(bits_per_second: f64) -> String {
    let mbit = bits_per_second / 1e6;
    if mbit >= 10.0 {
        format!("{mbit:.0}")
    } else {
        format!("{mbit:.1}")
    }
}

/// Runs one probe's attempts, stopping at `deadline`.
pub async fn run(spec: &ProbeSpec, deadline: Instant) -> ProbeResult {
    measure(spec, deadline, tcp::resolve).await
}

/// [`run`], looking names up with `resolve` (the system's resolver, or a test's).
async fn measure(
    spec: &ProbeSpec,
    deadline: Instant,
    resolve: impl AsyncFn(&str, u16) -> Result<SocketAddr, String>,
) -> ProbeResult {
    let resolve = async |host: &str, port: u16| {
        resolve_within(&resolve, host, port, spec.timeout, deadline).await
    };
    let mut kind = spec.target.kind();
    let mut http_status = None;
    let mut tls_not_after = None;
    let mut note = None;
    let stats = match &spec.target {
        Target::Tcp { host, port } => match resolve(host, *port).await {
            Ok(addr) => repeat(spec.attempts, spec.timeout, deadline, async || {
                tcp::connect(addr).await
            })
            .await
            .stats(),
            Err(e) => failed(spec.attempts, e),
        },
        Target::Http { url, extra_roots } => {
            let stats = match http::Prober::new(url.clone(), extra_roots) {
                Ok(mut prober) => {
                    let stats = repeat(spec.attempts, spec.timeout, deadline, async || {
                        prober.attempt().await
                    })
                    .await
                    .stats();
                    http_status = prober.last_status;
                    stats
                }
                Err(e) => failed(spec.attempts, e),
            };
            if url.scheme() == "https" {
                tls_not_after = certificate_expiry(url, spec.timeout, deadline).await;
            }
            stats
        }
        Target::Dns { name } => repeat(spec.attempts, spec.timeout, deadline, async || {
            dns::resolve(name).await
        })
        .await
        .stats(),
        Target::Icmp { host } => match resolve(host, 0).await {
            Err(e) => failed(spec.attempts, e),
            Ok(addr) => match icmp::Pinger::new(addr.ip(), spec.timeout).await {
                Ok(mut pinger) => repeat(spec.attempts, spec.timeout, deadline, async || {
                    pinger.attempt().await
                })
                .await
                .stats(),
                Err(why) => {
                    // The result says how the target was really reached: by TCP.
                    kind = ProbeKind::Tcp;
                    note = Some(format!(
                        "icmp not permitted here ({why}); measured by TCP connect to port 443/80 instead"
                    ));
                    repeat(spec.attempts, spec.timeout, deadline, async || {
                        tcp::answers(addr.ip(), &icmp::FALLBACK_PORTS).await
                    })
                    .await
                    .stats()
                }
            },
        },
    };
    let error = match (note, stats.error) {
        (Some(note), Some(e)) => Some(bounded(format!("{note}; last failure: {e}"), 2)),
        (note, e) => note.or(e),
    };
    ProbeResult {
        name: spec.name.clone(),
        kind,
        class: spec.class,
        target: spec.target_text.clone(),
        attempts: stats.attempts,
        successes: stats.successes,
        rtt_min_seconds: stats.min,
        rtt_avg_seconds: stats.avg,
        rtt_max_seconds: stats.max,
        jitter_seconds: stats.jitter,
        error,
        http_status,
        tls_not_after,
    }
}

/// `host` looked up by `resolve` within one attempt's `timeout` and before `deadline`. The
/// lookup is made once, before the attempts, so that their times leave DNS out; but it counts
/// against the same limits, so a resolver that never answers fails the probe like a silent
/// target does instead of holding it (and a service check) past its timeout.
async fn resolve_within(
    resolve: &impl AsyncFn(&str, u16) -> Result<SocketAddr, String>,
    host: &str,
    port: u16,
    timeout: Duration,
    deadline: Instant,
) -> Result<SocketAddr, String> {
    let started = Instant::now();
    let until = (started + timeout).min(deadline);
    tokio::time::timeout_at(until, resolve(host, port))
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "cannot resolve {host}: no answer within {} ms",
                (until - started).as_millis()
            ))
        })
}

/// The certificate's expiry, or `None` (logged) when it could not be read in time.
async fn certificate_expiry(
    url: &reqwest::Url,
    timeout: Duration,
    deadline: Instant,
) -> Option<OffsetDateTime> {
    let until = (Instant::now() + timeout).min(deadline);
    match tokio::time::timeout_at(until, http::certificate_not_after(url)).await {
        Ok(Ok(at)) => Some(at),
        Ok(Err(e)) => {
            tracing::debug!(%url, error = %e, "cannot read the TLS certificate");
            None
        }
        Err(_) => {
            tracing::debug!(%url, "TLS certificate not read in time");
            None
        }
    }
}

/// Is the default gateway there? Each attempt connects to [`GATEWAY_PORTS`] at once and takes
/// the first answer. A refused connection counts: the gateway itself sent the refusal, which is
/// what "reachable on the LAN" means, and most routers refuse rather than serve some of these
/// ports. ICMP would be the usual tool but needs privileges the agent does not have.
pub async fn check_gateway(address: IpAddr, deadline: Instant) -> GatewayCheck {
    let stats = repeat(GATEWAY_ATTEMPTS, GATEWAY_TIMEOUT, deadline, async || {
        tcp::answers(address, &GATEWAY_PORTS).await
    })
    .await
    .stats();
    GatewayCheck {
        address,
        attempts: stats.attempts,
        successes: stats.successes,
        rtt_avg_seconds: stats.avg,
        error: stats.error,
    }
}

/// The outcome of each attempt made, in order, and how many were planned.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Attempts {
    pub(crate) planned: u32,
    pub(crate) outcomes: Vec<Result<Duration, String>>,
}

/// Makes up to `attempts` attempts of `once`, each within `timeout` and all before `deadline`,
/// timing each from start to completion.
async fn repeat(
    attempts: u32,
    timeout: Duration,
    deadline: Instant,
    mut once: impl AsyncFnMut() -> Result<(), String>,
) -> Attempts {
    let mut done = Attempts {
        planned: attempts,
        outcomes: Vec::new(),
    };
    for i in 0..attempts {
        if i > 0 {
            if Instant::now() + ATTEMPT_GAP >= deadline {
                break;
            }
            tokio::time::sleep(ATTEMPT_GAP).await;
        }
        let started = Instant::now();
        let until = (started + timeout).min(deadline);
        let outcome = match tokio::time::timeout_at(until, once()).await {
            Ok(Ok(())) => Ok(started.elapsed()),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(format!(
                "no answer within {} ms",
                (until - started).as_millis()
            )),
        };
        done.outcomes.push(outcome);
    }
    done
}

/// Every attempt failed the same way before it started (the name did not resolve).
fn failed(attempts: u32, error: String) -> Stats {
    Attempts {
        planned: attempts,
        outcomes: vec![Err(error); attempts as usize],
    }
    .stats()
}

/// A probe's figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Stats {
    /// Attempts made (fewer than planned when the cycle's deadline came first).
    pub(crate) attempts: u32,
    pub(crate) successes: u32,
    pub(crate) min: Option<f64>,
    pub(crate) avg: Option<f64>,
    pub(crate) max: Option<f64>,
    /// Mean absolute difference of consecutive successful round trips; needs two of them.
    pub(crate) jitter: Option<f64>,
    /// The last failure, and a word on attempts not made.
    pub(crate) error: Option<String>,
}

impl Attempts {
    pub(crate) fn stats(&self) -> Stats {
        let rtts: Vec<f64> = self
            .outcomes
            .iter()
            .filter_map(|o| o.as_ref().ok().map(Duration::as_secs_f64))
            .collect();
        let made = u32::try_from(self.outcomes.len()).unwrap_or(u32::MAX);
        let successes = u32::try_from(rtts.len()).unwrap_or(u32::MAX);
        let mut error = self
            .outcomes
            .iter()
            .rev()
            .find_map(|o| o.as_ref().err())
            .map(|e| bounded(e.clone(), 1));
        if made < self.planned {
            let cut = format!(
                "{made} of {} attempts made before the cycle's probe deadline",
                self.planned
            );
            error = Some(match error {
                Some(e) => bounded(format!("{e}; {cut}"), 2),
                None => cut,
            });
        }
        let (min, max, avg) = if rtts.is_empty() {
            (None, None, None)
        } else {
            let min = rtts.iter().copied().fold(f64::INFINITY, f64::min);
            let max = rtts.iter().copied().fold(0.0, f64::max);
            (Some(min), Some(max), Some(mean(rtts.iter().copied())))
        };
        let jitter = (rtts.len() >= 2).then(|| mean(rtts.windows(2).map(|w| (w[1] - w[0]).abs())));
        Stats {
            attempts: made,
            successes,
            min,
            avg,
            max,
            jitter,
            error,
        }
    }
}

fn mean(values: impl ExactSizeIterator<Item = f64>) -> f64 {
    let n = values.len();
    values.sum::<f64>() / n as f64
}

/// `text` cut to `parts` × [`MAX_ERROR_BYTES`] on a character boundary.
fn bounded(mut text: String, parts: usize) -> String {
    let max = MAX_ERROR_BYTES * parts;
    if text.len() > max {
        text.truncate(text.floor_char_boundary(max - 3));
        text.push_str("...");
    }
    text
}

/// The innermost cause of an error: for network errors it is the one a human can act on
/// ("Connection refused", "invalid peer certificate: UnknownIssuer").
pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut inner = e;
    while let Some(source) = inner.source() {
        inner = source;
    }
    inner.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Result<Duration, String> {
        Ok(Duration::from_millis(n))
    }

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-9)
    }

    #[test]
    fn round_trips_give_min_avg_max_and_jitter() {
        let s = Attempts {
            planned: 4,
            outcomes: vec![ms(10), ms(30), Err("timed out".into()), ms(20)],
        }
        .stats();
        assert_eq!((s.attempts, s.successes), (4, 3));
        assert!(close(s.min, 0.010) && close(s.max, 0.030), "{s:?}");
        assert!(close(s.avg, 0.020), "{s:?}");
        // Consecutive successes 10→30→20: |20| and |10|, mean 15 ms; the failure is skipped.
        assert!(close(s.jitter, 0.015), "{s:?}");
        assert_eq!(s.error.as_deref(), Some("timed out"));
    }

    #[test]
    fn one_success_has_no_jitter_and_none_has_no_times() {
        let one = Attempts {
            planned: 1,
            outcomes: vec![ms(5)],
        }
        .stats();
        assert!(close(one.avg, 0.005) && one.jitter.is_none() && one.error.is_none());
        let none = failed(3, "connection refused".into());
        assert_eq!((none.attempts, none.successes), (3, 0));
        assert_eq!(
            (none.min, none.avg, none.max, none.jitter),
            (None, None, None, None)
        );
        assert_eq!(none.error.as_deref(), Some("connection refused"));
    }

    #[tokio::test]
    async fn a_name_lookup_that_never_answers_fails_the_probe_within_its_timeout() {
        let timeout = Duration::from_millis(300);
        for (kind, target) in [
            ("tcp", "lgsp.example.gov.vn:8243"),
            ("icmp", "lgsp.example.gov.vn"),
        ] {
            let spec = ProbeSpec {
                name: "lgsp".into(),
                class: ProbeClass::Datacentre,
                target: Target::parse(kind, target).unwrap(),
                target_text: target.into(),
                attempts: 2,
                timeout,
            };
            let started = Instant::now();
            let hangs = async |_: &str, _: u16| std::future::pending().await;
            let probe =
                tokio::time::timeout(timeout * 10, measure(&spec, started + timeout * 5, hangs))
                    .await
                    .unwrap_or_else(|_| panic!("{kind}: the probe waited for the resolver"));
            let took = started.elapsed();
            assert!(took >= timeout && took < timeout * 2, "{kind}: {took:?}");
            assert_eq!((probe.attempts, probe.successes), (2, 0), "{kind}");
            let error = probe.error.unwrap();
            assert!(
                error.starts_with("cannot resolve lgsp.example.gov.vn: no answer within"),
                "{kind}: {error}"
            );
        }
    }

    #[test]
    fn attempts_cut_by_the_deadline_are_said_and_not_counted_as_made() {
        let s = Attempts {
            planned: 4,
            outcomes: vec![Err("no answer within 2000 ms".into())],
        }
        .stats();
        assert_eq!((s.attempts, s.successes), (1, 0));
        let result = ProbeResult {
            name: "x".into(),
            kind: ProbeKind::Tcp,
            class: ProbeClass::Internet,
            target: "x:1".into(),
            attempts: s.attempts,
            successes: s.successes,
            rtt_min_seconds: None,
            rtt_avg_seconds: None,
            rtt_max_seconds: None,
            jitter_seconds: None,
            error: s.error.clone(),
            http_status: None,
            tls_not_after: None,
        };
        assert_eq!(result.loss_ratio(), 1.0);
        assert_eq!(
            s.error.as_deref(),
            Some(
                "no answer within 2000 ms; 1 of 4 attempts made before the cycle's probe deadline"
            )
        );
    }

    fn probe(class: ProbeClass, attempts: u32, successes: u32) -> ProbeResult {
        ProbeResult {
            name: "p".into(),
            kind: ProbeKind::Tcp,
            class,
            target: "p:1".into(),
            attempts,
            successes,
            rtt_min_seconds: None,
            rtt_avg_seconds: None,
            rtt_max_seconds: None,
            jitter_seconds: None,
            error: None,
            http_status: None,
            tls_not_after: None,
        }
    }

    #[test]
    fn the_verdict_reads_like_a_sentence() {
        let gateway = GatewayCheck {
            address: "10.0.0.1".parse().unwrap(),
            attempts: 4,
            successes: 4,
            rtt_avg_seconds: Some(0.001),
            error: None,
        };
        let evidence = Evidence {
            probes: vec![
                probe(ProbeClass::Internet, 4, 4),
                probe(ProbeClass::Datacentre, 4, 4),
            ],
            gateway: Some(gateway.clone()),
        };
        let speed = SpeedTest {
            download_bits_per_second: Some(23.4e6),
            upload_bits_per_second: Some(9.46e6),
            bytes: 8 << 20,
            duration_seconds: 3.0,
            error: None,
        };
        assert_eq!(
            verdict(true, &evidence, Some(&speed)),
            "LAN ok, internet ok, 23 Mbit/s down / 9.5 up to the data centre, loss 0%"
        );
        let quiet = Evidence {
            probes: vec![
                probe(ProbeClass::Internet, 4, 0),
                probe(ProbeClass::GovWan, 4, 3),
            ],
            gateway: Some(GatewayCheck {
                successes: 0,
                ..gateway
            }),
        };
        assert_eq!(
            verdict(true, &quiet, None),
            "LAN up but gateway 10.0.0.1 silent, internet down, loss 75%"
        );
        let failed = SpeedTest {
            download_bits_per_second: None,
            upload_bits_per_second: None,
            ..speed
        };
        assert_eq!(
            verdict(false, &Evidence::default(), Some(&failed)),
            "no LAN (no interface up with a default route), internet not probed, \
             speed test to the data centre failed"
        );
    }

    #[test]
    fn the_budget_is_half_the_interval_up_to_a_minute() {
        assert_eq!(budget(Duration::from_secs(5)), Duration::from_millis(2500));
        assert_eq!(budget(Duration::from_secs(60)), Duration::from_secs(30));
        assert_eq!(budget(Duration::from_secs(3600)), Duration::from_secs(60));
    }

    #[test]
    fn long_errors_are_cut_on_a_character_boundary() {
        let s = Attempts {
            planned: 1,
            outcomes: vec![Err("ệ".repeat(100))],
        }
        .stats();
        let e = s.error.unwrap();
        assert!(e.len() <= MAX_ERROR_BYTES && e.ends_with("..."), "{e}");
    }

    #[test]
    fn targets_parse_by_kind() {
        assert_eq!(
            Target::parse("tcp", "portal.gov.vn:443"),
            Ok(Target::Tcp {
                host: "portal.gov.vn".into(),
                port: 443
            })
        );
        assert_eq!(
            Target::parse("tcp", "[::1]:8443"),
            Ok(Target::Tcp {
                host: "::1".into(),
                port: 8443
            })
        );
        assert_eq!(
            Target::parse("icmp", "::1"),
            Ok(Target::Icmp { host: "::1".into() })
        );
        assert!(matches!(
            Target::parse("https", "https://dichvucong.gov.vn/"),
            Ok(Target::Http { .. })
        ));
        for (kind, target, problem) in [
            ("tcp", "portal.gov.vn", "must be host:port"),
            ("tcp", "portal.gov.vn:0", "must be host:port"),
            ("tcp", "::1", "must be host:port"),
            ("http", "https://a.vn/", "must be an http:// URL"),
            ("https", "a.vn", "is not a URL"),
            ("dns", "a.vn:53", "without port or path"),
            ("icmp", "", "without port or path"),
            (
                "udp",
                "a.vn:53",
                "is not one of tcp, http, https, dns, icmp",
            ),
        ] {
            let e = Target::parse(kind, target).unwrap_err();
            assert!(e.contains(problem), "{kind} {target}: {e}");
        }
    }
}
