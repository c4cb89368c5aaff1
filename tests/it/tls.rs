//! HTTPS end to end: a collector serving a certificate from a CA made at test time, agents that
//! trust only that CA, mutual TLS, a certificate replaced under a running collector, and the
//! token that guards `/metrics`. No key is committed: every one is generated here.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::support::{
    Agent, Collector, Metrics, eventually, exchange, get, get_as, get_request, run_ok, testdata,
};

/// The unit the agents enrol into.
const UNIT: &str = "17-VPUB";

/// A certificate authority of the test's own.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate the CA issued, with its key.
struct Issued {
    cert_pem: String,
    key_pem: String,
    der: CertificateDer<'static>,
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        Self {
            issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A server certificate for 127.0.0.1 expiring at the start of `(year, month, day)`.
    fn server(&self, (year, month, day): (i32, u8, u8)) -> Issued {
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        params.not_after = rcgen::date_time_ymd(year, month, day);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(params)
    }

    /// A client certificate for an agent.
    fn client(&self, name: &str) -> Issued {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params)
    }

    fn issue(&self, mut params: CertificateParams) -> Issued {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
        }
    }
}

/// 2030-01-01 and 2031-06-30, 00:00 UTC, in Unix seconds.
const EXPIRES_2030: (i32, u8, u8) = (2030, 1, 1);
const EXPIRES_2030_SECS: f64 = 1_893_456_000.0;
const EXPIRES_2031: (i32, u8, u8) = (2031, 6, 30);
const EXPIRES_2031_SECS: f64 = 1_940_544_000.0;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Writes `issued` as `<name>.crt` and `<name>.key`; returns both paths.
fn write_pair(dir: &Path, name: &str, issued: &Issued) -> (PathBuf, PathBuf) {
    (
        write(dir, &format!("{name}.crt"), &issued.cert_pem),
        write(dir, &format!("{name}.key"), &issued.key_pem),
    )
}

/// A TLS client trusting `ca` only, presenting `identity` if given.
struct Client {
    config: Arc<rustls::ClientConfig>,
}

impl Client {
    fn new(ca: &Ca, identity: Option<&Issued>) -> Self {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.issuer.der().clone()).unwrap();
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
        let config = match identity {
            None => builder.with_no_client_auth(),
            Some(i) => builder
                .with_client_auth_cert(
                    vec![i.der.clone()],
                    PrivateKeyDer::from_pem_slice(i.key_pem.as_bytes()).unwrap(),
                )
                .unwrap(),
        };
        Self {
            config: Arc::new(config),
        }
    }

    /// Sends `request` over a new connection: the answer and the certificate the server showed.
    fn exchange(
        &self,
        addr: &str,
        request: &str,
    ) -> std::io::Result<((u16, String), CertificateDer<'static>)> {
        let tcp = TcpStream::connect(addr)?;
        tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let session =
            rustls::ClientConnection::new(Arc::clone(&self.config), name).map_err(io_error)?;
        let mut stream = rustls::StreamOwned::new(session, tcp);
        let answer = exchange(&mut stream, request)?;
        let served = stream
            .conn
            .peer_certificates()
            .and_then(|chain| chain.first())
            .cloned()
            .ok_or_else(|| io_error("no certificate served"))?;
        Ok((answer, served))
    }

    fn get(&self, addr: &str, path: &str, token: Option<&str>) -> std::io::Result<(u16, String)> {
        Ok(self.exchange(addr, &get_request(addr, path, token))?.0)
    }

    fn metrics(&self, addr: &str) -> Metrics {
        let (status, body) = self.get(addr, "/metrics", None).unwrap();
        assert_eq!(status, 200, "{body}");
        Metrics::parse(&body)
    }
}

