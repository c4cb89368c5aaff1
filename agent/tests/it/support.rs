//! A fake collector and helpers for running the agent against it.
//!
//! The fake collector is a real HTTP server on a port the kernel picked: it records every request
//! (path, headers, the gunzipped JSON body and what it answered) and answers from a script, one
//! answer per request, the last answer repeated once the script runs out.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use hatang_agent::report;
use hatang_agent::spool::{Bounds, Spool};
use hatang_agent::state::{self, Enrolment};
use hatang_protocol::{Report, Sample};
use serde_json::{Value, json};
use uuid::Uuid;

/// The key the fake enrolments carry.
pub const AGENT_KEY: &str = "hta_it_secret_key";

/// One scripted answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    /// A `Retry-After` header, in seconds.
    pub retry_after: Option<u64>,
}

impl Answer {
    /// What a collector says with this status on the report endpoint.
    pub fn status(status: u16) -> Self {
        let body = match status {
            202 => json!({"status": "accepted"}),
            200 => json!({"status": "duplicate"}),
            _ => json!({"error": {"code": "scripted", "message": format!("scripted {status}")}}),
        };
        Self::json(status, body)
    }

    pub fn json(status: u16, body: Value) -> Self {
        Self {
            status,
            body,
            retry_after: None,
        }
    }

    /// The same answer with `Retry-After: secs`.
    pub fn retry_after(self, secs: u64) -> Self {
        Self {
            retry_after: Some(secs),
            ..self
        }
    }
}

/// One request as the fake collector saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    /// The body, gunzipped when it said `Content-Encoding: gzip`, as JSON (`Null` if it was not).
    pub body: Value,
    /// The status it was answered with.
    pub answered: u16,
    /// Reports in the watched spool directory when the request arrived.
    pub spooled: Option<usize>,
    /// When it arrived (read by the daemon's tests, which run on Unix).
    #[cfg(unix)]
    pub at: std::time::Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn report(&self) -> Report {
        serde_json::from_value(self.body.clone()).expect("body is a Report")
    }

    pub fn delivered(&self) -> bool {
        matches!(self.answered, 200 | 202)
    }
}

#[derive(Debug, Default)]
struct Shared {
    script: Vec<Answer>,
    received: Vec<Received>,
    watch: Option<PathBuf>,
    /// Answer like the real collector instead of from the script.
    dedup: bool,
    /// Time between recording a request and answering it.
    delay: Duration,
    /// Answer 503 to every report and speed test, storing nothing.
    down: bool,
    /// Speed-test requests, kept apart from `received` (which holds reports).
    speedtests: Vec<SpeedRequest>,
}

/// One speed-test request as the fake collector saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpeedRequest {
    pub path: String,
    pub authorized: bool,
    /// Bytes sent (download) or received (upload).
    pub bytes: u64,
}

#[derive(Debug)]
pub struct FakeCollector {
    pub url: String,
    shared: Arc<Mutex<Shared>>,
}

impl FakeCollector {
    /// Starts a collector answering with these statuses in turn.
    pub async fn start(statuses: impl IntoIterator<Item = u16>) -> Self {
        Self::answering(statuses.into_iter().map(Answer::status).collect()).await
    }

    pub async fn answering(script: Vec<Answer>) -> Self {
        assert!(!script.is_empty(), "a fake collector needs an answer");
        let shared = Arc::new(Mutex::new(Shared {
            script,
            ..Shared::default()
        }));
        let app = Router::new()
            .route(
                "/api/v1/speedtest/download",
                axum::routing::get(speed_download),
            )
            .route(
                "/api/v1/speedtest/upload",
                axum::routing::post(speed_upload),
            )
            .fallback(record)
            .with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, shared }
    }

    /// Starts a collector that answers like the real one: 202 for a report id it has not
    /// stored, 200 for one it has. It stores a report on arrival and answers `delay` later, so a
    /// client that dies in between has a report stored without knowing it.
    pub async fn storing(delay: Duration) -> Self {
        let collector = Self::start([202]).await;
        {
            let mut shared = collector.shared.lock().unwrap();
            shared.dedup = true;
            shared.delay = delay;
        }
        collector
    }

    /// The speed-test requests so far.
    pub fn speedtests(&self) -> Vec<SpeedRequest> {
        self.shared.lock().unwrap().speedtests.clone()
    }

    /// Makes the collector answer 503 to every report and speed test (`true`), or work again.
    pub fn set_down(&self, down: bool) {
        self.shared.lock().unwrap().down = down;
    }

    /// Records, with every request, how many reports `spool_dir` held when it arrived.
    pub fn watch_spool(&self, spool_dir: &Path) {
        self.shared.lock().unwrap().watch = Some(spool_dir.to_path_buf());
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.lock().unwrap().received.clone()
    }

    /// The report ids sent, in the order they arrived.
    pub fn report_ids(&self) -> Vec<Uuid> {
        self.received()
            .iter()
            .map(|r| r.report().report_id)
            .collect()
    }

    /// How many times each id was answered 200 or 202, in first-delivery order.
    pub fn deliveries(&self) -> Vec<(Uuid, usize)> {
        let mut counts: Vec<(Uuid, usize)> = Vec::new();
        for r in self.received().iter().filter(|r| r.delivered()) {
            let id = r.report().report_id;
            match counts.iter_mut().find(|(seen, _)| *seen == id) {
                Some((_, n)) => *n += 1,
                None => counts.push((id, 1)),
            }
        }
        counts
    }
}

