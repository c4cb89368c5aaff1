//! Shared fixtures: a collector over a fresh database (a temporary SQLite file, or a fresh
//! PostgreSQL database when `HATANG_TEST_POSTGRES_URL` names a server), requests through the
//! router with `oneshot`, the golden report as a template, and a small parser for the metrics
//! exposition.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use flate2::Compression;
use flate2::write::GzEncoder;
use hatang_collector::config::{Config, Overrides, RawConfig};
use hatang_collector::http::{self, AppState};
use hatang_collector::store::{self, ApiRole, ImportSummary, Store};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use sqlx::Connection as _;
use tempfile::TempDir;
use tower::ServiceExt as _;

/// The 2024 three-tier shape: a province root without staff, a province agency, a district and
/// two communes.
pub const TREE_3: &str = "code,name,level,parent_code,staff
17,Tỉnh Hoà Bình,province,,0
17-SYT,Sở Y tế,province,17,4
148,Thành phố Hòa Bình,district,17,10
4351,Phường Tân Hòa,commune,148,3
4352,Xã Hòa Bình,commune,148,5
";

/// The same province after the 2025 reform: no district level, the communes hang off the
/// province, and one new commune.
pub const TREE_2: &str = "code,name,level,parent_code,staff
17,Tỉnh Hoà Bình,province,,0
17-SYT,Sở Y tế,province,17,4
4351,Phường Tân Hòa,commune,17,3
4352,Xã Hòa Bình,commune,17,5
4360,Xã Tân Lạc,commune,17,7
";

const GOLDEN_REPORT: &str = include_str!("../../../protocol/tests/golden/report-v1.json");

/// The golden v1 report with a fresh report id.
pub fn report() -> Value {
    let mut r: Value = serde_json::from_str(GOLDEN_REPORT).unwrap();
    r["report_id"] = json!(uuid::Uuid::now_v7().to_string());
    r
}

/// The golden v1 report as the machine enrolled by [`Harness::enrolled`] with `machine_id` sends
/// it: its inventory names it as its enrolment did (`host-<machine id>`), as a real agent's does.
pub fn report_from(machine_id: &str) -> Value {
    let mut r = report();
    r["inventory"]["hostname"] = json!(format!("host-{machine_id}"));
    r
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// A test configuration: defaults, but figures are never cached so every request sees the
/// database as it is.
pub fn config(db: &str) -> Config {
    let mut c = RawConfig::default()
        .check(&Overrides {
            database: Some(db.to_string()),
            ..Overrides::default()
        })
        .unwrap();
    c.figures_cache_secs = 0;
    c
}

/// What came back from the router.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("body is UTF-8")
    }

    pub fn header(&self, name: header::HeaderName) -> &str {
        self.headers
            .get(&name)
            .unwrap_or_else(|| panic!("no {name} header in {self:?}"))
            .to_str()
            .unwrap()
    }

    /// The JSON body of a successful answer with this status.
    pub fn json(&self, status: StatusCode) -> Value {
        assert_eq!(self.status, status, "body: {}", self.text());
        assert_eq!(self.header(header::CONTENT_TYPE), "application/json");
        serde_json::from_slice(&self.body).unwrap()
    }

    /// Checks the answer is the JSON error `{"error": {"code", "message"}}` with this status
    /// and code, and returns the message.
    pub fn error(&self, status: StatusCode, code: &str) -> String {
        let body = self.json(status);
        let error = &body["error"];
        assert_eq!(
            body.as_object().unwrap().len(),
            1,
            "only `error` at the top: {body}"
        );
        assert_eq!(error.as_object().unwrap().len(), 2, "{body}");
        assert_eq!(error["code"], code, "{body}");
        let message = error["message"].as_str().expect("message is a string");
        assert!(!message.is_empty());
        if status == StatusCode::UNAUTHORIZED {
            assert_eq!(self.header(header::WWW_AUTHENTICATE), "Bearer");
        }
        message.to_string()
    }
}

/// The database a test runs on.
#[derive(Debug, Clone)]
pub enum Backend {
    /// A file in the test's temporary directory.
    Sqlite,
    /// A fresh database created through this admin URL, e.g.
    /// `postgres://postgres@127.0.0.1:55432/hatang`.
    Postgres(String),
}

