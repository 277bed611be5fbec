//! Per-client rate limits on the public write routes: `POST /analytics/events`,
//! `POST /analytics/health` and `POST /analytics/erasure`.
//!
//! Owns [`RateLimit`] (the settings), [`RateLimiter`] (the buckets) and [`layer`] (the axum
//! middleware, applied to the whole router; it looks at those three routes only, so the
//! token check of every token route is untouched). Each client has one token bucket in
//! memory, shared by the three routes: [`RateLimit::burst`] requests at once, refilled at
//! [`RateLimit::per_minute`]. Past it the answer is `429 rate_limited` ([`ApiError`]) with
//! `Retry-After` (whole seconds until the next request would pass), before the body is
//! read.
//!
//! The client is the TCP peer's address, or — only when the peer is one of
//! [`RateLimit::trusted_proxies`] and [`RateLimit::client_header`] is set — the address that
//! header names (for `X-Forwarded-For`, the right-most entry that is not itself a trusted
//! proxy). An IPv6 client is its /64 (what one host is usually given). Requests without a
//! peer address (in-process calls) are not limited.
//!
//! It refuses to keep addresses: a bucket is keyed by a hash of the address under a random
//! key drawn when the process starts (std's SipHash `RandomState`), so neither memory nor a
//! log holds an address, and a key from one run means nothing in the next. The table is
//! bounded ([`RateLimit::max_clients`]): buckets that refilled completely carry no state
//! and are dropped (swept at most once a second); when the table is still full, new
//! clients share one overflow bucket (a warning says so once) rather than growing it.
//!
//! The defaults are generous on purpose: the server cannot tell a fleet behind one NAT
//! from one client. An install sends about two requests a minute (an upload every 30 s
//! while events come, a health report an hour), so 6 000 a minute with a burst of 2 000
//! lets about 3 000 running installs share one address, all starting at once, while one
//! client flooding the ingest queue gets at most 100 requests a second through.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api::ApiError;

/// Default sustained rate per client, in requests a minute.
pub const DEFAULT_PER_MINUTE: u32 = 6_000;
/// Default burst per client, in requests.
pub const DEFAULT_BURST: u32 = 2_000;
/// Default bound of the bucket table.
pub const DEFAULT_MAX_CLIENTS: usize = 100_000;

/// The limited routes (method and exact path).
pub const LIMITED_ROUTES: [&str; 3] = [
    "/analytics/events",
    "/analytics/health",
    "/analytics/erasure",
];

/// Rate limit settings (`railgun serve --rate-limit-per-minute`, `--rate-limit-burst`,
/// `--no-rate-limit`, `--trusted-proxy-header`, `--trusted-proxy`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimit {
    /// Whether requests are limited at all.
    pub enabled: bool,
    /// Sustained requests a minute per client.
    pub per_minute: u32,
    /// Requests a client may send at once (the bucket's size).
    pub burst: u32,
    /// Header naming the client when the peer is a trusted proxy (`X-Forwarded-For`).
    pub client_header: Option<HeaderName>,
    /// Peers whose `client_header` is believed.
    pub trusted_proxies: Vec<IpBlock>,
    /// Most clients tracked at once.
    pub max_clients: usize,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            enabled: true,
            per_minute: DEFAULT_PER_MINUTE,
            burst: DEFAULT_BURST,
            client_header: None,
            trusted_proxies: Vec::new(),
            max_clients: DEFAULT_MAX_CLIENTS,
        }
    }
}

/// An address or a CIDR block (`10.0.0.0/8`, `fd00::/8`, `192.0.2.7`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpBlock {
    addr: IpAddr,
    prefix: u8,
}

/// A `--trusted-proxy` value that is neither an address nor a CIDR block.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not an IP address or a CIDR block (10.0.0.0/8, fd00::/8)")]
pub struct BadIpBlock(String);

impl std::str::FromStr for IpBlock {
    type Err = BadIpBlock;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadIpBlock(s.to_string());
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().map_err(|_| bad())?)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return Err(bad());
        }
        Ok(Self {
            addr: canonical(addr),
            prefix,
        })
    }
}

impl IpBlock {
    /// Whether `ip` is inside the block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                masked(u128::from(u32::from(net)), self.prefix, 32)
                    == masked(u128::from(u32::from(ip)), self.prefix, 32)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                masked(u128::from(net), self.prefix, 128)
                    == masked(u128::from(ip), self.prefix, 128)
            }
            _ => false,
        }
    }
}

fn masked(bits: u128, prefix: u8, width: u8) -> u128 {
    if prefix == 0 {
        return 0;
    }
    let keep = u32::from(prefix.min(width));
    let shift = u32::from(width) - keep;
    (bits >> shift) << shift
}

/// An IPv4-mapped IPv6 address as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The buckets, as GCRA's theoretical arrival times (nanoseconds from the limiter's start):
/// a bucket whose time has passed is full.
#[derive(Debug)]
struct Table {
    buckets: HashMap<u64, u64>,
    overflow: u64,
    last_sweep: Option<u64>,
    warned: bool,
}
/// The buckets of every client (cheap to clone: shared).
#[derive(Debug, Clone)]
pub struct RateLimiter {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: RateLimit,
    key: std::hash::RandomState,
    start: Instant,
    table: Mutex<Table>,
}