async fn record(
    State(shared): State<Arc<Mutex<Shared>>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let gzip = headers
        .get("content-encoding")
        .is_some_and(|v| v.as_bytes() == b"gzip");
    let json = if gzip {
        let mut text = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut text)
            .map(|_| text)
            .ok()
    } else {
        Some(body.to_vec())
    }
    .and_then(|bytes| serde_json::from_slice(&bytes).ok())
    .unwrap_or(Value::Null);
    let (answer, delay) = {
        let mut shared = shared.lock().unwrap();
        let n = shared.received.len();
        let answer = if shared.down {
            Answer::status(503)
        } else if shared.dedup {
            let stored = shared
                .received
                .iter()
                .any(|r| r.delivered() && r.body["report_id"] == json["report_id"]);
            Answer::status(if stored { 200 } else { 202 })
        } else {
            shared.script[n.min(shared.script.len() - 1)].clone()
        };
        let spooled = shared.watch.as_deref().map(spool_files);
        shared.received.push(Received {
            path: uri.path().to_owned(),
            headers,
            body: json,
            answered: answer.status,
            spooled,
            #[cfg(unix)]
            at: std::time::Instant::now(),
        });
        (answer, shared.delay)
    };
    tokio::time::sleep(delay).await;
    let status = StatusCode::from_u16(answer.status).unwrap();
    let mut response = (status, axum::Json(answer.body)).into_response();
    if let Some(secs) = answer.retry_after {
        response
            .headers_mut()
            .insert(axum::http::header::RETRY_AFTER, secs.into());
    }
    response
}

/// Reports (`*.rec`) in a spool directory.
pub fn spool_files(dir: &Path) -> usize {
    spooled_ids(dir).len()
}

/// Ids of the reports (`<seq>-<report_id>.rec`) in a spool directory, in name order.
pub fn spooled_ids(dir: &Path) -> Vec<Uuid> {
    let mut names: Vec<String> = std::fs::read_dir(dir).map_or(Vec::new(), |entries| {
        entries
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".rec"))
            .collect()
    });
    names.sort();
    names
        .iter()
        .filter_map(|n| n.strip_suffix(".rec")?.split_once('-')?.1.parse().ok())
        .collect()
}

/// Like the real collector's endpoint, minus the randomness: zeros, exactly as many as asked.
async fn speed_download(
    State(shared): State<Arc<Mutex<Shared>>>,
    headers: HeaderMap,
    axum::extract::Query(query): axum::extract::Query<std::collections::HashMap<String, u64>>,
) -> Response {
    let bytes = query.get("bytes").copied().unwrap_or(4 << 20);
    if let Err(refused) = speed_request(&shared, "download", &headers, bytes) {
        return refused.into_response();
    }
    vec![0u8; usize::try_from(bytes).unwrap()].into_response()
}

async fn speed_upload(
    State(shared): State<Arc<Mutex<Shared>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let bytes = body.len() as u64;
    if let Err(refused) = speed_request(&shared, "upload", &headers, bytes) {
        return refused.into_response();
    }
    axum::Json(json!({"bytes": bytes, "seconds": 0.001})).into_response()
}

