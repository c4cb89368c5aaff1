//! Revocation and limits: tokens named by fingerprint, revoked from the command line or the admin
//! API with effect at once on every replica, enrolment use limits, agent keys revoked, and the
//! viewer/admin separation on every route.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use hatang_collector::commands;
use hatang_collector::secret;
use hatang_collector::tokens::TokenRequest;
use serde_json::{Value, json};

use crate::support::{Harness, Reply, TREE_3, on_every_backend, report};

impl Harness {
    /// `method path` with `Authorization: Bearer <token>` when a token is given, and a JSON body
    /// when one is given.
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let body = match body {
            Some(b) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(b.to_string())
            }
            None => Body::empty(),
        };
        self.send(request.body(body).unwrap()).await
    }

    async fn token_list(&self) -> String {
        let mut out = Vec::new();
        commands::token_list(self.store(), &mut out).await.unwrap();
        String::from_utf8(out).unwrap()
    }

    async fn token_revoke(&self, given: &str) -> anyhow::Result<String> {
        let mut out = Vec::new();
        commands::token_revoke(self.store(), given, &mut out).await?;
        Ok(String::from_utf8(out).unwrap())
    }

    async fn agent_list(&self) -> String {
        let mut out = Vec::new();
        commands::agent_list(self.store(), &mut out).await.unwrap();
        String::from_utf8(out).unwrap()
    }

    /// An enrolment token for `unit` that allows `max_uses` enrolments.
    async fn limited_token(&self, unit: &str, max_uses: u32) -> String {
        let request = TokenRequest {
            unit: Some(unit.into()),
            max_uses: Some(max_uses),
            ..TokenRequest::default()
        };
        let mut out = Vec::new();
        commands::token_create(self.store(), &request, &mut out)
            .await
            .unwrap();
        String::from_utf8(out).unwrap().trim_end().to_string()
    }
}

fn fingerprint(token: &str) -> String {
    secret::fingerprint(&secret::digest(token))
}

