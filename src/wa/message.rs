//! The plaintext of a message: the subset of WAProto's `Message` we read and write (prost,
//! hand-written), v2 padding, WhatsApp-style message ids, and a summary of what a decoded
//! message holds (PROTOCOL-MESSAGING.md §3.3, §3.5, §4.2, §4.7).
//!
//! Field numbers (WAProto `Message`, checked against whatsmeow's WAE2E.proto and §3.3):
//! conversation = 1, senderKeyDistributionMessage = 2 {groupId = 1, axolotlSenderKeyDistribution
//! Message = 2}, extendedTextMessage = 6 {text = 1}, protocolMessage = 12 {key = 1, type = 2,
//! historySyncNotification = 6, appStateSyncKeyShare = 7}, deviceSentMessage = 31
//! {destinationJid = 1, message = 2, phash = 3}, messageContextInfo = 35 {messageSecret = 3}.
//! Other fields are not decoded; [`top_level_fields`] still names them.

use prost::Message as _;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Why plaintext could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("the plaintext padding is invalid (last byte {last}, length {len})")]
    BadPadding { last: u8, len: usize },
    #[error("the plaintext is not a Message protobuf: {0}")]
    Protobuf(String),
}

/// WAProto `Message`, the fields we use.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Message {
    #[prost(string, optional, tag = "1")]
    pub conversation: Option<String>,
    #[prost(message, optional, tag = "2")]
    pub sender_key_distribution_message: Option<SenderKeyDistribution>,
    #[prost(message, optional, tag = "6")]
    pub extended_text_message: Option<ExtendedText>,
    #[prost(message, optional, tag = "12")]
    pub protocol_message: Option<ProtocolMessage>,
    #[prost(message, optional, boxed, tag = "31")]
    pub device_sent_message: Option<Box<DeviceSent>>,
    #[prost(message, optional, tag = "35")]
    pub message_context_info: Option<MessageContextInfo>,
}

/// `Message.senderKeyDistributionMessage`: a group sender key for the receiver to store.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SenderKeyDistribution {
    #[prost(string, optional, tag = "1")]
    pub group_id: Option<String>,
    /// The Signal `SenderKeyDistributionMessage` bytes.
    #[prost(bytes = "vec", optional, tag = "2")]
    pub axolotl_sender_key_distribution_message: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ExtendedText {
    #[prost(string, optional, tag = "1")]
    pub text: Option<String>,
}

/// `ProtocolMessage.type` values we act on.
pub const PROTOCOL_HISTORY_SYNC_NOTIFICATION: i32 = 5;
pub const PROTOCOL_APP_STATE_SYNC_KEY_SHARE: i32 = 6;

