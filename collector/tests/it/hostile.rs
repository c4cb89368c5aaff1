//! The bad-input suite: malformed, oversized and hostile requests against the router, one table.
//!
//! Each case is refused with its exact status and error code, stores nothing (reports, agents and
//! units as they were) and moves exactly the counter of its outcome. After the table a valid
//! agent is still served, and `/metrics` — with label-injection strings that were legitimately
//! accepted in it — is well-formed: `promtool check metrics` passes and every injected string
//! appears only escaped, inside a label value. The rate limits (429 with `Retry-After`) follow.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use serde_json::{Value, json};

use crate::support::{Agent, Harness, TREE_3, gzip, report};

/// One hostile request and the answer it must get.
#[derive(Debug)]
struct Case {
    name: &'static str,
    method: Method,
    path: String,
    headers: Vec<(&'static str, Vec<u8>)>,
    body: Vec<u8>,
    status: StatusCode,
    /// The error code; for a 2xx answer, its `status` field.
    code: &'static str,
}

impl Case {
    fn request(&self) -> Request<Body> {
        let mut request = Request::builder()
            .method(self.method.clone())
            .uri(&self.path);
        for (name, value) in &self.headers {
            request = request.header(*name, HeaderValue::from_bytes(value).unwrap());
        }
        request.body(Body::from(self.body.clone())).unwrap()
    }

    /// The counter this case must move by one: (family, outcome).
    fn counted(&self) -> Option<(&'static str, &'static str)> {
        if self.method != Method::POST {
            return None;
        }
        match (self.path.as_str(), self.status) {
            ("/api/v1/reports", StatusCode::UNAUTHORIZED) => Some("unauthorized"),
            ("/api/v1/reports", StatusCode::TOO_MANY_REQUESTS) => Some("rate_limited"),
            ("/api/v1/reports", StatusCode::OK) => Some("duplicate"),
            ("/api/v1/reports", _) => Some("rejected"),
            ("/api/v1/enroll", _) => Some("refused"),
            _ => None,
        }
        .map(|outcome| {
            let family = if self.path == "/api/v1/reports" {
                REPORTS
            } else {
                ENROLMENTS
            };
            (family, outcome)
        })
    }
}

const REPORTS: &str = "hatang_reports_received_total";
const ENROLMENTS: &str = "hatang_enrolments_total";

/// Everything a refused request must leave as it was.
#[derive(Debug, PartialEq)]
struct World {
    reports: i64,
    agents: String,
    units: String,
    counters: BTreeMap<(&'static str, String), f64>,
}

impl World {
    async fn of(h: &Harness) -> Self {
        let metrics = h.metrics().await;
        let mut counters = BTreeMap::new();
        for family in [REPORTS, ENROLMENTS] {
            for (outcome, n) in metrics.by(family, "outcome") {
                counters.insert((family, outcome), n);
            }
        }
        Self {
            reports: h.store().report_count(None).await.unwrap(),
            agents: format!("{:?}", h.store().agents().await.unwrap()),
            units: format!("{:?}", h.store().units().await.unwrap()),
            counters,
        }
    }
}

/// A collector with the three-tier tree, one workstation that has stored one report, a viewer
/// token and the workstation's enrolment token.
struct Setup {
    h: Harness,
    agent: Agent,
    viewer: String,
    enrol: String,
    stored: Value,
}

const JSON: (&str, &[u8]) = ("content-type", b"application/json");

fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

/// `value` serialised with the string `"@@"` replaced by `raw`: numbers JSON can carry but
/// `serde_json::Value` cannot hold.
fn with_raw(value: &Value, raw: &str) -> Vec<u8> {
    let text = value.to_string();
    assert_eq!(text.matches("\"@@\"").count(), 1);
    text.replace("\"@@\"", raw).into_bytes()
}

/// A label-injection string: closes the label set, forges a sample, opens another.
const INJECT: &str = "x\"} 1\nhatang_forged{a=\"";

impl Setup {
    async fn new() -> Self {
        // The table sends its agent's key some fifty times in a row; the per-agent rate has tests
        // of its own below.
        let h = Harness::with_config(|c| c.limits.reports_per_minute_per_agent = 1000).await;
        h.import(TREE_3).await;
        let enrol = h.enrol_token("4351", None).await;
        let agent = h.enrolled(&enrol, "m-1").await;
        let viewer = h.api_token("viewer").await;
        let stored = report();
        h.report(&agent.key, &stored)
            .await
            .json(StatusCode::ACCEPTED);
        Self {
            h,
            agent,
            viewer,
            enrol,
            stored,
        }
    }

    fn bearer(&self) -> (&'static str, Vec<u8>) {
        ("authorization", format!("Bearer {}", self.agent.key).into())
    }

    /// A fresh valid report changed by `change`.
    fn changed(&self, change: impl FnOnce(&mut Value)) -> Value {
        let mut r = report();
        change(&mut r);
        r
    }

    fn body(&self, change: impl FnOnce(&mut Value)) -> Vec<u8> {
        self.changed(change).to_string().into_bytes()
    }

