//! The speed test: how fast this machine moves data to and from the collector, in bits per
//! second.
//!
//! Download is one `GET /api/v1/speedtest/download?bytes=N`; upload is a series of
//! `POST /api/v1/speedtest/upload` of [`UPLOAD_CHUNK`] bytes each, so the agent never holds more
//! than one chunk and can stop between chunks. Both are timed by the agent from the request to
//! the last byte (conservative: one round trip is counted as transfer time), and each direction
//! stops at its size or after [`DIRECTION_LIMIT`], whichever comes first, measuring what moved
//! until then. That time limit is the rate cap: a commune on a 1 Mbit/s link spends 15 s each way
//! once an hour, not minutes. The bytes are random, so no compressing proxy can flatter the link.

use std::time::Duration;

use hatang_protocol::SpeedTest;
use tokio::time::Instant;

use crate::tls::TlsFiles;

/// The most a speed test moves each way; the collector refuses more.
pub const MAX_BYTES: u64 = 32 << 20;

/// How long one direction may take.
pub const DIRECTION_LIMIT: Duration = Duration::from_secs(15);

/// Bytes per upload request.
const UPLOAD_CHUNK: u64 = 1 << 20;

/// When speed tests are due: the first at once, then one per `every` at most.
#[derive(Debug, Clone)]
pub struct Schedule {
    every: Option<Duration>,
    last: Option<std::time::Instant>,
}

impl Schedule {
    /// `None`: never.
    pub fn new(every: Option<Duration>) -> Self {
        Self { every, last: None }
    }

    /// Whether a test is due at `now`; if it is, it counts as started then. Cycles start on a
    /// ticker, so a test due "exactly" an hour later may be checked a few milliseconds early:
    /// a second's slack keeps it from slipping a whole cycle.
    pub fn start(&mut self, now: std::time::Instant) -> bool {
        let Some(every) = self.every else {
            return false;
        };
        let due = self.last.is_none_or(|last| {
            now.saturating_duration_since(last) + Duration::from_secs(1) >= every
        });
        if due {
            self.last = Some(now);
        }
        due
    }
}

/// What one direction moved, and in how long.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Transfer {
    bytes: u64,
    seconds: f64,
}

impl Transfer {
    fn bits_per_second(self) -> Option<f64> {
        (self.bytes > 0 && self.seconds > 0.0).then(|| self.bytes as f64 * 8.0 / self.seconds)
    }
}

/// Runs both directions against `collector`, moving at most `bytes` each way. Never fails as a
/// whole: a direction that failed has no figure and its reason is in `error`.
/// It goes over a client with the same TLS settings as the reports.
pub async fn measure(collector: &str, agent_key: &str, bytes: u64, tls: &TlsFiles) -> SpeedTest {
    let bytes = bytes.min(MAX_BYTES);
    let client = match crate::push::client(DIRECTION_LIMIT + Duration::from_secs(5), tls) {
        Ok(client) => client,
        Err(e) => {
            return SpeedTest {
                download_bits_per_second: None,
                upload_bits_per_second: None,
                bytes: 0,
                duration_seconds: 0.0,
                error: Some(e.to_string()),
            };
        }
    };
    let started = Instant::now();
    let down = download(&client, collector, agent_key, bytes).await;
    // A collector too busy for the download is too busy for the upload, and would answer so
    // only once the upload's first megabyte had crossed the link: try again next time.
    let up = match &down {
        Err(Failed { busy: true, .. }) => {
            Err("not tried: the collector was busy".to_owned().into())
        }
        _ => upload(&client, collector, agent_key, bytes).await,
    };
    let errors: Vec<String> = [("download", &down), ("upload", &up)]
        .into_iter()
        .filter_map(|(what, r)| r.as_ref().err().map(|e| format!("{what}: {}", e.message)))
        .collect();
    let moved = |r: &Result<Transfer, Failed>| r.as_ref().map_or(0, |t| t.bytes);
    SpeedTest {
        download_bits_per_second: down.as_ref().ok().and_then(|t| t.bits_per_second()),
        upload_bits_per_second: up.as_ref().ok().and_then(|t| t.bits_per_second()),
        bytes: moved(&down) + moved(&up),
        duration_seconds: started.elapsed().as_secs_f64(),
        error: (!errors.is_empty()).then(|| errors.join("; ")),
    }
}