#[derive(Clone, PartialEq, prost::Message)]
pub struct ProtocolMessage {
    #[prost(message, optional, tag = "1")]
    pub key: Option<MessageKey>,
    #[prost(int32, optional, tag = "2")]
    pub r#type: Option<i32>,
    /// Kept as raw bytes: the history blob is not downloaded (see README).
    #[prost(bytes = "vec", optional, tag = "6")]
    pub history_sync_notification: Option<Vec<u8>>,
    #[prost(message, optional, tag = "7")]
    pub app_state_sync_key_share: Option<AppStateSyncKeyShare>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct MessageKey {
    #[prost(string, optional, tag = "1")]
    pub remote_jid: Option<String>,
    #[prost(bool, optional, tag = "2")]
    pub from_me: Option<bool>,
    #[prost(string, optional, tag = "3")]
    pub id: Option<String>,
    #[prost(string, optional, tag = "4")]
    pub participant: Option<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct AppStateSyncKeyShare {
    #[prost(message, repeated, tag = "1")]
    pub keys: Vec<AppStateSyncKey>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct AppStateSyncKey {
    #[prost(message, optional, tag = "1")]
    pub key_id: Option<AppStateSyncKeyId>,
    #[prost(message, optional, tag = "2")]
    pub key_data: Option<AppStateSyncKeyData>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct AppStateSyncKeyId {
    #[prost(bytes = "vec", optional, tag = "1")]
    pub key_id: Option<Vec<u8>>,
}

/// Holds a secret key: never log it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AppStateSyncKeyData {
    #[prost(bytes = "vec", optional, tag = "1")]
    pub key_data: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub fingerprint: Option<Vec<u8>>,
    #[prost(int64, optional, tag = "3")]
    pub timestamp: Option<i64>,
}

/// What our own other devices receive: the chat it went to and the original message.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DeviceSent {
    #[prost(string, optional, tag = "1")]
    pub destination_jid: Option<String>,
    #[prost(message, optional, boxed, tag = "2")]
    pub message: Option<Box<Message>>,
    #[prost(string, optional, tag = "3")]
    pub phash: Option<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct MessageContextInfo {
    #[prost(bytes = "vec", optional, tag = "3")]
    pub message_secret: Option<Vec<u8>>,
}

/// What a received message is, as the receive flow reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// `conversation` or `extendedTextMessage.text`.
    Text(String),
    /// Anything else: the first field's name (see [`field_name`]) and the plaintext length.
    Other { kind: String, len: usize },
}

impl Message {
    /// A text as `conversation` (what whatsmeow's docs send; every client reads it).
    pub fn text(text: &str) -> Self {
        Message {
            conversation: Some(text.to_string()),
            ..Message::default()
        }
    }

    /// The copy for our own other devices: `deviceSentMessage{destinationJid, message}` with
    /// the original's `messageContextInfo` copied to the top (§3.3).
    pub fn device_sent(destination: &str, original: &Message) -> Self {
        Message {
            device_sent_message: Some(Box::new(DeviceSent {
                destination_jid: Some(destination.to_string()),
                message: Some(Box::new(original.clone())),
                phash: None,
            })),
            message_context_info: original.message_context_info.clone(),
            ..Message::default()
        }
    }

    /// The message itself: the inner one of a device-sent copy, otherwise `self`.
    pub fn content(&self) -> &Message {
        match self.device_sent_message.as_deref() {
            Some(DeviceSent {
                message: Some(inner),
                ..
            }) => inner,
            _ => self,
        }
    }

    /// The chat a device-sent copy went to.
    pub fn destination(&self) -> Option<&str> {
        self.device_sent_message
            .as_deref()?
            .destination_jid
            .as_deref()
    }

    /// The keys of an app-state key share (`protocolMessage` of type 6, §4.7), if this is one.
    pub fn app_state_key_share(&self) -> Option<&[AppStateSyncKey]> {
        let protocol = self.protocol_message.as_ref()?;
        if protocol.r#type != Some(PROTOCOL_APP_STATE_SYNC_KEY_SHARE) {
            return None;
        }
        Some(&protocol.app_state_sync_key_share.as_ref()?.keys)
    }

    /// The text, from `conversation` or `extendedTextMessage` (of the inner message).
    pub fn text_body(&self) -> Option<&str> {
        let m = self.content();
        m.conversation
            .as_deref()
            .or_else(|| m.extended_text_message.as_ref()?.text.as_deref())
    }

    /// Text, or the type name and size of whatever else it is. `encoded` is the unpadded
    /// plaintext this message was decoded from.
    pub fn body(&self, encoded: &[u8]) -> Body {
        if let Some(text) = self.text_body() {
            return Body::Text(text.to_string());
        }
        let kind = top_level_fields(encoded)
            .into_iter()
            .map(|(tag, _)| tag)
            .find(|tag| *tag != 35 && *tag != 31)
            .map_or_else(|| "empty".to_string(), field_name);
        Body::Other {
            kind,
            len: encoded.len(),
        }
    }
}

/// The name of a top-level `Message` field, `field<N>` for ones we do not know.
pub fn field_name(tag: u32) -> String {
    let name = match tag {
        1 => "conversation",
        2 => "senderKeyDistributionMessage",
        3 => "imageMessage",
        4 => "contactMessage",
        5 => "locationMessage",
        6 => "extendedTextMessage",
        7 => "documentMessage",
        8 => "audioMessage",
        9 => "videoMessage",
        10 => "call",
        11 => "chat",
        12 => "protocolMessage",
        13 => "contactsArrayMessage",
        14 => "highlyStructuredMessage",
        15 => "fastRatchetKeySenderKeyDistributionMessage",
        16 => "sendPaymentMessage",
        18 => "liveLocationMessage",
        22 => "requestPaymentMessage",
        23 => "declinePaymentRequestMessage",
        24 => "cancelPaymentRequestMessage",
        25 => "templateMessage",
        26 => "stickerMessage",
        28 => "groupInviteMessage",
        29 => "templateButtonReplyMessage",
        30 => "productMessage",
        31 => "deviceSentMessage",
        35 => "messageContextInfo",
        _ => return format!("field{tag}"),
    };
    name.to_string()
}

/// The top-level fields of an encoded protobuf, in order: (field number, payload length).
/// Stops at the first malformed field.
pub fn top_level_fields(bytes: &[u8]) -> Vec<(u32, usize)> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let Some((key, used)) = varint(rest) else {
            break;
        };
        rest = &rest[used..];
        let len = match key & 7 {
            0 => varint(rest).map(|(_, n)| n),
            1 => Some(8),
            2 => varint(rest).and_then(|(len, n)| {
                let end = usize::try_from(len).ok()?.checked_add(n)?;
                rest.get(..end).map(|_| end)
            }),
            5 => Some(4),
            _ => None,
        };
        let Some(len) = len.filter(|len| *len <= rest.len()) else {
            break;
        };
        let Ok(tag) = u32::try_from(key >> 3) else {
            break;
        };
        out.push((tag, len));
        rest = &rest[len..];
    }
    out
}

