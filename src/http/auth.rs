//! Bearer-token checks: the operator's token for actions and the QR, a read-only token for
//! monitoring through a full connection cap. The token is compared in constant time and
//! never logged or echoed.

use std::fmt;
use std::sync::{Arc, RwLock};

use axum::http::HeaderMap;
use subtle::ConstantTimeEq;

/// The operator's API token.
#[derive(Clone)]
pub struct Token(String);

impl Token {
    /// Wraps a token; an empty string is no token.
    pub fn new(value: impl Into<String>) -> Option<Token> {
        let value = value.into();
        (!value.trim().is_empty()).then(|| Token(value.trim().to_string()))
    }

    /// A fresh random token (32 hex characters) for when none is configured.
    pub fn random() -> Token {
        let bytes: [u8; 16] = rand::random();
        Token(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// The token text, for writing to the operator's token file.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when the request carries `Authorization: Bearer <this token>`.
    pub fn admits(&self, headers: &HeaderMap) -> bool {
        let Some(value) = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        let Some(given) = value.strip_prefix("Bearer ") else {
            return false;
        };
        given.trim().as_bytes().ct_eq(self.0.as_bytes()).into()
    }
}

/// Who may do what: the operator's token (actions, the QR, everything) and an optional
/// read-only token for monitoring (GET requests through the reserve; never the QR).
#[derive(Clone, Debug, Default)]
pub struct Access {
    pub token: Option<Token>,
    pub read_token: Option<Token>,
}

impl Access {
    /// The request carries the operator's token.
    pub fn operator(&self, headers: &HeaderMap) -> bool {
        self.token.as_ref().is_some_and(|t| t.admits(headers))
    }

    /// The request carries either token.
    pub fn reader(&self, headers: &HeaderMap) -> bool {
        self.operator(headers) || self.read_token.as_ref().is_some_and(|t| t.admits(headers))
    }
}

/// The `Access` an endpoint checks, shared by its handlers and replaceable while it serves
/// (a SIGHUP with a new `[http]` token takes effect on the next request).
#[derive(Clone, Default)]
pub struct LiveAccess(Arc<RwLock<Access>>);

impl LiveAccess {
    pub fn new(access: Access) -> Self {
        LiveAccess(Arc::new(RwLock::new(access)))
    }

    /// The rules as they are now.
    pub fn current(&self) -> Access {
        // Every write replaces the whole value, so a poisoned lock still holds a whole one.
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces the rules for every request from now on.
    pub fn replace(&self, access: Access) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = access;
    }

    /// The request carries the operator's token (as it is now).
    pub fn operator(&self, headers: &HeaderMap) -> bool {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .operator(headers)
    }
}

impl From<Access> for LiveAccess {
    fn from(access: Access) -> Self {
        LiveAccess::new(access)
    }
}

impl fmt::Debug for LiveAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.current().fmt(f)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}