impl Backend {
    /// PostgreSQL from `HATANG_TEST_POSTGRES_URL`. Unset: `None`, said on stderr so a skipped
    /// test is visible, and a failure under `CI`, which must run them.
    pub fn postgres() -> Option<Backend> {
        match std::env::var("HATANG_TEST_POSTGRES_URL") {
            Ok(url) if !url.is_empty() => Some(Backend::Postgres(url)),
            _ if std::env::var_os("CI").is_some() => {
                panic!(
                    "CI is set but HATANG_TEST_POSTGRES_URL is not: the PostgreSQL tests must run"
                )
            }
            _ => {
                eprintln!("skipped: HATANG_TEST_POSTGRES_URL not set");
                None
            }
        }
    }

    /// A fresh, empty database of this kind.
    pub async fn database(&self, dir: &Path) -> TestDb {
        match self {
            Backend::Sqlite => TestDb {
                url: format!("sqlite://{}", dir.join("t.db").display()),
                postgres: None,
            },
            Backend::Postgres(admin) => {
                let name = format!("hatang_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = sqlx::PgConnection::connect(admin)
                    .await
                    .unwrap_or_else(|e| panic!("HATANG_TEST_POSTGRES_URL: {e}"));
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                conn.close().await.unwrap();
                TestDb {
                    url: with_database(admin, &name),
                    postgres: Some((admin.clone(), name)),
                }
            }
        }
    }
}

/// A test's own database. A PostgreSQL one is dropped with the test, unless the test failed:
/// then it is kept, and named on stderr, to be looked at.
#[derive(Debug)]
pub struct TestDb {
    pub url: String,
    /// (admin URL, database name)
    postgres: Option<(String, String)>,
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((admin, name)) = self.postgres.take() else {
            return;
        };
        if std::thread::panicking() {
            eprintln!("kept the database of the failed test: {name}");
            return;
        }
        // Drop runs inside the test's runtime, which cannot block on another future: a thread
        // with its own runtime does the dropping. FORCE ends the store's pooled connections.
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    let mut conn = sqlx::PgConnection::connect(&admin).await?;
                    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    sqlx::query(sqlx::AssertSqlSafe(sql))
                        .execute(&mut conn)
                        .await?;
                    conn.close().await
                })
        })
        .join()
        .unwrap();
        if let Err(e) = dropped {
            eprintln!("could not drop a test database: {e}");
        }
    }
}

