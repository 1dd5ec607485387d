//! The virtual phone: what a person's phone does with a companion's QR code. It vouches for
//! the companion with an account key of its own (ADV device identity, HMAC keyed with the
//! companion's adv secret, account signature over the companion's identity key), then checks
//! the companion's `pair-device-sign` answer. No I/O here: the connection task sends and waits.

use super::SimError;
use super::registry::device_jid;
use super::stats::ErrorKind;
use crate::wa::node::Node;
use crate::wa::pair::{Phone, QrInfo};

/// How the phone scans.
#[derive(Debug, Clone, Default)]
pub struct ScanOptions {
    /// The account's phone number (digits, optional leading `+`); made up when `None`.
    pub phone: Option<String>,
    /// Sign wrongly on purpose, to see the companion refuse.
    pub tamper: Option<Tamper>,
}

/// A deliberate mistake in the phone's pair-success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tamper {
    /// The HMAC is keyed with another secret than the QR's adv secret.
    Hmac,
    /// The account signature covers another identity key than the companion's.
    AccountSignature,
}

impl Tamper {
    /// `hmac` or `account-signature`.
    pub fn parse(text: &str) -> Option<Tamper> {
        match text {
            "hmac" => Some(Tamper::Hmac),
            "account-signature" => Some(Tamper::AccountSignature),
            _ => None,
        }
    }
}

/// The digits of a phone number given to a scan: an optional `+`, then 5 to 15 digits.
pub fn phone_digits(text: &str) -> Result<String, SimError> {
    let digits = text.strip_prefix('+').unwrap_or(text);
    if (5..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
        Ok(digits.to_string())
    } else {
        Err(SimError::BadPhone(text.to_string()))
    }
}

/// A phone number for a scan that gave none: `1555` and seven digits.
pub fn made_up_phone() -> String {
    let n: u64 = rand::random::<u64>() % 10_000_000;
    format!("1555{n:07}")
}

/// One pairing the phone has offered and not yet seen answered.
pub struct Offer {
    phone: Phone,
    qr: QrInfo,
    pub number: String,
    pub device: u32,
    pub jid: String,
    pub lid: String,
    /// The `pair-success` iq to send.
    pub iq: Node,
}

/// Builds `phone`'s `pair-success` for the companion that showed `qr`, as its device number
/// `device`, in iq `iq_id`.
pub fn offer(
    qr: &QrInfo,
    phone: Phone,
    tamper: Option<Tamper>,
    device: u32,
    iq_id: &str,
    lid: &str,
    now_unix: u64,
) -> Offer {
    let number = phone.phone.clone();
    let mut signed_for = qr.clone();
    match tamper {
        Some(Tamper::Hmac) => signed_for.adv_secret[0] ^= 0xff,
        Some(Tamper::AccountSignature) => signed_for.identity_public[0] ^= 0xff,
        None => {}
    }
    let identity = phone.sign_pairing(&signed_for, 1, now_unix);
    let lid = lid.to_string();
    let iq = phone.pair_success_iq(iq_id, identity, device, &lid, "Chrome");
    Offer {
        jid: device_jid(&number, device),
        phone,
        qr: qr.clone(),
        number,
        device,
        lid,
        iq,
    }
}

/// Checks the companion's answer to pair-success; on failure, what to count and why.
pub fn check_reply(offer: &Offer, reply: &Node) -> Result<(), (ErrorKind, String)> {
    if reply.get_attr("type") == Some("error") {
        let error = reply.get_child("error");
        let text = error.and_then(|e| e.get_attr("text")).unwrap_or("");
        let code = error.and_then(|e| e.get_attr("code")).unwrap_or("?");
        let kind = match text {
            "hmac-mismatch" => ErrorKind::ClientReportedBadHmac,
            "signature-mismatch" => ErrorKind::ClientReportedBadSignature,
            _ => ErrorKind::ClientRejectedPairing,
        };
        return Err((
            kind,
            format!("the client refused pair-success with error {code} {text}"),
        ));
    }
    offer
        .phone
        .verify_device_sign(&offer.qr, reply)
        .map(|_| ())
        .map_err(|e| {
            (
                ErrorKind::BadDeviceSignature,
                format!("the client's pair-device-sign is wrong: {e}"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wa::creds::Credentials;
    use crate::wa::pair::{self, PairError};
    use crate::wa::proto::adv::AdvSignedDeviceIdentity;
    use prost::Message as _;

    fn qr_of(creds: &Credentials) -> QrInfo {
        pair::parse_qr(&pair::qr_text("2@ref", creds, '1')).unwrap()
    }

    #[test]
    fn phone_numbers_are_digits() {
        assert_eq!(phone_digits("+15550001111").unwrap(), "15550001111");
        for bad in ["", "+", "1555-000", "12", "1234567890123456", "abcdef"] {
            assert!(phone_digits(bad).is_err(), "{bad}");
        }
        assert!(phone_digits(&made_up_phone()).is_ok());
    }

    #[test]
    fn a_companion_accepts_the_phone_and_the_phone_accepts_its_answer() {
        let creds = Credentials::generate();
        let offer = offer(
            &qr_of(&creds),
            Phone::new("15550001111"),
            None,
            3,
            "p1",
            "123456789012345@lid",
            1_700_000_000,
        );
        let parsed = pair::parse_pair_success(&offer.iq).unwrap();
        assert_eq!(parsed.jid, "15550001111:3@s.whatsapp.net");
        let (account, reply) = pair::complete_pairing(&creds, &parsed).unwrap();
        assert_eq!(account.jid, offer.jid);
        assert_eq!(check_reply(&offer, &reply), Ok(()));
        // The same answer with a broken device signature is refused and counted.
        let mut forged = reply.clone();
        let sign = forged
            .get_child("pair-device-sign")
            .and_then(|n| n.get_child("device-identity"))
            .unwrap();
        let mut signed = AdvSignedDeviceIdentity::decode(sign.content_bytes().unwrap()).unwrap();
        signed.device_signature.as_mut().unwrap()[0] ^= 1;
        let identity = Node::new("device-identity")
            .attr("key-index", sign.get_attr("key-index").unwrap())
            .bytes(signed.encode_to_vec());
        forged.content =
            crate::wa::node::Content::Nodes(vec![Node::new("pair-device-sign").child(identity)]);
        let (kind, _) = check_reply(&offer, &forged).unwrap_err();
        assert_eq!(kind, ErrorKind::BadDeviceSignature);
    }

    #[test]
    fn tampered_offers_are_refused_by_the_companion_and_counted() {
        let creds = Credentials::generate();
        for (tamper, expected, kind) in [
            (
                Tamper::Hmac,
                PairError::BadHmac.to_string(),
                ErrorKind::ClientReportedBadHmac,
            ),
            (
                Tamper::AccountSignature,
                PairError::BadAccountSignature.to_string(),
                ErrorKind::ClientReportedBadSignature,
            ),
        ] {
            let offer = offer(
                &qr_of(&creds),
                Phone::new("15550001111"),
                Some(tamper),
                1,
                "p",
                "123456789012345@lid",
                1,
            );
            let parsed = pair::parse_pair_success(&offer.iq).unwrap();
            let err = pair::complete_pairing(&creds, &parsed).unwrap_err();
            assert_eq!(err.to_string(), expected);
            let reply = pair::pair_error_reply("p", &err);
            assert_eq!(check_reply(&offer, &reply).unwrap_err().0, kind);
        }
    }
}
