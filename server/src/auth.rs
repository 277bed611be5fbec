//! Bearer tokens for the read and admin routes.
//!
//! Owns [`Tokens`] (`RAILGUN_READ_TOKEN`, `RAILGUN_ADMIN_TOKEN`) and the check: no
//! `Authorization: Bearer …` header → 401, a token that is not the one required → 403. The
//! admin token also opens the read routes. Tokens are compared in constant time over their
//! SHA-256 digests, so neither content nor length leaks through timing.
//!
//! It refuses to log tokens, and a route whose token is not configured refuses everyone.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

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

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let status = match self {
            AuthError::Missing => StatusCode::UNAUTHORIZED,
            AuthError::Forbidden => StatusCode::FORBIDDEN,
        };
        let mut r = (
            status,
            axum::Json(serde_json::json!({"error": self.to_string()})),
        )
            .into_response();
        if self == AuthError::Missing {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

/// The configured tokens (digests only are kept).
#[derive(Clone, Default)]
pub struct Tokens {
    read: Option<[u8; 32]>,
    admin: Option<[u8; 32]>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("read", &self.read.is_some())
            .field("admin", &self.admin.is_some())
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
        }
    }

    /// Whether the read / admin tokens are configured.
    pub fn configured(&self) -> (bool, bool) {
        (self.read.is_some(), self.admin.is_some())
    }

    /// Checks the `Authorization` header for `access`.
    pub fn check(&self, headers: &HeaderMap, access: Access) -> Result<(), AuthError> {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Missing)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn h(v: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(header::AUTHORIZATION, HeaderValue::from_str(v).expect("v"));
        m
    }

    #[test]
    fn read_admin_missing_wrong() {
        let t = Tokens::new(Some("r"), Some("a"));
        assert_eq!(
            t.check(&HeaderMap::new(), Access::Read),
            Err(AuthError::Missing)
        );
        assert_eq!(
            t.check(&h("Bearer x"), Access::Read),
            Err(AuthError::Forbidden)
        );
        assert_eq!(t.check(&h("Bearer r"), Access::Read), Ok(()));
        assert_eq!(t.check(&h("Bearer a"), Access::Read), Ok(()));
        assert_eq!(
            t.check(&h("Bearer r"), Access::Admin),
            Err(AuthError::Forbidden)
        );
        assert_eq!(t.check(&h("Bearer a"), Access::Admin), Ok(()));
        assert_eq!(
            t.check(&h("Basic a"), Access::Admin),
            Err(AuthError::Missing)
        );
        let none = Tokens::new(None, Some(""));
        assert_eq!(
            none.check(&h("Bearer "), Access::Read),
            Err(AuthError::Missing)
        );
        assert_eq!(
            none.check(&h("Bearer x"), Access::Admin),
            Err(AuthError::Forbidden)
        );
    }
}