impl RateLimiter {
    /// A limiter with `config` and a fresh random key.
    pub fn new(config: RateLimit) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                key: std::hash::RandomState::new(),
                start: Instant::now(),
                table: Mutex::new(Table {
                    buckets: HashMap::new(),
                    overflow: 0,
                    last_sweep: None,
                    warned: false,
                }),
            }),
        }
    }

    /// The settings.
    pub fn config(&self) -> &RateLimit {
        &self.inner.config
    }

    /// Buckets held now.
    pub fn tracked_clients(&self) -> usize {
        self.lock().buckets.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.inner.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `method path` is one of the limited routes.
    pub fn applies(method: &Method, path: &str) -> bool {
        method == Method::POST && LIMITED_ROUTES.contains(&path)
    }

    /// The client of a request from `peer` with `headers` (see the module docs).
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let c = &self.inner.config;
        let peer = canonical(peer);
        let Some(name) = &c.client_header else {
            return peer;
        };
        let trusted = |ip: IpAddr| c.trusted_proxies.iter().any(|b| b.contains(ip));
        if !trusted(peer) {
            return peer;
        }
        // Every value of the header, in order, as one list; walk it from the right.
        let listed: Vec<IpAddr> = headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|s| parse_forwarded_addr(s.trim()))
            .collect::<Option<_>>()
            .unwrap_or_default();
        listed
            .into_iter()
            .rev()
            .map(canonical)
            .find(|ip| !trusted(*ip))
            .unwrap_or(peer)
    }

    /// Takes one token of `client`'s bucket at `now`; `Err(seconds)` (at least 1) until
    /// the next request would pass. The bucket is GCRA (the generic cell rate algorithm,
    /// a token bucket in integer nanoseconds): one request every `60 s / per_minute`,
    /// `burst` at once.
    pub fn check(&self, client: IpAddr, now: Instant) -> Result<(), u32> {
        const SECOND: u64 = 1_000_000_000;
        let c = &self.inner.config;
        let key = self.inner.key.hash_one(bucket_of(client));
        let interval = 60 * SECOND / u64::from(c.per_minute.max(1));
        let tolerance = interval.saturating_mul(u64::from(c.burst.max(1)) - 1);
        let now = u64::try_from(now.saturating_duration_since(self.inner.start).as_nanos())
            .unwrap_or(u64::MAX);
        let mut t = self.lock();
        let t = &mut *t;
        let tat = if let Some(tat) = t.buckets.get_mut(&key) {
            tat
        } else {
            if t.buckets.len() >= c.max_clients
                && t.last_sweep.is_none_or(|s| now.saturating_sub(s) >= SECOND)
            {
                t.last_sweep = Some(now);
                t.buckets.retain(|_, tat| *tat > now);
            }
            if t.buckets.len() < c.max_clients {
                t.warned = false;
                t.buckets.entry(key).or_insert(0)
            } else {
                if !t.warned {
                    t.warned = true;
                    tracing::warn!(
                        clients = t.buckets.len(),
                        "rate limiter table full: new clients share one bucket until old ones go idle"
                    );
                }
                &mut t.overflow
            }
        };
        let due = (*tat).max(now);
        let ahead = due - now;
        if ahead > tolerance {
            let wait = (ahead - tolerance).div_ceil(SECOND).max(1);
            return Err(u32::try_from(wait).unwrap_or(u32::MAX));
        }
        *tat = due.saturating_add(interval);
        Ok(())
    }
}

/// What a bucket is keyed by: the IPv4 address, or the /64 of an IPv6 one.
fn bucket_of(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(masked(u128::from(v6), 64, 128))),
        v4 => v4,
    }
}

