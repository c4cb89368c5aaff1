//! Talking to the collector: enrolment and report delivery over one reused HTTP client.
//!
//! What an answer means is decided in one place, [`classify`], and only the collector's own
//! answers are believed. A report is forgotten when the collector said it stored it (202
//! `{"status":"accepted"}`) or already had it (200 `{"status":"duplicate"}`); any other 2xx comes
//! from something in between (a captive portal, a proxy's login page) and keeps the report. A
//! report is dropped, logged and counted, only when the collector refused it for what it is (a
//! 4xx carrying its JSON error: the report is invalid) or when it is too large for whatever
//! answered 413, since neither will ever take it and it must not block every report behind it.
//! 401 means this agent's key is no longer accepted: sending stops until it is enrolled again;
//! but a 401 `client_certificate_required` means a setting is missing (`client_cert_file`), and
//! the report is kept and retried like any other. Everything else keeps the report for later: connection failures, 408, 429, 5xx, redirects,
//! 404/405 (the configured URL does not lead to a report endpoint), and any 4xx without the
//! collector's error body (a proxy asking to log in, a firewall, plain HTTP sent to an HTTPS
//! port). A mistake in a deployment must not turn into lost evidence on every machine.
//! How long to wait before trying again is [`Backoff`]'s: doubling waits with jitter, and never
//! less than an answer's `Retry-After` asked for ([`retry_after`]), so a collector that sheds
//! load (429, a full ingest queue's 503) is not hit again sooner than it said.

use std::time::{Duration, SystemTime};

use hatang_protocol::{EnrollRequest, EnrollResponse};
use reqwest::StatusCode;

use crate::spool::Spool;
use crate::tls::{TlsError, TlsFiles};

/// What to do after one delivery attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Stored (202) or already stored (200): forget the report.
    Delivered,
    /// Try again later; keep the report.
    Retry,
    /// The agent key was refused: stop sending, keep the report, enrol again.
    Unauthorized,
    /// The collector will never accept this report: drop it.
    Drop,
}

/// What the answer `status` with `body` to a report means (see the module's documentation).
pub fn classify(status: StatusCode, body: &[u8]) -> Disposition {
    let said = |expected: &str| {
        serde_json::from_slice::<serde_json::Value>(body)
            .is_ok_and(|v| v["status"].as_str() == Some(expected))
    };
    match status.as_u16() {
        202 if said("accepted") => Disposition::Delivered,
        200 if said("duplicate") => Disposition::Delivered,
        // The collector wants a client certificate this agent did not present: a setting to
        // add (client_cert_file), not a key to replace.
        401 if collectors_code(body).as_deref() == Some("client_certificate_required") => {
            Disposition::Retry
        }
        401 => Disposition::Unauthorized,
        413 => Disposition::Drop,
        404 | 405 | 408 | 429 => Disposition::Retry,
        400..=499 if collectors_error(body).is_some() => Disposition::Drop,
        _ => Disposition::Retry,
    }
}

/// The message of the collector's JSON error body (`{"error": {"code", "message"}}`), if `body`
/// is one.
fn collectors_error(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v["error"]["code"].as_str()?;
    Some(
        v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

/// The code of the collector's JSON error body, if `body` is one.
fn collectors_code(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v["error"]["code"].as_str().map(str::to_owned)
}

/// `url` as logs, errors and printed lines show it: a password in it (a proxy's basic
/// authentication) replaced by `***`. The agent stores and uses the URL as given; its log is read
/// by more people than its state directory.
pub fn shown(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            // Without the root path's slash the URL parser adds, as the URL was given.
            let text = parsed.to_string();
            match text.strip_suffix('/') {
                Some(trimmed) if !url.ends_with('/') => trimmed.to_owned(),
                _ => text,
            }
        }
        _ => url.to_owned(),
    }
}

/// Says so in the log when `collector` is plain HTTP to another machine: the enrolment token
/// and this machine's key then cross the network readable by anyone on the path. Allowed (a
/// province may start without certificates), but never silently.
pub fn warn_if_unencrypted(collector: &str) {
    if unencrypted(collector) {
        tracing::warn!(
            collector = %shown(collector),
            "the collector is reached over plain HTTP: the enrolment token and this machine's key travel unencrypted; use an https:// URL"
        );
    }
}

