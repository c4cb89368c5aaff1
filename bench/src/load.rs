//! Driving HTTP load: `concurrency` workers, each on a kept-alive connection of [`wire`], sending
//! requests back to back (closed loop) or on a schedule (a target rate), for a fixed time; every
//! latency is kept (a few MB at most) so percentiles are exact rather than bucketed.
//!
//! At a target rate a request's latency runs from when it was due, not from when it was sent:
//! a collector that stalls makes every request queued behind the stall count as slow, instead of
//! hiding them because the worker was not sending (the "coordinated omission" wrk2 corrects).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::time::sleep_until;

use crate::wire;

/// Writes request number `n` of worker `w`, whole, into the buffer ([`wire::encode`] clears it
/// first), which every request of that worker reuses.
pub type MakeRequest = Arc<dyn Fn(usize, u64, &mut Vec<u8>) + Send + Sync>;

/// How one phase is run.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub concurrency: usize,
    pub duration: Duration,
    /// Requests per second over all workers; `None`: as fast as answers come.
    pub rate: Option<f64>,
}

/// What one phase measured.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    /// Answers by status code; transport failures as `error: …`.
    pub statuses: BTreeMap<String, u64>,
    /// Latency of every answered request, microseconds, sorted.
    pub latencies_us: Vec<u32>,
    /// From the first request to the last answer.
    pub elapsed: Duration,
}

impl Outcome {
    pub fn count(&self, status: &str) -> u64 {
        self.statuses.get(status).copied().unwrap_or(0)
    }

    pub fn total(&self) -> u64 {
        self.statuses.values().sum()
    }

    /// Answers with `status` per second of the phase.
    pub fn rate(&self, status: &str) -> f64 {
        self.count(status) as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The `q` quantile (0..=1) of latency, nearest rank.
    pub fn quantile(&self, q: f64) -> Duration {
        quantile(&self.latencies_us, q)
    }

    /// Everything that was not `ok`, as `status ×count` pairs.
    pub fn errors(&self, ok: &[&str]) -> String {
        let errs: Vec<String> = self
            .statuses
            .iter()
            .filter(|(s, _)| !ok.contains(&s.as_str()))
            .map(|(s, n)| format!("{s} ×{n}"))
            .collect();
        if errs.is_empty() {
            "none".into()
        } else {
            errs.join(", ")
        }
    }
}

/// Nearest-rank quantile of sorted microsecond values.
pub fn quantile(sorted_us: &[u32], q: f64) -> Duration {
    if sorted_us.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted_us.len() as f64).ceil() as usize).clamp(1, sorted_us.len());
    Duration::from_micros(u64::from(sorted_us[rank - 1]))
}

/// The reqwest client of setup, enrolment, scraping and `hatang-soak`: HTTP/1.1 keep-alive, no
/// proxy, TLS provider as the agent installs it (the client refuses to build without one, though only plain HTTP is used here).
pub fn client(concurrency: usize) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(concurrency)
        .timeout(Duration::from_secs(30))
        .user_agent("hatang-load")
        .build()
        .expect("an HTTP client")
}

/// A transport failure as an outcome: `error: timeout`, `connect`, `body` or `request`.
pub fn classify(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else if e.is_body() || e.is_decode() {
        "body"
    } else {
        "request"
    };
    format!("error: {kind}")
}

/// What became of one request: its status code once the whole answer was read, or the kind of
/// transport failure ([`classify`]).
pub async fn outcome(answer: Result<reqwest::Response, reqwest::Error>) -> String {
    match answer {
        Ok(response) => {
            let status = response.status().as_u16().to_string();
            match response.bytes().await {
                Ok(_) => status,
                Err(e) => classify(&e),
            }
        }
        Err(e) => classify(&e),
    }
}

/// What one request came to, counted per worker without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Answer {
    Status(u16),
    Failed(&'static str),
}