/// One `X-Forwarded-For` element: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`,
/// `[2001:db8::1]:443`.
fn parse_forwarded_addr(s: &str) -> Option<IpAddr> {
    s.parse::<IpAddr>()
        .ok()
        .or_else(|| s.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

/// The middleware (`axum::middleware::from_fn_with_state(limiter, layer)` on the router).
pub async fn layer(State(limiter): State<RateLimiter>, req: Request, next: Next) -> Response {
    if !limiter.config().enabled || !RateLimiter::applies(req.method(), req.uri().path()) {
        return next.run(req).await;
    }
    let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>().copied() else {
        return next.run(req).await;
    };
    let client = limiter.client(peer.ip(), req.headers());
    match limiter.check(client, Instant::now()) {
        Ok(()) => next.run(req).await,
        Err(secs) => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many requests from this client; retry after {secs} s"),
        )
        .with_retry_after(secs)
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::http::HeaderValue;

    use super::*;

    fn limiter(per_minute: u32, burst: u32) -> RateLimiter {
        RateLimiter::new(RateLimit {
            per_minute,
            burst,
            ..RateLimit::default()
        })
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn a_bucket_allows_its_burst_then_refills_at_the_rate() {
        let l = limiter(60, 3); // one a second
        let t0 = Instant::now();
        let a = ip("192.0.2.1");
        for _ in 0..3 {
            assert_eq!(l.check(a, t0), Ok(()));
        }
        assert_eq!(l.check(a, t0), Err(1));
        assert_eq!(l.check(a, t0 + Duration::from_millis(500)), Err(1));
        assert_eq!(l.check(a, t0 + Duration::from_millis(1000)), Ok(()));
        // Another client has its own bucket.
        assert_eq!(l.check(ip("192.0.2.2"), t0), Ok(()));
        // Slow rates give long waits, in whole seconds.
        let slow = limiter(1, 1);
        let t1 = Instant::now();
        assert_eq!(slow.check(a, t1), Ok(()));
        assert_eq!(slow.check(a, t1), Err(60));
        assert_eq!(slow.check(a, t1 + Duration::from_secs(30)), Err(30));
    }

    #[test]
    fn ipv6_clients_are_their_64_and_mapped_ipv4_is_ipv4() {
        let l = limiter(60, 1);
        let t0 = Instant::now();
        assert_eq!(l.check(ip("2001:db8:1:2::1"), t0), Ok(()));
        assert!(l.check(ip("2001:db8:1:2:ffff::9"), t0).is_err());
        assert_eq!(l.check(ip("2001:db8:1:3::1"), t0), Ok(()));
        assert_eq!(l.check(ip("198.51.100.7"), t0), Ok(()));
        assert!(l.check(ip("::ffff:198.51.100.7"), t0).is_err());
    }

    #[test]
    fn the_table_is_bounded_and_idle_buckets_go() {
        let l = RateLimiter::new(RateLimit {
            per_minute: 60,
            burst: 2,
            max_clients: 3,
            ..RateLimit::default()
        });
        let t0 = Instant::now();
        for i in 1..=3 {
            assert_eq!(l.check(ip(&format!("192.0.2.{i}")), t0), Ok(()));
        }
        // Full: a fourth client shares the overflow bucket (two requests, then refused).
        let (d, e) = (ip("192.0.2.4"), ip("192.0.2.5"));
        assert_eq!(l.check(d, t0), Ok(()));
        assert_eq!(l.check(e, t0), Ok(()));
        assert!(l.check(d, t0).is_err());
        assert_eq!(l.tracked_clients(), 3);
        // Two seconds later the three buckets refilled: swept, and d gets its own.
        let t2 = t0 + Duration::from_secs(2);
        assert_eq!(l.check(d, t2), Ok(()));
        assert_eq!(l.tracked_clients(), 1);
    }

    #[test]
    fn the_forwarded_client_is_believed_from_trusted_proxies_only() {
        let l = RateLimiter::new(RateLimit {
            client_header: Some(HeaderName::from_static("x-forwarded-for")),
            trusted_proxies: vec![
                "10.0.0.0/8".parse().expect("block"),
                "::1".parse().expect("ip"),
            ],
            ..RateLimit::default()
        });
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert("x-forwarded-for", HeaderValue::from_str(v).expect("value"));
            m
        };
        // Untrusted peer: its own address, whatever it claims.
        assert_eq!(
            l.client(ip("203.0.113.9"), &h("198.51.100.1")),
            ip("203.0.113.9")
        );
        // Trusted: the right-most entry that is not a trusted proxy.
        assert_eq!(
            l.client(ip("10.1.2.3"), &h("6.6.6.6, 198.51.100.1, 10.9.9.9")),
            ip("198.51.100.1")
        );
        assert_eq!(
            l.client(ip("::1"), &h("[2001:db8::5]:443")),
            ip("2001:db8::5")
        );
        assert_eq!(
            l.client(ip("::ffff:10.0.0.1"), &h("198.51.100.2:80")),
            ip("198.51.100.2")
        );
        // Missing or garbled header: the peer.
        assert_eq!(l.client(ip("10.1.2.3"), &HeaderMap::new()), ip("10.1.2.3"));
        assert_eq!(
            l.client(ip("10.1.2.3"), &h("198.51.100.1, junk")),
            ip("10.1.2.3")
        );
    }

    #[test]
    fn parses_blocks() {
        let b: IpBlock = "192.0.2.0/24".parse().expect("block");
        assert!(b.contains(ip("192.0.2.200")));
        assert!(!b.contains(ip("192.0.3.1")));
        assert!(b.contains(ip("::ffff:192.0.2.1")));
        let all: IpBlock = "0.0.0.0/0".parse().expect("block");
        assert!(all.contains(ip("8.8.8.8")));
        assert!(!all.contains(ip("2001:db8::1")));
        let v6: IpBlock = "fd00::/8".parse().expect("block");
        assert!(v6.contains(ip("fd12::1")));
        for bad in ["", "10.0.0.0/33", "::/129", "host", "10.0.0.0/x"] {
            assert!(bad.parse::<IpBlock>().is_err(), "{bad}");
        }
        assert!(RateLimiter::applies(&Method::POST, "/analytics/events"));
        assert!(!RateLimiter::applies(&Method::GET, "/analytics/events"));
        assert!(!RateLimiter::applies(&Method::POST, "/admin/releases"));
    }
}
