//! Pairing by code, the phone's side (the simulator): reading and checking the companion's
//! `companion_hello` and `companion_finish` as the server does, the ref answer, the
//! `primary_hello` wrapped with the code the person typed, and opening the key bundle.

use aes_gcm::aead::{Aead as _, KeyInit as _};
use zeroize::Zeroizing;

use super::{
    PairCodeError, PrimaryHello, REG, WRAPPED_BUNDLE_LEN, WRAPPED_KEY_LEN, adv_secret, array,
    bundle_key, checked_reg, child_array, child_bytes, child_text, dh, jid_phone, unwrap_key,
    wrap_key_random,
};
use crate::wa::creds::{KeyPair, SecretKey};
use crate::wa::device::DeviceName;
use crate::wa::node::Node;
use crate::wa::pair::SERVER_JID;
use crate::wa::pair_code::LinkCode;

/// What the server reads from a `companion_hello`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompanionHello {
    /// Digits only.
    pub phone: String,
    pub wrapped_ephemeral: [u8; WRAPPED_KEY_LEN],
    pub noise_public: [u8; 32],
    pub display: DeviceName,
}

/// What the server reads from a `companion_finish`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompanionFinish {
    pub phone: String,
    pub wrapped_bundle: Vec<u8>,
    pub identity: [u8; 32],
    pub reference: Vec<u8>,
}

/// The stage of a `link_code_companion_reg` iq, when it is one.
pub fn companion_stage(iq: &Node) -> Option<&str> {
    if iq.tag != "iq" || iq.get_attr("type") != Some("set") {
        return None;
    }
    iq.get_child(REG).and_then(|r| r.get_attr("stage"))
}

/// Reads and checks a `companion_hello` as the server does: `xmlns="md"`, the JID's digits,
/// the 80-byte wrapped key, the 32-byte Noise key, a platform id, a `Browser (OS)` display
/// the server accepts, and a nonce in either library's encoding.
pub fn parse_companion_hello(iq: &Node) -> Result<CompanionHello, PairCodeError> {
    const WHAT: &str = "companion_hello";
    let reg = checked_reg(iq, WHAT)?;
    let phone = jid_phone(reg, WHAT)?;
    let platform = child_text(reg, WHAT, "companion_platform_id")?;
    let known = platform.len() == 1 && "123456789ce".contains(platform);
    if !known {
        return Err(PairCodeError::BadValue {
            field: "companion_platform_id",
            value: platform.to_string(),
            expected: "1..9, c or e",
        });
    }
    let display = child_text(reg, WHAT, "companion_platform_display")?
        .parse::<DeviceName>()
        .map_err(PairCodeError::BadDisplay)?;
    let nonce = child_bytes(reg, WHAT, "link_code_pairing_nonce")?;
    if nonce != [0u8] && nonce != b"0" {
        return Err(PairCodeError::BadNonce);
    }
    Ok(CompanionHello {
        phone,
        wrapped_ephemeral: child_array(
            reg,
            WHAT,
            "link_code_pairing_wrapped_companion_ephemeral_pub",
        )?,
        noise_public: child_array(reg, WHAT, "companion_server_auth_key_pub")?,
        display,
    })
}

/// Reads a `companion_finish` (sizes checked; the bundle is opened by [`open_bundle`]).
pub fn parse_companion_finish(iq: &Node) -> Result<CompanionFinish, PairCodeError> {
    const WHAT: &str = "companion_finish";
    let reg = checked_reg(iq, WHAT)?;
    let wrapped_bundle = child_bytes(reg, WHAT, "link_code_pairing_wrapped_key_bundle")?;
    if wrapped_bundle.len() != WRAPPED_BUNDLE_LEN {
        return Err(PairCodeError::BadLength {
            field: "link_code_pairing_wrapped_key_bundle",
            len: wrapped_bundle.len(),
            expected: WRAPPED_BUNDLE_LEN,
        });
    }
    Ok(CompanionFinish {
        phone: jid_phone(reg, WHAT)?,
        wrapped_bundle: wrapped_bundle.to_vec(),
        identity: child_array(reg, WHAT, "companion_identity_public")?,
        reference: child_bytes(reg, WHAT, "link_code_pairing_ref")?.to_vec(),
    })
}

