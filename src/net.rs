//! The HTTP behaviour every client component shares: the updater (check, download), the
//! analytics uploader, the health reporter and the feature-flag client.
//!
//! Owns, each a small piece with its own tests (the policy is tested without a server, as in
//! glean's `upload/result.rs`):
//!
//! * [`classify`]: what an HTTP status means for the request that got it: done, retry later
//!   (408, 429, 5xx), or refused as it is (every other 4xx);
//! * [`answer`]: a status, its `Retry-After` and its body turned into an [`Answer`] (acked
//!   with a readable receipt, refused, or retry with a [`RetryCause`]);
//! * [`parse_retry_after`] / [`retry_after`]: `Retry-After` as delay-seconds or as any of
//!   the three HTTP-date forms (RFC 9110 §5.6.7, §10.2.3);
//! * [`Backoff`] over a [`BackoffPolicy`]: exponential backoff with full jitter, drawn from
//!   an injected [`Rng`] (a seeded [`SplitMix64`] in tests), and [`jitter_interval`] for
//!   periodic work (±10 %);
//! * [`http_url`] / [`base_url`]: a server URL, http or https only;
//! * [`client`]: the one place a `reqwest::Client` is built; [`read_limited`]: a body read
//!   that stops at a limit; [`send`] / [`post_json`]: one request under a deadline.
//!
//! It refuses to decide what a caller does next: which rows to delete, whether a refused
//! body names rejected items, when to run. Those stay with the uploader, the health worker
//! and the updater, which act on the [`Answer`] this module returns.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::de::DeserializeOwned;

use crate::error::chain;

/// What an HTTP status means for the request that got it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx: the server took it.
    Success,
    /// 408, 429, 5xx (and anything unexpected: 1xx, unfollowed 3xx): try again later.
    Retry,
    /// Any other 4xx: the server will not take this request as it is.
    Refused,
}

/// Classifies an HTTP status (see [`Verdict`]).
pub fn classify(status: u16) -> Verdict {
    match status {
        200..=299 => Verdict::Success,
        408 | 429 => Verdict::Retry,
        400..=499 => Verdict::Refused,
        _ => Verdict::Retry,
    }
}

/// Why a request is to be tried again later.
#[derive(Debug, thiserror::Error)]
pub enum RetryCause {
    /// No complete answer within the request's time limit.
    #[error("no answer within {} ms", .0.as_millis())]
    Timeout(Duration),
    /// The connection failed or broke.
    #[error("request failed: {}", chain(.0))]
    Transport(#[source] reqwest::Error),
    /// The server answered a status worth retrying (408, 429, 5xx, ...).
    #[error("server answered {0}")]
    Status(u16),
    /// A 2xx whose body is not the receipt expected.
    #[error("server answered {status} without a readable receipt")]
    Unreadable {
        /// The status.
        status: u16,
        /// Why the body did not parse.
        #[source]
        source: serde_json::Error,
    },
}

/// What an upload does next, from the server's answer.
#[derive(Debug)]
pub enum Answer<T> {
    /// 2xx with a readable receipt.
    Acked(T),
    /// A 4xx other than 408/429: the request will not be taken as it is. `body` is the
    /// answer parsed as `T` when it parses (a server may name the items it refused).
    Refused {
        /// The status.
        status: u16,
        /// The body, when it parses as `T`.
        body: Option<T>,
    },
    /// Try again later, no sooner than `retry_after` when the server said so.
    Retry {
        /// Why.
        cause: RetryCause,
        /// The server's `Retry-After`, if any.
        retry_after: Option<Duration>,
    },
}

/// A complete HTTP answer: status, `Retry-After` and body.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The `Retry-After` delay, if the server sent one.
    pub retry_after: Option<Duration>,
    /// The body.
    pub body: bytes::Bytes,
}

/// Turns a complete answer into what to do next (pure: no I/O, no clock).
pub fn answer<T: DeserializeOwned>(reply: &Reply) -> Answer<T> {
    let status = reply.status;
    match classify(status) {
        Verdict::Success => match serde_json::from_slice::<T>(&reply.body) {
            Ok(r) => Answer::Acked(r),
            Err(source) => Answer::Retry {
                cause: RetryCause::Unreadable { status, source },
                retry_after: None,
            },
        },
        Verdict::Refused => Answer::Refused {
            status,
            body: serde_json::from_slice::<T>(&reply.body).ok(),
        },
        Verdict::Retry => Answer::Retry {
            cause: RetryCause::Status(status),
            retry_after: reply.retry_after,
        },
    }
}