    /// `POST /api/v1/reports` with exactly these headers.
    fn report_with(
        &self,
        name: &'static str,
        headers: Vec<(&'static str, Vec<u8>)>,
        body: Vec<u8>,
        status: StatusCode,
        code: &'static str,
    ) -> Case {
        Case {
            name,
            method: Method::POST,
            path: "/api/v1/reports".into(),
            headers,
            body,
            status,
            code,
        }
    }

    /// A report from the enrolled agent, as JSON.
    fn report(
        &self,
        name: &'static str,
        body: Vec<u8>,
        status: StatusCode,
        code: &'static str,
    ) -> Case {
        let headers = vec![self.bearer(), (JSON.0, JSON.1.to_vec())];
        self.report_with(name, headers, body, status, code)
    }

    /// The enrolled agent's valid report under this `Authorization` value (`None`: without one).
    fn auth(&self, name: &'static str, authorization: Option<&[u8]>, code: &'static str) -> Case {
        let mut headers = vec![(JSON.0, JSON.1.to_vec())];
        if let Some(a) = authorization {
            headers.push(("authorization", a.to_vec()));
        }
        let body = self.body(|_| {});
        self.report_with(name, headers, body, StatusCode::UNAUTHORIZED, code)
    }

    /// The enrolled agent's report with one more header (and content type and bearer).
    fn report_header(
        &self,
        name: &'static str,
        extra: (&'static str, Vec<u8>),
        body: Vec<u8>,
        status: StatusCode,
        code: &'static str,
    ) -> Case {
        let mut headers = vec![self.bearer()];
        if extra.0 != JSON.0 {
            headers.push((JSON.0, JSON.1.to_vec()));
        }
        headers.push(extra);
        self.report_with(name, headers, body, status, code)
    }

    fn enroll(
        &self,
        name: &'static str,
        body: Vec<u8>,
        status: StatusCode,
        code: &'static str,
    ) -> Case {
        Case {
            name,
            method: Method::POST,
            path: "/api/v1/enroll".into(),
            headers: vec![(JSON.0, JSON.1.to_vec())],
            body,
            status,
            code,
        }
    }

    fn enrolment(&self, token: &str, machine_id: &str, hostname: &str) -> Vec<u8> {
        json!({"token": token, "machine_id": machine_id, "hostname": hostname})
            .to_string()
            .into_bytes()
    }

    fn get(
        &self,
        name: &'static str,
        path: &str,
        token: &str,
        status: StatusCode,
        code: &'static str,
    ) -> Case {
        Case {
            name,
            method: Method::GET,
            path: path.into(),
            headers: vec![("authorization", format!("Bearer {token}").into())],
            body: Vec::new(),
            status,
            code,
        }
    }

    /// The table.
    fn cases(&self) -> Vec<Case> {
        use StatusCode as S;
        let valid = self.body(|_| {});
        let max = self.h.config().max_report_bytes;
        let mut oversized = valid.clone();
        oversized.resize(max + 1, b' ');
        let with_unknown_deep = {
            let mut text = String::from_utf8(valid.clone()).unwrap();
            text.pop();
            format!("{text},\"x\":{}}}", nested(200)).into_bytes()
        };
        let probes = |n: usize| {
            move |r: &mut Value| {
                let probe = r["probes"][0].clone();
                r["probes"] = Value::Array(vec![probe; n]);
            }
        };
        let sql = "' OR 1=1 --";
        vec![
            // authentication
            self.auth("no Authorization", None, "unauthorized"),
            self.auth(
                "Basic scheme",
                Some(b"Basic aHRhOnBhc3N3b3Jk"),
                "unauthorized",
            ),
            self.auth("Bearer without a token", Some(b"Bearer"), "unauthorized"),
            self.auth(
                "Bearer and spaces only",
                Some(b"Bearer      "),
                "unauthorized",
            ),
            self.auth(
                "Bearer with a space inside the token",
                Some(format!("Bearer {} x", self.agent.key).as_bytes()),
                "unauthorized",
            ),
            self.auth(
                "Bearer of 10 KB",
                Some(format!("Bearer hta_{}", "a".repeat(10 * 1024)).as_bytes()),
                "unauthorized",
            ),
            self.auth(
                "SQL in the bearer token",
                Some(format!("Bearer {sql}").as_bytes()),
                "unauthorized",
            ),
            self.auth(
                "a viewer token as agent key",
                Some(format!("Bearer {}", self.viewer).as_bytes()),
                "unauthorized",
            ),
            self.auth(
                "an enrolment token as agent key",
                Some(format!("Bearer {}", self.enrol).as_bytes()),
                "unauthorized",
            ),
            self.auth(
                "non-ASCII bytes in Authorization",
                Some(b"Bearer hta_\xff\xfe"),
                "unauthorized",
            ),
            self.auth(
                "label injection in the bearer token",
                Some(b"Bearer x\"}_hatang_forged"),
                "unauthorized",
            ),
            // content type, encoding, size
            self.report_header(
                "text/plain body",
                ("content-type", b"text/plain".to_vec()),
                valid.clone(),
                S::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
            ),
            self.report_header(
                "form body",
                (
                    "content-type",
                    b"application/x-www-form-urlencoded".to_vec(),
                ),
                valid.clone(),
                S::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
            ),
            self.report_with(
                "no Content-Type",
                vec![self.bearer()],
                valid.clone(),
                S::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
            ),
            self.report_header(
                "Content-Encoding br",
                ("content-encoding", b"br".to_vec()),
                valid.clone(),
                S::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_encoding",
            ),
            self.report_header(
                "Content-Encoding of 64 KB",
                ("content-encoding", vec![b'x'; 64 * 1024]),
                valid.clone(),
                S::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_encoding",
            ),
            self.report(
                "body over max_report_bytes",
                oversized,
                S::PAYLOAD_TOO_LARGE,
                "body_too_large",
            ),
            self.report_header(
                "gzip bomb (50 MiB of zeros)",
                ("content-encoding", b"gzip".to_vec()),
                gzip(&vec![0u8; 50 * 1024 * 1024]),
                S::PAYLOAD_TOO_LARGE,
                "body_too_large",
            ),
            self.report_header(
                "truncated gzip",
                ("content-encoding", b"gzip".to_vec()),
                {
                    let z = gzip(&valid);
                    z[..z.len() / 2].to_vec()
                },
                S::BAD_REQUEST,
                "invalid_gzip",
            ),
            self.report_header(
                "gzip inside gzip",
                ("content-encoding", b"gzip".to_vec()),
                gzip(&gzip(&valid)),
                S::BAD_REQUEST,
                "invalid_json",
            ),
            self.report_header(
                "plain JSON declared as gzip",
                ("content-encoding", b"gzip".to_vec()),
                valid.clone(),
                S::BAD_REQUEST,
                "invalid_gzip",
            ),
            // malformed JSON
            self.report("empty body", Vec::new(), S::BAD_REQUEST, "invalid_json"),
            self.report("a NUL byte", b"\0".to_vec(), S::BAD_REQUEST, "invalid_json"),
            self.report(
                "invalid UTF-8",
                b"{\"agent_version\": \"\xff\xfe\"}".to_vec(),
                S::BAD_REQUEST,
                "invalid_json",
            ),
            self.report(
                "truncated JSON",
                valid[..valid.len() / 2].to_vec(),
                S::BAD_REQUEST,
                "invalid_json",
            ),
            self.report(
                "200 nested arrays",
                nested(200).into_bytes(),
                S::BAD_REQUEST,
                "invalid_json",
            ),
            self.report(
                "200 nested arrays in an unknown field",
                with_unknown_deep,
                S::BAD_REQUEST,
                "invalid_json",
            ),
            // schema version and report id
            self.report(
                "schema_version 0",
                self.body(|r| r["schema_version"] = json!(0)),
                S::UNPROCESSABLE_ENTITY,
                "invalid_report",
            ),
            self.report(
                "schema_version 2",
                self.body(|r| r["schema_version"] = json!(2)),
                S::UNPROCESSABLE_ENTITY,
                "invalid_report",
            ),
            self.report(
                "schema_version -1",
                self.body(|r| r["schema_version"] = json!(-1)),
                S::BAD_REQUEST,
                "invalid_json",
            ),
            self.report(
                "schema_version \"1\"",
                self.body(|r| r["schema_version"] = json!("1")),
                S::BAD_REQUEST,
                "invalid_json",
            ),
            self.report(
                "schema_version a 100 KB string",
                self.body(|r| r["schema_version"] = json!("1".repeat(100 * 1024))),
                S::BAD_REQUEST,
                "invalid_json",
            ),
            self.report(
                "nil report_id",
                self.body(|r| r["report_id"] = json!(uuid::Uuid::nil())),
                S::UNPROCESSABLE_ENTITY,
                "invalid_report",
            ),
            self.report(
                "UUID v1 report_id",
                self.body(|r| r["report_id"] = json!("c232ab00-9414-11ec-b3c8-9e6bdeced846")),
                S::UNPROCESSABLE_ENTITY,
                "invalid_report",
            ),
            self.report(
                "report_id not a UUID",
                self.body(|r| r["report_id"] = json!("not-a-uuid")),
                S::BAD_REQUEST,
                "invalid_json",
            ),
            self.report(
                "SQL as report_id",
                self.body(|r| r["report_id"] = json!(sql)),
                S::BAD_REQUEST,
                "invalid_json",
            ),
            self.report(
                "a stored report_id with a different body",
                {
                    let mut r = self.stored.clone();
                    r["agent_version"] = json!("9.9.9");
                    r["inventory"]["hostname"] = json!("someone-else");
                    r.to_string().into_bytes()
                },
                S::OK,
                "duplicate",
            ),
            // strings
            self.report(
                "NUL in agent_version",
                self.body(|r| r["agent_version"] = json!("0.1\u{0}")),
                S::UNPROCESSABLE_ENTITY,
                "invalid_report",
            ),
            self.report(
                "agent_version over 1 KiB",
                self.body(|r| r["agent_version"] = json!("9".repeat(1025))),
                S::UNPROCESSABLE_ENTITY,
                "invalid_report",
            ),
            self.report(
                "label injection in the inventory hostname",
                self.body(|r| r["inventory"]["hostname"] = json!(INJECT)),
                S::UNPROCESSABLE_ENTITY,
                "invalid_report",
            ),
            self.report(
                "label injection in an interface name",
                self.body(|r| r["sample"]["interfaces"][0]["name"] = json!(INJECT)),
                S::UNPROCESSABLE_ENTITY,
                "invalid_report",
            ),
            self.report(
                "../ and NUL in a mount point",
                self.body(|r| r["sample"]["filesystems"][0]["mount_point"] = json!("/../\u{0}")),
                S::UNPROCESSABLE_ENTITY,
                "invalid_report",
            ),
            self.report(
                "label injection in a probe name",
                self.body(|r| r["probes"][0]["name"] = json!(INJECT)),
                S::UNPROCESSABLE_ENTITY,
                "invalid_report",
            ),
            // numbers
            self.report(
                "negative counter",
                self.body(|r| r["sample"]["interfaces"][0]["rx_bytes"] = json!(-1)),
                S::BAD_REQUEST,
                "invalid_json",
            ),
            self.report(
                "1e308 as a byte count",
                self.body(|r| r["sample"]["memory_used_bytes"] = json!(1e308)),
                S::BAD_REQUEST,
                "invalid_json",
            ),
            self.report(
                "2^64 as uptime",
                with_raw(
                    &self.changed(|r| r["sample"]["uptime_secs"] = json!("@@")),
                    "18446744073709551616",
                ),
                S::BAD_REQUEST,
                "invalid_json",
            ),
            self.report(
                "1e400 as a ratio",
                with_raw(
                    &self.changed(|r| r["sample"]["cpu_usage_ratio"] = json!("@@")),
                    "1e400",
                ),
                S::BAD_REQUEST,
                "invalid_json",
            ),
            self.report(
                "2^63 as uptime",
                self.body(|r| r["sample"]["uptime_secs"] = json!(1u64 << 63)),
                S::UNPROCESSABLE_ENTITY,
                "invalid_report",
            ),
            self.report(
                "1e308 as CPU ratio",
                self.body(|r| r["sample"]["cpu_usage_ratio"] = json!(1e308)),
                S::UNPROCESSABLE_ENTITY,
                "invalid_report",
            ),
            self.report(
                "1e308 as load",
                self.body(|r| r["sample"]["load"] = json!([1e308, 1.0, 1.0])),
                S::UNPROCESSABLE_ENTITY,
                "invalid_report",
            ),
            self.report(
                "negative round-trip time",
                self.body(|r| r["probes"][0]["rtt_avg_seconds"] = json!(-0.5)),
                S::UNPROCESSABLE_ENTITY,
                "invalid_report",
            ),
            self.report(
                "interval_secs over u32",
                self.body(|r| r["interval_secs"] = json!(1u64 << 32)),
                S::BAD_REQUEST,
                "invalid_json",
            ),
            // clocks
            self.report(
                "agent_time in year 9999",
                self.body(|r| r["agent_time"] = json!("9999-12-31T23:59:59Z")),
                S::UNPROCESSABLE_ENTITY,
                "clock_skew",
            ),
            self.report(
                "agent_time at the Unix epoch",
                self.body(|r| r["agent_time"] = json!("1970-01-01T00:00:00Z")),
                S::UNPROCESSABLE_ENTITY,
                "clock_skew",
            ),
            self.report(
                "agent_time not a time",
                self.body(|r| r["agent_time"] = json!("2025-13-45T99:00:00Z")),
                S::BAD_REQUEST,
                "invalid_json",
            ),
            // arrays
            self.report(
                "513 probes",
                self.body(probes(513)),
                S::UNPROCESSABLE_ENTITY,
                "invalid_report",
            ),
            self.report(
                "513 addresses on an interface",
                self.body(|r| {
                    r["inventory"]["interfaces"][0]["addresses"] = json!(vec!["10.0.0.1/8"; 513])
                }),
                S::UNPROCESSABLE_ENTITY,
                "invalid_report",
            ),
            // wrong method or path
            Case {
                name: "PUT a report",
                method: Method::PUT,
                ..self.report(
                    "",
                    valid.clone(),
                    S::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                )
            },
            self.get(
                "GET the enrolment endpoint",
                "/api/v1/enroll",
                &self.viewer,
                S::METHOD_NOT_ALLOWED,
                "method_not_allowed",
            ),
            // enrolment
            Case {
                headers: vec![("content-type", b"text/plain".to_vec())],
                ..self.enroll(
                    "enrolment as text/plain",
                    self.enrolment(&self.enrol, "m-2", "pc-2"),
                    S::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                )
            },
            self.enroll(
                "empty enrolment",
                Vec::new(),
                S::BAD_REQUEST,
                "invalid_json",
            ),
            self.enroll(
                "200 nested arrays as enrolment",
                nested(200).into_bytes(),
                S::BAD_REQUEST,
                "invalid_json",
            ),
            self.enroll(
                "invalid UTF-8 hostname",
                [
                    &br#"{"token": "hte_x", "machine_id": "m-2", "hostname": ""#[..],
                    b"\xc3\x28",
                    br#""}"#,
                ]
                .concat(),
                S::BAD_REQUEST,
                "invalid_json",
            ),
            self.enroll(
                "label injection in the hostname",
                self.enrolment(&self.enrol, "m-2", INJECT),
                S::BAD_REQUEST,
                "invalid_enrolment",
            ),
            self.enroll(
                "SQL as machine id",
                self.enrolment(&self.enrol, sql, "pc-2"),
                S::BAD_REQUEST,
                "invalid_enrolment",
            ),
            self.enroll(
                "NUL in the machine id",
                self.enrolment(&self.enrol, "m\u{0}2", "pc-2"),
                S::BAD_REQUEST,
                "invalid_enrolment",
            ),
            self.enroll(
                "machine id over 128 bytes",
                self.enrolment(&self.enrol, &"m".repeat(129), "pc-2"),
                S::BAD_REQUEST,
                "invalid_enrolment",
            ),
            self.enroll(
                "hostname over 255 bytes",
                self.enrolment(&self.enrol, "m-2", &"h".repeat(256)),
                S::BAD_REQUEST,
                "invalid_enrolment",
            ),
            self.enroll(
                "SQL as enrolment token",
                self.enrolment(sql, "m-2", "pc-2"),
                S::UNAUTHORIZED,
                "unauthorized",
            ),
            self.enroll(
                "SQL after the enrolment prefix",
                self.enrolment(&format!("hte_{sql}"), "x';DROP-TABLE-agents;--", "pc-2"),
                S::UNAUTHORIZED,
                "unauthorized",
            ),
            self.enroll(
                "an agent key as enrolment token",
                self.enrolment(&self.agent.key, "m-2", "pc-2"),
                S::UNAUTHORIZED,
                "unauthorized",
            ),
            // paths and queries that are echoed or looked up
            self.get(
                "../ in a unit code",
                "/api/v1/units/..%2F..%2Fetc%2Fpasswd",
                &self.viewer,
                S::NOT_FOUND,
                "not_found",
            ),
            self.get(
                "bare ../ after units",
                "/api/v1/units/../../etc/passwd",
                &self.viewer,
                S::NOT_FOUND,
                "not_found",
            ),
            self.get(
                "%00 in a unit code",
                "/api/v1/units/4351%00",
                &self.viewer,
                S::NOT_FOUND,
                "not_found",
            ),
            self.get(
                "label injection in a unit code",
                "/api/v1/units/x%22%7D%201%0Ahatang_forged%7Ba%3D%22",
                &self.viewer,
                S::NOT_FOUND,
                "not_found",
            ),
            self.get(
                "invalid UTF-8 in a unit code",
                "/api/v1/units/%FF%FE",
                &self.viewer,
                S::BAD_REQUEST,
                "invalid_path",
            ),
            self.get(
                "SQL as agent id",
                "/api/v1/agents/'%20OR%201=1%20--",
                &self.viewer,
                S::NOT_FOUND,
                "not_found",
            ),
            // looked up, not found, and named in the answer: not echoed whole
            self.get(
                "an agent id of 60 KB",
                &format!("/api/v1/agents/{}", "a".repeat(60 * 1024)),
                &self.viewer,
                S::NOT_FOUND,
                "not_found",
            ),
            self.get(
                "a unit code of 60 KB",
                &format!("/api/v1/units/{}", "4".repeat(60 * 1024)),
                &self.viewer,
                S::NOT_FOUND,
                "not_found",
            ),
            self.get(
                "a level filter of 60 KB",
                &format!("/api/v1/coverage?level={}", "x".repeat(60 * 1024)),
                &self.viewer,
                S::NOT_FOUND,
                "not_found",
            ),
            self.get(
                "label injection in a level filter",
                "/api/v1/coverage?level=x%22%7D%0A",
                &self.viewer,
                S::NOT_FOUND,
                "not_found",
            ),
            // decoded lossily: a level named U+FFFD, which no tree has
            self.get(
                "invalid UTF-8 in a level filter",
                "/api/v1/units?level=%FF",
                &self.viewer,
                S::NOT_FOUND,
                "not_found",
            ),
            self.get(
                "the level filter twice",
                "/api/v1/units?level=commune&level=%27%20OR%201=1%20--",
                &self.viewer,
                S::BAD_REQUEST,
                "invalid_query",
            ),
            self.get(
                "an agent key as viewer token",
                "/api/v1/agents",
                &self.agent.key,
                S::UNAUTHORIZED,
                "unauthorized",
            ),
            self.get(
                "SQL as viewer token",
                "/api/v1/agents",
                sql,
                S::UNAUTHORIZED,
                "unauthorized",
            ),
        ]
    }
}

#[tokio::test]
async fn every_hostile_request_is_refused_and_changes_nothing() {
    let s = Setup::new().await;
    let cases = s.cases();
    let mut names: Vec<&str> = cases.iter().map(|c| c.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), cases.len(), "case names are distinct");
    assert!(cases.len() >= 40, "{} cases", cases.len());

    for case in &cases {
        let before = World::of(&s.h).await;
        let reply = s.h.send(case.request()).await;
        let what = format!(
            "case {:?}: {}",
            case.name,
            String::from_utf8_lossy(&reply.body)
        );
        assert_eq!(reply.status, case.status, "{what}");
        if case.status.is_success() {
            assert_eq!(reply.json(case.status)["status"], case.code, "{what}");
        } else {
            // nothing a caller sends is echoed back whole
            let message = reply.error(case.status, case.code);
            assert!(message.len() <= 1024, "{what}");
        }
        let mut expected = before;
        if let Some((family, outcome)) = case.counted() {
            *expected
                .counters
                .get_mut(&(family, outcome.to_string()))
                .unwrap_or_else(|| panic!("{what}: no {family}{{outcome={outcome}}}")) += 1.0;
        }
        assert_eq!(World::of(&s.h).await, expected, "{what}");
    }

    // A valid agent is still served.
    s.h.report(&s.agent.key, &report())
        .await
        .json(StatusCode::ACCEPTED);
    assert_metrics_are_well_formed_with_injected_labels(&s.h).await;
}

/// Strings a label may legitimately carry — quotes, braces, backslashes, `#`, spaces — reach
/// `/metrics` from a server's enrolment and report; they must come out escaped, never as syntax.
async fn assert_metrics_are_well_formed_with_injected_labels(h: &Harness) {
    let host = "db\"} 1 # {x=\"\\";
    let mount = "/mnt/a\"} 1 hatang_forged{a=\"b\\";
    let interface = "eth\"}0\\";
    let token = h.enrol_token("4352", Some("server")).await;
    let enrolment = json!({"token": token, "machine_id": "srv-1", "hostname": host});
    let body = h
        .enroll_raw(&enrolment.to_string())
        .await
        .json(StatusCode::CREATED);
    let key = body["agent_key"].as_str().unwrap();
    let mut r = report();
    r["inventory"]["hostname"] = json!(host);
    r["sample"]["filesystems"][0]["mount_point"] = json!(mount);
    r["sample"]["interfaces"][0]["name"] = json!(interface);
    h.report(key, &r).await.json(StatusCode::ACCEPTED);

    // The server's up series is on /metrics, its filesystems and interfaces on the detail
    // endpoint: both must stay well-formed.
    let mut texts = Vec::new();
    for path in ["/metrics", "/metrics/detail"] {
        let text = h.get(path, None).await.text().to_string();
        if let Some(out) = promtool_check(&text) {
            let said = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                out.status.success() && said.trim().is_empty(),
                "promtool check metrics {path}: {said}\n{text}"
            );
        }
        for raw in [host, mount, interface] {
            assert!(
                !text.contains(raw),
                "{raw:?} appears unescaped in {path}\n{text}"
            );
        }
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.starts_with("hatang_"), "stray line {line:?} in {path}");
        }
        texts.push(text);
    }
    let [metrics, detail] = [&texts[0], &texts[1]].map(|t| crate::support::Exposition::parse(t));
    let id = [("host", host), ("unit", "4352")];
    assert_eq!(metrics.value("hatang_host_up", &id), 1.0);
    assert!(
        detail
            .get(
                "hatang_host_filesystem_used_bytes",
                &[id[0], id[1], ("mountpoint", mount)]
            )
            .is_some(),
        "{}",
        texts[1]
    );
    assert!(
        detail
            .get(
                "hatang_host_network_receive_bytes_total",
                &[id[0], id[1], ("interface", interface)]
            )
            .is_some(),
        "{}",
        texts[1]
    );
    assert!(
        metrics.series("hatang_forged").is_empty() && detail.series("hatang_forged").is_empty(),
        "{texts:?}"
    );
}