async fn download(
    client: &reqwest::Client,
    collector: &str,
    agent_key: &str,
    bytes: u64,
) -> Result<Transfer, Failed> {
    let started = Instant::now();
    let deadline = started + DIRECTION_LIMIT;
    let request = client
        .get(format!(
            "{collector}/api/v1/speedtest/download?bytes={bytes}"
        ))
        .bearer_auth(agent_key)
        .send();
    let mut response = accepted(tokio::time::timeout_at(deadline, request).await)?;
    let mut got = 0u64;
    // Past the deadline, what arrived so far is the measurement.
    while let Ok(chunk) = tokio::time::timeout_at(deadline, response.chunk()).await {
        match chunk.map_err(|e| hatang_probe::root_cause(&e))? {
            Some(c) => got += c.len() as u64,
            None => break,
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    if got < bytes && Instant::now() < deadline {
        return Err(format!("collector sent {got} of {bytes} bytes").into());
    }
    Ok(Transfer {
        bytes: got,
        seconds,
    })
}

async fn upload(
    client: &reqwest::Client,
    collector: &str,
    agent_key: &str,
    bytes: u64,
) -> Result<Transfer, Failed> {
    let started = Instant::now();
    let deadline = started + DIRECTION_LIMIT;
    let mut sent = 0u64;
    // The end of the last chunk the collector counted: an unfinished chunk's time is not
    // charged to the bytes that did arrive.
    let mut counted_until = started;
    while sent < bytes {
        let n = (bytes - sent).min(UPLOAD_CHUNK);
        let mut chunk = vec![0u8; n as usize];
        getrandom::fill(&mut chunk).map_err(|e| e.to_string())?;
        let request = client
            .post(format!("{collector}/api/v1/speedtest/upload"))
            .bearer_auth(agent_key)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(chunk)
            .send();
        let Ok(answer) = tokio::time::timeout_at(deadline, request).await else {
            break;
        };
        let response = accepted(Ok(answer))?;
        let counted: serde_json::Value = response.json().await.map_err(|e| e.to_string())?;
        match counted["bytes"].as_u64() {
            Some(c) if c == n => sent += c,
            _ => return Err(format!("collector counted {counted} for {n} bytes sent").into()),
        }
        counted_until = Instant::now();
    }
    if sent == 0 {
        return Err(format!("no chunk arrived within {} s", DIRECTION_LIMIT.as_secs()).into());
    }
    Ok(Transfer {
        bytes: sent,
        seconds: (counted_until - started).as_secs_f64(),
    })
}

/// Why a direction has no figure.
#[derive(Debug)]
struct Failed {
    message: String,
    /// The collector said it was busy (429, or 503: too many tests at once).
    busy: bool,
}

impl From<String> for Failed {
    fn from(message: String) -> Self {
        Self {
            message,
            busy: false,
        }
    }
}

/// The response if the request was answered with a success in time.
fn accepted(
    answer: Result<reqwest::Result<reqwest::Response>, tokio::time::error::Elapsed>,
) -> Result<reqwest::Response, Failed> {
    let response = answer
        .map_err(|_| format!("no answer within {} s", DIRECTION_LIMIT.as_secs()))?
        .map_err(|e| hatang_probe::root_cause(&e))?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    Err(Failed {
        message: format!("collector answered {status}"),
        busy: matches!(
            status,
            reqwest::StatusCode::TOO_MANY_REQUESTS | reqwest::StatusCode::SERVICE_UNAVAILABLE
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tests_are_due_at_start_then_once_per_interval() {
        let t0 = std::time::Instant::now();
        let minute = Duration::from_secs(60);
        let mut s = Schedule::new(Some(Duration::from_secs(3600)));
        assert!(s.start(t0));
        assert!(!s.start(t0 + minute));
        assert!(!s.start(t0 + 58 * minute));
        // The 60th tick, a little early.
        assert!(s.start(t0 + 60 * minute - Duration::from_millis(3)));
        assert!(!s.start(t0 + 61 * minute));
        let mut off = Schedule::new(None);
        assert!(!off.start(t0));
    }

    #[test]
    fn bits_per_second_are_bytes_times_eight_over_seconds() {
        let t = Transfer {
            bytes: 4 << 20,
            seconds: 2.0,
        };
        assert_eq!(t.bits_per_second(), Some(16_777_216.0));
        let nothing = Transfer {
            bytes: 0,
            seconds: 1.0,
        };
        assert_eq!(nothing.bits_per_second(), None);
        let instant = Transfer {
            bytes: 1,
            seconds: 0.0,
        };
        assert_eq!(instant.bits_per_second(), None);
    }
}
