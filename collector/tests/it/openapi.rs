//! The OpenAPI document (`collector/openapi.json`) against the routes the collector serves
//! (`hatang_collector::http::ROUTES`), both ways, and served without a token.

use std::collections::BTreeSet;
use std::process::Command;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use hatang_collector::http::{OPENAPI, ROUTES};
use serde_json::Value;

use crate::support::Harness;

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// (METHOD, path) of every operation the document describes.
fn documented() -> BTreeSet<(String, String)> {
    let doc: Value = serde_json::from_str(OPENAPI).expect("openapi.json is JSON");
    let paths = doc["paths"].as_object().expect("a paths object");
    let mut ops = BTreeSet::new();
    for (path, item) in paths {
        for (key, _) in item.as_object().unwrap() {
            if METHODS.contains(&key.as_str()) {
                ops.insert((key.to_uppercase(), path.clone()));
            }
        }
    }
    ops
}

fn listed() -> BTreeSet<(String, String)> {
    ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect()
}

#[test]
fn the_document_is_openapi_3_1_and_describes_exactly_the_routes() {
    let doc: Value = serde_json::from_str(OPENAPI).unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1."),
        "{}",
        doc["openapi"]
    );
    assert_eq!(ROUTES.len(), listed().len(), "ROUTES lists a route twice");
    let (documented, listed) = (documented(), listed());
    let undocumented: Vec<_> = listed.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&listed).collect();
    assert!(
        undocumented.is_empty() && unserved.is_empty(),
        "served but not in openapi.json: {undocumented:?}; in openapi.json but not served: {unserved:?}"
    );
    // every operation says who may call it and has a unique id
    let mut ids = BTreeSet::new();
    for (method, path) in &documented {
        let op = &doc["paths"][path][method.to_lowercase()];
        assert!(op["security"].is_array(), "{method} {path}: security");
        assert!(
            ids.insert(op["operationId"].as_str().unwrap().to_string()),
            "{method} {path}"
        );
    }
}

#[tokio::test]
async fn every_listed_route_is_served_with_its_method() {
    let h = Harness::empty().await;
    for (method, template) in ROUTES {
        let path = template
            .replace("{code}", "x")
            .replace("{id}", "x")
            .replace("{fingerprint}", "x");
        let request = Request::builder()
            .method(method.parse::<Method>().unwrap())
            .uri(&path)
            .body(Body::empty())
            .unwrap();
        let reply = h.send(request).await;
        let unrouted = reply.status == StatusCode::METHOD_NOT_ALLOWED
            || (reply.status == StatusCode::NOT_FOUND && reply.text().contains("no such endpoint"));
        assert!(
            !unrouted,
            "{method} {path}: {} {}",
            reply.status,
            reply.text()
        );
    }
}

/// Every `.route("…"` in the HTTP sources is in [`ROUTES`]: a route added to a router without
/// being listed (and so documented) fails here.
#[test]
fn every_route_in_the_source_is_listed() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http");
    let paths: BTreeSet<&str> = ROUTES.iter().map(|(_, p)| *p).collect();
    let mut found = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let file = entry.unwrap().path();
        // src/http/web/ is the HTML UI, not the API this document describes: its routes are in
        // http::WEB_ROUTES, checked the same way by the `web` tests.
        if file.is_dir() {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for (i, _) in text.match_indices(".route(") {
            let line_start = text[..i].rfind('\n').map_or(0, |n| n + 1);
            if text[line_start..i].trim_start().starts_with("//") {
                continue;
            }
            let rest = text[i + ".route(".len()..].trim_start();
            let Some(rest) = rest.strip_prefix('"') else {
                continue;
            };
            let path = &rest[..rest.find('"').unwrap()];
            assert!(
                paths.contains(path),
                "{} routes {path} but http::ROUTES does not list it (nor openapi.json describe it)",
                file.display()
            );
            found += 1;
        }
    }
    assert!(found >= 15, "the scan finds the routes ({found})");
}

#[tokio::test]
async fn the_document_is_served_without_a_token() {
    let h = Harness::empty().await;
    let reply = h.get("/api/v1/openapi.json", None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header(header::CONTENT_TYPE), "application/json");
    assert_eq!(reply.text(), OPENAPI);
}

/// `openapi-spec-validator` (`pip install openapi-spec-validator`) on the document; skipped
/// with a message when it is not installed, except under `CI`, which must run it.
#[test]
fn the_document_passes_openapi_spec_validator() {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json");
    let run = match Command::new("openapi-spec-validator").arg(&file).output() {
        Ok(run) => run,
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("skipped: openapi-spec-validator not installed ({e})");
            return;
        }
        Err(e) => panic!("openapi-spec-validator is required in CI: {e}"),
    };
    assert!(
        run.status.success(),
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
}