/// Naming lints promtool reports on series this suite does not own, tolerated word for word
/// until the series is renamed; anything else promtool says (a parse error above all) fails.
// `bits` is not a Prometheus base unit; the speed-test series should be `..._bytes_per_second`
// (value / 8), which is its owner's call since dashboards and docs name it.
/// `promtool check metrics` on `exposition`; `None` when promtool is not installed, which fails
/// under `CI` (mirrors the end-to-end crate's helper; test crates do not share code).
fn promtool_check(exposition: &str) -> Option<Output> {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(_) if std::env::var_os("CI").is_none() => {
            eprintln!("skipped: promtool not installed");
            return None;
        }
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

/// `request` as if it came through a socket from `ip`.
fn from(ip: &str, mut request: Request<Body>) -> Request<Body> {
    let peer = SocketAddr::new(ip.parse().unwrap(), 40_000);
    request.extensions_mut().insert(ConnectInfo(peer));
    request
}

fn enrolment_request(token: &str, machine_id: &str) -> Request<Body> {
    let body = json!({"token": token, "machine_id": machine_id, "hostname": machine_id});
    crate::support::post(
        "/api/v1/enroll",
        &[("content-type", "application/json")],
        body.to_string().into_bytes(),
    )
}

fn report_from(ip: &str, key: &str) -> Request<Body> {
    from(
        ip,
        crate::support::report_request(
            Some(&format!("Bearer {key}")),
            None,
            serde_json::to_vec(&report()).unwrap(),
        ),
    )
}

async fn limited(adjust: impl FnOnce(&mut hatang_collector::config::LimitsConfig)) -> Harness {
    let h = Harness::with_config(|c| adjust(&mut c.limits)).await;
    h.import(TREE_3).await;
    h
}

#[tokio::test]
async fn an_agent_over_its_rate_gets_429_with_retry_after_and_others_do_not() {
    let h = limited(|l| l.reports_per_minute_per_agent = 2).await;
    let token = h.enrol_token("4351", None).await;
    let a = h.enrolled(&token, "m-a").await;
    let b = h.enrolled(&token, "m-b").await;
    let first = report();
    h.report(&a.key, &first).await.json(StatusCode::ACCEPTED);
    h.report(&a.key, &first).await.json(StatusCode::OK);
    for r in [report(), first] {
        let before = h.snapshot().await;
        let reply = h.report(&a.key, &r).await;
        reply.error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
        // a minute's allowance of 2 refills one report every 30 s
        assert_eq!(reply.header(header::RETRY_AFTER), "30");
        h.assert_refused(&before, "rate_limited").await;
    }
    h.report(&b.key, &report()).await.json(StatusCode::ACCEPTED);
    assert_eq!(h.store().report_count(Some(&a.id)).await.unwrap(), 1);
}

#[tokio::test]
async fn an_address_that_keeps_failing_authentication_is_refused_before_the_lookup() {
    let h = limited(|l| l.requests_per_minute_per_address = 3).await;
    let token = h.enrol_token("4351", None).await;
    let agent = h.enrolled(&token, "m-a").await;
    let guesser = "2001:db8:7:7::1";
    for i in 0..3 {
        let reply = h.send(report_from(guesser, &format!("hta_guess{i}"))).await;
        reply.error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    // the allowance is spent: even a right key from that address (its /64) waits
    for ip in [guesser, "2001:db8:7:7:ffff::9"] {
        let before = h.snapshot().await;
        let reply = h.send(report_from(ip, &agent.key)).await;
        reply.error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
        assert_eq!(reply.header(header::RETRY_AFTER), "20");
        h.assert_refused(&before, "rate_limited").await;
    }
    // another address, and a good key's own reports, are not held against anyone
    for _ in 0..5 {
        h.send(report_from("2001:db8:7:8::1", &agent.key))
            .await
            .json(StatusCode::ACCEPTED);
    }
    let m = h.metrics().await;
    assert_eq!(
        m.value(
            "hatang_reports_received_total",
            &[("outcome", "unauthorized")]
        ),
        3.0
    );
}

/// The speed-test endpoints take the agent's key too: guessing keys there is held to the same
/// allowance per address as on the report endpoint, and refused before the lookup once spent.
#[tokio::test]
async fn guessing_keys_on_the_speed_test_is_limited_per_address() {
    let h = limited(|l| l.requests_per_minute_per_address = 2).await;
    let token = h.enrol_token("4351", None).await;
    let agent = h.enrolled(&token, "m-a").await;
    let guesser = "192.0.2.40";
    let speed_test = |key: &str, upload: bool| {
        let request = if upload {
            Request::post("/api/v1/speedtest/upload").body(Body::from(vec![0u8; 1024]))
        } else {
            Request::get("/api/v1/speedtest/download?bytes=1024").body(Body::empty())
        };
        let mut request = request.unwrap();
        request.headers_mut().insert(
            header::AUTHORIZATION,
            format!("Bearer {key}").parse().unwrap(),
        );
        h.send(from(guesser, request))
    };
    speed_test("hta_guess1", false)
        .await
        .error(StatusCode::UNAUTHORIZED, "unauthorized");
    speed_test("hta_guess2", true)
        .await
        .error(StatusCode::UNAUTHORIZED, "unauthorized");
    for upload in [false, true] {
        speed_test("hta_guess3", upload)
            .await
            .error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
        // A key that would need looking up waits as well.
        speed_test(&agent.key, upload)
            .await
            .error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    }
}

/// Many agents share an address: an office behind NAT, or every office behind a province's load
/// balancer. One of them that keeps sending a key the collector refuses uses up the address's
/// allowance; agents whose keys the collector already knows report on, and only a key that
/// would need looking up waits.
#[tokio::test]
async fn a_refused_key_does_not_stop_the_known_agents_at_its_address() {
    let h = limited(|l| l.requests_per_minute_per_address = 2).await;
    let token = h.enrol_token("4351", None).await;
    let known = h.enrolled(&token, "m-known").await;
    let fresh = h.enrolled(&token, "m-fresh").await;
    let office = "192.0.2.20";
    h.send(report_from(office, &known.key))
        .await
        .json(StatusCode::ACCEPTED);
    for _ in 0..2 {
        h.send(report_from(office, "hta_revoked_long_ago"))
            .await
            .error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    h.send(report_from(office, "hta_revoked_long_ago"))
        .await
        .error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    for _ in 0..3 {
        h.send(report_from(office, &known.key))
            .await
            .json(StatusCode::ACCEPTED);
    }
    h.send(report_from(office, &fresh.key))
        .await
        .error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert_eq!(h.store().report_count(Some(&known.id)).await.unwrap(), 4);
    assert_eq!(h.store().report_count(Some(&fresh.id)).await.unwrap(), 0);
}

/// Behind a load balancer every request comes from the balancer's address. With it in
/// `trusted_proxies` the limits count the address it forwarded the request for: one office that
/// used up its allowance leaves the others theirs, and a client that is not a trusted proxy
/// cannot choose the address it is counted under by writing the header itself.
#[tokio::test]
async fn behind_a_trusted_proxy_the_limits_count_the_address_it_forwarded_for() {
    let h = Harness::with_config(|c| {
        c.limits.requests_per_minute_per_address = 2;
        c.trusted_proxies = vec!["10.0.0.1/32".parse().unwrap()];
    })
    .await;
    h.import(TREE_3).await;
    let token = h.enrol_token("4351", None).await;
    let enrol = |peer: &str, forwarded_for: &str, machine: &str| {
        let mut request = from(peer, enrolment_request(&token, machine));
        request
            .headers_mut()
            .insert("x-forwarded-for", forwarded_for.parse().unwrap());
        h.send(request)
    };
    for machine in ["a-1", "a-2"] {
        enrol("10.0.0.1", "192.0.2.30", machine)
            .await
            .json(StatusCode::CREATED);
    }
    enrol("10.0.0.1", "192.0.2.30", "a-3")
        .await
        .error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    enrol("10.0.0.1", "192.0.2.31", "b-1")
        .await
        .json(StatusCode::CREATED);
    // Not the proxy: counted under its own address whatever the header says.
    for (forwarded_for, machine) in [("192.0.2.32", "x-1"), ("192.0.2.33", "x-2")] {
        enrol("198.51.100.9", forwarded_for, machine)
            .await
            .json(StatusCode::CREATED);
    }
    enrol("198.51.100.9", "192.0.2.34", "x-3")
        .await
        .error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert_eq!(h.store().agents().await.unwrap().len(), 5);
}

#[tokio::test]
async fn enrolments_are_limited_per_address_and_an_unknown_address_is_not() {
    let h = limited(|l| l.requests_per_minute_per_address = 2).await;
    let token = h.enrol_token("4351", None).await;
    for m in ["m-1", "m-2"] {
        let reply = h
            .send(from("192.0.2.10", enrolment_request(&token, m)))
            .await;
        reply.json(StatusCode::CREATED);
    }
    let reply = h
        .send(from("192.0.2.10", enrolment_request(&token, "m-3")))
        .await;
    reply.error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert_eq!(reply.header(header::RETRY_AFTER), "30");
    // the same address as IPv4-mapped IPv6 is the same address
    h.send(from("::ffff:192.0.2.10", enrolment_request(&token, "m-3")))
        .await
        .error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    h.send(from("192.0.2.11", enrolment_request(&token, "m-3")))
        .await
        .json(StatusCode::CREATED);
    // requests handed to the router directly carry no address and are not limited
    for m in ["m-4", "m-5", "m-6"] {
        h.send(enrolment_request(&token, m))
            .await
            .json(StatusCode::CREATED);
    }
    assert_eq!(h.store().agents().await.unwrap().len(), 6);
    let m = h.metrics().await;
    assert_eq!(
        m.by("hatang_enrolments_total", "outcome"),
        [
            ("enrolled".to_string(), 6.0),
            ("rate_limited".to_string(), 2.0),
            ("reenrolled".to_string(), 0.0),
            ("refused".to_string(), 0.0),
        ]
    );
}

/// `serve` on a free loopback port for `h`, until the returned sender is dropped or used.
fn serving(
    h: &Harness,
) -> (
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(hatang_collector::serve(h.state.clone(), listener, async {
        let _ = stopped.await;
    }));
    (addr, stop, server)
}

/// Through a real socket, `serve` hands each connection's address to the limits.
#[tokio::test]
async fn the_server_limits_by_the_connections_address() {
    let h = limited(|l| l.requests_per_minute_per_address = 1).await;
    let (addr, stop, server) = serving(&h);
    let status = |addr: SocketAddr| {
        tokio::task::spawn_blocking(move || {
            let mut conn = std::net::TcpStream::connect(addr).unwrap();
            conn.write_all(
                b"POST /api/v1/enroll HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                  Content-Length: 2\r\nConnection: close\r\n\r\n{}",
            )
            .unwrap();
            let mut answer = String::new();
            conn.read_to_string(&mut answer).unwrap();
            answer.split(' ').nth(1).unwrap().to_string()
        })
    };
    assert_eq!(status(addr).await.unwrap(), "400");
    assert_eq!(status(addr).await.unwrap(), "429");
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

/// A client that connects and does not finish a request's headers within
/// `header_read_timeout_secs` (here: the first line, then nothing), or leaves a kept-alive
/// connection idle that long, has its connection closed: such clients cannot hold connections
/// until the collector has none left. A client that sends its request at once is answered.
#[tokio::test]
async fn a_client_slower_than_the_header_timeout_is_disconnected() {
    let h = Harness::with_config(|c| c.limits.header_read_timeout_secs = 1).await;
    let (addr, stop, server) = serving(&h);
    let after_sending = |request: &'static [u8]| {
        tokio::task::spawn_blocking(move || {
            let mut conn = std::net::TcpStream::connect(addr).unwrap();
            // The bound only keeps a regression from hanging the suite.
            conn.set_read_timeout(Some(Duration::from_secs(20)))
                .unwrap();
            conn.write_all(request).unwrap();
            let started = Instant::now();
            let mut answer = Vec::new();
            let ended = conn.read_to_end(&mut answer);
            (
                ended,
                String::from_utf8_lossy(&answer).into_owned(),
                started.elapsed(),
            )
        })
    };
    let (ended, answer, waited) = after_sending(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    assert!(ended.is_ok(), "still open after {waited:?}: {ended:?}");
    assert_eq!(answer, "", "a half-sent request is not answered");
    assert!(waited >= Duration::from_secs(1), "closed after {waited:?}");
    // Answered at once, then closed once idle for the timeout.
    let (ended, answer, waited) = after_sending(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(ended.is_ok(), "still open after {waited:?}: {ended:?}");
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}
