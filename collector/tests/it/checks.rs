//! The collector's own checks of the shared applications, against servers the test starts.

use std::net::TcpListener as StdListener;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use hatang_collector::checks::{ServiceConfig, check_once};
use time::OffsetDateTime;

use crate::support::Harness;

fn service(name: &str, target: String) -> hatang_collector::checks::Service {
    ServiceConfig {
        name: name.into(),
        target,
        interval_secs: 60,
        timeout_secs: 2,
        ca_file: None,
    }
    .check()
    .unwrap()
}

/// An HTTP server on loopback answering every GET with `status`.
async fn http_server(status: StatusCode) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().route("/", get(move || async move { status }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/")
}

/// A loopback port with nothing listening on it.
fn closed_port() -> String {
    let addr = StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    addr.to_string()
}

#[tokio::test]
async fn each_service_is_up_or_down_with_status_latency_and_certificate_expiry() {
    let h = Harness::empty().await;
    let expires = OffsetDateTime::now_utc() + time::Duration::days(10);
    let tls = hatang_probe::testing::tls_server(expires).await;
    let services = [
        service("portal", http_server(StatusCode::OK).await),
        service(
            "one-stop",
            http_server(StatusCode::SERVICE_UNAVAILABLE).await,
        ),
        service("lgsp", closed_port()),
        service("edoc", format!("https://{tls}/")),
    ];
    for s in &services {
        check_once(s, h.state.services()).await;
    }

    let m = h.metrics().await;
    let up = |name: &str| m.value("hatang_service_up", &[("service", name)]);
    assert_eq!(up("portal"), 1.0);
    assert_eq!(up("one-stop"), 0.0, "a 503 is down");
    assert_eq!(up("lgsp"), 0.0, "nothing listens");
    assert_eq!(up("edoc"), 0.0, "a self-signed certificate is not trusted");
    let code = |name: &str| m.get("hatang_service_http_status_code", &[("service", name)]);
    assert_eq!(code("portal"), Some(200.0));
    assert_eq!(code("one-stop"), Some(503.0));
    assert_eq!(code("lgsp"), None);
    let latency = m.value("hatang_service_latency_seconds", &[("service", "portal")]);
    assert!(latency > 0.0 && latency < 2.0, "{latency}");
    // The expiry of the untrusted certificate is still read: that is what the alert needs.
    let expiry = m.value(
        "hatang_service_tls_expiry_timestamp_seconds",
        &[("service", "edoc")],
    );
    assert!(
        (expiry - expires.unix_timestamp() as f64).abs() <= 1.0,
        "{expiry}"
    );
    assert_eq!(
        m.get(
            "hatang_service_tls_expiry_timestamp_seconds",
            &[("service", "portal")]
        ),
        None
    );

    // The API shows the same with the reason for each failure.
    let viewer = h.api_token("viewer").await;
    let body = h
        .get("/api/v1/services", Some(&viewer))
        .await
        .json(StatusCode::OK);
    let list = body["services"].as_array().unwrap();
    assert_eq!(list.len(), 4);
    let lgsp = list.iter().find(|s| s["name"] == "lgsp").unwrap();
    assert_eq!(lgsp["up"], false);
    assert!(
        lgsp["error"].as_str().unwrap().contains("refused"),
        "{lgsp}"
    );
}

#[tokio::test]
async fn services_are_configured_in_the_toml_with_every_problem_reported() {
    let raw = hatang_collector::config::RawConfig::from_toml(
        r#"
[[services]]
name = "portal"
target = "https://dichvucong.example.gov.vn/"

[[services]]
name = "portal"
target = "10.0.0.1:443"

[[services]]
name = "lgsp"
target = "lgsp.example.gov.vn"
"#,
    )
    .unwrap();
    let err = raw
        .check(&hatang_collector::config::Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("the name \"portal\" appears twice"), "{err}");
    assert!(err.contains("services.lgsp: target"), "{err}");
}

#[tokio::test]
async fn an_https_service_of_a_private_ca_is_up_with_its_ca_file_only() {
    let h = Harness::empty().await;
    let expires = OffsetDateTime::now_utc() + time::Duration::days(90);
    let (addr, ca_pem) = hatang_probe::testing::tls_server_of_private_ca(expires).await;
    let ca_file = h.dir.path().join("private-ca.pem");
    // The file may hold the whole chain of a province's CAs; this test's has one.
    std::fs::write(&ca_file, ca_pem).unwrap();
    let entry = |name: &str, ca_file: Option<std::path::PathBuf>| ServiceConfig {
        name: name.into(),
        target: format!("https://{addr}/"),
        interval_secs: 60,
        timeout_secs: 2,
        ca_file,
    };
    let trusting = entry("edoc", Some(ca_file)).check().unwrap();
    let platform_only = entry("edoc-platform-roots", None).check().unwrap();
    check_once(&trusting, h.state.services()).await;
    check_once(&platform_only, h.state.services()).await;

    let results = h.state.services().snapshot();
    let result = |name: &str| results.iter().find(|r| r.name == name).unwrap().clone();
    let trusted = result("edoc");
    assert!(trusted.up, "{trusted:?}");
    assert_eq!((trusted.http_status, trusted.error), (Some(200), None));
    let refused = result("edoc-platform-roots");
    assert!(!refused.up, "{refused:?}");
    assert_eq!(refused.http_status, None);
    let error = refused.error.unwrap();
    assert!(
        error.contains("UnknownIssuer"),
        "a certificate error: {error}"
    );
}
