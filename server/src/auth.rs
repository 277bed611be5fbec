//! Bearer tokens for the read and admin routes.
//!
//! Owns [`Tokens`] (`RAILGUN_READ_TOKEN`, `RAILGUN_ADMIN_TOKEN`), the check (no
//! `Authorization: Bearer …` header → 401, a token that is not the one required → 403; the
//! admin token also opens the read routes) and the extractors [`ReadToken`] and
//! [`AdminToken`]. A handler takes one of them as its first argument: axum runs extractors in
//! argument order and the body last, so the token is checked before the path, the query and
//! the body are even parsed. Tokens are compared in constant time over their SHA-256
//! digests, so neither content nor length leaks through timing.
//!
//! Development reads (`railgun serve --dev`): the read routes also answer a request that
//! presents no token when it comes from a loopback peer, decided by the connection's own
//! address ([`ConnectInfo`]), never by a header a proxy or client could set. A request that
//! presents a token still has it checked; admin routes always need the admin token.
//!
//! It refuses to log tokens, and a route whose token is not configured refuses everyone.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::api::ApiError;

/// Which token a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The read token (or the admin token).
    Read,
    /// The admin token.
    Admin,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No bearer token was presented.
    #[error("missing bearer token")]
    Missing,
    /// The token presented is not the one this route needs.
    #[error("token not allowed for this route")]
    Forbidden,
}

/// The configured tokens (digests only are kept), and whether `--dev` opens the read
/// routes to loopback peers.
#[derive(Clone, Default)]
pub struct Tokens {
    read: Option<[u8; 32]>,
    admin: Option<[u8; 32]>,
    dev_reads: bool,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("read", &self.read.is_some())
            .field("admin", &self.admin.is_some())
            .field("dev_reads", &self.dev_reads)
            .finish()
    }
}

fn digest(s: &str) -> [u8; 32] {
    let d = Sha256::digest(s.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(&d);
    out
}

impl Tokens {
    /// Tokens from values (empty strings count as not configured).
    pub fn new(read: Option<&str>, admin: Option<&str>) -> Self {
        let f = |t: Option<&str>| t.filter(|t| !t.is_empty()).map(digest);
        Self {
            read: f(read),
            admin: f(admin),
            dev_reads: false,
        }
    }

    /// With `on`, the read routes also answer loopback peers that present no token
    /// (`railgun serve --dev`).
    pub fn with_dev_reads(mut self, on: bool) -> Self {
        self.dev_reads = on;
        self
    }

    /// Whether `--dev` opened the read routes to loopback peers.
    pub fn dev_reads(&self) -> bool {
        self.dev_reads
    }

    /// Whether the read / admin tokens are configured.
    pub fn configured(&self) -> (bool, bool) {
        (self.read.is_some(), self.admin.is_some())
    }

    /// Checks the `Authorization` header for `access`; `peer` is the connection's address
    /// (`None` when unknown), which only matters for a tokenless read under `--dev`.
    pub fn check(
        &self,
        headers: &HeaderMap,
        access: Access,
        peer: Option<IpAddr>,
    ) -> Result<(), AuthError> {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty());
        let Some(presented) = presented else {
            return match (access, self.dev_reads, peer) {
                (Access::Read, true, Some(ip)) if is_loopback(ip) => Ok(()),
                _ => Err(AuthError::Missing),
            };
        };
        let d = digest(presented);
        let eq = |want: &Option<[u8; 32]>| match want {
            Some(w) => bool::from(w.ct_eq(&d)),
            None => false,
        };
        let ok = match access {
            Access::Admin => eq(&self.admin),
            // Evaluate both so timing does not tell which one matched.
            Access::Read => eq(&self.read) | eq(&self.admin),
        };
        if ok {
            Ok(())
        } else {
            Err(AuthError::Forbidden)
        }
    }
}