/// Runs one phase and gathers what every worker saw. Each worker takes a connection from
/// `client` and gives it back at the end, so the next phase reuses it.
pub async fn run(client: &Arc<wire::Client>, plan: Plan, make: MakeRequest) -> Outcome {
    let start = Instant::now();
    let deadline = start + plan.duration;
    let interval = plan
        .rate
        .filter(|r| *r > 0.0)
        .map(|r| Duration::from_secs_f64(plan.concurrency as f64 / r));
    let mut workers = Vec::with_capacity(plan.concurrency);
    for w in 0..plan.concurrency {
        let client = Arc::clone(client);
        let make = Arc::clone(&make);
        workers.push(tokio::spawn(async move {
            let mut conn = client.checkout();
            let mut request = Vec::with_capacity(4096);
            let mut answers: BTreeMap<Answer, u64> = BTreeMap::new();
            let mut latencies = Vec::new();
            // Workers start spread over one interval so a rate is not sent in bursts.
            let offset = interval.map_or(Duration::ZERO, |i| {
                i.mul_f64(w as f64 / plan.concurrency as f64)
            });
            let mut n = 0u64;
            loop {
                let due = match interval {
                    Some(i) => start + offset + i.mul_f64(n as f64),
                    None => Instant::now(),
                };
                if due >= deadline {
                    break;
                }
                if interval.is_some() {
                    sleep_until(due.into()).await;
                }
                make(w, n, &mut request);
                let answer = match conn.send(&request).await {
                    Ok(status) => Answer::Status(status),
                    Err(e) => Answer::Failed(e.class()),
                };
                let took = due.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                latencies.push(took);
                *answers.entry(answer).or_default() += 1;
                n += 1;
            }
            client.checkin(conn);
            (answers, latencies)
        }));
    }
    let mut out = Outcome::default();
    for w in workers {
        let (answers, latencies) = w.await.expect("a load worker does not panic");
        for (answer, n) in answers {
            let label = match answer {
                Answer::Status(s) => s.to_string(),
                Answer::Failed(class) => class.to_string(),
            };
            *out.statuses.entry(label).or_default() += n;
        }
        out.latencies_us.extend(latencies);
    }
    out.elapsed = start.elapsed();
    out.latencies_us.sort_unstable();
    out
}

/// A duration as milliseconds with sensible precision.
pub fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else if ms < 100.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

