//! Rate limits: a token bucket per agent (its reports) and per client address (enrolments and
//! failed authentications), refused with `429` and `Retry-After`.
//!
//! A bucket holds up to one minute's allowance and refills continuously, so an agent replaying
//! its spool after an outage may send a minute's worth at once and then one report every
//! `60 / n` seconds. Hand-written rather than `governor` (or `tower_governor`, which pulls in
//! tonic): the whole algorithm is the few lines of [`Bucket::refill`], and the part a library
//! would not give us — bounding the table against an attacker who rotates addresses — is ours
//! either way.

use std::collections::HashMap;
use std::convert::Infallible;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use ipnet::IpNet;

use super::{ApiError, AppState};
use crate::config::LimitsConfig;

/// Most keys one limiter tracks. A province has a few thousand machines and addresses; past the
/// cap a new key goes untracked (allowed) rather than refused, because refusing would let
/// whoever fills the table with forged addresses lock out every agent not yet in it. A bucket
/// costs well under 100 bytes, so the cap holds a limiter under ~10 MB.
pub const MAX_TRACKED_KEYS: usize = 100_000;

/// How often a full table may be swept for idle buckets; sweeping is a pass over the table.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// The bucket as it stands at `now`, refilled at `rate` tokens a second up to `capacity`.
    fn refill(&mut self, now: Instant, rate: f64, capacity: f64) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(capacity);
        self.at = now;
    }
}

#[derive(Debug)]
struct Table<K> {
    buckets: HashMap<K, Bucket>,
    last_sweep: Option<Instant>,
}

/// Token buckets of `per_minute` requests, one per key; `per_minute == 0` disables the limit.
#[derive(Debug)]
pub struct Limiter<K> {
    per_minute: u32,
    max_keys: usize,
    table: Mutex<Table<K>>,
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    pub fn new(per_minute: u32, max_keys: usize) -> Self {
        Self {
            per_minute,
            max_keys,
            table: Mutex::new(Table {
                buckets: HashMap::new(),
                last_sweep: None,
            }),
        }
    }

    fn capacity(&self) -> f64 {
        f64::from(self.per_minute)
    }

    fn rate(&self) -> f64 {
        self.capacity() / 60.0
    }

    /// How long until a bucket holding `tokens` has a whole one.
    fn wait(&self, tokens: f64) -> Duration {
        Duration::from_secs_f64(((1.0 - tokens) * 60.0 / self.capacity()).max(0.0))
    }

    /// Takes one token for `key`; without one left, how long until there is.
    pub fn take(&self, key: &K, now: Instant) -> Result<(), Duration> {
        self.charge(key, now, true)
    }

    /// Whether `key` has no token left, without taking one: `Err` with the wait, like [`take`].
    ///
    /// [`take`]: Self::take
    pub fn check(&self, key: &K, now: Instant) -> Result<(), Duration> {
        self.charge(key, now, false)
    }

    fn charge(&self, key: &K, now: Instant, take: bool) -> Result<(), Duration> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let (rate, capacity) = (self.rate(), self.capacity());
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(bucket) = table.buckets.get_mut(key) {
            bucket.refill(now, rate, capacity);
            if bucket.tokens < 1.0 {
                return Err(self.wait(bucket.tokens));
            }
            if take {
                bucket.tokens -= 1.0;
            }
            return Ok(());
        }
        // An absent key is a full bucket: only a request that takes a token needs a row.
        if !take || !self.make_room(&mut table, now) {
            return Ok(());
        }
        table.buckets.insert(
            key.clone(),
            Bucket {
                tokens: capacity - 1.0,
                at: now,
            },
        );
        Ok(())
    }

    /// Whether the table has room for one more key, after forgetting idle ones if it is full.
    fn make_room(&self, table: &mut Table<K>, now: Instant) -> bool {
        if table.buckets.len() < self.max_keys {
            return true;
        }
        if table
            .last_sweep
            .is_none_or(|at| now.saturating_duration_since(at) >= SWEEP_EVERY)
        {
            table.last_sweep = Some(now);
            let (rate, capacity) = (self.rate(), self.capacity());
            // A bucket that has refilled completely says nothing an absent one does not.
            table.buckets.retain(|_, b| {
                b.refill(now, rate, capacity);
                b.tokens < capacity
            });
        }
        table.buckets.len() < self.max_keys
    }

    /// Keys tracked now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.table
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .buckets
            .len()
    }
}

/// The key an address is limited under: IPv4 as is, IPv6 by its /64 (one subscriber's prefix,
/// which hands out addresses by the million), an IPv4-mapped IPv6 address as the IPv4 one.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

/// The collector's two limiters, built from `[limits]`.
#[derive(Debug)]
pub struct Limits {
    agents: Limiter<String>,
    addresses: Limiter<IpAddr>,
}

