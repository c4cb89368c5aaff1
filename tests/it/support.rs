//! Running the real binaries: a collector process on a loopback port, agents with their own
//! state directories and machine ids, a minimal HTTP client and an exposition parser.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// A binary built by this workspace (`target/<profile>/<name>`).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/e2e-<hash> → target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test --workspace`, which builds it",
        path.display()
    );
    path
}

pub fn testdata(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata")
        .join(file)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn text(output: &Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs a command to completion and insists that it succeeded; returns its stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let output = cmd.output().expect("command runs");
    assert!(output.status.success(), "{cmd:?} failed: {}", text(&output));
    String::from_utf8(output.stdout).expect("utf-8 stdout")
}

/// A collector on a loopback port with its own SQLite file (or PostgreSQL database); killed
/// when dropped.
pub struct Collector {
    pub dir: tempfile::TempDir,
    pub addr: String,
    database: String,
    child: Option<Child>,
    /// (admin URL, name) of a PostgreSQL database to drop with the collector.
    postgres: Option<(String, String)>,
}

impl Collector {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let database = format!("sqlite://{}", dir.path().join("hatang.db").display());
        Self {
            addr: format!("127.0.0.1:{}", free_port()),
            dir,
            database,
            child: None,
            postgres: None,
        }
    }

    /// A collector on a fresh PostgreSQL database, created with `psql` through the admin URL
    /// in `HATANG_TEST_POSTGRES_URL`. Unset: `None`, said on stderr; under `CI`, a failure.
    pub fn on_postgres() -> Option<Self> {
        let admin = match std::env::var("HATANG_TEST_POSTGRES_URL") {
            Ok(url) if !url.is_empty() => url,
            _ if std::env::var_os("CI").is_some() => {
                panic!(
                    "CI is set but HATANG_TEST_POSTGRES_URL is not: the PostgreSQL tests must run"
                )
            }
            _ => {
                eprintln!("skipped: HATANG_TEST_POSTGRES_URL not set");
                return None;
            }
        };
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!("hatang_e2e_{}_{nanos}", std::process::id());
        psql(&admin, &format!("CREATE DATABASE {name}"));
        let mut collector = Self::new();
        collector.database = with_database(&admin, &name);
        collector.postgres = Some((admin, name));
        Some(collector)
    }

    /// A second collector process on this one's database (another port, another directory),
    /// as a replica behind a load balancer would be. The database is dropped with `self` only.
    pub fn replica(&self) -> Self {
        let mut replica = Self::new();
        replica.database.clone_from(&self.database);
        replica
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `hatang-collector ARGS --database <this collector's database>`.
    pub fn cli(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin("hatang-collector"));
        cmd.args(args).args(["--database", &self.database]);
        cmd.env("HATANG_LOG", "warn");
        cmd
    }

    pub fn token(&self, args: &[&str]) -> String {
        let out = run_ok(&mut self.cli(&[&["token", "create"], args].concat()));
        out.lines().last().expect("a token line").trim().to_string()
    }

    /// Starts `serve` with figures cached at most `cache_secs` and waits until it answers.
    pub fn start(&mut self, cache_secs: u32) {
        self.start_configured(&format!("figures_cache_secs = {cache_secs}\n"), |c| {
            matches!(get(&c.addr, "/healthz"), Ok((200, _)))
        });
    }

    /// Starts `serve` with `config` as its configuration file and waits until `ready` says it
    /// answers.
    pub fn start_configured(&mut self, config: &str, ready: impl Fn(&Self) -> bool) {
        let text = config;
        let config = self.dir.path().join("collector.toml");
        std::fs::write(&config, text).unwrap();
        // Appended to, so a collector started again keeps the log of its earlier runs.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("collector.log"))
            .unwrap();
        let child = self
            .cli(&["serve", "--listen", &self.addr])
            .arg("--config")
            .arg(&config)
            .env("HATANG_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("collector starts");
        self.child = Some(child);
        eventually(Duration::from_secs(20), || {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("collector exited with {status}: {}", self.log());
            }
            ready(self).then_some(())
        });
    }

    /// The process id of the running `serve`.
    pub fn pid(&mut self) -> u32 {
        let child = self.child.as_mut().expect("the collector was started");
        assert!(
            child.try_wait().expect("collector status").is_none(),
            "the collector exited"
        );
        child.id()
    }

    /// Kills `serve` with SIGKILL (as a crash or a power cut would) and returns how it ended;
    /// `start` brings it back on the same address and database.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = child.kill();
        child.wait().ok()
    }

    /// The database URL given to every command.
    pub fn database(&self) -> &str {
        &self.database
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("collector.log")).unwrap_or_default()
    }

    /// `GET /metrics`, parsed.
    pub fn metrics(&self) -> Metrics {
        Metrics::parse(&self.exposition("/metrics"))
    }

    /// `GET /metrics/detail` (per-unit connectivity, per-server resources), parsed.
    pub fn metrics_detail(&self) -> Metrics {
        Metrics::parse(&self.exposition("/metrics/detail"))
    }

    /// The text of `path` (`/metrics` or `/metrics/detail`).
    pub fn exposition(&self, path: &str) -> String {
        let (status, body) = get(&self.addr, path).unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert_eq!(status, 200, "{path}: {body}");
        body
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.stop();
        // A failed test keeps its database to be looked at.
        if let Some((admin, name)) = self.postgres.take() {
            if std::thread::panicking() {
                eprintln!("kept the database of the failed test: {name}");
            } else {
                psql(
                    &admin,
                    &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                );
            }
        }
    }
}