fn io_error(e: impl ToString) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// A collector serving `server` (issued by `ca`) with `extra` in its configuration before the
/// `[tls]` table, which `tls_extra` ends.
fn start_tls(ca: &Ca, server: &Issued, extra: &str, tls_extra: &str) -> Collector {
    let mut collector = Collector::new();
    run_ok(
        collector
            .cli(&["units", "import"])
            .arg(testdata("units-hoa-binh-2024.csv")),
    );
    let (cert, key) = write_pair(collector.dir.path(), "server", server);
    let config = format!(
        "figures_cache_secs = 0\n{extra}[tls]\ncert_file = {cert:?}\nkey_file = {key:?}\n{tls_extra}"
    );
    let client = Client::new(ca, None);
    collector.start_configured(&config, |c| {
        matches!(client.get(&c.addr, "/healthz", None), Ok((200, _)))
    });
    collector
}

fn https(collector: &Collector) -> String {
    format!("https://{}", collector.addr)
}

fn stderr_of(cmd: &mut Command) -> String {
    let out = cmd.output().expect("agent runs");
    assert!(!out.status.success(), "{cmd:?} should have failed");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn agents_trust_only_the_configured_ca_and_keep_reports_it_refuses() {
    let ca = Ca::new("hatang test CA");
    let collector = start_tls(&ca, &ca.server(EXPIRES_2030), "", "");
    let token = collector.token(&["--unit", UNIT]);
    let ca_file = write(collector.dir.path(), "ca.pem", &ca.pem());

    // Without the CA: the system's roots do not know it.
    let stranger = Agent::new("m-no-ca");
    let err = stderr_of(&mut stranger.cmd(&[
        "enroll",
        "--collector",
        &https(&collector),
        "--token",
        &token,
    ]));
    assert!(
        err.contains("the collector's TLS certificate is not trusted") && err.contains("--ca-file"),
        "{err}"
    );

    let agent = Agent::new("m-tls");
    let ca_flag = ca_file.to_str().unwrap();
    let out = run_ok(&mut agent.cmd(&[
        "enroll",
        "--collector",
        &https(&collector),
        "--token",
        &token,
        "--ca-file",
        ca_flag,
    ]));
    assert!(out.contains("enrolled as agent"), "{out}");
    let stored = std::fs::read_to_string(agent.state.path().join("agent.json")).unwrap();
    assert!(stored.contains(ca_flag), "{stored}");
    // `once` needs no configuration: the CA comes from the state directory
    agent.once();

    // Told to trust another CA, it refuses the collector and keeps the report.
    let other = Ca::new("someone else");
    let other_config = write(
        agent.state.path(),
        "other.toml",
        &format!(
            "ca_file = {:?}\n",
            write(agent.state.path(), "other.pem", &other.pem())
        ),
    );
    let err = stderr_of(agent.cmd(&["once"]).arg("--config").arg(&other_config));
    assert!(
        err.contains("not trusted") && err.contains("report kept in the spool (1 waiting)"),
        "{err}"
    );
    let sent = run_ok(&mut agent.cmd(&["once"]));
    assert!(sent.starts_with("sent 2 report(s)"), "{sent}");

    let m = Client::new(&ca, None).metrics(&collector.addr);
    assert_eq!(
        m.get("hatang_reports_received_total", &[("outcome", "accepted")]),
        Some(3.0)
    );
    assert_eq!(
        m.get("hatang_tls_certificate_expiry_timestamp_seconds", &[]),
        Some(EXPIRES_2030_SECS)
    );
}

#[test]
fn mutual_tls_lets_in_agents_with_a_certificate_of_the_client_ca_only() {
    let ca = Ca::new("hatang test CA");
    let client_ca = Ca::new("hatang agents CA");
    let dir = tempfile::tempdir().unwrap();
    let client_ca_file = write(dir.path(), "client-ca.pem", &client_ca.pem());
    let collector = start_tls(
        &ca,
        &ca.server(EXPIRES_2030),
        "",
        &format!("client_ca_file = {client_ca_file:?}\n"),
    );
    let token = collector.token(&["--unit", UNIT]);
    let ca_file = write(dir.path(), "ca.pem", &ca.pem());
    let enroll = |agent: &Agent, identity: Option<(&Path, &Path)>| {
        let mut cmd = agent.cmd(&[
            "enroll",
            "--collector",
            &https(&collector),
            "--token",
            &token,
        ]);
        cmd.arg("--ca-file").arg(&ca_file);
        if let Some((cert, key)) = identity {
            cmd.arg("--client-cert-file")
                .arg(cert)
                .arg("--client-key-file")
                .arg(key);
        }
        cmd
    };

    // no client certificate: the agent endpoints refuse it, with the reason
    let bare = Agent::new("m-bare");
    let err = stderr_of(&mut enroll(&bare, None));
    assert!(
        err.contains("401") && err.contains("requires agents to present a client certificate"),
        "{err}"
    );

    // a certificate of another CA: the handshake refuses it
    let rogue = Agent::new("m-rogue");
    let (cert, key) = write_pair(dir.path(), "rogue", &Ca::new("rogue").client("m-rogue"));
    let err = stderr_of(&mut enroll(&rogue, Some((&cert, &key))));
    assert!(
        err.contains("the collector refused this agent's client certificate"),
        "{err}"
    );

    // a certificate of the client CA: enrolled, and its reports accepted
    let member = Agent::new("m-member");
    let (cert, key) = write_pair(dir.path(), "member", &client_ca.client("m-member"));
    run_ok(&mut enroll(&member, Some((&cert, &key))));
    member.once();

    // A report sent without a certificate is refused as unauthorized (the agent keeps it).
    let anonymous = Client::new(&ca, None);
    let body = "{}";
    let post = format!(
        "POST /api/v1/reports HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer hta_x\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        collector.addr,
        body.len()
    );
    let ((status, answer), _) = anonymous.exchange(&collector.addr, &post).unwrap();
    assert_eq!(status, 401, "{answer}");
    assert!(
        answer.contains("\"client_certificate_required\""),
        "{answer}"
    );

    // /healthz and /metrics stay open to clients without a certificate (Prometheus, probes)
    assert_eq!(
        anonymous.get(&collector.addr, "/healthz", None).unwrap().0,
        200
    );
    let m = anonymous.metrics(&collector.addr);
    let reports = |outcome| m.get("hatang_reports_received_total", &[("outcome", outcome)]);
    assert_eq!(reports("accepted"), Some(1.0));
    assert_eq!(reports("unauthorized"), Some(1.0));
    assert_eq!(
        m.get("hatang_enrolments_total", &[("outcome", "refused")]),
        Some(1.0)
    );
}

#[test]
fn a_new_certificate_is_served_after_sighup_without_a_restart() {
    let ca = Ca::new("hatang test CA");
    let first = ca.server(EXPIRES_2030);
    let mut collector = start_tls(&ca, &first, "", "");
    let client = Client::new(&ca, None);
    let addr = collector.addr.clone();
    let served = || {
        let healthz = get_request(&addr, "/healthz", None);
        client.exchange(&addr, &healthz).unwrap().1
    };
    let expiry = || {
        client
            .metrics(&addr)
            .get("hatang_tls_certificate_expiry_timestamp_seconds", &[])
    };
    assert_eq!(served(), first.der);
    assert_eq!(expiry(), Some(EXPIRES_2030_SECS));
    let pid = collector.pid();
    let hangup = || {
        run_ok(Command::new("kill").args(["-HUP", &pid.to_string()]));
    };

    let renewed = ca.server(EXPIRES_2031);
    write_pair(collector.dir.path(), "server", &renewed);
    hangup();
    eventually(Duration::from_secs(10), || {
        (served() == renewed.der).then_some(())
    });
    assert_eq!(expiry(), Some(EXPIRES_2031_SECS));
    assert_eq!(
        collector.pid(),
        pid,
        "the same process serves the new certificate"
    );

    // A broken file is refused; the renewed certificate stays in service.
    write(
        collector.dir.path(),
        "server.crt",
        "-----BEGIN CERTIFICATE-----\nMIIB\n",
    );
    hangup();
    eventually(Duration::from_secs(10), || {
        collector
            .log()
            .contains("TLS reload failed; still serving the previous certificate")
            .then_some(())
    });
    assert_eq!(served(), renewed.der);
    assert_eq!(expiry(), Some(EXPIRES_2031_SECS));
    assert_eq!(collector.pid(), pid);
}

#[test]
fn metrics_need_the_configured_token() {
    let mut collector = Collector::new();
    let token = "metrics-0123456789abcdef";
    let file = write(collector.dir.path(), "metrics.token", &format!("{token}\n"));
    collector.start_configured(&format!("metrics_token_file = {file:?}\n"), |c| {
        matches!(get(&c.addr, "/healthz"), Ok((200, _)))
    });
    let (status, body) = get_as(&collector.addr, "/metrics", None).unwrap();
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("\"unauthorized\""), "{body}");
    let (status, _) = get_as(
        &collector.addr,
        "/metrics",
        Some("metrics-wrong-0123456789"),
    )
    .unwrap();
    assert_eq!(status, 401);
    let (status, body) = get_as(&collector.addr, "/metrics", Some(token)).unwrap();
    assert_eq!(status, 200, "{body}");
    let m = Metrics::parse(&body);
    assert_eq!(
        m.get("hatang_reports_received_total", &[("outcome", "accepted")]),
        Some(0.0)
    );
    // plain HTTP: no certificate, no expiry series
    assert_eq!(
        m.get("hatang_tls_certificate_expiry_timestamp_seconds", &[]),
        None
    );
}

