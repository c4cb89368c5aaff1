//! Connectivity probes, the gateway check and the speed test against local listeners only
//! (127.0.0.1); nothing here sends a packet off this machine.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use hatang_agent::speed;
use hatang_probe::{self as probe, ProbeSpec, Target};
use hatang_protocol::{ProbeClass, ProbeKind, ProbeResult, Report};
use time::OffsetDateTime;

use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::support::{
    AGENT_KEY, FakeCollector, agent, enrol, printed_report, run, running, wait_until,
};

fn spec(kind: &str, target: &str, attempts: u32, timeout_ms: u64) -> ProbeSpec {
    ProbeSpec {
        name: format!("{kind}-probe"),
        class: ProbeClass::Internet,
        target: Target::parse(kind, target).unwrap(),
        target_text: target.to_owned(),
        attempts,
        timeout: Duration::from_millis(timeout_ms),
    }
}

async fn probe_once(spec: &ProbeSpec) -> ProbeResult {
    probe::run(spec, Instant::now() + Duration::from_secs(20)).await
}

/// Checks the arithmetic holds together for a probe every attempt of which succeeded.
fn assert_all_answered(r: &ProbeResult, attempts: u32) {
    assert_eq!((r.attempts, r.successes), (attempts, attempts), "{r:?}");
    assert_eq!(r.loss_ratio(), 0.0);
    let (min, avg, max) = (
        r.rtt_min_seconds.unwrap(),
        r.rtt_avg_seconds.unwrap(),
        r.rtt_max_seconds.unwrap(),
    );
    assert!(0.0 < min && min <= avg && avg <= max && max < 2.0, "{r:?}");
    let jitter = r.jitter_seconds.expect("two or more answers give a jitter");
    assert!(jitter >= 0.0 && jitter <= max - min + 1e-9, "{r:?}");
}

/// A listener that accepts connections and never says a word.
async fn silent_listener() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    addr
}

/// A port nothing listens on.
fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

#[tokio::test]
async fn tcp_to_an_open_port_times_the_connect() {
    let addr = silent_listener().await;

    let r = probe_once(&spec("tcp", &addr.to_string(), 4, 2000)).await;

    assert_all_answered(&r, 4);
    assert_eq!((r.kind, r.class), (ProbeKind::Tcp, ProbeClass::Internet));
    assert_eq!(r.target, addr.to_string());
    assert_eq!((r.error.as_deref(), r.http_status), (None, None));
}

#[tokio::test]
async fn tcp_to_a_closed_port_is_total_loss_with_the_reason() {
    let addr = closed_port();

    let r = probe_once(&spec("tcp", &addr.to_string(), 3, 2000)).await;

    assert_eq!((r.attempts, r.successes), (3, 0));
    assert_eq!(r.loss_ratio(), 1.0);
    assert_eq!(r.rtt_avg_seconds, None);
    let error = r.error.unwrap();
    assert!(error.to_lowercase().contains("refused"), "{error}");
}

async fn web_server() -> SocketAddr {
    let app = Router::new()
        .route("/ok", get(|| async { "fine" }))
        .route(
            "/moved",
            get(|| async { (StatusCode::FOUND, [("location", "/ok")]) }),
        )
        .route(
            "/broken",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "down") }),
        );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test]
async fn http_records_the_status_and_counts_2xx_and_3xx_as_answers() {
    let addr = web_server().await;

    let ok = probe_once(&spec("http", &format!("http://{addr}/ok"), 3, 2000)).await;
    let moved = probe_once(&spec("http", &format!("http://{addr}/moved"), 2, 2000)).await;
    let broken = probe_once(&spec("http", &format!("http://{addr}/broken"), 2, 2000)).await;

    assert_all_answered(&ok, 3);
    assert_eq!((ok.kind, ok.http_status), (ProbeKind::Http, Some(200)));
    assert_eq!(ok.tls_not_after, None, "plain http has no certificate");
    assert_all_answered(&moved, 2);
    assert_eq!(moved.http_status, Some(302), "redirects are not followed");
    assert_eq!((broken.successes, broken.http_status), (0, Some(500)));
    assert_eq!(broken.loss_ratio(), 1.0);
    assert_eq!(
        broken.error.as_deref(),
        Some("answered 500 Internal Server Error")
    );
}

