//! ICMP echo probes, where the process is allowed to send them.
//!
//! surge-ping opens an unprivileged ICMP datagram socket (Linux allows it to groups within
//! `net.ipv4.ping_group_range`) and falls back to a raw socket (root or `CAP_NET_RAW`). When
//! neither is allowed, as for the agent's unprivileged service user on most systems, [`Pinger::new`]
//! fails and the caller measures with a TCP connect to [`FALLBACK_PORTS`] instead, saying so in
//! the result. The socket code is surge-ping's: the workspace denies unsafe code of its own.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use surge_ping::{Client, Config, ICMP, PingIdentifier, PingSequence};

/// Ports the TCP stand-in asks; a refusal counts as the host answering, as an echo reply would.
pub(super) const FALLBACK_PORTS: [u16; 2] = [443, 80];

/// Payload of each echo request: 32 bytes, as Windows' `ping` sends.
const PAYLOAD: [u8; 32] = *b"hatang-agent connectivity probe.";

/// One target's echo requests, numbered in sequence.
pub(super) struct Pinger {
    pinger: surge_ping::Pinger,
    seq: u16,
    // Keeps the socket and its receiving task alive while the pinger is used.
    _client: Client,
}

impl std::fmt::Debug for Pinger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pinger").field("seq", &self.seq).finish()
    }
}

impl Pinger {
    /// An ICMP socket for `host`, or why this process may not open one.
    pub(super) async fn new(host: IpAddr, timeout: Duration) -> Result<Self, String> {
        let config = match host {
            IpAddr::V4(_) => Config::default(),
            IpAddr::V6(_) => Config::builder().kind(ICMP::V6).build(),
        };
        let client = Client::new(&config).map_err(|e| {
            if e.kind() == std::io::ErrorKind::PermissionDenied {
                // surge-ping's own message is a paragraph of advice; the operator needs a line.
                "no ICMP socket for this user: needs net.ipv4.ping_group_range or CAP_NET_RAW"
                    .to_owned()
            } else {
                super::root_cause(&e)
            }
        })?;
        // Distinct identifiers keep concurrent probes' replies apart on a raw socket.
        static NEXT: AtomicU16 = AtomicU16::new(0);
        let ident = (std::process::id() as u16).wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed));
        let mut pinger = client.pinger(host, PingIdentifier(ident)).await;
        pinger.timeout(timeout);
        Ok(Self {
            pinger,
            seq: 0,
            _client: client,
        })
    }

    /// One echo request and its reply.
    pub(super) async fn attempt(&mut self) -> Result<(), String> {
        self.seq = self.seq.wrapping_add(1);
        self.pinger
            .ping(PingSequence(self.seq), &PAYLOAD)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }
}