fn psql(url: &str, sql: &str) {
    run_ok(Command::new("psql").args(["-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql]));
}

/// `url` with its database name replaced by `name`, query parameters kept.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority = base.find("://").map_or(0, |i| i + 3);
    let server = match base[authority..].find('/') {
        Some(slash) => &base[..authority + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{server}/{name}?{q}"),
        None => format!("{server}/{name}"),
    }
}

/// One simulated machine: its own state directory and machine id.
pub struct Agent {
    pub state: tempfile::TempDir,
    pub machine_id: String,
}

impl Agent {
    pub fn new(machine_id: &str) -> Self {
        Self {
            state: tempfile::tempdir().expect("temp dir"),
            machine_id: machine_id.to_string(),
        }
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin("hatang-agent"));
        cmd.args(args)
            .env("HATANG_STATE_DIR", self.state.path())
            .env("HATANG_MACHINE_ID", &self.machine_id)
            // Tests send traffic to loopback only, never to this machine's real gateway.
            .env("HATANG_GATEWAY_PROBE", "false")
            .env("HATANG_LOG", "warn");
        cmd
    }

    /// Enrols and returns the agent id the collector gave.
    pub fn enroll(&self, collector: &Collector, token: &str) -> String {
        run_ok(&mut self.cmd(&["enroll", "--collector", &collector.url(), "--token", token]));
        let state = std::fs::read_to_string(self.state.path().join("agent.json")).unwrap();
        let agent_id = state
            .split("\"agent_id\": \"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("agent_id in agent.json");
        agent_id.to_string()
    }

    pub fn once(&self) {
        run_ok(&mut self.cmd(&["once"]));
    }
}

/// Polls `check` until it returns `Some`, or panics after `limit`.
pub fn eventually<T>(limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "condition not met within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A plain HTTP/1.1 GET on loopback: (status, body).
pub fn get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    get_as(addr, path, None)
}

/// [`get`], with `Authorization: Bearer TOKEN` when a token is given.
pub fn get_as(addr: &str, path: &str, token: Option<&str>) -> std::io::Result<(u16, String)> {
    let stream = connect(addr)?;
    exchange(stream, &get_request(addr, path, token))
}

/// A plain HTTP/1.1 POST of a JSON body on loopback, with `Authorization: Bearer TOKEN` when a
/// token is given: (status, body). Status 0: the connection closed without an answer.
pub fn post_json(
    addr: &str,
    path: &str,
    token: Option<&str>,
    json: &str,
) -> std::io::Result<(u16, String)> {
    let stream = connect(addr)?;
    let auth = authorization(token);
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{json}",
        json.len()
    );
    exchange(stream, &request)
}

/// A connection to `addr` that waits at most 10 s for an answer.
fn connect(addr: &str) -> std::io::Result<TcpStream> {
    let stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    Ok(stream)
}

/// The `Authorization: Bearer` header line of `token`, if given.
fn authorization(token: Option<&str>) -> String {
    token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default()
}

/// A `GET` that closes the connection after the answer, with a bearer token if given.
pub fn get_request(addr: &str, path: &str, token: Option<&str>) -> String {
    let auth = authorization(token);
    format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n")
}

/// Writes a whole request (one that asks to close the connection) to `stream` and reads the
/// answer to its end: (status, body).
pub fn exchange(mut stream: impl Read + Write, request: &str) -> std::io::Result<(u16, String)> {
    stream.write_all(request.as_bytes())?;
    let mut response = Vec::new();
    match stream.read_to_end(&mut response) {
        // A TLS server may close without a close_notify once the answer is complete.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !response.is_empty() => {}
        done => {
            done?;
        }
    }
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    Ok((
        status,
        if chunked {
            dechunk(body)
        } else {
            body.to_string()
        },
    ))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Samples of a Prometheus text exposition, keyed by name and sorted labels.
#[derive(Debug, Default)]
pub struct Metrics(BTreeMap<(String, Vec<(String, String)>), f64>);

impl Metrics {
    pub fn parse(text: &str) -> Self {
        let mut samples = BTreeMap::new();
        for line in text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let (series, value) = line.rsplit_once(' ').expect("sample line");
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, parse_labels(rest.trim_end_matches('}'))),
                None => (series, Vec::new()),
            };
            samples.insert((name.to_string(), labels), value.parse().expect("number"));
        }
        Self(samples)
    }

    /// Every sample of `name` as (its labels written out, value), in label order.
    pub fn series(&self, name: &str) -> Vec<(String, f64)> {
        self.0
            .iter()
            .filter(|((n, _), _)| n == name)
            .map(|((n, ls), v)| (format!("{n}{ls:?}"), *v))
            .collect()
    }

    /// Values of every sample of `name` whose labels include `labels`.
    fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = f64> + 'a {
        self.0
            .iter()
            .filter(move |((n, ls), _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| ls.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|(_, v)| *v)
    }

    /// The one sample of `name` whose labels include `labels`; `None` if absent.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let hits: Vec<f64> = self.matching(name, labels).collect();
        assert!(
            hits.len() <= 1,
            "{name}{labels:?} matches {} series",
            hits.len()
        );
        hits.first().copied()
    }

    /// Sum of every sample of `name` whose labels include `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).sum()
    }
}