fn varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, b) in bytes.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// Appends v2 padding: `n` bytes each equal to `n` (1..=16).
pub fn pad_with(mut plaintext: Vec<u8>, n: u8) -> Vec<u8> {
    let n = n.clamp(1, 16);
    plaintext.extend(std::iter::repeat_n(n, usize::from(n)));
    plaintext
}

/// Appends random v2 padding of 1..=16 bytes, as Baileys does.
pub fn pad(plaintext: Vec<u8>) -> Vec<u8> {
    let n = (rand::rngs::OsRng.next_u32() & 0x0F) as u8 + 1;
    pad_with(plaintext, n)
}

/// Strips v2 padding: the last byte N (1 ≤ N ≤ length), and all N bytes must equal N.
pub fn unpad(padded: &[u8]) -> Result<&[u8], MessageError> {
    let bad = |last| MessageError::BadPadding {
        last,
        len: padded.len(),
    };
    let &last = padded.last().ok_or_else(|| bad(0))?;
    let n = usize::from(last);
    if n == 0 || n > padded.len() {
        return Err(bad(last));
    }
    let (body, padding) = padded.split_at(padded.len() - n);
    if padding.iter().any(|b| *b != last) {
        return Err(bad(last));
    }
    Ok(body)
}

/// Encodes and pads a message for encryption.
pub fn encode_padded(message: &Message) -> Vec<u8> {
    pad(message.encode_to_vec())
}

/// Unpads and decodes a decrypted plaintext; also returns the unpadded bytes (for
/// [`Message::body`]).
pub fn decode_padded(padded: &[u8]) -> Result<(Message, &[u8]), MessageError> {
    let body = unpad(padded)?;
    let message = Message::decode(body).map_err(|e| MessageError::Protobuf(e.to_string()))?;
    Ok((message, body))
}

/// A message id: `3EB0` + uppercase hex of the first 9 bytes of SHA-256(unix seconds as 8
/// bytes big-endian ‖ own user digits ‖ `@c.us` ‖ 16 random bytes), 22 characters (§3.5).
pub fn message_id_from(unix_seconds: u64, own_user: &str, random: &[u8; 16]) -> String {
    let mut hash = Sha256::new();
    hash.update(unix_seconds.to_be_bytes());
    hash.update(own_user.as_bytes());
    hash.update(b"@c.us");
    hash.update(random);
    let digest = hash.finalize();
    let mut id = String::with_capacity(22);
    id.push_str("3EB0");
    for b in &digest[..9] {
        id.push_str(&format!("{b:02X}"));
    }
    id
}

/// A fresh message id for `own_user` at `unix_seconds`.
pub fn new_message_id(unix_seconds: u64, own_user: &str) -> String {
    let mut random = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut random);
    message_id_from(unix_seconds, own_user, &random)
}

#[cfg(test)]
#[path = "message_tests.rs"]
mod tests;