/// Sends `req` and reads the whole answer within `limit` (connect, headers and body).
pub async fn send(req: reqwest::RequestBuilder, limit: Duration) -> Result<Reply, RetryCause> {
    let sent = tokio::time::timeout(limit, async {
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let retry_after = retry_after(resp.headers(), Utc::now());
        let body = resp.bytes().await?;
        Ok::<_, reqwest::Error>(Reply {
            status,
            retry_after,
            body,
        })
    })
    .await;
    match sent {
        Err(_) => Err(RetryCause::Timeout(limit)),
        Ok(Err(e)) => Err(RetryCause::Transport(e)),
        Ok(Ok(reply)) => Ok(reply),
    }
}

/// POSTs a JSON `body` to `url` within `limit` and classifies the answer.
pub async fn post_json<T: DeserializeOwned>(
    http: &reqwest::Client,
    url: url::Url,
    body: impl Into<reqwest::Body>,
    limit: Duration,
) -> Answer<T> {
    let req = http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body);
    match send(req, limit).await {
        Ok(reply) => answer(&reply),
        Err(cause) => Answer::Retry {
            cause,
            retry_after: None,
        },
    }
}

/// The `Retry-After` of an answer as a delay from `now` (see [`parse_retry_after`]).
pub fn retry_after(headers: &reqwest::header::HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(v, now)
}

/// The `Retry-After` of an answer in whole seconds from now, rounded up (for errors that
/// report it: a client waiting that long never comes back too early).
pub fn retry_after_secs(headers: &reqwest::header::HeaderMap) -> Option<u64> {
    retry_after(headers, Utc::now()).map(|d| d.as_secs() + u64::from(d.subsec_nanos() > 0))
}

/// Parses a `Retry-After` value: delay-seconds, or an HTTP date in any of its three forms
/// (IMF-fixdate `Sun, 06 Nov 1994 08:49:37 GMT`, the obsolete RFC 850
/// `Sunday, 06-Nov-94 08:49:37 GMT` and asctime `Sun Nov  6 08:49:37 1994`), relative to
/// `now`. A date in the past is zero; anything else (negative, fractional, garbage) is `None`.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let v = value.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits to fit is still "a very long time".
        return Some(Duration::from_secs(v.parse().unwrap_or(u64::MAX)));
    }
    let at = http_date(v)?;
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

/// An HTTP date (RFC 9110 §5.6.7) in any of its three forms.
fn http_date(v: &str) -> Option<DateTime<Utc>> {
    if let Ok(d) = DateTime::parse_from_rfc2822(v) {
        return Some(d.with_timezone(&Utc));
    }
    let naive = NaiveDateTime::parse_from_str(v, "%A, %d-%b-%y %H:%M:%S GMT")
        .or_else(|_| NaiveDateTime::parse_from_str(v, "%a %b %e %H:%M:%S %Y"))
        .ok()?;
    Some(naive.and_utc())
}

/// A source of random 64-bit words for jitter (never for secrets).
pub trait Rng: Send + fmt::Debug {
    /// The next word.
    fn next_u64(&mut self) -> u64;

    /// A uniform value in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The SplitMix64 generator: small, fast, seedable (jitter only; not for secrets).
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator whose sequence is fixed by `seed` (tests, reproducible runs).
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// A generator seeded from the operating system.
    pub fn from_entropy() -> Self {
        Self::new(os_seed())
    }
}

impl Rng for SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix64(self.state)
    }
}

/// SplitMix64's finaliser: a well-mixed word from any word (used to derive seeds).
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// 64 random bits from the operating system (a time-derived value if it has none).
pub fn os_seed() -> u64 {
    let hex = crate::identity::random_hex_128();
    u64::from_str_radix(&hex[..16], 16).unwrap_or(0x9E37_79B9_7F4A_7C15)
}

/// The shape of an exponential backoff: the first step and the ceiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffPolicy {
    /// The ceiling after the first failure (doubled per further failure).
    pub base: Duration,
    /// The largest delay, and the longest `Retry-After` honoured.
    pub max: Duration,
}

impl BackoffPolicy {
    /// The ceiling after `failures` earlier failures: `min(max, base × 2^failures)`.
    pub fn ceiling(&self, failures: u32) -> Duration {
        self.base
            .saturating_mul(2u32.saturating_pow(failures.min(31)))
            .min(self.max)
    }