/// Whether `collector` is an `http://` URL to a host other than this one (loopback is spared:
/// the demo, a collector on the same machine).
fn unencrypted(collector: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(collector) else {
        return false;
    };
    // Domains come lower-cased, IPv6 addresses in brackets.
    let local = url.host_str().is_some_and(|host| {
        host == "localhost"
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    });
    url.scheme() == "http" && !local
}

/// The longest wait a `Retry-After` can impose: a broken or hostile header must not silence an
/// agent for days, and an hour is longer than any wait the collector asks for.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// How long an answer's `Retry-After` asks the agent to wait, at most [`MAX_RETRY_AFTER`];
/// `None` without one or when it is not delay-seconds.
///
/// Only delay-seconds (`Retry-After: 30`) are read, which is what the collector sends. An
/// HTTP-date is ignored: it would be measured against this machine's clock, and agency PCs'
/// clocks are often wrong by hours (the reason reports carry their age rather than a time), so
/// it could mean no wait at all or one of a day. The usual backoff applies then.
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // All digits, so only a number too large for u64 fails to parse: the cap, like any
    // other large one.
    Some(value.parse().map_or(MAX_RETRY_AFTER, |secs| {
        Duration::from_secs(secs).min(MAX_RETRY_AFTER)
    }))
}

/// When to try delivering again after failures: exponential backoff with jitter.
///
/// The first failure waits one cycle, as before; each further failure doubles the wait, up to
/// [`Backoff::MAX_CYCLES`] cycles (a quarter of an hour at the default 60 s). The wait is then
/// drawn between half and all of that, so thousands of agents that lost the collector at the
/// same moment do not all come back at the same moment. When the collector asked for a longer
/// wait (`Retry-After`), that is the wait. Reports are collected and spooled every cycle
/// meanwhile; only sending waits. One delivery that works resets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Backoff {
    failures: u32,
    not_before: Option<std::time::Instant>,
}

impl Backoff {
    pub const MAX_CYCLES: u32 = 16;

    /// Whether sending may be tried at `now`.
    pub fn ready(&self, now: std::time::Instant) -> bool {
        self.not_before.is_none_or(|t| now >= t)
    }

    /// A delivery failed at `now`; `cycle` is the agent's interval, `jitter` a random draw in
    /// `0..1` and `asked` the answer's [`retry_after`], the least the wait may be. Returns how
    /// long sending now waits.
    pub fn failed(
        &mut self,
        now: std::time::Instant,
        cycle: Duration,
        jitter: f64,
        asked: Option<Duration>,
    ) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let cycles = 1u32
            .checked_shl(self.failures - 1)
            .unwrap_or(u32::MAX)
            .min(Self::MAX_CYCLES);
        let wait = if cycles == 1 {
            // The next cycle: nothing is gained by waiting less, and a single failure (a
            // restart of the collector) should not delay the backlog more than that.
            Duration::ZERO
        } else {
            (cycle * cycles).mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
        }
        .max(asked.unwrap_or_default());
        self.not_before = Some(now + wait);
        wait
    }

    /// A delivery worked: send every cycle again.
    pub fn succeeded(&mut self) {
        *self = Self::default();
    }
}