on_every_backend! {
    #[tokio::test]
    async fn a_revoked_agent_key_is_refused_at_once_on_every_replica(db) {
        let a = Harness::with_tree_on(&db, TREE_3).await;
        let b = a.replica().await;
        let admin = a.api_token("admin").await;
        let token = a.enrol_token("4351", None).await;
        let agent = a.enrolled(&token, "m-1").await;
        a.report(&agent.key, &report()).await.json(StatusCode::ACCEPTED);

        // revoked through replica b, refused by replica a on the very next report
        let revoked = b
            .call(Method::DELETE, &format!("/api/v1/agents/{}", agent.id), Some(&admin), None)
            .await
            .json(StatusCode::OK);
        assert_eq!(revoked["id"], agent.id);
        let at = revoked["revoked_at"].as_i64().unwrap();
        assert!((at - hatang_collector::now()).abs() <= 5, "{revoked}");
        let before = a.snapshot().await;
        let message = a
            .report(&agent.key, &report())
            .await
            .error(StatusCode::UNAUTHORIZED, "unauthorized");
        assert!(message.contains("enrol this machine again"), "{message}");
        a.assert_refused(&before, "unauthorized").await;
        // the speed test takes the agent key too
        let reply = a.get("/api/v1/speedtest/download?bytes=10", Some(&agent.key)).await;
        reply.error(StatusCode::UNAUTHORIZED, "unauthorized");

        // the lists show it; revoking again keeps the first time
        let viewer = a.api_token("viewer").await;
        let listed = a.get("/api/v1/agents", Some(&viewer)).await.json(StatusCode::OK);
        assert_eq!(listed["agents"][0]["revoked_at"], at);
        let mut out = Vec::new();
        commands::agent_revoke(a.store(), &agent.id, &mut out).await.unwrap();
        assert!(String::from_utf8(out).unwrap().contains("was already revoked"));
        let list = a.agent_list().await;
        let line = list.lines().find(|l| l.starts_with(&agent.id)).unwrap();
        assert!(!line.trim_end().ends_with(" -"), "revocation shown: {line}");

        // enrolling the machine again issues a new key and lifts the revocation; the old key
        // stays refused
        let again = a.enrolled(&token, "m-1").await;
        assert_eq!(again.id, agent.id);
        b.report(&again.key, &report()).await.json(StatusCode::ACCEPTED);
        a.report(&agent.key, &report()).await.error(StatusCode::UNAUTHORIZED, "unauthorized");
        let (record, _) = a.store().agent(&agent.id).await.unwrap().unwrap();
        assert_eq!(record.revoked_at, None);

        // an unknown agent
        let message = a
            .call(Method::DELETE, "/api/v1/agents/nope", Some(&admin), None)
            .await
            .error(StatusCode::NOT_FOUND, "not_found");
        assert_eq!(message, "agent nope not found");
        let mut out = Vec::new();
        let err = commands::agent_revoke(a.store(), "nope", &mut out).await.unwrap_err();
        assert!(err.to_string().starts_with("no agent nope"), "{err}");
    }

    #[tokio::test]
    async fn tokens_are_revoked_by_fingerprint_or_by_themselves_at_once(db) {
        let a = Harness::with_tree_on(&db, TREE_3).await;
        let b = a.replica().await;
        let enrol = a.enrol_token("148", None).await;
        let viewer = a.api_token("viewer").await;
        let admin = a.api_token("admin").await;
        a.enrolled(&enrol, "m-1").await;
        assert_eq!(b.get("/api/v1/units", Some(&viewer)).await.status, StatusCode::OK);

        // the enrolment token by its fingerprint, upper case as someone may type it
        let out = a.token_revoke(&fingerprint(&enrol).to_uppercase()).await.unwrap();
        assert_eq!(out, format!("revoked enrol token {}\n", fingerprint(&enrol)));
        b.enroll(&enrol, "m-2").await.error(StatusCode::FORBIDDEN, "token_revoked");
        // the viewer token by itself, through the other replica
        let out = b.token_revoke(&viewer).await.unwrap();
        assert_eq!(out, format!("revoked api token {}\n", fingerprint(&viewer)));
        let message = a
            .get("/api/v1/units", Some(&viewer))
            .await
            .error(StatusCode::UNAUTHORIZED, "unauthorized");
        assert_eq!(message, "unknown, expired or revoked token");
        // twice is no error and keeps the first time
        let out = a.token_revoke(&viewer).await.unwrap();
        assert!(out.contains("was already revoked on"), "{out}");

        // the admin API: by fingerprint only, never a token in a URL
        let revoked = a
            .call(Method::DELETE, &format!("/api/v1/tokens/{}", fingerprint(&enrol)), Some(&admin), None)
            .await
            .json(StatusCode::OK);
        assert_eq!(revoked["token"]["fingerprint"], fingerprint(&enrol));
        assert_eq!(revoked["token"]["kind"], "enrol");
        assert!(revoked["token"]["revoked_at"].is_i64());
        for bad in [enrol.as_str(), "0123", "zzzzzzzzzzzz"] {
            a.call(Method::DELETE, &format!("/api/v1/tokens/{bad}"), Some(&admin), None)
                .await
                .error(StatusCode::BAD_REQUEST, "invalid_fingerprint");
        }
        let unknown = "0123456789ab";
        let message = a
            .call(Method::DELETE, &format!("/api/v1/tokens/{unknown}"), Some(&admin), None)
            .await
            .error(StatusCode::NOT_FOUND, "not_found");
        assert_eq!(message, format!("token {unknown} not found"));
        let err = a.token_revoke(unknown).await.unwrap_err().to_string();
        assert!(err.starts_with("no token has the fingerprint 0123456789ab"), "{err}");
        let agent_key = a.enrolled(&a.enrol_token("148", None).await, "m-3").await.key;
        let err = a.token_revoke(&agent_key).await.unwrap_err().to_string();
        assert!(err.contains("agent revoke"), "{err}");
        assert!(!err.contains(&agent_key));

        // the list: revoked ones say when, the admin token is not revoked
        let list = a.get("/api/v1/tokens", Some(&admin)).await.json(StatusCode::OK);
        let tokens = list["tokens"].as_array().unwrap();
        let by = |t: &str| tokens.iter().find(|x| x["fingerprint"] == fingerprint(t)).unwrap();
        assert!(by(&enrol)["revoked_at"].is_i64());
        assert!(by(&viewer)["revoked_at"].is_i64());
        assert_eq!(by(&admin)["revoked_at"], Value::Null);
        assert_eq!(by(&admin)["kind"], "api");
        assert_eq!(by(&enrol)["unit"], "148");
        assert_eq!(by(&enrol)["uses"], 1);
    }

    #[tokio::test]
    async fn an_enrolment_token_enrols_at_most_max_uses_machines(db) {
        let h = Harness::with_tree_on(&db, TREE_3).await;
        let token = h.limited_token("4351", 3).await;
        for i in 0..3 {
            h.enrolled(&token, &format!("m-{i}")).await;
        }
        let before = h.metrics().await;
        let message = h
            .enroll(&token, "m-3")
            .await
            .error(StatusCode::FORBIDDEN, "token_used_up");
        assert!(message.contains("all the enrolments it allows"), "{message}");
        // a known machine enrolling again is an enrolment too: the limit bounds how often the
        // token is exchanged for a key
        h.enroll(&token, "m-0").await.error(StatusCode::FORBIDDEN, "token_used_up");
        assert_eq!(h.store().agents().await.unwrap().len(), 3);
        let after = h.metrics().await;
        let refused = |m: &crate::support::Exposition| {
            m.value("hatang_enrolments_total", &[("outcome", "refused")])
        };
        assert_eq!(refused(&after), refused(&before) + 2.0);
        assert!(h.token_list().await.contains(" 3/3 "), "{}", h.token_list().await);

        // enrolments racing for the last uses: exactly the limit gets through
        let token = h.limited_token("4352", 4).await;
        let mut racing = tokio::task::JoinSet::new();
        for i in 0..12 {
            let (state, token) = (h.state.clone(), token.clone());
            racing.spawn(async move {
                let body = json!({"token": token, "machine_id": format!("r-{i}"), "hostname": "pc"});
                crate::support::send(
                    state,
                    crate::support::post(
                        "/api/v1/enroll",
                        &[("content-type", "application/json")],
                        body.to_string().into_bytes(),
                    ),
                )
                .await
                .status
            });
        }
        let statuses = racing.join_all().await;
        let created = statuses.iter().filter(|s| **s == StatusCode::CREATED).count();
        let used_up = statuses.iter().filter(|s| **s == StatusCode::FORBIDDEN).count();
        assert_eq!((created, used_up), (4, 8), "{statuses:?}");
        assert_eq!(h.store().agents().await.unwrap().len(), 3 + 4);
    }
}