/// `url` with its database name replaced by `name`, query parameters kept.
pub fn with_database(url: &str, name: &str) -> String {
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

/// Declares a test story once and runs it on every backend: `NAME::sqlite` always,
/// `NAME::postgres` when `HATANG_TEST_POSTGRES_URL` is set (see [`Backend::postgres`]). The
/// story gets the [`Backend`] and builds its harness with it.
///
/// ```ignore
/// on_every_backend! {
///     #[tokio::test]
///     async fn a_story(db) {
///         let h = Harness::on(&db).await;
///     }
/// }
/// ```
macro_rules! on_every_backend {
    ($(
        $(#[$attr:meta])*
        async fn $name:ident($db:ident) $body:block
    )*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn story($db: $crate::support::Backend) $body

            $(#[$attr])*
            async fn sqlite() {
                story($crate::support::Backend::Sqlite).await
            }

            $(#[$attr])*
            async fn postgres() {
                if let Some(db) = $crate::support::Backend::postgres() {
                    story(db).await
                }
            }
        }
    )*};
}
pub(crate) use on_every_backend;

/// An enrolled agent: its id and the key it reports with.
#[derive(Debug, Clone)]
pub struct Agent {
    pub id: String,
    pub key: String,
}

/// A collector state over a fresh database, driven through its router; `dir` is a temporary
/// directory for the test's files (and the SQLite database).
#[derive(Debug)]
pub struct Harness {
    pub dir: TempDir,
    pub state: AppState,
    // Last, so the store is dropped before its database.
    db: TestDb,
}

impl Harness {
    /// An empty SQLite database.
    pub async fn empty() -> Self {
        Self::with_config(|_| {}).await
    }

    /// An empty SQLite database with a configuration adjusted by `adjust`.
    pub async fn with_config(adjust: impl FnOnce(&mut Config)) -> Self {
        Self::on_with_config(&Backend::Sqlite, adjust).await
    }

    /// A SQLite database holding `tree`.
    pub async fn with_tree(tree: &str) -> Self {
        Self::with_tree_on(&Backend::Sqlite, tree).await
    }

    /// An empty database on `backend`.
    pub async fn on(backend: &Backend) -> Self {
        Self::on_with_config(backend, |_| {}).await
    }

    /// An empty database on `backend`, with a configuration adjusted by `adjust`.
    pub async fn on_with_config(backend: &Backend, adjust: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = backend.database(dir.path()).await;
        let mut config = config(&db.url);
        adjust(&mut config);
        let store = store::open(&config.database, store::Missing::Create)
            .await
            .unwrap();
        Self {
            dir,
            state: AppState::new(store, config),
            db,
        }
    }

    /// A database on `backend` holding `tree`.
    pub async fn with_tree_on(backend: &Backend, tree: &str) -> Self {
        let h = Self::on(backend).await;
        h.import(tree).await;
        h
    }

    /// Another collector replica on the same database: its own store (and pool), as a second
    /// process would have.
    pub async fn replica(&self) -> Self {
        let store = store::open(&self.db.url, store::Missing::Create)
            .await
            .unwrap();
        self.replica_on(store)
    }

    /// Another collector replica over `store`, which the caller opened on this database.
    pub fn replica_on(&self, store: Box<dyn Store>) -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            state: AppState::new(store, self.config().clone()),
            db: TestDb {
                url: self.db.url.clone(),
                postgres: None,
            },
        }
    }

    pub fn store(&self) -> &dyn Store {
        self.state.store()
    }

    /// The database URL, for tests that set rows up directly.
    pub fn db_url(&self) -> &str {
        &self.db.url
    }

    /// Makes this SQLite database fail every report as a full disk does (SQLite ends the whole
    /// transaction); `DROP TRIGGER disk_full` through the connection returned frees it.
    pub async fn fill_the_disk(&self) -> sqlx::SqliteConnection {
        let mut db = sqlx::SqliteConnection::connect(self.db_url())
            .await
            .unwrap();
        sqlx::query(
            "CREATE TRIGGER disk_full BEFORE INSERT ON reports
             BEGIN SELECT RAISE(ROLLBACK, 'database or disk is full'); END",
        )
        .execute(&mut db)
        .await
        .unwrap();
        db
    }

    pub fn config(&self) -> &Config {
        self.state.config()
    }

    pub async fn import(&self, tree: &str) -> ImportSummary {
        let units = hatang_collector::units::parse(tree.as_bytes()).unwrap();
        self.store()
            .import_units(&units, hatang_collector::now())
            .await
            .unwrap()
    }

    pub async fn send(&self, request: Request<Body>) -> Reply {
        send(self.state.clone(), request).await
    }

    /// `GET path`, with `Authorization: Bearer <token>` when a token is given.
    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        let mut request = Request::get(path);
        if let Some(t) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        self.send(request.body(Body::empty()).unwrap()).await
    }

    pub async fn post(&self, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Reply {
        self.send(post(path, headers, body)).await
    }

    pub async fn enroll_raw(&self, body: &str) -> Reply {
        self.post(
            "/api/v1/enroll",
            &[("content-type", "application/json")],
            body.as_bytes().to_vec(),
        )
        .await
    }

    pub async fn enroll(&self, token: &str, machine_id: &str) -> Reply {
        let body = json!({"token": token, "machine_id": machine_id, "hostname": format!("host-{machine_id}")});
        self.enroll_raw(&body.to_string()).await
    }

    /// Enrols and checks the 201 answer.
    pub async fn enrolled(&self, token: &str, machine_id: &str) -> Agent {
        let body = self
            .enroll(token, machine_id)
            .await
            .json(StatusCode::CREATED);
        let agent = Agent {
            id: body["agent_id"].as_str().unwrap().to_string(),
            key: body["agent_key"].as_str().unwrap().to_string(),
        };
        assert!(agent.key.starts_with("hta_"), "{body}");
        agent
    }

    /// An enrolment token for `unit`, made the way `token create --unit` makes it.
    pub async fn enrol_token(&self, unit: &str, role: Option<&str>) -> String {
        self.token(Some(unit), role).await
    }

    /// An API token, made the way `token create --role` makes it.
    pub async fn api_token(&self, role: &str) -> String {
        self.token(None, Some(role)).await
    }

    async fn token(&self, unit: Option<&str>, role: Option<&str>) -> String {
        let mut out = Vec::new();
        let request = hatang_collector::tokens::TokenRequest {
            unit: unit.map(str::to_string),
            role: role.map(str::to_string),
            ..Default::default()
        };
        hatang_collector::commands::token_create(self.store(), &request, &mut out)
            .await
            .unwrap();
        let out = String::from_utf8(out).unwrap();
        out.lines().last().unwrap().to_string()
    }

    /// Enrols `machines` fresh machines with `token` and has each send one report.
    pub async fn reporting_agents(&self, token: &str, prefix: &str, machines: usize) -> Vec<Agent> {
        let mut agents = Vec::new();
        for i in 0..machines {
            let machine = format!("{prefix}-{i}");
            let agent = self.enrolled(token, &machine).await;
            self.report(&agent.key, &report_from(&machine))
                .await
                .json(StatusCode::ACCEPTED);
            agents.push(agent);
        }
        agents
    }

    /// The fleet the figure tests share, on [`TREE_3`]: one workstation in the province agency
    /// 17-SYT (staff 4), two in district 148 (staff 10) plus one that never reported, five in
    /// commune 4351 (staff 3: more computers than people) and only a server in commune 4352
    /// (staff 5). Everything that reported did so just now.
    pub async fn fleet(&self) -> Fleet {
        let province = self.enrol_token("17-SYT", None).await;
        let district = self.enrol_token("148", None).await;
        let commune = self.enrol_token("4351", None).await;
        let server = self.enrol_token("4352", Some("server")).await;
        Fleet {
            province: self.reporting_agents(&province, "p", 1).await,
            district: self.reporting_agents(&district, "d", 2).await,
            commune: self.reporting_agents(&commune, "c", 5).await,
            server: self.reporting_agents(&server, "s", 1).await.remove(0),
            silent: self.enrolled(&district, "d-silent").await,
        }
    }

    /// `POST /api/v1/reports` with an `Authorization` header value as given (`None`: none).
    pub async fn post_report(
        &self,
        authorization: Option<&str>,
        encoding: Option<&str>,
        body: Vec<u8>,
    ) -> Reply {
        self.send(report_request(authorization, encoding, body))
            .await
    }

    /// Sends `report` as plain JSON with `key` as the bearer.
    pub async fn report(&self, key: &str, report: &Value) -> Reply {
        self.post_report(
            Some(&format!("Bearer {key}")),
            None,
            serde_json::to_vec(report).unwrap(),
        )
        .await
    }

    /// `GET /metrics`: the contract, the per-level figures and the per-unit coverage.
    pub async fn metrics(&self) -> Exposition {
        self.exposition("/metrics").await
    }

    /// `GET /metrics/detail`: per-unit connectivity and agent series, per-server resources.
    pub async fn metrics_detail(&self) -> Exposition {
        self.exposition("/metrics/detail").await
    }

    async fn exposition(&self, path: &str) -> Exposition {
        let reply = self.get(path, None).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        Exposition::parse(reply.text())
    }

    /// How many reports are stored and how the ingest counters stand.
    pub async fn snapshot(&self) -> Snapshot {
        let metrics = self.metrics().await;
        Snapshot {
            reports: self.store().report_count(None).await.unwrap(),
            outcomes: [
                "accepted",
                "duplicate",
                "rejected",
                "unauthorized",
                "rate_limited",
                "failed",
            ]
            .into_iter()
            .map(|o| {
                let n = metrics.value("hatang_reports_received_total", &[("outcome", o)]);
                (o.to_string(), n)
            })
            .collect(),
        }
    }

    /// Checks nothing was stored since `before` and only the `outcome` counter moved, by one.
    pub async fn assert_refused(&self, before: &Snapshot, outcome: &str) {
        let after = self.snapshot().await;
        assert_eq!(after.reports, before.reports, "a refused report was stored");
        for (o, n) in &before.outcomes {
            let expected = if o == outcome { n + 1.0 } else { *n };
            assert_eq!(after.outcomes[o], expected, "outcome {o}");
        }
    }

    /// Revokes every API token, as an operator would in the database.
    pub async fn revoke_api_tokens(&self) {
        let now = hatang_collector::now();
        if self.db.postgres.is_some() {
            let mut conn = sqlx::PgConnection::connect(&self.db.url).await.unwrap();
            sqlx::query("UPDATE api_tokens SET revoked_at = $1")
                .bind(now)
                .execute(&mut conn)
                .await
                .unwrap();
            conn.close().await.unwrap();
        } else {
            let pool = sqlx::SqlitePool::connect(&self.db.url).await.unwrap();
            sqlx::query("UPDATE api_tokens SET revoked_at = ?")
                .bind(now)
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
    }

    /// An API token of `role` that expired a minute ago.
    pub async fn expired_api_token(&self, role: ApiRole) -> String {
        let token =
            hatang_collector::secret::generate(hatang_collector::secret::Kind::Api).unwrap();
        let now = hatang_collector::now();
        self.store()
            .create_api_token(&token.digest, role, now - 3600, Some(now - 60))
            .await
            .unwrap();
        token.plain
    }
}

/// The agents [`Harness::fleet`] enrolled, by where they sit.
#[derive(Debug)]
pub struct Fleet {
    pub province: Vec<Agent>,
    pub district: Vec<Agent>,
    pub commune: Vec<Agent>,
    pub server: Agent,
    /// Enrolled in district 148, never reported.
    pub silent: Agent,
}

impl Fleet {
    /// Every agent id, sorted.
    pub fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .province
            .iter()
            .chain(&self.district)
            .chain(&self.commune)
            .chain([&self.server, &self.silent])
            .map(|a| a.id.clone())
            .collect();
        ids.sort();
        ids
    }
}

