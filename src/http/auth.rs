//! Bearer-token check for the POST endpoints. The token is compared in constant time and
//! never logged or echoed.

use std::fmt;

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

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}