/// A certificate issued for another name than the URL's, or expired, is said to be so, with
/// what to fix: not blamed on the CA, which the agent has right.
#[test]
fn a_certificate_for_another_name_or_expired_is_said_so() {
    let ca = Ca::new("hatang test CA");
    let collector = start_tls(&ca, &ca.server(EXPIRES_2030), "", "");
    let token = collector.token(&["--unit", UNIT]);
    let ca_file = write(collector.dir.path(), "ca.pem", &ca.pem());
    let ca_flag = ca_file.to_str().unwrap();
    // The certificate names 127.0.0.1; the agent was given another name for the same address.
    let by_name = https(&collector).replace("127.0.0.1", "localhost");
    let agent = Agent::new("m-name");
    let enroll = |url: &str| {
        stderr_of(&mut agent.cmd(&[
            "enroll",
            "--collector",
            url,
            "--token",
            &token,
            "--ca-file",
            ca_flag,
        ]))
    };
    let err = enroll(&by_name);
    assert!(
        err.contains("not valid for the name in the collector URL")
            && !err.contains("must name the CA"),
        "{err}"
    );

    // Expired last year: the collector serves it (and says so), the agent refuses it.
    let mut expired = Collector::new();
    let (cert, key) = write_pair(expired.dir.path(), "server", &ca.server((2021, 1, 1)));
    expired.start_configured(
        &format!("[tls]\ncert_file = {cert:?}\nkey_file = {key:?}\n"),
        |c| TcpStream::connect(&c.addr).is_ok(),
    );
    let err = enroll(&https(&expired));
    assert!(
        err.contains("has expired") && !err.contains("must name the CA"),
        "{err}"
    );
}

/// A CA certificate as the collector's own (what `openssl req -x509` makes unless told
/// otherwise) is refused at start with what to do: every agent would refuse it, each saying only
/// that it is not trusted.
#[test]
fn a_ca_certificate_as_the_collectors_own_is_refused_at_start() {
    let ca = Ca::new("collector.example");
    let dir = tempfile::tempdir().unwrap();
    let cert = write(dir.path(), "ca.crt", &ca.pem());
    let key = write(dir.path(), "ca.key", &ca.issuer.key().serialize_pem());
    let collector = Collector::new();
    let config = write(
        dir.path(),
        "collector.toml",
        &format!("[tls]\ncert_file = {cert:?}\nkey_file = {key:?}\n"),
    );
    let mut serve = collector
        .cli(&["serve", "--listen", "127.0.0.1:0"])
        .arg("--config")
        .arg(&config)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if serve.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let running = serve.try_wait().unwrap().is_none();
    if running {
        serve.kill().unwrap();
    }
    let out = serve.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!running && !out.status.success(), "serve started: {said}");
    assert!(
        said.contains(cert.to_str().unwrap()) && said.contains("CA certificate"),
        "{said}"
    );
}