#[tokio::test]
async fn https_reports_when_an_untrusted_certificate_expires() {
    let expires = OffsetDateTime::now_utc() + time::Duration::days(10);
    let addr = hatang_probe::testing::tls_server(expires).await;

    let r = probe_once(&spec("https", &format!("https://{addr}/"), 2, 5000)).await;

    let not_after = r.tls_not_after.expect("the certificate's expiry");
    assert!(
        (not_after - expires).abs() < time::Duration::days(1),
        "{not_after} vs {expires}"
    );
    // Self-signed: the date is evidence, but the service is not trusted, so not reached.
    assert_eq!((r.successes, r.http_status), (0, None));
    let error = r.error.unwrap();
    assert!(error.to_lowercase().contains("certificate"), "{error}");
}

#[tokio::test]
async fn dns_resolves_localhost() {
    let r = probe_once(&spec("dns", "localhost", 3, 2000)).await;

    assert_all_answered(&r, 3);
    assert_eq!((r.kind, r.error.as_deref()), (ProbeKind::Dns, None));
}

#[tokio::test]
async fn icmp_pings_or_says_it_used_tcp_instead() {
    let r = probe_once(&spec("icmp", "127.0.0.1", 3, 2000)).await;

    // As root (or with ping_group_range open) this is a real echo; otherwise a TCP connect to
    // 127.0.0.1:443/80, whose refusal is the host answering. Either way every attempt answers.
    assert_eq!((r.attempts, r.successes), (3, 3), "{r:?}");
    match r.kind {
        ProbeKind::Icmp => assert_eq!(r.error, None),
        ProbeKind::Tcp => {
            let error = r.error.as_deref().unwrap();
            assert!(error.starts_with("icmp not permitted here"), "{error}");
        }
        other => panic!("kind {other:?}"),
    }
}

#[tokio::test]
async fn a_gateway_that_refuses_is_a_gateway_that_answered() {
    // Nothing listens on 127.0.0.1:53/80/443 here (or something does): either way it answers.
    let g = probe::check_gateway(
        "127.0.0.1".parse().unwrap(),
        Instant::now() + Duration::from_secs(10),
    )
    .await;

    assert_eq!((g.attempts, g.successes), (4, 4), "{g:?}");
    assert!(g.rtt_avg_seconds.unwrap() < 1.0);
    assert_eq!(g.error, None);
}

#[tokio::test]
async fn a_dead_target_cannot_hold_the_cycle_past_its_budget() {
    let silent = silent_listener().await;
    let closed = closed_port();
    let specs = [
        // Accepts and never answers: each attempt waits for its whole timeout.
        spec("http", &format!("http://{silent}/"), 20, 1000),
        spec("tcp", &closed.to_string(), 2, 1000),
    ];
    let started = std::time::Instant::now();

    let evidence = probe::gather(&specs, None, Duration::from_millis(1500)).await;

    let took = started.elapsed();
    assert!(took < Duration::from_millis(2500), "took {took:?}");
    let [hung, refused] = &evidence.probes[..] else {
        panic!("{evidence:?}")
    };
    assert!(
        (1..20).contains(&hung.attempts) && hung.successes == 0,
        "{hung:?}"
    );
    let error = hung.error.as_deref().unwrap();
    assert!(
        error.contains("no answer within") && error.contains("of 20 attempts made"),
        "{error}"
    );
    assert_eq!((refused.attempts, refused.successes), (2, 0));
    assert_eq!(evidence.gateway, None);
}

#[tokio::test]
async fn the_speed_test_moves_the_bytes_both_ways_with_the_agent_key() {
    let server = FakeCollector::start([202]).await;
    let bytes = (1 << 20) + 5;

    let test = speed::measure(&server.url, AGENT_KEY, bytes, &Default::default()).await;

    assert_eq!(test.error, None);
    assert_eq!(test.bytes, 2 * bytes);
    let down = test.download_bits_per_second.unwrap();
    let up = test.upload_bits_per_second.unwrap();
    assert!(
        down > 1e6 && up > 1e6,
        "loopback is faster than 1 Mbit/s: {test:?}"
    );
    assert!(test.duration_seconds > 0.0 && test.duration_seconds < 30.0);
    let requests = server.speedtests();
    assert!(requests.iter().all(|r| r.authorized), "{requests:?}");
    let moved = |path: &str| -> Vec<u64> {
        requests
            .iter()
            .filter(|r| r.path == path)
            .map(|r| r.bytes)
            .collect()
    };
    assert_eq!(moved("download"), [bytes]);
    assert_eq!(moved("upload"), [1 << 20, 5], "1 MiB chunks");
    assert!(server.received().is_empty(), "no report was sent");
}