impl Limits {
    pub fn new(config: &LimitsConfig) -> Self {
        Self {
            agents: Limiter::new(config.reports_per_minute_per_agent, MAX_TRACKED_KEYS),
            addresses: Limiter::new(config.requests_per_minute_per_address, MAX_TRACKED_KEYS),
        }
    }

    /// One report of `agent`.
    pub fn agent(&self, agent: &str) -> Result<(), ApiError> {
        self.agents
            .take(&agent.to_string(), Instant::now())
            .map_err(|wait| ApiError::rate_limited(wait, "agent"))
    }

    /// One request from `address` that counts against it (an enrolment, a failed
    /// authentication). An unknown address (a request that did not come through a socket, as in
    /// the router tests) is not limited.
    pub fn address(&self, address: ClientAddr) -> Result<(), ApiError> {
        self.on_address(address, true)
    }

    /// Refuses an `address` that has used up its allowance, without charging it: checked before
    /// authenticating so a client guessing keys costs no database lookup once refused.
    pub fn address_allowed(&self, address: ClientAddr) -> Result<(), ApiError> {
        self.on_address(address, false)
    }

    fn on_address(&self, address: ClientAddr, take: bool) -> Result<(), ApiError> {
        let Some(ip) = address.0 else {
            return Ok(());
        };
        let key = address_key(ip);
        let now = Instant::now();
        let result = if take {
            self.addresses.take(&key, now)
        } else {
            self.addresses.check(&key, now)
        };
        result.map_err(|wait| ApiError::rate_limited(wait, "address"))
    }
}

/// The address a request counts against: the connection's peer, or, when the peer is one of
/// the configured `trusted_proxies`, the client it forwarded the request for
/// ([`forwarded_client`]). `None` for requests handed to the router directly, which did not
/// come through a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Infallible> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let trusted = &state.config().trusted_proxies;
        Ok(ClientAddr(peer.map(|peer| {
            forwarded_client(peer, &parts.headers, trusted)
        })))
    }
}

/// The client behind `peer`. Each proxy appends the address it was reached from to
/// `X-Forwarded-For`, so while the address in hand is a trusted proxy's, the entry before the
/// ones already used names who reached it; the first address that is not a trusted proxy's is
/// the client. The entries left of that one were written by the client and are not believed,
/// and neither is anything past an entry that is not an address: the walk stops at the proxy
/// that passed it on.
pub fn forwarded_client(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(&ip));
    let mut client = peer.to_canonical();
    // Later header lines were added later, as were later entries within a line.
    let entries = headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .rev()
        .flat_map(|line| line.to_str().unwrap_or("?").rsplit(','));
    for entry in entries {
        if !is_trusted(client) {
            break;
        }
        let entry = entry.trim();
        match entry
            .parse::<IpAddr>()
            .or_else(|_| entry.parse::<SocketAddr>().map(|s| s.ip()))
        {
            Ok(ip) => client = ip.to_canonical(),
            Err(_) => break,
        }
    }
    client
}

