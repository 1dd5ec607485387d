//! The Noise symmetric state (hash `h`, chaining key `ck`, handshake cipher) for
//! Noise_XX_25519_AESGCM_SHA256 (the X25519 step both sides share is in [`super::dh`]).
//!
//! Written by hand rather than taken from a Noise library because WhatsApp's transcript is
//! not quite the standard one: see [`super`] for the one difference.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

use super::NoiseError;
use crate::wa::frame::HEADER;

/// The protocol name, 28 bytes, padded with NUL bytes to the 32-byte hash length. Being no
/// longer than the hash, it is used as the initial `h` and `ck` as it is, not hashed.
const PROTOCOL_NAME: &[u8; 32] = b"Noise_XX_25519_AESGCM_SHA256\0\0\0\0";

/// Length of an AES-GCM tag.
pub(super) const TAG_LEN: usize = 16;

/// `h`, `ck` and the current handshake key with its nonce counter.
pub(super) struct SymmetricState {
    h: [u8; 32],
    ck: [u8; 32],
    /// `None` until the first `mix_key` (nothing is encrypted before `ee`).
    cipher: Option<Aes256Gcm>,
    counter: u32,
}

impl SymmetricState {
    /// The state after initialisation and mixing the connection header as prologue.
    pub(super) fn new() -> Self {
        let mut state = SymmetricState {
            h: *PROTOCOL_NAME,
            ck: *PROTOCOL_NAME,
            cipher: None,
            counter: 0,
        };
        state.mix_hash(&HEADER);
        state
    }

    /// `h = SHA-256(h || data)`.
    pub(super) fn mix_hash(&mut self, data: &[u8]) {
        let mut hasher = Sha256::new();
        hasher.update(self.h);
        hasher.update(data);
        self.h = hasher.finalize().into();
    }

    /// `ck, k = HKDF(ck, input)`; the new key starts at nonce 0.
    pub(super) fn mix_key(&mut self, input: &[u8; 32]) {
        let mut out = hkdf_pair(&self.ck, input);
        self.ck.copy_from_slice(&out[..32]);
        self.cipher = Some(Aes256Gcm::new(aes_gcm::Key::<Aes256Gcm>::from_slice(
            &out[32..],
        )));
        self.counter = 0;
        out.zeroize();
    }

    /// Encrypts with `h` as associated data, then mixes the ciphertext into `h`.
    pub(super) fn encrypt_and_hash(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, NoiseError> {
        let nonce = self.next_nonce()?;
        let cipher = self.cipher.as_ref().ok_or(NoiseError::OutOfOrder)?;
        let sealed = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &self.h,
                },
            )
            .map_err(|_| NoiseError::Encrypt)?;
        self.mix_hash(&sealed);
        Ok(sealed)
    }

    /// Decrypts with `h` as associated data, then mixes the ciphertext into `h`.
    pub(super) fn decrypt_and_hash(
        &mut self,
        ciphertext: &[u8],
        what: &'static str,
    ) -> Result<Vec<u8>, NoiseError> {
        let nonce = self.next_nonce()?;
        let cipher = self.cipher.as_ref().ok_or(NoiseError::OutOfOrder)?;
        let plain = cipher
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: ciphertext,
                    aad: &self.h,
                },
            )
            .map_err(|_| NoiseError::HandshakeDecrypt(what))?;
        self.mix_hash(ciphertext);
        Ok(plain)
    }

    /// `Split()`: the initiator's sending key, then its receiving key.
    pub(super) fn split(mut self) -> ([u8; 32], [u8; 32]) {
        let mut out = hkdf_pair(&self.ck, &[]);
        let mut first = [0u8; 32];
        let mut second = [0u8; 32];
        first.copy_from_slice(&out[..32]);
        second.copy_from_slice(&out[32..]);
        out.zeroize();
        self.ck.zeroize();
        (first, second)
    }

    fn next_nonce(&mut self) -> Result<[u8; 12], NoiseError> {
        let mut iv = [0u8; 12];
        iv[8..].copy_from_slice(&self.counter.to_be_bytes());
        self.counter = self
            .counter
            .checked_add(1)
            .ok_or(NoiseError::CounterExhausted)?;
        Ok(iv)
    }

    /// The running handshake hash (tests compare transcripts with it).
    #[cfg(test)]
    pub(super) fn hash(&self) -> [u8; 32] {
        self.h
    }
}

/// HKDF-SHA256 with `salt` and `input`, empty info, 64 bytes out: Noise's `HKDF(ck, ikm, 2)`.
fn hkdf_pair(salt: &[u8; 32], input: &[u8]) -> [u8; 64] {
    let mut out = [0u8; 64];
    let hk = Hkdf::<Sha256>::new(Some(salt), input);
    // Proven invariant: `expand` fails only above 255 * 32 bytes of output; we ask for 64.
    #[allow(clippy::expect_used)]
    hk.expand(&[], &mut out)
        .expect("64 bytes is within HKDF-SHA256's output limit");
    out
}

/// A 32-byte key from the wire, or `NoiseError::BadLength` naming it.
pub(super) fn key32(bytes: &[u8], what: &'static str) -> Result<[u8; 32], NoiseError> {
    bytes.try_into().map_err(|_| NoiseError::BadLength(what))
}
