//! The server's certificate chain: verification on the client (every check of PROTOCOL.md
//! section 2) and issuing on the simulator.

use std::collections::VecDeque;
use std::sync::Mutex;

use prost::Message;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::wa::creds::KeyPair;
use crate::wa::proto::handshake::{CertChain, CertDetails, NoiseCertificate};
use crate::wa::xeddsa;

/// The public key a server's intermediate certificate must be signed by.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TrustRoot(pub [u8; 32]);

impl TrustRoot {
    /// WhatsApp's real root key.
    pub fn whatsapp() -> Self {
        TrustRoot([
            0x14, 0x23, 0x75, 0x57, 0x4d, 0x0a, 0x58, 0x71, 0x66, 0xaa, 0xe7, 0x1e, 0xbe, 0x51,
            0x64, 0x37, 0xc4, 0xa2, 0x8b, 0x73, 0xe3, 0x69, 0x5c, 0x6c, 0xe1, 0xf7, 0xf9, 0x54,
            0x5d, 0xa8, 0xee, 0x6b,
        ])
    }
}

impl std::fmt::Debug for TrustRoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TrustRoot(")?;
        for b in &self.0[..4] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "..)")
    }
}

/// Why a certificate chain was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    #[error("certificate chain could not be decoded")]
    Decode,
    #[error("certificate chain has no {0} certificate")]
    Missing(&'static str),
    #[error("{0} certificate signature does not verify")]
    BadSignature(&'static str),
    #[error("intermediate certificate is not issued by the root (issuer serial {0})")]
    NotIssuedByRoot(u32),
    #[error(
        "leaf certificate issuer serial {leaf} does not match intermediate serial {intermediate}"
    )]
    SerialMismatch { leaf: u32, intermediate: u32 },
    #[error("leaf certificate key is not the server's static key")]
    KeyMismatch,
    #[error("{0} certificate has expired")]
    Expired(&'static str),
    #[error("{0} certificate is not valid yet")]
    NotYetValid(&'static str),
    #[error("{0} certificate key is not 32 bytes")]
    BadKey(&'static str),
}

/// The signatures this process has already verified, by digest of signer, details and
/// signature: a server shows the same chain to every connection, and a verification is a pure
/// function of those three, so a pool of thousands checks each signature once instead of twice
/// per handshake (the two checks were a tenth of a connect's CPU). Only successes are kept; a
/// changed byte anywhere is a new digest and is verified again. A handful is enough: the
/// server's chain changes only when it rotates keys.
struct VerifiedSignatures(Mutex<VecDeque<[u8; 32]>>);

/// How many verified signatures are remembered (oldest forgotten first).
const VERIFIED_KEEP: usize = 8;

static VERIFIED: VerifiedSignatures = VerifiedSignatures(Mutex::new(VecDeque::new()));

impl VerifiedSignatures {
    fn seen(&self, digest: &[u8; 32]) -> bool {
        let seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        seen.iter().any(|d| bool::from(d.ct_eq(digest)))
    }

    fn remember(&self, digest: [u8; 32]) {
        let mut seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= VERIFIED_KEEP {
            seen.pop_front();
        }
        seen.push_back(digest);
    }
}

/// SHA-256 over the signer, the details' length and bytes, and the signature.
fn signed_digest(signer: &[u8; 32], details: &[u8], signature: &[u8; 64]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(signer);
    h.update((details.len() as u64).to_be_bytes());
    h.update(details);
    h.update(signature);
    h.finalize().into()
}

struct Checked {
    details: CertDetails,
}

fn check_one(
    cert: Option<&NoiseCertificate>,
    name: &'static str,
    signer: &[u8; 32],
    now_unix: u64,
) -> Result<Checked, CertError> {
    let cert = cert.ok_or(CertError::Missing(name))?;
    let details_bytes = cert.details.as_deref().ok_or(CertError::Missing(name))?;
    let signature: [u8; 64] = cert
        .signature
        .as_deref()
        .and_then(|s| s.try_into().ok())
        .ok_or(CertError::BadSignature(name))?;
    let digest = signed_digest(signer, details_bytes, &signature);
    if !VERIFIED.seen(&digest) {
        if !xeddsa::verify(signer, details_bytes, &signature) {
            return Err(CertError::BadSignature(name));
        }
        VERIFIED.remember(digest);
    }
    let details = CertDetails::decode(details_bytes).map_err(|_| CertError::Decode)?;
    if details
        .not_before
        .is_some_and(|nb| nb != 0 && now_unix < nb)
    {
        return Err(CertError::NotYetValid(name));
    }
    if details.not_after.is_some_and(|na| na != 0 && now_unix > na) {
        return Err(CertError::Expired(name));
    }
    Ok(Checked { details })
}

fn key_of(details: &CertDetails, name: &'static str) -> Result<[u8; 32], CertError> {
    details
        .key
        .as_deref()
        .and_then(|k| k.try_into().ok())
        .ok_or(CertError::BadKey(name))
}

/// Verifies the chain: intermediate signed by the root, leaf signed by the intermediate,
/// serials linked, leaf key equal to the server static key, validity dates.
pub fn verify_cert_chain(
    chain: &CertChain,
    trust: &TrustRoot,
    server_static: &[u8; 32],
    now_unix: u64,
) -> Result<(), CertError> {
    let inter = check_one(
        chain.intermediate.as_ref(),
        "intermediate",
        &trust.0,
        now_unix,
    )?;
    let issuer = inter.details.issuer_serial.unwrap_or(0);
    if issuer != 0 {
        return Err(CertError::NotIssuedByRoot(issuer));
    }
    let inter_key = key_of(&inter.details, "intermediate")?;
    let leaf = check_one(chain.leaf.as_ref(), "leaf", &inter_key, now_unix)?;
    let leaf_issuer = leaf.details.issuer_serial.unwrap_or(0);
    let inter_serial = inter.details.serial.unwrap_or(0);
    if leaf_issuer != inter_serial {
        return Err(CertError::SerialMismatch {
            leaf: leaf_issuer,
            intermediate: inter_serial,
        });
    }
    let leaf_key = key_of(&leaf.details, "leaf")?;
    if !bool::from(leaf_key.ct_eq(server_static)) {
        return Err(CertError::KeyMismatch);
    }
    Ok(())
}

/// A certificate authority for a server of our own (the simulator): its root key signs an
/// intermediate, which signs the leaf for the server's static key.
pub struct CertAuthority {
    root: KeyPair,
}

impl CertAuthority {
    /// A new random root.
    pub fn generate() -> Self {
        CertAuthority {
            root: KeyPair::generate(),
        }
    }

    /// A root from its saved private key.
    pub fn from_private(private: [u8; 32]) -> Self {
        CertAuthority {
            root: KeyPair::from_private(crate::wa::creds::SecretKey::from_bytes(private)),
        }
    }

    /// The root public key clients must trust.
    pub fn public(&self) -> [u8; 32] {
        self.root.public
    }

    /// The root private key (to save it for a restart).
    pub fn private(&self) -> &[u8; 32] {
        self.root.private.expose()
    }

    /// The trust root for clients of this authority.
    pub fn trust_root(&self) -> TrustRoot {
        TrustRoot(self.root.public)
    }

    /// Issues an encoded `CertChain` for `server_static`, valid from `now_unix` for
    /// `validity_s` seconds.
    pub fn issue_chain(&self, server_static: &[u8; 32], now_unix: u64, validity_s: u64) -> Vec<u8> {
        let inter_key = KeyPair::generate();
        let range = (
            now_unix.saturating_sub(60),
            now_unix.saturating_add(validity_s),
        );
        let inter = sign_details(
            &self.root,
            CertDetails {
                serial: Some(1),
                issuer_serial: Some(0),
                key: Some(inter_key.public.to_vec()),
                not_before: Some(range.0),
                not_after: Some(range.1),
            },
        );
        let leaf = sign_details(
            &inter_key,
            CertDetails {
                serial: Some(2),
                issuer_serial: Some(1),
                key: Some(server_static.to_vec()),
                not_before: Some(range.0),
                not_after: Some(range.1),
            },
        );
        CertChain {
            leaf: Some(leaf),
            intermediate: Some(inter),
        }
        .encode_to_vec()
    }
}

/// Signs encoded certificate details with `signer`.
pub fn sign_details(signer: &KeyPair, details: CertDetails) -> NoiseCertificate {
    let bytes = details.encode_to_vec();
    let signature = signer.sign(&bytes);
    NoiseCertificate {
        details: Some(bytes),
        signature: Some(signature.to_vec()),
    }
}