/// A random draw in `0..1` for [`Backoff::failed`]; the middle when the OS has no randomness.
pub fn jitter() -> f64 {
    let mut bytes = [0u8; 4];
    match getrandom::fill(&mut bytes) {
        Ok(()) => f64::from(u32::from_le_bytes(bytes)) / f64::from(u32::MAX),
        Err(_) => 0.5,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("collector unreachable: {0}")]
    Unreachable(String),
    /// The TLS handshake failed over a certificate: the collector's was not trusted, or this
    /// agent's was refused. Kept and retried like any connection failure.
    #[error("{0}")]
    Certificate(String),
    /// The collector does not know or no longer accepts this agent's key (401): enrolling again
    /// is the way out.
    #[error("collector answered 401: {0}")]
    KeyRefused(String),
    /// Any other answer that leaves the report for a later try (see [`classify`]).
    #[error("collector answered {status}: {message}")]
    Refused {
        status: u16,
        message: String,
        /// The answer's [`retry_after`], when it is one to try again after.
        retry_after: Option<Duration>,
    },
    #[error("spool: {0}")]
    Spool(#[from] std::io::Error),
}

impl PushError {
    /// How long the collector asked the agent to wait before trying again, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Refused { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// Builds the one client the agent uses: timeouts, a recognisable user agent, TLS by rustls with
/// the ring provider (installed once for the process) trusting and presenting what `tls` names.
/// Every exchange with the collector (enrolment, reports, speed test, `check`) goes through one.
pub fn client(timeout: Duration, tls: &TlsFiles) -> Result<reqwest::Client, TlsError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let builder = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .user_agent(concat!("hatang-agent/", env!("CARGO_PKG_VERSION")))
        // An idle connection is given up before the collector closes it (its
        // `header_read_timeout_secs`, 120 s by default), so a report is never sent on one the
        // collector is closing at that moment. reqwest's own default, said here for that reason.
        .pool_idle_timeout(Duration::from_secs(90))
        // A redirected POST would silently become a GET; better to see the 3xx and say so.
        .redirect(reqwest::redirect::Policy::none());
    // Falling back to a default client here would silently drop the configured CA.
    tls.apply(builder)?
        .build()
        .map_err(|e| TlsError::Client(hatang_probe::root_cause(&e)))
}

/// The collector's error message from a JSON error body, or the raw text.
async fn error_message(response: reqwest::Response) -> String {
    message(&response.bytes().await.unwrap_or_default())
}

/// What an answer's `body` says went wrong: the collector's message, or the start of whatever
/// else answered.
fn message(body: &[u8]) -> String {
    collectors_error(body).unwrap_or_else(|| {
        // Whatever else answered (a web server's HTML page, a proxy's): one line of it.
        let text = String::from_utf8_lossy(body);
        let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
        format!(
            "not the collector's answer: {}",
            line.chars().take(200).collect::<String>()
        )
    })
}

/// A failed exchange as the agent reports it, certificate problems told apart.
pub(crate) fn unreachable(e: &reqwest::Error) -> PushError {
    let mut message = e.to_string();
    let mut certificate = None;
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message = format!("{message}: {s}");
        certificate = certificate.or_else(|| certificate_problem(s));
        source = s.source();
    }
    match certificate {
        Some(problem) => PushError::Certificate(problem),
        None => PushError::Unreachable(message),
    }
}

/// What went wrong, when `e` is a handshake that failed over a certificate. rustls errors reach
/// here wrapped in `io::Error`s (two deep), whose `source()` skips what they wrap, so the
/// wrappers are opened here.
fn certificate_problem(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    use rustls::AlertDescription as Alert;
    let mut inner: &(dyn std::error::Error + 'static) = e;
    while let Some(wrapped) = inner
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
    {
        inner = wrapped;
    }
    let tls = inner.downcast_ref::<rustls::Error>()?;
    use rustls::CertificateError as Cert;
    match tls {
        // The CA is right here: blaming ca_file would send the operator the wrong way.
        rustls::Error::InvalidCertificate(
            Cert::NotValidForName | Cert::NotValidForNameContext { .. },
        ) => Some(format!(
            "the collector's TLS certificate is not valid for the name in the collector URL \
             ({tls}); use a name the certificate was issued for in the URL, or have the \
             certificate reissued with this one"
        )),
        rustls::Error::InvalidCertificate(
            Cert::Expired
            | Cert::ExpiredContext { .. }
            | Cert::NotValidYet
            | Cert::NotValidYetContext { .. },
        ) => Some(format!(
            "the collector's TLS certificate has expired or is not valid yet ({tls}); renew \
             the collector's certificate, or set this machine's clock if it is wrong"
        )),
        rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => {
            Some(format!(
                "the collector's TLS certificate is not trusted ({tls}); ca_file (or enroll \
                 --ca-file) must name the CA that signed it"
            ))
        }
        rustls::Error::AlertReceived(
            Alert::BadCertificate
            | Alert::UnknownCA
            | Alert::CertificateRequired
            | Alert::CertificateUnknown
            | Alert::CertificateExpired
            | Alert::CertificateRevoked
            | Alert::UnsupportedCertificate,
        ) => Some(format!(
            "the collector refused this agent's client certificate ({tls}); client_cert_file \
             must be signed by the collector's client CA and still valid"
        )),
        _ => None,
    }
}

pub async fn enroll(
    client: &reqwest::Client,
    collector: &str,
    request: &EnrollRequest,
) -> Result<EnrollResponse, PushError> {
    let response = client
        .post(format!("{collector}/api/v1/enroll"))
        .json(request)
        .send()
        .await
        .map_err(|e| unreachable(&e))?;
    let status = response.status();
    if status != StatusCode::CREATED && status != StatusCode::OK {
        return Err(PushError::Refused {
            status: status.as_u16(),
            retry_after: retry_after(response.headers()),
            message: error_message(response).await,
        });
    }
    response.json().await.map_err(|e| unreachable(&e))
}

/// Whether the collector at `collector` takes `agent_key` (and this client's certificate, where
/// it asks for one), with what to say of it: an authenticated request that moves nothing, a
/// speed-test download of zero bytes.
pub async fn key_accepted(
    client: &reqwest::Client,
    collector: &str,
    agent_key: &str,
) -> (bool, String) {
    let answer = client
        .get(format!("{collector}/api/v1/speedtest/download?bytes=0"))
        .bearer_auth(agent_key)
        .send()
        .await;
    match answer {
        Ok(r) if r.status().is_success() => (true, "the collector accepts this agent's key".into()),
        Ok(r) if r.status() == StatusCode::UNAUTHORIZED => (
            false,
            format!(
                "refused: {}; reports will not be taken",
                error_message(r).await
            ),
        ),
        // Busy (a speed test running) or another answer: nothing said about the key.
        Ok(r) => (
            true,
            format!("not checked: the collector answered {}", r.status()),
        ),
        Err(e) => (false, unreachable(&e).to_string()),
    }
}

/// The collector's answer to one report, as [`send`] understood it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub disposition: Disposition,
    pub status: StatusCode,
    /// What went wrong; empty when delivered.
    pub message: String,
    /// The answer's [`retry_after`], on a [`Disposition::Retry`] only.
    pub retry_after: Option<Duration>,
}