#[tokio::test]
async fn max_uses_and_roles_are_checked_when_a_token_is_made() {
    let h = Harness::with_tree(TREE_3).await;
    let admin = h.api_token("admin").await;
    let cases = [
        (
            json!({"unit": "4351", "max_uses": 0}),
            "invalid_token_request",
            "at least 1",
        ),
        (
            json!({"role": "viewer", "expires_days": 0}),
            "invalid_token_request",
            "expires_days must be from 1 to 36500",
        ),
        (
            json!({"unit": "4351", "expires_days": 4_294_967_295_u32}),
            "invalid_token_request",
            "expires_days must be from 1 to 36500",
        ),
        (
            json!({"role": "viewer", "max_uses": 2}),
            "invalid_token_request",
            "needs a unit",
        ),
        (
            json!({"unit": "4351", "role": "admin"}),
            "invalid_token_request",
            "workstation or server",
        ),
        (
            json!({"role": "server"}),
            "invalid_token_request",
            "viewer or admin",
        ),
        (
            json!({}),
            "invalid_token_request",
            "say what the token is for",
        ),
        (
            json!({"unit": "9999"}),
            "unknown_unit",
            "unit 9999 is not in the current tree",
        ),
        (json!({"unit": ""}), "invalid_token_request", "unit must be"),
        (
            json!({"role": "viewer", "scope": "all"}),
            "invalid_json",
            "unknown field",
        ),
        (
            json!({"role": "viewer", "max_uses": -1}),
            "invalid_json",
            "expected u32",
        ),
    ];
    for (body, code, says) in cases {
        let message = h
            .call(
                Method::POST,
                "/api/v1/tokens",
                Some(&admin),
                Some(body.clone()),
            )
            .await
            .error(StatusCode::BAD_REQUEST, code);
        assert!(message.contains(says), "{body}: {message}");
    }
    let listed = h
        .get("/api/v1/tokens", Some(&admin))
        .await
        .json(StatusCode::OK);
    assert_eq!(
        listed["tokens"].as_array().unwrap().len(),
        1,
        "only the admin token: {listed}"
    );

    // one made through the API works at once and is shown once
    let made = h
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(&admin),
            Some(json!({"unit": "4351", "role": "server", "expires_days": 7, "max_uses": 2})),
        )
        .await
        .json(StatusCode::CREATED);
    let token = made["token"].as_str().unwrap();
    assert!(token.starts_with("hte_"), "{made}");
    assert_eq!(made["fingerprint"], fingerprint(token));
    assert_eq!(
        (
            &made["kind"],
            &made["unit"],
            &made["role"],
            &made["uses"],
            &made["max_uses"]
        ),
        (
            &json!("enrol"),
            &json!("4351"),
            &json!("server"),
            &json!(0),
            &json!(2)
        )
    );
    let week = made["expires_at"].as_i64().unwrap() - made["created_at"].as_i64().unwrap();
    assert_eq!(week, 7 * 86_400);
    let enrolled = h.enroll(token, "m").await.json(StatusCode::CREATED);
    assert_eq!(enrolled["role"], "server");
    let viewer = h
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(&admin),
            Some(json!({"role": "viewer"})),
        )
        .await
        .json(StatusCode::CREATED);
    let viewer = viewer["token"].as_str().unwrap();
    assert_eq!(
        h.get("/api/v1/coverage", Some(viewer)).await.status,
        StatusCode::OK
    );
    // a form post (what a cross-site page could send) is not accepted
    let reply = h
        .post(
            "/api/v1/tokens",
            &[
                ("authorization", &format!("Bearer {admin}")),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            b"role=admin".to_vec(),
        )
        .await;
    reply.error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
}