    /// The delay after `failures` earlier failures (pure): the server's `retry_after` when
    /// given (capped at `max`), else `unit ∈ [0, 1]` of the ceiling (full jitter).
    pub fn delay(&self, failures: u32, unit: f64, retry_after: Option<Duration>) -> Duration {
        if let Some(r) = retry_after {
            return r.min(self.max);
        }
        let unit = if unit.is_finite() {
            unit.clamp(0.0, 1.0)
        } else {
            0.5
        };
        self.ceiling(failures).mul_f64(unit)
    }
}

/// Exponential backoff with full jitter: after the n-th consecutive failure the delay is
/// uniform in `[0, min(max, base × 2^(n-1))]`, or the server's `Retry-After` (capped).
#[derive(Debug, Clone)]
pub struct Backoff<R: Rng = SplitMix64> {
    policy: BackoffPolicy,
    failures: u32,
    rng: R,
}

impl Backoff<SplitMix64> {
    /// A backoff doubling from `base` up to `max`; `seed` fixes the jitter sequence (`None`
    /// seeds from the operating system).
    pub fn new(base: Duration, max: Duration, seed: Option<u64>) -> Self {
        let rng = seed.map_or_else(SplitMix64::from_entropy, SplitMix64::new);
        Self::with_rng(BackoffPolicy { base, max }, rng)
    }
}

impl<R: Rng> Backoff<R> {
    /// A backoff drawing its jitter from `rng`.
    pub fn with_rng(policy: BackoffPolicy, rng: R) -> Self {
        Self {
            policy,
            failures: 0,
            rng,
        }
    }

    /// Counts one more failure and returns the delay before the next attempt.
    pub fn fail(&mut self, retry_after: Option<Duration>) -> Duration {
        let unit = self.rng.unit();
        let d = self.policy.delay(self.failures, unit, retry_after);
        self.failures = self.failures.saturating_add(1);
        d
    }

    /// Forgets past failures (after a success).
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// Consecutive failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The policy.
    pub fn policy(&self) -> BackoffPolicy {
        self.policy
    }
}

/// `interval` spread by ±10 %: scaled by `0.9 + 0.2 × unit`, `unit ∈ [0, 1]` (NaN: the
/// interval itself). Periodic work (update checks, config refreshes, health reports) of many
/// installs started together does not stay in step.
pub fn jitter_interval(interval: Duration, unit: f64) -> Duration {
    let unit = if unit.is_finite() {
        unit.clamp(0.0, 1.0)
    } else {
        0.5
    };
    interval.mul_f64(0.9 + 0.2 * unit)
}

/// Why a server URL is refused.
#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    /// Not a URL at all.
    #[error(transparent)]
    Parse(#[from] url::ParseError),
    /// Another scheme than http or https.
    #[error("only http and https are supported, not {0:?}")]
    Scheme(String),
}

/// Parses a server URL, refusing every scheme but http and https.
pub fn http_url(s: &str) -> Result<url::Url, UrlError> {
    let url = url::Url::parse(s)?;
    match url.scheme() {
        "http" | "https" => Ok(url),
        other => Err(UrlError::Scheme(other.to_string())),
    }
}

/// Parses a server's base URL (http or https), its path ending in `/` so that relative
/// routes join below it: `http://h/api` + `analytics/events` → `http://h/api/analytics/events`.
pub fn base_url(s: &str) -> Result<url::Url, UrlError> {
    let mut url = http_url(s)?;
    if !url.path().ends_with('/') {
        let p = format!("{}/", url.path());
        url.set_path(&p);
    }
    Ok(url)
}

/// Builds the HTTP client of a component: rustls, its `User-Agent`, a connect timeout and,
/// for requests that are not streamed, a total timeout. Redirects are followed (up to 10).
pub fn client(
    user_agent: &str,
    connect_timeout: Duration,
    request_timeout: Option<Duration>,
) -> Result<reqwest::Client, reqwest::Error> {
    let mut b = reqwest::Client::builder()
        .user_agent(user_agent)
        .connect_timeout(connect_timeout);
    if let Some(t) = request_timeout {
        b = b.timeout(t);
    }
    b.build()
}

/// `railgun/<version> (<component>)`, the `User-Agent` of the core's requests.
pub fn user_agent(component: &str) -> String {
    format!("railgun/{} ({component})", env!("CARGO_PKG_VERSION"))
}

