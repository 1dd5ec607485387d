//! The webhook signature: HMAC-SHA256 of the exact body with the operator's secret, sent as
//! `X-Wasp-Signature: sha256=<lowercase hex>`. The secret lives in a newtype whose `Debug`
//! never shows it.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header that carries the signature.
pub const SIGNATURE_HEADER: &str = "x-wasp-signature";

/// The signing secret (from the variable `secret_env` names).
#[derive(Clone)]
pub struct WebhookSecret(Vec<u8>);

impl WebhookSecret {
    /// The trimmed value of variable `name`, if set and not blank.
    pub fn from_env(name: &str) -> Option<WebhookSecret> {
        let value = std::env::var(name).ok()?;
        (!value.trim().is_empty()).then(|| WebhookSecret(value.trim().as_bytes().to_vec()))
    }

    pub fn new(secret: impl Into<Vec<u8>>) -> WebhookSecret {
        WebhookSecret(secret.into())
    }

    /// `sha256=<hex of HMAC-SHA256(body)>`, the header value for `body`.
    pub fn sign(&self, body: &[u8]) -> String {
        format!("sha256={}", hex(&self.mac(body)))
    }

    /// True when `header` is the signature of `body` (compared in constant time).
    pub fn verify(&self, body: &[u8], header: &str) -> bool {
        let Some(given) = header.strip_prefix("sha256=").and_then(unhex) else {
            return false;
        };
        let mut mac = self.hmac();
        mac.update(body);
        mac.verify_slice(&given).is_ok()
    }

    fn hmac(&self) -> Hmac<Sha256> {
        // HMAC takes a key of any length: this cannot fail.
        match Hmac::<Sha256>::new_from_slice(&self.0) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC accepts keys of every length"),
        }
    }

    fn mac(&self, body: &[u8]) -> Vec<u8> {
        let mut mac = self.hmac();
        mac.update(body);
        mac.finalize().into_bytes().to_vec()
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_the_rfc_4231_vector_and_verify() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let secret = WebhookSecret::new("Jefe");
        let sig = secret.sign(b"what do ya want for nothing?");
        assert_eq!(
            sig,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(secret.verify(b"what do ya want for nothing?", &sig));
        assert!(!secret.verify(b"what do ya want for nothing!", &sig));
        assert!(!WebhookSecret::new("other").verify(b"what do ya want for nothing?", &sig));
        assert_eq!(format!("{secret:?}"), "WebhookSecret(<redacted>)");
    }
}
