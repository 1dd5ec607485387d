//! X25519 for both handshake sides: RFC 7748's function, computed on the Edwards form of the
//! curve where that is faster.
//!
//! curve25519-dalek runs its Montgomery ladder on the portable 64-bit field code only, while
//! its Edwards variable-base multiplication takes the AVX2 backend when the CPU has one. On
//! the 2-core bench machine (docs/benchmarks.md) one ladder took about 115 µs and the Edwards
//! route (the peer's u mapped to an Edwards point, multiplied, mapped back) about 70 µs.
//! A peer key with no Edwards form (a point on the twist, which X25519 still accepts) takes
//! the ladder. Both give u([k]P) for the clamped scalar k, so the shared secret is the same.
//!
//! The client meets the same server static key in every handshake; for it `es` uses a table
//! of that key's multiples, built the second time the key is seen (about 1.5 ms once, then
//! about 25 µs a multiplication). A handful of keys keep their tables, so a server that
//! changes its key costs one more table, not one per handshake.

use std::sync::{Arc, Mutex, PoisonError};

use curve25519_dalek::MontgomeryPoint;
use curve25519_dalek::edwards::{EdwardsBasepointTable, EdwardsPoint};
use curve25519_dalek::traits::BasepointTable as _;
use subtle::ConstantTimeEq as _;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use super::NoiseError;

/// X25519 between our secret and the peer's public key. An all-zero result (the peer sent
/// a low-order point, which would make the "secret" public) is refused.
pub(super) fn dh(secret: &StaticSecret, public: &[u8; 32]) -> Result<[u8; 32], NoiseError> {
    PeerKey::new(public).dh(secret)
}

/// A peer's public key mapped to the Edwards form once, for a handshake that multiplies it
/// by two of our secrets (the client's `ee` and `se` take the server's ephemeral key, the
/// server's `ee` and `es` the client's): the mapping costs two field exponentiations, about
/// a third of one multiplication.
pub(super) struct PeerKey {
    u: MontgomeryPoint,
    /// `None` for a point on the twist (the ladder takes it).
    edwards: Option<EdwardsPoint>,
}

impl PeerKey {
    pub(super) fn new(public: &[u8; 32]) -> Self {
        let u = MontgomeryPoint(*public);
        PeerKey {
            u,
            edwards: u.to_edwards(0),
        }
    }

    /// X25519 between `secret` and this key, as [`dh`].
    pub(super) fn dh(&self, secret: &StaticSecret) -> Result<[u8; 32], NoiseError> {
        let scalar = Zeroizing::new(secret.to_bytes());
        let shared = match &self.edwards {
            Some(edwards) => edwards.mul_clamped(*scalar).to_montgomery(),
            None => self.u.mul_clamped(*scalar),
        };
        contributory(shared)
    }
}

/// [`dh`] with a peer key that comes back in handshake after handshake (the server's static
/// key): from its table once it has one.
pub(super) fn dh_with_known(
    secret: &StaticSecret,
    public: &[u8; 32],
) -> Result<[u8; 32], NoiseError> {
    match SEEN.table_for(public) {
        Some(table) => {
            let scalar = Zeroizing::new(secret.to_bytes());
            contributory(table.mul_base_clamped(*scalar).to_montgomery())
        }
        None => dh(secret, public),
    }
}

fn contributory(shared: MontgomeryPoint) -> Result<[u8; 32], NoiseError> {
    let bytes = shared.to_bytes();
    if bool::from(bytes.ct_eq(&[0u8; 32])) {
        return Err(NoiseError::LowOrderKey);
    }
    Ok(bytes)
}

/// A fresh ephemeral key pair from the operating system's random source.
pub(super) fn ephemeral() -> (StaticSecret, [u8; 32]) {
    let secret = StaticSecret::random_from_rng(rand::rngs::OsRng);
    let public = PublicKey::from(&secret).to_bytes();
    (secret, public)
}

/// Peer keys that keep a table at once.
const TABLED_KEYS: usize = 4;

/// A peer key seen in a handshake, with its table once it has been seen twice.
struct Seen {
    key: [u8; 32],
    table: Option<Arc<EdwardsBasepointTable>>,
}

/// Peer keys in the order they were first seen; the oldest makes room for a new one.
struct SeenKeys(Mutex<Vec<Seen>>);