/// What each route needs; every route the collector serves must be here.
fn auth_of(method: &str, path: &str) -> &'static str {
    match (method, path) {
        (_, "/healthz" | "/readyz" | "/metrics" | "/metrics/detail" | "/api/v1/openapi.json") => {
            "none"
        }
        (_, "/api/v1/enroll") => "enrolment token",
        (_, "/api/v1/reports" | "/api/v1/speedtest/download" | "/api/v1/speedtest/upload") => {
            "agent key"
        }
        ("GET", p) if !p.starts_with("/api/v1/tokens") => "viewer",
        (_, "/api/v1/tokens" | "/api/v1/tokens/{fingerprint}" | "/api/v1/agents/{id}") => "admin",
        _ => panic!("{method} {path}: say in auth_of what it needs"),
    }
}

#[tokio::test]
async fn every_route_takes_the_token_it_needs_and_admin_routes_refuse_viewers() {
    let h = Harness::with_tree(TREE_3).await;
    let viewer = h.api_token("viewer").await;
    let admin = h.api_token("admin").await;
    let agent = h.enrolled(&h.enrol_token("4351", None).await, "m-1").await;
    let enrol = h.enrol_token("4352", None).await;
    let doomed = h.enrol_token("4352", None).await;
    let concrete = |path: &str| {
        path.replace("{code}", "4351")
            .replace("{id}", &agent.id)
            .replace("{fingerprint}", &fingerprint(&doomed))
    };
    let mut checked = 0;
    for (method, template) in hatang_collector::http::ROUTES {
        let path = concrete(template);
        let method: Method = method.parse().unwrap();
        let body = (method == Method::POST).then(|| json!({"role": "viewer"}));
        match auth_of(method.as_str(), template) {
            "viewer" => {
                let none = h.call(method.clone(), &path, None, None).await;
                none.error(StatusCode::UNAUTHORIZED, "unauthorized");
                let bad = h.call(method.clone(), &path, Some(&agent.key), None).await;
                bad.error(StatusCode::UNAUTHORIZED, "unauthorized");
                let reply = h.call(method.clone(), &path, Some(&viewer), None).await;
                assert_eq!(
                    reply.status,
                    StatusCode::OK,
                    "{method} {path}: {}",
                    reply.text()
                );
                checked += 1;
            }
            "admin" => {
                let none = h.call(method.clone(), &path, None, body.clone()).await;
                none.error(StatusCode::UNAUTHORIZED, "unauthorized");
                let message = h
                    .call(method.clone(), &path, Some(&viewer), body.clone())
                    .await
                    .error(StatusCode::FORBIDDEN, "forbidden");
                assert_eq!(message, "this needs an admin token", "{method} {path}");
                let reply = h
                    .call(method.clone(), &path, Some(&admin), body.clone())
                    .await;
                assert!(
                    reply.status.is_success(),
                    "{method} {path}: {}",
                    reply.text()
                );
                checked += 1;
            }
            _ => {}
        }
    }
    assert_eq!(checked, 15, "viewer and admin routes checked");
    // the viewer's refusals changed nothing: the enrolment token and the agent still work
    h.enrolled(&enrol, "m-2").await;
    let listed = h
        .get("/api/v1/tokens", Some(&admin))
        .await
        .json(StatusCode::OK);
    let revoked = listed["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["revoked_at"].is_i64())
        .count();
    assert_eq!(
        revoked, 1,
        "only the admin's DELETE revoked a token: {listed}"
    );
}

/// Collects what the collector logs while it is alive, at every level.
#[derive(Debug, Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Set in the process [`fingerprints_never_reveal_secrets_in_lists_debug_or_logs`] runs in.
const ALONE: &str = "HATANG_TEST_LOG_CAPTURE";

#[tokio::test]
async fn fingerprints_never_reveal_secrets_in_lists_debug_or_logs() {
    // tracing caches per call site whether anyone listens, and tests running at once on other
    // threads (without a subscriber) can make it skip events meant for this test's: the
    // capture runs in a process of its own, this test binary run again for this test alone.
    if std::env::var_os(ALONE).is_none() {
        let name = "tokens::fingerprints_never_reveal_secrets_in_lists_debug_or_logs";
        let run = std::process::Command::new(std::env::current_exe().unwrap())
            .args([name, "--exact", "--nocapture", "--test-threads=1"])
            .env(ALONE, "1")
            .output()
            .unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr)
        );
        assert!(run.status.success() && said.contains("1 passed"), "{said}");
        return;
    }
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("trace")
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _logging = tracing::subscriber::set_default(subscriber);

    let h = Harness::with_tree(TREE_3).await;
    let admin = h.api_token("admin").await;
    let enrol = h.limited_token("4351", 5).await;
    let made = h
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(&admin),
            Some(json!({"role": "viewer"})),
        )
        .await
        .json(StatusCode::CREATED);
    let viewer = made["token"].as_str().unwrap().to_string();
    let agent = h.enrolled(&enrol, "m-1").await;
    h.report(&agent.key, &report())
        .await
        .json(StatusCode::ACCEPTED);
    h.token_revoke(&viewer).await.unwrap();
    h.call(
        Method::DELETE,
        &format!("/api/v1/agents/{}", agent.id),
        Some(&admin),
        None,
    )
    .await
    .json(StatusCode::OK);
    h.report(&agent.key, &report())
        .await
        .error(StatusCode::UNAUTHORIZED, "unauthorized");

    let secrets = [&admin, &enrol, &viewer, &agent.key];
    let hex_of = |s: &str| hex::encode(secret::digest(s));
    let mut shown = vec![
        ("token list", h.token_list().await),
        (
            "GET /api/v1/tokens",
            h.get("/api/v1/tokens", Some(&admin))
                .await
                .text()
                .to_string(),
        ),
        (
            "GET /api/v1/agents",
            h.get("/api/v1/agents", Some(&admin))
                .await
                .text()
                .to_string(),
        ),
        (
            "Debug of the tokens",
            format!("{:?}", h.store().tokens().await.unwrap()),
        ),
        (
            "Debug of the agents",
            format!("{:?}", h.store().agents().await.unwrap()),
        ),
    ];
    shown.push(("agent list", h.agent_list().await));
    let request = TokenRequest {
        unit: Some("4351".into()),
        ..TokenRequest::default()
    };
    let created = hatang_collector::tokens::create(h.store(), &request, 0)
        .await
        .unwrap();
    shown.push(("Debug of a created token", format!("{created:?}")));
    let logged = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        logged.contains("token created"),
        "the capture works: {logged}"
    );
    shown.push(("logs", logged));
    for (what, text) in &shown {
        for s in secrets
            .iter()
            .map(|s| s.as_str())
            .chain([created.secret.plain.as_str()])
        {
            assert!(!text.contains(s), "{what} shows a secret:\n{text}");
            // nor the digest beyond its fingerprint: a digest is what a leaked database holds
            assert!(
                !text.contains(&hex_of(s)[..16]),
                "{what} shows a digest:\n{text}"
            );
        }
    }
    // and the fingerprints are there to act on
    for t in [&admin, &enrol, &viewer] {
        assert!(shown[0].1.contains(&fingerprint(t)), "{}", shown[0].1);
    }
    assert!(
        shown.last().unwrap().1.contains(&fingerprint(&viewer)),
        "revocation logged"
    );
}

