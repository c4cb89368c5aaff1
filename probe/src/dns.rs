//! DNS probes: the time the system resolver takes to answer for a name.
//!
//! Through the system resolver (`getaddrinfo`), because that is what every application on the
//! machine uses: a broken `/etc/resolv.conf` or a dead office DNS forwarder shows here. Caches
//! in the resolver (systemd-resolved, nscd) make repeated attempts fast; the first one is the
//! telling one.

/// One lookup; an empty answer is a failure.
pub(super) async fn resolve(name: &str) -> Result<(), String> {
    let mut addrs = tokio::net::lookup_host((name, 0))
        .await
        .map_err(|e| e.to_string())?;
    match addrs.next() {
        Some(_) => Ok(()),
        None => Err(format!("{name} resolves to no address")),
    }
}
