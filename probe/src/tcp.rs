//! TCP probes: the time to complete a connection, and "does this host answer at all".

use std::io;
use std::net::{IpAddr, SocketAddr};

use tokio::net::TcpStream;

/// The first address `host` resolves to, resolved once so that connect times leave DNS out.
pub(super) async fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    let mut addrs = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?;
    addrs
        .next()
        .ok_or_else(|| format!("{host} resolves to no address"))
}

/// One connection, closed at once. A refusal is a failure: the service is not there.
pub(super) async fn connect(addr: SocketAddr) -> Result<(), String> {
    TcpStream::connect(addr)
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Whether `host` answers on any of `ports`, asked all at once: an accepted or a refused
/// connection both mean the host itself answered. Used where host reachability is the question
/// (the gateway, ICMP's stand-in), not whether a service runs.
pub(super) async fn answers(host: IpAddr, ports: &[u16]) -> Result<(), String> {
    let mut asks = tokio::task::JoinSet::new();
    for &port in ports {
        asks.spawn(TcpStream::connect(SocketAddr::new(host, port)));
    }
    let mut last = String::from("no port to ask");
    while let Some(done) = asks.join_next().await {
        match done {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => return Ok(()),
            Ok(Err(e)) => last = e.to_string(),
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}