/// A bounded body read failed.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The body is larger than the limit (said by `Content-Length` or seen while reading).
    #[error("more than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// The connection broke while reading.
    #[error("{}", chain(.0))]
    Transport(#[source] reqwest::Error),
}

/// Reads the body of `resp`, refusing it the moment it exceeds `limit` bytes (endless-data
/// protection): a `Content-Length` above the limit is refused before any byte is read.
pub async fn read_limited(
    resp: &mut reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, BodyError> {
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge { limit });
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(BodyError::Transport)? {
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, retry_after: Option<u64>, body: &str) -> Reply {
        Reply {
            status,
            retry_after: retry_after.map(Duration::from_secs),
            body: bytes::Bytes::from(body.to_string()),
        }
    }

    #[derive(Debug, serde::Deserialize, PartialEq)]
    struct Receipt {
        ok: u32,
    }

    #[test]
    fn statuses_are_classified_done_retry_or_refused() {
        for s in [200, 201, 202, 204, 299] {
            assert_eq!(classify(s), Verdict::Success, "{s}");
        }
        for s in [408, 429, 500, 502, 503, 504, 599, 100, 304, 307] {
            assert_eq!(classify(s), Verdict::Retry, "{s}");
        }
        for s in [400, 401, 403, 404, 409, 413, 422, 451, 499] {
            assert_eq!(classify(s), Verdict::Refused, "{s}");
        }
    }

    #[test]
    fn a_2xx_is_acked_only_with_a_readable_receipt() {
        match answer::<Receipt>(&reply(200, None, r#"{"ok":3}"#)) {
            Answer::Acked(r) => assert_eq!(r, Receipt { ok: 3 }),
            other => panic!("{other:?}"),
        }
        match answer::<Receipt>(&reply(202, Some(5), "accepted")) {
            Answer::Retry {
                cause: RetryCause::Unreadable { status: 202, .. },
                retry_after: None,
            } => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_4xx_is_refused_with_its_body_when_it_parses() {
        match answer::<Receipt>(&reply(400, Some(9), r#"{"ok":1}"#)) {
            Answer::Refused {
                status: 400,
                body: Some(Receipt { ok: 1 }),
            } => {}
            other => panic!("{other:?}"),
        }
        match answer::<Receipt>(&reply(413, None, "too large")) {
            Answer::Refused {
                status: 413,
                body: None,
            } => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn retryable_answers_carry_the_servers_retry_after() {
        for s in [408, 429, 500, 503] {
            match answer::<Receipt>(&reply(s, Some(120), "")) {
                Answer::Retry {
                    cause: RetryCause::Status(got),
                    retry_after,
                } => {
                    assert_eq!(got, s);
                    assert_eq!(retry_after, Some(Duration::from_secs(120)));
                }
                other => panic!("{other:?}"),
            }
        }
        let text = answer::<Receipt>(&reply(503, None, ""));
        assert!(
            matches!(&text, Answer::Retry { cause, .. } if cause.to_string() == "server answered 503")
        );
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().expect("time")
    }

    #[test]
    fn retry_after_reads_seconds_and_all_three_http_date_forms() {
        let now = at("1994-11-06T08:49:00Z");
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        for date in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(
                parse_retry_after(date, now),
                Some(Duration::from_secs(37)),
                "{date}"
            );
        }
        // A date already past means "now", not "never".
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(Duration::from_secs(u64::MAX))
        );
        for bad in ["", "soon", "-5", "1.5", "+3", "Sun, 06 Nov 1994"] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
        }
    }

    #[test]
    fn retry_after_header_is_read_relative_to_now() {
        let mut h = reqwest::header::HeaderMap::new();
        assert_eq!(retry_after(&h, Utc::now()), None);
        h.insert(
            reqwest::header::RETRY_AFTER,
            "Thu, 01 Jan 2026 00:00:30 GMT".parse().expect("value"),
        );
        assert_eq!(
            retry_after(&h, at("2026-01-01T00:00:00Z")),
            Some(Duration::from_secs(30))
        );
    }

    #[test]
    fn backoff_is_full_jitter_capped_and_seeded() {
        let mut a = Backoff::new(Duration::from_secs(1), Duration::from_secs(3600), Some(7));
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(3600), Some(7));
        let mut spread = std::collections::HashSet::new();
        for i in 0..40u32 {
            let d = a.fail(None);
            assert_eq!(d, b.fail(None), "same seed, same delays");
            let ceiling = Duration::from_secs(1u64 << i.min(12)).min(Duration::from_secs(3600));
            assert!(d <= ceiling, "{d:?} > {ceiling:?} at {i}");
            spread.insert(d.as_millis() * 1000 / ceiling.as_millis());
        }
        assert!(spread.len() > 20, "jitter varies: {spread:?}");
        assert_eq!(a.failures(), 40);
        assert_eq!(
            a.fail(Some(Duration::from_secs(7200))),
            Duration::from_secs(3600),
            "Retry-After is capped at the maximum"
        );
        assert_eq!(a.fail(Some(Duration::from_secs(5))), Duration::from_secs(5));
        a.reset();
        assert_eq!(a.failures(), 0);
        assert!(a.fail(None) <= Duration::from_secs(1));
    }

    /// A scripted RNG: the delays follow from the policy alone.
    #[derive(Debug)]
    struct Fixed(f64);
    impl Rng for Fixed {
        fn next_u64(&mut self) -> u64 {
            0
        }
        fn unit(&mut self) -> f64 {
            self.0
        }
    }

    #[test]
    fn backoff_policy_doubles_to_the_ceiling_with_an_injected_rng() {
        let policy = BackoffPolicy {
            base: Duration::from_millis(500),
            max: Duration::from_secs(30),
        };
        let mut top = Backoff::with_rng(policy, Fixed(1.0));
        let got: Vec<u64> = (0..9).map(|_| top.fail(None).as_millis() as u64).collect();
        assert_eq!(
            got,
            [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
        );
        let mut bottom = Backoff::with_rng(policy, Fixed(0.0));
        assert_eq!(bottom.fail(None), Duration::ZERO);
        assert_eq!(policy.delay(2, 0.5, None), Duration::from_millis(1000));
        assert_eq!(policy.delay(2, f64::NAN, None), Duration::from_millis(1000));
        assert_eq!(policy.ceiling(u32::MAX), Duration::from_secs(30));
    }

    #[test]
    fn rng_units_are_in_range_and_seeded() {
        let mut a = SplitMix64::new(42);
        let mut b = SplitMix64::new(42);
        for _ in 0..1000 {
            let u = a.unit();
            assert!((0.0..1.0).contains(&u));
            assert_eq!(u, b.unit());
        }
        assert_ne!(SplitMix64::new(1).next_u64(), SplitMix64::new(2).next_u64());
    }

    #[test]
    fn intervals_are_jittered_within_ten_percent() {
        let i = Duration::from_secs(300);
        assert_eq!(jitter_interval(i, 0.0), Duration::from_secs(270));
        assert_eq!(jitter_interval(i, 1.0), Duration::from_secs(330));
        assert_eq!(jitter_interval(i, f64::NAN), i);
        assert_eq!(jitter_interval(i, 7.0), Duration::from_secs(330));
        let mut rng = SplitMix64::new(3);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let j = jitter_interval(i, rng.unit());
            assert!(j >= Duration::from_secs(270) && j <= Duration::from_secs(330));
            seen.insert(j.as_secs());
        }
        assert!(seen.len() > 30);
    }

    #[test]
    fn base_urls_get_a_trailing_slash_and_only_http_schemes() {
        let u = base_url("http://h:1/api").expect("url");
        assert_eq!(
            u.join("analytics/events").expect("join").as_str(),
            "http://h:1/api/analytics/events"
        );
        assert_eq!(base_url("https://h/").expect("url").as_str(), "https://h/");
        assert!(matches!(base_url("ftp://h"), Err(UrlError::Scheme(s)) if s == "ftp"));
        assert!(matches!(http_url("not a url"), Err(UrlError::Parse(_))));
        assert!(matches!(
            http_url("file:///etc/passwd"),
            Err(UrlError::Scheme(_))
        ));
    }

    #[tokio::test]
    async fn a_server_that_never_answers_is_a_timeout_to_retry() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        // Accepts and holds the connection without answering.
        let hold = tokio::spawn(async move {
            let conn = listener.accept().await;
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(conn);
        });
        let http = client("t", Duration::from_secs(2), None).expect("client");
        let url: url::Url = format!("http://{addr}/x").parse().expect("url");
        let a = post_json::<Receipt>(&http, url, "{}", Duration::from_millis(200)).await;
        assert!(
            matches!(
                a,
                Answer::Retry {
                    cause: RetryCause::Timeout(_),
                    retry_after: None
                }
            ),
            "{a:?}"
        );
        hold.abort();
    }
}