#[tokio::test]
async fn an_enrolment_waiting_on_a_revoke_is_refused_once_the_revoke_commits() {
    // Only PostgreSQL lets an enrolment read the token before a revoke commits and claim its
    // use after (SQLite's enrolment holds the write lock throughout).
    let Some(db) = crate::support::Backend::postgres() else {
        return;
    };
    use sqlx::Connection as _;
    let h = Harness::with_tree_on(&db, TREE_3).await;
    let token = h.enrol_token("4351", None).await;
    // Another session holds the token's row, as a revoke in progress does.
    let mut revoker = sqlx::PgConnection::connect(h.db_url()).await.unwrap();
    let mut tx = revoker.begin().await.unwrap();
    sqlx::query("SELECT id FROM enrol_tokens FOR UPDATE")
        .execute(&mut *tx)
        .await
        .unwrap();
    let revoke = async {
        // The enrolment has read the token by now and waits for its row to claim a use.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        sqlx::query("UPDATE enrol_tokens SET revoked_at = 1")
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    };
    let (reply, ()) = tokio::join!(h.enroll(&token, "raced"), revoke);
    reply.error(StatusCode::FORBIDDEN, "token_revoked");
    assert!(
        h.store().agents().await.unwrap().is_empty(),
        "nobody enrolled"
    );
}