/// Runs one request through a fresh router over `state` and reads the whole answer.
pub async fn send(state: AppState, request: Request<Body>) -> Reply {
    let response = http::app(state).oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

pub fn post(path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Request<Body> {
    let mut request = Request::builder().method(Method::POST).uri(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(Body::from(body)).unwrap()
}

/// `POST /api/v1/reports` with an `Authorization` header value as given (`None`: none).
pub fn report_request(
    authorization: Option<&str>,
    encoding: Option<&str>,
    body: Vec<u8>,
) -> Request<Body> {
    let mut headers = vec![("content-type", "application/json")];
    if let Some(a) = authorization {
        headers.push(("authorization", a));
    }
    if let Some(e) = encoding {
        headers.push(("content-encoding", e));
    }
    post("/api/v1/reports", &headers, body)
}

#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub reports: i64,
    pub outcomes: BTreeMap<String, f64>,
}

pub type Labels = BTreeMap<String, String>;

/// The samples of a Prometheus text exposition, by metric name.
#[derive(Debug, Default)]
pub struct Exposition {
    samples: BTreeMap<String, Vec<(Labels, f64)>>,
}

impl Exposition {
    pub fn parse(text: &str) -> Self {
        let mut e = Self::default();
        for line in text.lines() {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (name, labels, rest) = match line.find(['{', ' ']) {
                Some(i) if line.as_bytes()[i] == b'{' => {
                    let (labels, rest) = parse_labels(&line[i + 1..]);
                    (&line[..i], labels, rest)
                }
                Some(i) => (&line[..i], Labels::new(), &line[i..]),
                None => panic!("no value on line {line:?}"),
            };
            let value = rest.trim().split(' ').next().unwrap();
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v
                    .parse()
                    .unwrap_or_else(|_| panic!("bad value on {line:?}")),
            };
            e.samples
                .entry(name.to_string())
                .or_default()
                .push((labels, value));
        }
        e
    }

    /// Every series of `name` as (labels, value), sorted by labels.
    pub fn series(&self, name: &str) -> Vec<(Labels, f64)> {
        let mut s = self.samples.get(name).cloned().unwrap_or_default();
        s.sort_by(|a, b| a.0.cmp(&b.0));
        s
    }

    /// The value of the series with exactly these labels, if it is exposed.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want = labels_of(labels);
        self.samples
            .get(name)?
            .iter()
            .find(|(l, _)| *l == want)
            .map(|(_, v)| *v)
    }

    /// Like [`get`](Self::get), but the series must be there.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels)
            .unwrap_or_else(|| panic!("no {name}{labels:?}; exposed: {:?}", self.samples.get(name)))
    }

    /// Every series of `name` as (value of `label`, value), sorted; for metrics with one label.
    pub fn by(&self, name: &str, label: &str) -> Vec<(String, f64)> {
        let mut s: Vec<(String, f64)> = self
            .series(name)
            .into_iter()
            .map(|(l, v)| {
                assert_eq!(l.len(), 1, "{name} has more labels than {label}: {l:?}");
                (l[label].clone(), v)
            })
            .collect();
        s.sort_by(|a, b| a.0.cmp(&b.0));
        s
    }
}