/// Mebibytes from kibibytes.
pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// A count with thousands separators.
pub fn thousands(n: f64) -> String {
    let s = format!("{:.0}", n.max(0.0));
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the local server saw: answers by status, and the client ports it was reached from.
    #[derive(Default)]
    struct Seen {
        statuses: BTreeMap<u16, u64>,
        peers: std::collections::BTreeSet<u16>,
    }

    type Shared = Arc<std::sync::Mutex<Seen>>;

    /// Accepts a report when it carries the good key and is framed as the collector expects;
    /// every fifth request of a worker is sent to `/busy`, answered `503` with `Connection: close`.
    async fn local_collector() -> (Arc<wire::Client>, Shared) {
        use axum::extract::{ConnectInfo, State};
        use axum::http::{HeaderMap, StatusCode, header};

        let seen: Shared = Arc::default();
        fn note(seen: &Shared, peer: std::net::SocketAddr, status: StatusCode) -> StatusCode {
            let mut s = seen.lock().unwrap();
            *s.statuses.entry(status.as_u16()).or_default() += 1;
            s.peers.insert(peer.port());
            status
        }
        let report = |State(seen): State<Shared>,
                      ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
                      headers: HeaderMap,
                      body: axum::body::Bytes| async move {
            let h = |name| headers.get(name).map(|v| v.as_bytes().to_vec());
            let framed = h(header::CONTENT_TYPE) == Some(b"application/json".to_vec())
                && h(header::CONTENT_ENCODING) == Some(b"gzip".to_vec())
                && body.as_ref() == b"{}";
            let status = match h(header::AUTHORIZATION) {
                _ if !framed => StatusCode::BAD_REQUEST,
                Some(k) if k == b"Bearer good" => StatusCode::ACCEPTED,
                _ => StatusCode::UNAUTHORIZED,
            };
            note(&seen, peer, status)
        };
        let busy = |State(seen): State<Shared>,
                    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>| async move {
            (
                [(header::CONNECTION, "close")],
                note(&seen, peer, StatusCode::SERVICE_UNAVAILABLE),
            )
        };
        let app = axum::Router::new()
            .route("/api/v1/reports", axum::routing::post(report))
            .route("/busy", axum::routing::get(busy))
            .with_state(Arc::clone(&seen));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
            axum::serve(listener, app).await.unwrap();
        });
        let client = wire::Client::new(&format!("http://{addr}")).await.unwrap();
        (Arc::new(client), seen)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_phase_counts_what_the_server_answered() {
        let (client, seen) = local_collector().await;
        let host = client.host().to_string();
        let make: MakeRequest = Arc::new(move |_, n, out: &mut Vec<u8>| {
            let (path, key): (&str, &[u8]) = match n % 5 {
                4 => ("/busy", b"Bearer good"),
                3 => ("/api/v1/reports", b"Bearer bad"),
                _ => ("/api/v1/reports", b"Bearer good"),
            };
            let body = wire::Body {
                content_type: "application/json",
                content_encoding: Some("gzip"),
                bytes: b"{}",
            };
            let request = wire::Request {
                method: if path == "/busy" { "GET" } else { "POST" },
                path,
                authorization: Some(key),
                body: (path != "/busy").then_some(body),
            };
            wire::encode(out, &host, &request);
        });
        let plan = Plan {
            concurrency: 3,
            duration: Duration::from_millis(400),
            rate: None,
        };
        let out = run(&client, plan, make).await;
        let seen = seen.lock().unwrap();
        let counted = |s: u16| seen.statuses.get(&s).copied().unwrap_or(0);
        assert_eq!(out.errors(&["202", "401", "503"]), "none");
        for status in [202, 401, 503] {
            assert_eq!(out.count(&status.to_string()), counted(status), "{status}");
        }
        assert!(counted(503) > 0 && counted(401) > 0, "{:?}", seen.statuses);
        // 4 in 5 requests on a worker's connection are kept alive, the 5th is closed by the
        // server: three workers open one connection per 503 plus their first.
        let reconnects = 3 + counted(503) as usize;
        assert!(
            (reconnects - 3..=reconnects).contains(&seen.peers.len()),
            "{} connections for {} closes",
            seen.peers.len(),
            counted(503)
        );
        assert_eq!(out.latencies_us.len() as u64, out.total());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_target_rate_is_kept() {
        let (client, seen) = local_collector().await;
        let host = client.host().to_string();
        let make: MakeRequest = Arc::new(move |_, _, out: &mut Vec<u8>| {
            let request = wire::Request {
                method: "POST",
                path: "/api/v1/reports",
                authorization: Some(b"Bearer good"),
                body: Some(wire::Body {
                    content_type: "application/json",
                    content_encoding: Some("gzip"),
                    bytes: b"{}",
                }),
            };
            wire::encode(out, &host, &request);
        });
        let plan = Plan {
            concurrency: 4,
            duration: Duration::from_secs(1),
            rate: Some(200.0),
        };
        let out = run(&client, plan, make).await;
        assert_eq!(out.errors(&["202"]), "none");
        assert_eq!(out.count("202"), 200, "4 workers × 50 due in 1 s");
        assert_eq!(
            seen.lock().unwrap().peers.len(),
            4,
            "one connection per worker"
        );
    }

    #[test]
    fn quantiles_are_nearest_rank() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(quantile(&v, 0.5), Duration::from_micros(50));
        assert_eq!(quantile(&v, 0.99), Duration::from_micros(99));
        assert_eq!(quantile(&v, 1.0), Duration::from_micros(100));
        assert_eq!(quantile(&v, 0.0), Duration::from_micros(1));
        assert_eq!(quantile(&[], 0.5), Duration::ZERO);
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(1234567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(ms(Duration::from_micros(1234)), "1.23 ms");
        assert_eq!(ms(Duration::from_micros(45_600)), "45.6 ms");
        let o = Outcome {
            statuses: [("202".to_string(), 5), ("503".to_string(), 1)].into(),
            ..Outcome::default()
        };
        assert_eq!(o.errors(&["202"]), "503 ×1");
        assert_eq!(o.total(), 6);
    }
}
