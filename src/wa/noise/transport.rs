//! The transport cipher after the handshake: AES-256-GCM on the split keys, IV = 8 zero
//! bytes + 4-byte big-endian counter, empty associated data, one counter per direction.
//! Done here rather than in `snow` because WhatsApp frames can exceed snow's 64 KiB cap.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::NoiseError;

/// One direction's key and counter. The AES-GCM key schedule is built for each frame rather
/// than kept: it is about a kilobyte per direction, held by every idle connection for its
/// whole life, while building it costs well under a microsecond per frame (issue 15's
/// per-session memory).
#[derive(Zeroize, ZeroizeOnDrop)]
struct Direction {
    key: [u8; 32],
    counter: u32,
}

impl Direction {
    fn new(key: &[u8; 32]) -> Self {
        Direction {
            key: *key,
            counter: 0,
        }
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new((&self.key).into())
    }

    fn nonce(&mut self) -> Result<[u8; 12], NoiseError> {
        let mut iv = [0u8; 12];
        iv[8..].copy_from_slice(&self.counter.to_be_bytes());
        self.counter = self
            .counter
            .checked_add(1)
            .ok_or(NoiseError::CounterExhausted)?;
        Ok(iv)
    }
}

/// Encrypts what we send and decrypts what we receive.
pub struct Transport {
    send: Direction,
    recv: Direction,
}

impl Transport {
    /// Builds the cipher pair from the write key and the read key.
    pub fn new(write_key: &[u8; 32], read_key: &[u8; 32]) -> Self {
        Transport {
            send: Direction::new(write_key),
            recv: Direction::new(read_key),
        }
    }

    /// Seals one frame payload.
    pub fn encrypt(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, NoiseError> {
        let iv = self.send.nonce()?;
        self.send
            .cipher()
            .encrypt(Nonce::from_slice(&iv), plaintext)
            .map_err(|_| NoiseError::Encrypt)
    }

    /// Opens one frame payload; a wrong tag (tampering, replay, wrong key) is an error.
    pub fn decrypt(&mut self, ciphertext: &[u8]) -> Result<Vec<u8>, NoiseError> {
        let iv = self.recv.nonce()?;
        self.recv
            .cipher()
            .decrypt(Nonce::from_slice(&iv), ciphertext)
            .map_err(|_| NoiseError::BadTag)
    }

    /// Frames sent and received so far.
    pub fn counters(&self) -> (u32, u32) {
        (self.send.counter, self.recv.counter)
    }
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("keys", &"<redacted>")
            .field("sent", &self.send.counter)
            .field("received", &self.recv.counter)
            .finish()
    }
}