pub fn labels_of(labels: &[(&str, &str)]) -> Labels {
    labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Parses `a="x",b="y\"z"} rest` into the labels and what follows the closing brace.
fn parse_labels(text: &str) -> (Labels, &str) {
    let mut labels = Labels::new();
    let mut chars = text.char_indices().peekable();
    loop {
        match chars.peek() {
            Some((i, '}')) => return (labels, &text[i + 1..]),
            Some((_, ',' | ' ')) => {
                chars.next();
                continue;
            }
            Some(_) => {}
            None => panic!("unterminated labels in {text:?}"),
        }
        let mut name = String::new();
        for (_, c) in chars.by_ref() {
            if c == '=' {
                break;
            }
            name.push(c);
        }
        assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "in {text:?}");
        let mut value = String::new();
        while let Some((_, c)) = chars.next() {
            match c {
                '"' => break,
                '\\' => match chars.next().map(|(_, c)| c) {
                    Some('n') => value.push('\n'),
                    Some(other) => value.push(other),
                    None => panic!("dangling escape in {text:?}"),
                },
                c => value.push(c),
            }
        }
        labels.insert(name, value);
    }
}

#[test]
fn test_databases_are_named_in_the_admin_url() {
    assert_eq!(
        with_database("postgres://postgres@127.0.0.1:55432/hatang", "t1"),
        "postgres://postgres@127.0.0.1:55432/t1"
    );
    assert_eq!(
        with_database("postgresql://u:p@db/hatang?sslmode=disable", "t1"),
        "postgresql://u:p@db/t1?sslmode=disable"
    );
    assert_eq!(
        with_database("postgres://db:5432", "t1"),
        "postgres://db:5432/t1"
    );
}