/// The header proxies record the way a request came by in (nginx's
/// `$proxy_add_x_forwarded_for`, HAProxy's `option forwardfor`).
const X_FORWARDED_FOR: &str = "x-forwarded-for";

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn a_bucket_allows_a_minutes_burst_then_refills_at_the_rate() {
        let l = Limiter::new(60, 10);
        let t0 = Instant::now();
        for _ in 0..60 {
            l.take(&"a", t0).unwrap();
        }
        let wait = l.take(&"a", t0).unwrap_err();
        assert_eq!(wait, secs(1.0));
        // half a token later, half a second to wait; a whole token later, one request
        assert_eq!(l.take(&"a", t0 + secs(0.5)).unwrap_err(), secs(0.5));
        l.take(&"a", t0 + secs(1.0)).unwrap();
        assert!(l.take(&"a", t0 + secs(1.0)).is_err());
        // other keys have their own bucket
        l.take(&"b", t0).unwrap();
        // a long pause refills to the burst, not beyond it
        let later = t0 + secs(3600.0);
        for _ in 0..60 {
            l.take(&"a", later).unwrap();
        }
        assert!(l.take(&"a", later).is_err());
    }

    #[test]
    fn check_refuses_an_empty_bucket_without_taking_from_a_full_one() {
        let l = Limiter::new(2, 10);
        let t0 = Instant::now();
        for _ in 0..5 {
            l.check(&"a", t0).unwrap();
        }
        assert_eq!(l.len(), 0, "checking a key does not track it");
        l.take(&"a", t0).unwrap();
        l.take(&"a", t0).unwrap();
        let wait = l.check(&"a", t0).unwrap_err();
        assert!((wait.as_secs_f64() - 30.0).abs() < 1e-6, "{wait:?}");
    }

    #[test]
    fn zero_disables_the_limit() {
        let l = Limiter::new(0, 10);
        let t0 = Instant::now();
        for _ in 0..10_000 {
            l.take(&"a", t0).unwrap();
        }
        assert_eq!(l.len(), 0);
    }

    #[test]
    fn a_full_table_forgets_idle_keys_and_lets_new_ones_through_untracked() {
        let l = Limiter::new(60, 3);
        let t0 = Instant::now();
        for k in 0..3 {
            l.take(&k, t0).unwrap();
        }
        // full and nothing idle: a fourth key is allowed but not tracked
        for _ in 0..100 {
            l.take(&3, t0).unwrap();
        }
        assert_eq!(l.len(), 3);
        // tracked keys are still limited
        for _ in 0..59 {
            l.take(&0, t0).unwrap();
        }
        assert!(l.take(&0, t0).is_err());
        // two seconds later keys 1 and 2 have refilled: swept, and the new key gets a row
        let t1 = t0 + secs(2.0);
        l.take(&4, t1).unwrap();
        assert_eq!(l.len(), 2, "0 (still short) and 4");
        assert!(l.take(&0, t1).is_ok());
    }

    #[test]
    fn a_full_table_is_swept_at_most_once_a_second() {
        let l = Limiter::new(60, 1);
        let t0 = Instant::now();
        l.take(&0, t0).unwrap();
        l.take(&1, t0 + secs(0.5)).unwrap();
        // 0 refilled at t0 + 1 s, but the last sweep was at t0 + 0.5 s
        l.take(&2, t0 + secs(1.2)).unwrap();
        assert_eq!(l.len(), 1);
        l.take(&2, t0 + secs(1.6)).unwrap();
        // swept: 0 was idle, 2 took its place
        for _ in 0..59 {
            l.take(&2, t0 + secs(1.6)).unwrap();
        }
        assert!(l.take(&2, t0 + secs(1.6)).is_err());
    }

    #[test]
    fn addresses_are_keyed_by_ipv4_or_ipv6_slash_64() {
        let v4: IpAddr = "203.0.113.7".parse().unwrap();
        assert_eq!(address_key(v4), v4);
        let mapped: IpAddr = "::ffff:203.0.113.7".parse().unwrap();
        assert_eq!(address_key(mapped), v4);
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:1:2:3".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(a), "2001:db8:1:2::".parse::<IpAddr>().unwrap());
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(other));
    }

    /// The client `forwarded_client` finds behind `peer` with these `X-Forwarded-For` lines,
    /// the proxies at 10.0.0.0/24 and 2001:db8:a::1 trusted.
    fn client(peer: &str, lines: &[&str]) -> String {
        let trusted: Vec<IpNet> = ["10.0.0.0/24", "2001:db8:a::1/128"]
            .iter()
            .map(|n| n.parse().unwrap())
            .collect();
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append(X_FORWARDED_FOR, line.parse().unwrap());
        }
        forwarded_client(peer.parse().unwrap(), &headers, &trusted).to_string()
    }

    #[test]
    fn a_trusted_proxy_is_believed_for_the_client_it_reached_and_no_further() {
        // Not a proxy: whatever the client wrote is ignored.
        assert_eq!(client("198.51.100.4", &["203.0.113.7"]), "198.51.100.4");
        // The proxy appends who reached it; what the client wrote before that is not believed.
        assert_eq!(client("10.0.0.1", &["203.0.113.7"]), "203.0.113.7");
        assert_eq!(client("10.0.0.1", &["1.1.1.1, 203.0.113.7"]), "203.0.113.7");
        // Through two proxies, in one line or two.
        assert_eq!(
            client("10.0.0.1", &["1.1.1.1, 203.0.113.7, 10.0.0.2"]),
            "203.0.113.7"
        );
        assert_eq!(
            client("10.0.0.1", &["1.1.1.1, 203.0.113.7", "10.0.0.2"]),
            "203.0.113.7"
        );
        // IPv6, ports, and an IPv4 peer on a dual-stack socket.
        assert_eq!(client("2001:db8:a::1", &["2001:db8:5::9"]), "2001:db8:5::9");
        assert_eq!(
            client("::ffff:10.0.0.1", &["[2001:db8:5::9]:4711"]),
            "2001:db8:5::9"
        );
        assert_eq!(client("10.0.0.1", &["203.0.113.7:5000"]), "203.0.113.7");
        // Nothing forwarded, or only proxies: the last proxy is all there is to go by.
        assert_eq!(client("10.0.0.1", &[]), "10.0.0.1");
        assert_eq!(client("10.0.0.1", &["10.0.0.2"]), "10.0.0.2");
        // An entry that is not an address ends the walk at the proxy that passed it on.
        assert_eq!(client("10.0.0.1", &["203.0.113.7, unknown"]), "10.0.0.1");
        assert_eq!(
            client("10.0.0.1", &["203.0.113.7, nope, 10.0.0.2"]),
            "10.0.0.2"
        );
        assert_eq!(client("10.0.0.1", &[""]), "10.0.0.1");
    }
}