/// Whether `ip` is a loopback address: `127.0.0.0/8`, `::1`, or an IPv4 loopback address
/// mapped into IPv6 (`::ffff:127.0.0.1`, what a dual-stack socket reports).
pub fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// The connection's peer address, when the server recorded it.
fn peer(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// Proof that the request may use a read route: the read token, the admin token, or
/// (`--dev`) no token from a loopback peer. Take it as the handler's first argument.
#[derive(Debug, Clone, Copy)]
pub struct ReadToken;

/// Proof that the request carries the admin token. Take it as the handler's first argument.
#[derive(Debug, Clone, Copy)]
pub struct AdminToken;

impl<S> FromRequestParts<S> for ReadToken
where
    Tokens: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Tokens::from_ref(state).check(&parts.headers, Access::Read, peer(parts))?;
        Ok(ReadToken)
    }
}

impl<S> FromRequestParts<S> for AdminToken
where
    Tokens: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Tokens::from_ref(state).check(&parts.headers, Access::Admin, peer(parts))?;
        Ok(AdminToken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use axum::http::HeaderValue;

    fn h(v: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(header::AUTHORIZATION, HeaderValue::from_str(v).expect("v"));
        m
    }

    #[test]
    fn read_admin_missing_wrong() {
        let t = Tokens::new(Some("r"), Some("a"));
        assert_eq!(
            t.check(&HeaderMap::new(), Access::Read, None),
            Err(AuthError::Missing)
        );
        assert_eq!(
            t.check(&h("Bearer x"), Access::Read, None),
            Err(AuthError::Forbidden)
        );
        assert_eq!(t.check(&h("Bearer r"), Access::Read, None), Ok(()));
        assert_eq!(t.check(&h("Bearer a"), Access::Read, None), Ok(()));
        assert_eq!(
            t.check(&h("Bearer r"), Access::Admin, None),
            Err(AuthError::Forbidden)
        );
        assert_eq!(t.check(&h("Bearer a"), Access::Admin, None), Ok(()));
        assert_eq!(
            t.check(&h("Basic a"), Access::Admin, None),
            Err(AuthError::Missing)
        );
        let none = Tokens::new(None, Some(""));
        assert_eq!(
            none.check(&h("Bearer "), Access::Read, None),
            Err(AuthError::Missing)
        );
        assert_eq!(
            none.check(&h("Bearer x"), Access::Admin, None),
            Err(AuthError::Forbidden)
        );
    }

    #[test]
    fn loopback_peers() {
        for ip in ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"] {
            assert!(is_loopback(ip.parse().expect("ip")), "{ip}");
        }
        for ip in [
            "10.0.0.1",
            "192.168.1.2",
            "0.0.0.0",
            "::",
            "::ffff:10.0.0.1",
            "fe80::1",
            "2001:db8::1",
            // IPv4-compatible (not mapped) ::127.0.0.1 is not loopback.
            "::127.0.0.1",
        ] {
            assert!(!is_loopback(ip.parse().expect("ip")), "{ip}");
        }
    }

    #[test]
    fn dev_opens_reads_to_loopback_peers_only() {
        let t = Tokens::new(Some("r"), Some("a")).with_dev_reads(true);
        let local: IpAddr = "127.0.0.1".parse().expect("ip");
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().expect("ip");
        let remote: IpAddr = "192.0.2.7".parse().expect("ip");
        let none = HeaderMap::new();
        assert_eq!(t.check(&none, Access::Read, Some(local)), Ok(()));
        assert_eq!(t.check(&none, Access::Read, Some(mapped)), Ok(()));
        assert_eq!(
            t.check(&none, Access::Read, Some(remote)),
            Err(AuthError::Missing)
        );
        assert_eq!(t.check(&none, Access::Read, None), Err(AuthError::Missing));
        assert_eq!(
            t.check(&none, Access::Admin, Some(local)),
            Err(AuthError::Missing)
        );
        // A token presented is still checked.
        assert_eq!(
            t.check(&h("Bearer x"), Access::Read, Some(local)),
            Err(AuthError::Forbidden)
        );
        // Without --dev a loopback peer needs the token like anyone.
        let strict = Tokens::new(Some("r"), Some("a"));
        assert_eq!(
            strict.check(&none, Access::Read, Some(local)),
            Err(AuthError::Missing)
        );
    }
}