fn parse_labels(text: &str) -> Vec<(String, String)> {
    let mut labels = Vec::new();
    let mut rest = text;
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(if escaped == 'n' { '\n' } else { escaped });
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        labels.push((key.trim_start_matches(',').trim().to_string(), value));
        rest = &after[end..];
    }
    labels.sort();
    labels
}

/// A unit tree as the CSV says: code → (level, staff).
pub fn units(file: &Path) -> BTreeMap<String, (String, u32)> {
    let mut reader = csv::Reader::from_path(file).expect("unit CSV");
    reader
        .records()
        .map(|r| {
            let r = r.expect("CSV record");
            (
                r[0].to_string(),
                (r[2].to_string(), r[4].parse().expect("staff")),
            )
        })
        .collect()
}

/// Runs `promtool check metrics` on an exposition; `None` when promtool is not installed (CI
/// installs it, and there its absence fails the test).
pub fn promtool_check(exposition: &str) -> Option<Output> {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(_) if std::env::var_os("CI").is_none() => return None,
        Err(e) => panic!("promtool is required in CI: {e}"),
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(exposition.as_bytes())
        .expect("write to promtool");
    Some(child.wait_with_output().expect("promtool runs"))
}

/// A TCP load balancer on a free loopback port that hands each new connection to the next of
/// `backends` in turn, as HAProxy does in `mode tcp` with `balance roundrobin`. It runs until
/// the test process ends.
pub struct Balancer {
    pub addr: String,
}

impl Balancer {
    pub fn round_robin(backends: Vec<String>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the balancer");
        let addr = listener.local_addr().expect("its address").to_string();
        std::thread::spawn(move || {
            for (i, client) in listener.incoming().enumerate() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(&backends[i % backends.len()]) else {
                    continue;
                };
                pipe(&client, &server);
                pipe(&server, &client);
            }
        });
        Self { addr }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Copies what `from` receives to `to` on a thread of its own, until `from` ends.
fn pipe(from: &TcpStream, to: &TcpStream) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
        return;
    };
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(std::net::Shutdown::Write);
    });
}