/// The process's seen keys (every session of the pool meets the same server).
static SEEN: SeenKeys = SeenKeys(Mutex::new(Vec::new()));

impl SeenKeys {
    /// The table of `public`, built now if this is its second sighting; `None` on the first
    /// sighting or when the key has no Edwards form.
    fn table_for(&self, public: &[u8; 32]) -> Option<Arc<EdwardsBasepointTable>> {
        {
            let mut seen = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            match seen.iter().find(|s| s.key == *public) {
                Some(Seen {
                    table: Some(table), ..
                }) => return Some(table.clone()),
                Some(_) => {}
                None => {
                    if seen.len() == TABLED_KEYS {
                        seen.remove(0);
                    }
                    seen.push(Seen {
                        key: *public,
                        table: None,
                    });
                    return None;
                }
            }
        }
        // Built outside the lock: it takes a millisecond or two, and two handshakes that
        // build the same table at once only waste one of them.
        let edwards = MontgomeryPoint(*public).to_edwards(0)?;
        let table = Arc::new(EdwardsBasepointTable::create(&edwards));
        let mut seen = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = seen.iter_mut().find(|s| s.key == *public) {
            entry.table = Some(table.clone());
        }
        Some(table)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// x25519-dalek's own function, the reference.
    fn reference(secret: &StaticSecret, public: &[u8; 32]) -> [u8; 32] {
        secret.diffie_hellman(&PublicKey::from(*public)).to_bytes()
    }

    proptest! {
        /// Any 32 bytes as the peer's u (on the curve, on the twist, top bit set or not):
        /// the same shared secret as the reference, or the same refusal of an all-zero one.
        #[test]
        fn dh_is_x25519(secret in any::<[u8; 32]>(), public in any::<[u8; 32]>()) {
            let secret = StaticSecret::from(secret);
            let expected = reference(&secret, &public);
            match dh(&secret, &public) {
                Ok(shared) => prop_assert_eq!(shared, expected),
                Err(e) => {
                    prop_assert_eq!(e, NoiseError::LowOrderKey);
                    prop_assert_eq!(expected, [0u8; 32]);
                }
            }
        }
    }

    #[test]
    fn a_known_key_gives_the_same_secret_before_and_after_its_table() {
        let (_, server) = ephemeral();
        for round in 0..4 {
            let (secret, _) = ephemeral();
            assert_eq!(
                dh_with_known(&secret, &server).unwrap(),
                reference(&secret, &server),
                "round {round}"
            );
        }
    }

    #[test]
    fn a_key_gets_its_table_the_second_time_and_the_oldest_key_makes_room() {
        let seen = SeenKeys(Mutex::new(Vec::new()));
        let keys: Vec<[u8; 32]> = (0..=TABLED_KEYS).map(|_| ephemeral().1).collect();
        assert!(seen.table_for(&keys[0]).is_none(), "first sighting");
        let table = seen
            .table_for(&keys[0])
            .expect("second sighting builds the table");
        let (secret, _) = ephemeral();
        let scalar = secret.to_bytes();
        assert_eq!(
            table.mul_base_clamped(scalar).to_montgomery().to_bytes(),
            reference(&secret, &keys[0])
        );
        assert!(seen.table_for(&keys[0]).is_some(), "kept");
        for key in &keys[1..] {
            assert!(seen.table_for(key).is_none());
        }
        assert!(
            seen.table_for(&keys[0]).is_none(),
            "the oldest key was forgotten when a fifth came"
        );
    }

    #[test]
    fn low_order_points_are_refused_on_both_routes() {
        let (secret, _) = ephemeral();
        // u = 0 and u = 1 are low-order points on the curve; u = p - 1 has no Edwards form.
        let mut minus_one = [0xffu8; 32];
        minus_one[0] = 0xec;
        minus_one[31] = 0x7f;
        let mut one = [0u8; 32];
        one[0] = 1;
        for point in [[0u8; 32], one, minus_one] {
            assert_eq!(dh(&secret, &point), Err(NoiseError::LowOrderKey));
            assert_eq!(dh(&secret, &point), dh_with_known(&secret, &point));
            assert_eq!(dh(&secret, &point), dh_with_known(&secret, &point));
        }
    }
}