#[test]
fn the_exposition_parser_reads_labels_escapes_and_bare_samples() {
    let e = Exposition::parse(
        "# HELP x_total help\n# TYPE x_total counter\n\
         x_total 3\n\
         y{a=\"1\",b=\"q\\\"uo\\\\te\\nnl\"} 0.5\n\
         y{a=\"2\",b=\"Sở Y tế, {x}\"} 1e-3\n",
    );
    assert_eq!(e.value("x_total", &[]), 3.0);
    assert_eq!(e.value("y", &[("a", "1"), ("b", "q\"uo\\te\nnl")]), 0.5);
    assert_eq!(e.value("y", &[("a", "2"), ("b", "Sở Y tế, {x}")]), 0.001);
    assert_eq!(e.get("y", &[("a", "1")]), None);
    assert_eq!(e.series("y").len(), 2);
}

/// A TCP relay whose connections can be cut without a word, as a firewall or NAT that forgets
/// its flows cuts them: after [`SilentCut::cut`], whatever either side of a connection made
/// before it sends is swallowed, nothing reaches the other side, and neither socket is closed.
/// Connections made after a cut are relayed again.
#[derive(Debug)]
pub struct SilentCut {
    pub addr: std::net::SocketAddr,
    cuts: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl SilentCut {
    /// A relay on a free loopback port to `target` (`host:port`).
    pub async fn to(target: String) -> Self {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cuts = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let seen = cuts.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(&target).await else {
                    continue;
                };
                let born = seen.load(Ordering::SeqCst);
                let (from_client, to_client) = client.into_split();
                let (from_server, to_server) = server.into_split();
                tokio::spawn(relay(from_client, to_server, seen.clone(), born));
                tokio::spawn(relay(from_server, to_client, seen.clone(), born));
            }
        });
        Self { addr, cuts }
    }

    /// Cuts every connection relayed so far.
    pub fn cut(&self) {
        self.cuts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Copies `from` to `to` while no cut came after the connection's birth, and then reads and
/// drops, so the sender's writes still succeed as they would into a dead network.
async fn relay(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    cuts: std::sync::Arc<std::sync::atomic::AtomicU64>,
    born: u64,
) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut buf = vec![0; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if cuts.load(std::sync::atomic::Ordering::SeqCst) != born {
            continue;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