/// Delivers one spooled gzip report, which `waited` in the spool since it was made (the
/// collector dates the report's evidence by it: [`hatang_protocol::REPORT_AGE_HEADER`]).
pub async fn send(
    client: &reqwest::Client,
    collector: &str,
    agent_key: &str,
    gzip_body: Vec<u8>,
    waited: Duration,
) -> Result<Answer, PushError> {
    let response = client
        .post(format!("{collector}/api/v1/reports"))
        .bearer_auth(agent_key)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(reqwest::header::CONTENT_ENCODING, "gzip")
        .header(hatang_protocol::REPORT_AGE_HEADER, waited.as_secs())
        .body(gzip_body)
        .send()
        .await
        .map_err(|e| unreachable(&e))?;
    let status = response.status();
    let asked = retry_after(response.headers());
    // The collector's answers are a few dozen bytes; a portal's page is read whole, but it is
    // one page.
    let body = response.bytes().await.map_err(|e| unreachable(&e))?;
    let disposition = classify(status, &body);
    let message = match disposition {
        Disposition::Delivered => String::new(),
        _ if status.is_success() => format!("{} (a proxy or a captive portal?)", message(&body)),
        _ => message(&body),
    };
    Ok(Answer {
        disposition,
        status,
        message,
        retry_after: asked.filter(|_| disposition == Disposition::Retry),
    })
}

/// What one pass over the spool achieved.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Flushed {
    pub delivered: usize,
    /// Refused for good by the collector (counted in the spool's drops).
    pub dropped: usize,
    /// Still in the spool: behind the batch, or from the one that stopped the pass on.
    pub waiting: usize,
}