/// Records a speed-test request; the status to refuse it with, if any: 503 while the
/// collector is down, 401 without the agent key.
fn speed_request(
    shared: &Mutex<Shared>,
    path: &str,
    headers: &HeaderMap,
    bytes: u64,
) -> Result<(), StatusCode> {
    let authorized = headers
        .get("authorization")
        .is_some_and(|v| v.as_bytes() == format!("Bearer {AGENT_KEY}").as_bytes());
    let mut shared = shared.lock().unwrap();
    shared.speedtests.push(SpeedRequest {
        path: path.to_owned(),
        authorized,
        bytes,
    });
    if shared.down {
        Err(StatusCode::SERVICE_UNAVAILABLE)
    } else if authorized {
        Ok(())
    } else {
        Err(StatusCode::UNAUTHORIZED)
    }
}

/// A port nothing listens on (bound, then released).
pub fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

/// Spools `n` small reports under `state_dir`; returns the spool and their ids, oldest first.
pub fn spooled(state_dir: &Path, n: usize) -> (Spool, Vec<Uuid>) {
    let bounds = Bounds {
        max_reports: 100,
        max_bytes: 1 << 20,
        max_age: Duration::from_secs(3600),
    };
    let spool = Spool::open(state_dir, bounds, SystemTime::now()).unwrap();
    let ids = (0..n)
        .map(|_| {
            let report = report::build(
                None,
                Some(Sample::default()),
                Vec::new(),
                Duration::from_secs(60),
            );
            let body = report::encode(&report).unwrap();
            spool
                .push(report.report_id, &body, SystemTime::now())
                .unwrap();
            report.report_id
        })
        .collect();
    (spool, ids)
}

/// Ids of the reports still in the spool, oldest first.
pub fn pending_ids(spool: &Spool) -> Vec<Uuid> {
    spool
        .pending()
        .unwrap()
        .iter()
        .map(|e| e.report_id)
        .collect()
}

/// Enrols the agent whose state is in `state_dir` with `collector`, as `enroll` would.
pub fn enrol(state_dir: &Path, collector: &str) {
    state::save(
        state_dir,
        &Enrolment {
            collector: collector.to_owned(),
            agent_id: "a-it".to_owned(),
            agent_key: AGENT_KEY.to_owned(),
            unit: Some("17-SYT".to_owned()),
            role: Some("workstation".to_owned()),
            machine_id: Some("it-machine".to_owned()),
            tls: Default::default(),
        },
    )
    .unwrap();
}

/// `once --print --config CONFIG`: the report it printed, which must validate.
pub async fn printed_report(state_dir: &Path, config: &Path) -> Report {
    let out = run(agent(state_dir)
        .args(["once", "--print", "--config"])
        .arg(config))
    .await;
    assert!(out.success, "{out:?}");
    let report: Report = serde_json::from_str(&out.stdout).unwrap();
    report.validate(&Default::default()).unwrap();
    report
}

/// The agent binary with its state in `state_dir`, a fixed machine id and none of the caller's
/// `HATANG_*` settings.
/// `hatang-agent run --config CONFIG`: an agent running in the background of a test, its log
/// on the child's stderr for a test that reads it (a few lines: nothing fills the pipe).
pub fn running(state_dir: &Path, config: &Path) -> tokio::process::Child {
    agent(state_dir)
        .arg("run")
        .arg("--config")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

pub fn agent(state_dir: &Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_hatang-agent"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("HATANG_") {
            cmd.env_remove(name);
        }
    }
    cmd.env("HATANG_STATE_DIR", state_dir)
        .env("HATANG_MACHINE_ID", "it-machine")
        // Tests send traffic to loopback only, never to this machine's real gateway.
        .env("HATANG_GATEWAY_PROBE", "false")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// What a finished agent run printed.
#[derive(Debug)]
pub struct Run {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The agent's own error line (`hatang-agent: …`); asserts there is exactly one.
    pub fn error_line(&self) -> &str {
        let lines: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| l.starts_with("hatang-agent: "))
            .collect();
        assert_eq!(lines.len(), 1, "stderr: {}", self.stderr);
        lines[0]
    }
}

/// Runs the agent to completion (failing the test after 20 s).
pub async fn run(cmd: &mut tokio::process::Command) -> Run {
    let output = tokio::time::timeout(Duration::from_secs(20), cmd.output())
        .await
        .expect("hatang-agent finished within 20 s")
        .unwrap();
    Run {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Polls `done` every 50 ms until it holds; panics after `within`.
pub async fn wait_until(within: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {within:?} waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