#[tokio::test]
async fn a_refused_speed_test_has_no_figures_and_says_why() {
    let server = FakeCollector::start([202]).await;

    let test = speed::measure(&server.url, "hta_wrong", 64 << 10, &Default::default()).await;

    assert_eq!(
        (test.download_bits_per_second, test.upload_bits_per_second),
        (None, None)
    );
    assert_eq!(test.bytes, 0);
    assert_eq!(
        test.error.as_deref(),
        Some(
            "download: collector answered 401 Unauthorized; \
             upload: collector answered 401 Unauthorized"
        )
    );
}

/// A collector too busy for a speed test (503, as with too many at once) is not sent the
/// upload's first megabyte only to refuse it too.
#[tokio::test]
async fn a_busy_collector_gets_no_upload_after_refusing_the_download() {
    let server = FakeCollector::start([202]).await;
    server.set_down(true);

    let test = speed::measure(&server.url, AGENT_KEY, 64 << 10, &Default::default()).await;

    assert_eq!(
        (test.download_bits_per_second, test.upload_bits_per_second),
        (None, None)
    );
    assert_eq!(
        test.error.as_deref(),
        Some(
            "download: collector answered 503 Service Unavailable; \
             upload: not tried: the collector was busy"
        )
    );
    let paths: Vec<String> = server.speedtests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["download"]);
}

/// A configuration with one TCP probe to `addr` and the given extra lines.
fn probe_config(dir: &std::path::Path, addr: SocketAddr, extra: &str) -> std::path::PathBuf {
    let path = dir.join("agent.toml");
    std::fs::write(
        &path,
        format!(
            "{extra}\n[[probes]]\nname = \"local\"\nkind = \"tcp\"\nclass = \"internet\"\n\
             target = \"{addr}\"\nattempts = 2\n"
        ),
    )
    .unwrap();
    path
}

#[tokio::test]
async fn once_carries_the_probe_results() {
    let dir = tempfile::tempdir().unwrap();
    let addr = silent_listener().await;
    let config = probe_config(dir.path(), addr, "");

    let report = printed_report(dir.path(), &config).await;

    let [p] = &report.probes[..] else {
        panic!("{:?}", report.probes)
    };
    assert_eq!((p.name.as_str(), p.attempts, p.successes), ("local", 2, 2));
    assert_eq!(report.gateway, None, "HATANG_GATEWAY_PROBE=false");
    assert_eq!(report.speed, None, "once runs no speed test");
}

#[tokio::test]
async fn run_speed_tests_at_start_and_probes_every_cycle() {
    let dir = tempfile::tempdir().unwrap();
    let server = FakeCollector::start([202]).await;
    enrol(dir.path(), &server.url);
    let addr = silent_listener().await;
    let config = probe_config(
        dir.path(),
        addr,
        "interval_secs = 5\nspeedtest_bytes = 65536",
    );

    let mut child = running(dir.path(), &config);
    wait_until(Duration::from_secs(15), "two reports arrived", || {
        server.received().len() >= 2
    })
    .await;
    child.kill().await.unwrap();

    let reports: Vec<Report> = server.received().iter().map(|r| r.report()).collect();
    assert!(reports.iter().all(|r| r.probes.len() == 1), "{reports:?}");
    let speed = reports[0].speed.as_ref().expect("a speed test at start");
    assert_eq!((speed.bytes, speed.error.as_deref()), (2 * 65536, None));
    assert_eq!(reports[1].speed, None, "one speed test per hour");
    let requests = server.speedtests();
    assert_eq!(requests.len(), 2, "{requests:?}");
}

#[tokio::test]
async fn check_ends_with_a_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let server = FakeCollector::start([200]).await;
    enrol(dir.path(), &server.url);
    let addr = silent_listener().await;
    let config = probe_config(dir.path(), addr, "speedtest_bytes = 65536");

    let out = run(agent(dir.path()).arg("check").arg("--config").arg(&config)).await;

    let probe_line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("probe"))
        .unwrap_or_else(|| panic!("{out:?}"));
    assert!(
        probe_line.contains("ok") && probe_line.contains("local (tcp, internet)"),
        "{probe_line}"
    );
    assert!(probe_line.contains("2 of 2 answered"), "{probe_line}");
    let speed_line = out.stdout.lines().find(|l| l.starts_with("speed")).unwrap();
    assert!(speed_line.contains("Mbit/s down"), "{speed_line}");
    let verdict = out.stdout.lines().last().unwrap();
    assert!(verdict.starts_with("verdict"), "{out:?}");
    // The LAN part depends on this machine's routes; the rest on the local listeners.
    assert!(
        verdict.contains(", internet ok, ")
            && verdict.contains(" Mbit/s down / ")
            && verdict.contains(" up to the data centre, loss 0%"),
        "{verdict}"
    );
}