/// Sends up to `batch` waiting reports, oldest first, until the collector cannot take more now.
/// Returns the error that stopped it, with the counts so far.
///
/// Order: one report at a time over the one client (its connection kept alive between them),
/// each only after every older one was acknowledged or dropped. The collector therefore first
/// receives reports in the order they were spooled; what it may see again, out of that order, is
/// a report whose answer was lost (a timeout, a crash before the file was deleted), which it
/// answers as a duplicate. Bounding the pass keeps a week of backlog from holding up the next
/// cycle's collection: the caller runs more passes between cycles.
pub async fn flush(
    client: &reqwest::Client,
    collector: &str,
    agent_key: &str,
    spool: &Spool,
    batch: usize,
) -> (Flushed, Result<(), PushError>) {
    let mut done = Flushed::default();
    let pending = match spool.pending() {
        Ok(p) => p,
        Err(e) => return (done, Err(e.into())),
    };
    let batch = batch.min(pending.len());
    for (i, entry) in pending[..batch].iter().enumerate() {
        done.waiting = pending.len() - i;
        let spooled = match spool.read(entry) {
            Ok(Some(s)) => s,
            // Damaged (set aside and counted) or sent by another agent process.
            Ok(None) => continue,
            Err(e) => return (done, Err(e.into())),
        };
        // Measured on this machine's clock at both ends, so right even when it is not; a clock
        // set back since spooling reads as no wait at all.
        let waited = SystemTime::now()
            .duration_since(spooled.spooled_at)
            .unwrap_or_default();
        let outcome = send(client, collector, agent_key, spooled.body, waited).await;
        let Answer {
            disposition,
            status,
            message,
            retry_after,
        } = match outcome {
            Ok(o) => o,
            Err(e) => return (done, Err(e)),
        };
        let forgotten = match disposition {
            Disposition::Delivered => {
                done.delivered += 1;
                spool.remove(entry)
            }
            Disposition::Drop => {
                done.dropped += 1;
                tracing::error!(report = %entry.report_id, status = status.as_u16(), reason = %message, "collector refused the report for good; dropping it");
                spool.refused(entry)
            }
            Disposition::Unauthorized => return (done, Err(PushError::KeyRefused(message))),
            Disposition::Retry => {
                return (
                    done,
                    Err(PushError::Refused {
                        status: status.as_u16(),
                        message,
                        retry_after,
                    }),
                );
            }
        };
        if let Err(e) = forgotten {
            return (done, Err(e.into()));
        }
    }
    done.waiting = pending.len() - batch;
    (done, Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_untrusted_collector_certificate_is_told_apart() {
        let expires = time::OffsetDateTime::now_utc() + time::Duration::days(30);
        let addr = hatang_probe::testing::tls_server(expires).await;
        let client = client(Duration::from_secs(5), &TlsFiles::default()).unwrap();
        let request = EnrollRequest {
            token: "hte_x".into(),
            machine_id: "m".into(),
            hostname: "h".into(),
        };
        let err = enroll(&client, &format!("https://{addr}"), &request)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, PushError::Certificate(m) if m.contains("UnknownIssuer") && m.contains("--ca-file")),
            "{err:?}"
        );
        let refused = std::io::Error::other(rustls::Error::AlertReceived(
            rustls::AlertDescription::CertificateRequired,
        ));
        let said = certificate_problem(&refused).unwrap();
        assert!(
            said.contains("refused this agent's client certificate"),
            "{said}"
        );
        assert_eq!(certificate_problem(&std::io::Error::other("reset")), None);
    }

    #[test]
    fn backoff_doubles_up_to_a_cap_with_jitter_and_resets() {
        let cycle = Duration::from_secs(60);
        let t0 = std::time::Instant::now();
        let mut b = Backoff::default();
        assert!(b.ready(t0));
        // One failure: the next cycle, as ever.
        assert_eq!(b.failed(t0, cycle, 0.9, None), Duration::ZERO);
        assert!(b.ready(t0));
        // Then 2, 4, 8, 16 cycles at most, each drawn between half and all of it.
        let waits: Vec<u64> = (0..6)
            .map(|_| b.failed(t0, cycle, 1.0, None).as_secs())
            .collect();
        assert_eq!(waits, [120, 240, 480, 960, 960, 960]);
        assert_eq!(b.failed(t0, cycle, 0.0, None), Duration::from_secs(480));
        assert!(!b.ready(t0 + Duration::from_secs(479)));
        assert!(b.ready(t0 + Duration::from_secs(480)));
        b.succeeded();
        assert!(b.ready(t0));
        assert_eq!(b.failed(t0, cycle, 0.5, None), Duration::ZERO);
        assert_eq!(b.failed(t0, cycle, 0.5, None), Duration::from_secs(90));
    }

    #[test]
    fn retry_after_is_a_floor_under_the_backoff() {
        let cycle = Duration::from_secs(60);
        let t0 = std::time::Instant::now();
        let asked = Duration::from_secs(200);
        let mut b = Backoff::default();
        // What the backoff alone would wait, failure after failure.
        let mut alone = Backoff::default();
        let mut waits = Vec::new();
        for _ in 0..6 {
            let own = alone.failed(t0, cycle, 1.0, None);
            let wait = b.failed(t0, cycle, 1.0, Some(asked));
            assert_eq!(wait, own.max(asked), "{own:?}");
            waits.push(own);
        }
        // Both cases came up: shorter waits raised to what was asked, longer ones kept.
        assert!(waits.iter().any(|w| *w < asked) && waits.iter().any(|w| *w > asked));
        let mut once = Backoff::default();
        once.failed(t0, cycle, 0.5, Some(asked));
        assert!(!once.ready(t0 + asked - Duration::from_millis(1)));
        assert!(once.ready(t0 + asked));
    }

    #[test]
    fn retry_after_reads_delay_seconds_only_and_caps_them() {
        let read = |value: &str| {
            let mut headers = reqwest::header::HeaderMap::new();
            headers.insert(reqwest::header::RETRY_AFTER, value.parse().unwrap());
            retry_after(&headers)
        };
        assert_eq!(read("30"), Some(Duration::from_secs(30)));
        assert_eq!(read(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(read("0"), Some(Duration::ZERO));
        // A broken or hostile value waits an hour at most.
        let cap = MAX_RETRY_AFTER.as_secs();
        assert_eq!(read(&cap.to_string()), Some(MAX_RETRY_AFTER));
        assert_eq!(read(&(cap + 1).to_string()), Some(MAX_RETRY_AFTER));
        assert_eq!(read("99999999999999999999999999"), Some(MAX_RETRY_AFTER));
        // Not delay-seconds: the usual backoff.
        for value in [
            "",
            "-5",
            "+5",
            "1.5",
            "5s",
            "1 2",
            "soon",
            "Wed, 21 Oct 2015 07:28:00 GMT",
        ] {
            assert_eq!(read(value), None, "{value:?}");
        }
        assert_eq!(retry_after(&reqwest::header::HeaderMap::new()), None);
    }

    #[test]
    fn jitter_is_a_fraction() {
        let draws: Vec<f64> = (0..100).map(|_| jitter()).collect();
        assert!(draws.iter().all(|j| (0.0..=1.0).contains(j)));
        assert!(
            draws.iter().any(|j| (j - draws[0]).abs() > 1e-9),
            "a hundred equal draws: no randomness"
        );
    }

    #[test]
    fn an_answer_that_is_not_the_collectors_is_one_line_of_it() {
        let page =
            b"<html>\n  <head><title>404</title></head>\n  <body>Not Found</body>\n</html>\n";
        assert_eq!(
            message(page),
            "not the collector's answer: <html> <head><title>404</title></head> <body>Not Found</body> </html>"
        );
        let refused =
            br#"{"error":{"code":"invalid_report","message":"probes[0].name: too long"}}"#;
        assert_eq!(message(refused), "probes[0].name: too long");
    }

    #[test]
    fn plain_http_to_another_machine_is_told_apart() {
        for url in [
            "http://collector:8080",
            "http://10.17.0.5",
            "HTTP://hatang.gov.vn/",
        ] {
            assert!(unencrypted(url), "{url}");
        }
        for url in [
            "https://collector:8443",
            "http://127.0.0.1:8080",
            "http://localhost:8080",
            "http://[::1]:8080",
            "not a url",
        ] {
            assert!(!unencrypted(url), "{url}");
        }
    }

    #[test]
    fn retry_rules() {
        let d =
            |code: u16, body: &str| classify(StatusCode::from_u16(code).unwrap(), body.as_bytes());
        let refused = r#"{"error":{"code":"invalid_report","message":"probes[0].name: too long"}}"#;
        let page = "<html><body>Please log in to use the Internet</body></html>";
        assert_eq!(d(202, r#"{"status":"accepted"}"#), Disposition::Delivered);
        assert_eq!(d(200, r#"{"status":"duplicate"}"#), Disposition::Delivered);
        assert_eq!(d(401, refused), Disposition::Unauthorized);
        // A client certificate missing is a setting to add; the key is not at fault.
        let no_certificate = r#"{"error":{"code":"client_certificate_required","message":"…"}}"#;
        assert_eq!(d(401, no_certificate), Disposition::Retry);
        // The collector's refusal of the report itself, and a body too large for anyone.
        for code in [400, 403, 409, 415, 422] {
            assert_eq!(d(code, refused), Disposition::Drop, "{code}");
        }
        assert_eq!(d(413, page), Disposition::Drop);
        // Whatever else answered: keep the report.
        for (code, body) in [
            (200, page),
            (200, r#"{"status":"accepted"}"#),
            (202, ""),
            (204, ""),
            (400, page),
            (403, page),
            (407, page),
            (422, ""),
            (501, refused),
        ] {
            assert_eq!(d(code, body), Disposition::Retry, "{code} {body}");
        }
        for code in [301, 308, 404, 405, 408, 429, 500, 502, 503, 504, 599] {
            assert_eq!(d(code, refused), Disposition::Retry, "{code}");
        }
    }
}