/// The server's answer to `companion_hello`: the ref the notification will carry.
pub fn hello_answer(id: &str, reference: &[u8]) -> Node {
    Node::new("iq")
        .attr("from", SERVER_JID)
        .attr("id", id)
        .attr("type", "result")
        .child(Node::new(REG).child(Node::new("link_code_pairing_ref").bytes(reference.to_vec())))
}

/// The phone's side once a person typed `entered`: its ephemeral key wrapped with that code
/// (PBKDF2: slow), as the `primary_hello` to send.
pub fn primary_hello(
    entered: &LinkCode,
    primary_identity: &[u8; 32],
    primary_ephemeral: &KeyPair,
    reference: &[u8],
) -> PrimaryHello {
    PrimaryHello {
        reference: reference.to_vec(),
        primary_identity: *primary_identity,
        wrapped_ephemeral: wrap_key_random(entered, &primary_ephemeral.public),
    }
}

impl PrimaryHello {
    /// `<notification from="s.whatsapp.net" id t type="link_code_companion_reg">..`.
    pub fn notification(&self, id: &str, t: u64) -> Node {
        Node::new("notification")
            .attr("from", SERVER_JID)
            .attr("id", id)
            .attr("t", t.to_string())
            .attr("type", REG)
            .child(
                Node::new(REG)
                    .attr("stage", "primary_hello")
                    .child(Node::new("link_code_pairing_ref").bytes(self.reference.clone()))
                    .child(Node::new("primary_identity_pub").bytes(self.primary_identity.to_vec()))
                    .child(
                        Node::new("link_code_pairing_wrapped_primary_ephemeral_pub")
                            .bytes(self.wrapped_ephemeral.to_vec()),
                    ),
            )
    }
}

/// The phone opens the companion's key bundle with the code the person typed: the bundle must
/// decrypt (else the code was wrong) and name both identities. Answers the adv secret the
/// phone authenticates `pair-success` with (PBKDF2: slow).
pub fn open_bundle(
    entered: &LinkCode,
    hello: &CompanionHello,
    primary_ephemeral: &KeyPair,
    primary_identity: &KeyPair,
    finish: &CompanionFinish,
) -> Result<SecretKey, PairCodeError> {
    let companion_ephemeral = unwrap_key(entered, &hello.wrapped_ephemeral);
    let ephemeral_shared = dh(primary_ephemeral, &companion_ephemeral);
    let bundle = &finish.wrapped_bundle;
    if bundle.len() != WRAPPED_BUNDLE_LEN {
        return Err(PairCodeError::BadLength {
            field: "link_code_pairing_wrapped_key_bundle",
            len: bundle.len(),
            expected: WRAPPED_BUNDLE_LEN,
        });
    }
    let salt: [u8; 32] = array(&bundle[..32]);
    let nonce: [u8; 12] = array(&bundle[32..44]);
    let key = bundle_key(&ephemeral_shared, &salt);
    let cipher = aes_gcm::Aes256Gcm::new(key.as_ref().into());
    let plain = Zeroizing::new(
        cipher
            .decrypt(&nonce.into(), &bundle[44..])
            .map_err(|_| PairCodeError::WrongCode)?,
    );
    if plain[..32] != finish.identity {
        return Err(PairCodeError::BundleMismatch("companion identity"));
    }
    if plain[32..64] != primary_identity.public {
        return Err(PairCodeError::BundleMismatch("primary identity"));
    }
    let adv_random: [u8; 32] = array(&plain[64..96]);
    let identity_shared = dh(primary_identity, &finish.identity);
    Ok(adv_secret(&ephemeral_shared, &identity_shared, &adv_random))
}
