//! The `ClientPayload` wasp sends after the Noise handshake (register or log in), and the
//! checks the simulated server runs on a payload it receives.

use std::fmt;
use std::str::FromStr;

use md5::{Digest as _, Md5};
use prost::Message as _;

use crate::wa::creds::{Credentials, KEY_TYPE_DJB, SignedPreKey};
use crate::wa::device::DeviceName;
use crate::wa::proto::payload::{
    AppVersion, ClientPayload, ConnectReason, ConnectType, DevicePairingRegistrationData,
    DeviceProps, HistorySyncConfig, Platform, ReleaseChannel, UserAgent, WebInfo, WebSubPlatform,
};
use crate::wa::xeddsa;

/// The `DeviceProps.version` Baileys sends (a desktop OS version, 10.15.7); nothing in the
/// registration names wasp, so a fleet does not stand out as one odd client.
const DEVICE_VERSION: (u32, u32, u32) = (10, 15, 7);

/// The QR platform letter of the default device name, "Chrome (Windows)" (`1`, Chrome);
/// sessions use `DeviceName::browser.qr_platform()` of their configured name.
pub const QR_PLATFORM: char = '1';

/// The history-sync capabilities Baileys registers with (`historySyncConfig` in
/// `generateRegistrationNode`): a 10 GiB quota, the initial payload inline, no call log
/// and no group history.
fn history_sync_config() -> HistorySyncConfig {
    HistorySyncConfig {
        storage_quota_mb: Some(10_240),
        inline_initial_payload_in_e2ee_msg: Some(true),
        support_call_log_history: Some(false),
        support_bot_user_agent_chat_history: Some(true),
        support_cag_reactions_and_polls: Some(true),
        support_biz_hosted_msg: Some(true),
        support_recent_sync_chunk_message_count_tuning: Some(true),
        support_hosted_group_msg: Some(true),
        support_fbid_bot_chat_history: Some(true),
        support_message_association: Some(true),
        support_group_history: Some(false),
        ..Default::default()
    }
}

/// The WhatsApp Web version a client claims; the server refuses outdated ones (405).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ClientVersion {
    pub primary: u32,
    pub secondary: u32,
    pub tertiary: u32,
}

impl ClientVersion {
    pub const fn new(primary: u32, secondary: u32, tertiary: u32) -> Self {
        ClientVersion {
            primary,
            secondary,
            tertiary,
        }
    }

    /// MD5 of `"primary.secondary.tertiary"`, the registration's `buildHash`.
    pub fn build_hash(&self) -> [u8; 16] {
        Md5::digest(self.to_string().as_bytes()).into()
    }

    fn app_version(&self) -> AppVersion {
        AppVersion {
            primary: Some(self.primary),
            secondary: Some(self.secondary),
            tertiary: Some(self.tertiary),
            ..Default::default()
        }
    }
}

impl Default for ClientVersion {
    /// The version whatsmeow shipped in August 2026 (`store/clientpayload.go`); Baileys
    /// publishes the same family (`2.3000.x`). Configurable, because WhatsApp moves it.
    fn default() -> Self {
        ClientVersion::new(2, 3000, 1_045_649_367)
    }
}

impl fmt::Display for ClientVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.primary, self.secondary, self.tertiary)
    }
}

impl FromStr for ClientVersion {
    type Err = PayloadError;

    /// Parses `"2.3000.1045649367"`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || PayloadError::BadVersion(text.to_string());
        let mut parts = text.split('.').map(|p| p.parse::<u32>().map_err(|_| bad()));
        let (Some(p), Some(s), Some(t), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        Ok(ClientVersion::new(p?, s?, t?))
    }
}

/// Why a payload could not be built or did not pass the server's checks.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error("the credentials are not paired, so there is no account to log in with")]
    NotPaired,
    #[error("the account's phone number {0:?} is not a number")]
    BadPhoneNumber(String),
    #[error("{0:?} is not a version of the form primary.secondary.tertiary")]
    BadVersion(String),
    #[error("the client payload could not be decoded")]
    Decode(#[source] prost::DecodeError),
    #[error("the client payload has neither a username nor device pairing data")]
    NeitherLoginNorRegistration,
    #[error("the registration field {field} is missing")]
    MissingField { field: &'static str },
    #[error("the registration field {field} is {len} bytes long, expected {expected}")]
    BadLength {
        field: &'static str,
        len: usize,
        expected: usize,
    },
    #[error("the registration key type is {0:?}, expected [5]")]
    BadKeyType(Vec<u8>),
}

/// The encoded payload for a device that is not paired yet, under the default device name.
pub fn registration_payload(creds: &Credentials, version: &ClientVersion) -> Vec<u8> {
    registration_payload_as(creds, version, &DeviceName::default())
}

/// The encoded payload for a device that is not paired yet: it carries the keys the phone
/// will vouch for, and `device` as the name the phone shows under "Linked devices".
pub fn registration_payload_as(
    creds: &Credentials,
    version: &ClientVersion,
    device: &DeviceName,
) -> Vec<u8> {
    let (major, minor, patch) = DEVICE_VERSION;
    let props = DeviceProps {
        os: Some(device.os.to_string()),
        version: Some(ClientVersion::new(major, minor, patch).app_version()),
        platform_type: Some(device.browser.platform_type() as i32),
        require_full_sync: Some(false),
        history_sync_config: Some(history_sync_config()),
    };
    let spk = &creds.signed_pre_key;
    let mut payload = base_payload(version);
    payload.passive = Some(false);
    payload.pull = Some(false);
    payload.device_pairing_data = Some(DevicePairingRegistrationData {
        e_regid: Some(u32::from(creds.registration_id).to_be_bytes().to_vec()),
        e_keytype: Some(vec![KEY_TYPE_DJB]),
        e_ident: Some(creds.identity.public.to_vec()),
        // Three bytes big-endian: the low three of the u32.
        e_skey_id: Some(spk.id.to_be_bytes()[1..].to_vec()),
        e_skey_val: Some(spk.key_pair.public.to_vec()),
        e_skey_sig: Some(spk.signature.to_vec()),
        build_hash: Some(version.build_hash().to_vec()),
        device_props: Some(props.encode_to_vec()),
    });
    payload.encode_to_vec()
}

/// The encoded payload for a paired device logging in with its stored account.
pub fn login_payload(
    creds: &Credentials,
    version: &ClientVersion,
) -> Result<Vec<u8>, PayloadError> {
    let account = creds.account.as_ref().ok_or(PayloadError::NotPaired)?;
    let bad = || PayloadError::BadPhoneNumber(account.phone.clone());
    // `u64::from_str` accepts a leading '+', which a JID user part never has.
    if !account.phone.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let phone = account.phone.parse::<u64>().map_err(|_| bad())?;
    let mut payload = base_payload(version);
    payload.username = Some(phone);
    payload.device = Some(account.device);
    payload.passive = Some(true);
    payload.pull = Some(true);
    Ok(payload.encode_to_vec())
}

/// The fields both kinds of payload share.
fn base_payload(version: &ClientVersion) -> ClientPayload {
    ClientPayload {
        user_agent: Some(UserAgent {
            platform: Some(Platform::Web as i32),
            app_version: Some(version.app_version()),
            mcc: Some("000".into()),
            mnc: Some("000".into()),
            os_version: Some("0.1".into()),
            manufacturer: Some(String::new()),
            device: Some("Desktop".into()),
            os_build_number: Some("0.1".into()),
            release_channel: Some(ReleaseChannel::Release as i32),
            locale_language_iso_639_1: Some("en".into()),
            locale_country_iso_3166_1_alpha_2: Some("US".into()),
        }),
        web_info: Some(WebInfo {
            web_sub_platform: Some(WebSubPlatform::WebBrowser as i32),
            ..Default::default()
        }),
        connect_type: Some(ConnectType::WifiUnknown as i32),
        connect_reason: Some(ConnectReason::UserActivated as i32),
        ..Default::default()
    }
}

/// Decodes a payload received by the (simulated) server.
pub fn decode_client_payload(bytes: &[u8]) -> Result<ClientPayload, PayloadError> {
    ClientPayload::decode(bytes).map_err(PayloadError::Decode)
}

/// What a client asked for, as the server sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientHello {
    /// A new device registering its keys before pairing.
    Register {
        identity: [u8; 32],
        /// The 4-byte `eRegid`; wasp's own are 14 bits.
        registration_id: u32,
        signed_pre_key_id: u32,
        signed_pre_key: [u8; 32],
        /// Whether the identity key really signed the signed pre-key.
        signature_ok: bool,
    },
    /// A paired device logging in.
    Login { phone: u64, device: u32 },
}

/// Classifies a payload and checks a registration's signed pre-key signature.
/// A payload with pairing data is a registration even if it also names a user.
pub fn inspect(payload: &ClientPayload) -> Result<ClientHello, PayloadError> {
    if let Some(reg) = &payload.device_pairing_data {
        let key_type = required("eKeytype", &reg.e_keytype)?;
        if key_type != [KEY_TYPE_DJB] {
            return Err(PayloadError::BadKeyType(key_type.to_vec()));
        }
        let registration_id = u32::from_be_bytes(fixed("eRegid", &reg.e_regid)?);
        let [a, b, c] = fixed("eSkeyId", &reg.e_skey_id)?;
        let identity: [u8; 32] = fixed("eIdent", &reg.e_ident)?;
        let signed_pre_key: [u8; 32] = fixed("eSkeyVal", &reg.e_skey_val)?;
        let signature: [u8; 64] = fixed("eSkeySig", &reg.e_skey_sig)?;
        let signature_ok = xeddsa::verify(
            &identity,
            &SignedPreKey::signed_message(&signed_pre_key),
            &signature,
        );
        return Ok(ClientHello::Register {
            identity,
            registration_id,
            signed_pre_key_id: u32::from_be_bytes([0, a, b, c]),
            signed_pre_key,
            signature_ok,
        });
    }
    match payload.username {
        Some(phone) => Ok(ClientHello::Login {
            phone,
            device: payload.device.unwrap_or(0),
        }),
        None => Err(PayloadError::NeitherLoginNorRegistration),
    }
}

/// The version the client claims, when it sent one.
pub fn client_version(payload: &ClientPayload) -> Option<ClientVersion> {
    let v = payload.user_agent.as_ref()?.app_version.as_ref()?;
    Some(ClientVersion::new(v.primary?, v.secondary?, v.tertiary?))
}

fn required<'a>(field: &'static str, value: &'a Option<Vec<u8>>) -> Result<&'a [u8], PayloadError> {
    value.as_deref().ok_or(PayloadError::MissingField { field })
}

fn fixed<const N: usize>(
    field: &'static str,
    value: &Option<Vec<u8>>,
) -> Result<[u8; N], PayloadError> {
    let bytes = required(field, value)?;
    bytes.try_into().map_err(|_| PayloadError::BadLength {
        field,
        len: bytes.len(),
        expected: N,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use crate::wa::creds::Account;
    use crate::wa::proto::payload::PlatformType;

    fn paired(phone: &str) -> Credentials {
        let mut creds = Credentials::generate();
        creds.account = Some(Account {
            jid: format!("{phone}:7@s.whatsapp.net"),
            lid: None,
            phone: phone.into(),
            device: 7,
            platform: None,
            business_name: None,
            signed_identity: Vec::new(),
            key_index: 1,
        });
        creds
    }

    #[test]
    fn registration_payload_carries_verifiable_keys() {
        let creds = Credentials::generate();
        let version = ClientVersion::new(2, 3000, 1);
        let payload = decode_client_payload(&registration_payload(&creds, &version)).unwrap();
        assert_eq!(payload.passive, Some(false));
        assert_eq!(payload.pull, Some(false));
        assert_eq!(payload.username, None);
        assert_eq!(client_version(&payload), Some(version));
        let reg = payload.device_pairing_data.as_ref().unwrap();
        assert_eq!(reg.build_hash.as_deref(), Some(&version.build_hash()[..]));
        let props = DeviceProps::decode(reg.device_props.as_deref().unwrap()).unwrap();
        assert_eq!(props.os.as_deref(), Some("Windows"));
        assert_eq!(props.platform_type, Some(PlatformType::Chrome as i32));
        assert_eq!(props.require_full_sync, Some(false));
        let history = props.history_sync_config.unwrap();
        assert_eq!(history.storage_quota_mb, Some(10_240));
        assert_eq!(history.support_group_history, Some(false));
        let firefox: DeviceName = "Firefox (Linux)".parse().unwrap();
        let bytes = registration_payload_as(&creds, &version, &firefox);
        let reg = decode_client_payload(&bytes)
            .unwrap()
            .device_pairing_data
            .unwrap();
        let props = DeviceProps::decode(reg.device_props.as_deref().unwrap()).unwrap();
        assert_eq!(props.os.as_deref(), Some("Linux"));
        assert_eq!(props.platform_type, Some(PlatformType::Firefox as i32));
        let version = props.version.unwrap();
        assert_ne!(
            version.primary,
            Some(0),
            "no wasp-only version in DeviceProps"
        );
        assert_eq!(
            inspect(&payload).unwrap(),
            ClientHello::Register {
                identity: creds.identity.public,
                registration_id: u32::from(creds.registration_id),
                signed_pre_key_id: creds.signed_pre_key.id,
                signed_pre_key: creds.signed_pre_key.key_pair.public,
                signature_ok: true,
            }
        );
    }

    #[test]
    fn tampered_signed_pre_key_is_reported() {
        let creds = Credentials::generate();
        let bytes = registration_payload(&creds, &ClientVersion::default());
        let mut payload = decode_client_payload(&bytes).unwrap();
        let reg = payload.device_pairing_data.as_mut().unwrap();
        reg.e_skey_val = Some(
            Credentials::generate()
                .signed_pre_key
                .key_pair
                .public
                .to_vec(),
        );
        let ClientHello::Register { signature_ok, .. } = inspect(&payload).unwrap() else {
            panic!("a registration must stay a registration");
        };
        assert!(!signature_ok);
    }

    #[test]
    fn malformed_registration_is_an_error() {
        let bytes = registration_payload(&Credentials::generate(), &ClientVersion::default());
        let mut payload = decode_client_payload(&bytes).unwrap();
        payload.device_pairing_data.as_mut().unwrap().e_ident = Some(vec![1; 31]);
        assert!(matches!(
            inspect(&payload),
            Err(PayloadError::BadLength {
                field: "eIdent",
                len: 31,
                expected: 32
            })
        ));
        payload.device_pairing_data.as_mut().unwrap().e_keytype = None;
        assert!(matches!(
            inspect(&payload),
            Err(PayloadError::MissingField { field: "eKeytype" })
        ));
        assert!(matches!(
            inspect(&ClientPayload::default()),
            Err(PayloadError::NeitherLoginNorRegistration)
        ));
        assert!(matches!(
            decode_client_payload(&[0xff, 0xff]),
            Err(PayloadError::Decode(_))
        ));
    }

    #[test]
    fn login_payload_names_the_account() {
        let creds = paired("15550001111");
        let payload =
            decode_client_payload(&login_payload(&creds, &ClientVersion::default()).unwrap())
                .unwrap();
        assert_eq!(payload.passive, Some(true));
        assert_eq!(payload.pull, Some(true));
        assert!(payload.device_pairing_data.is_none());
        assert_eq!(
            inspect(&payload).unwrap(),
            ClientHello::Login {
                phone: 15_550_001_111,
                device: 7
            }
        );
        let ua = payload.user_agent.unwrap();
        assert_eq!(ua.platform, Some(Platform::Web as i32));
        assert_eq!(
            payload.connect_reason,
            Some(ConnectReason::UserActivated as i32)
        );
    }

    #[test]
    fn login_needs_a_paired_account_with_a_numeric_phone() {
        let version = ClientVersion::default();
        assert!(matches!(
            login_payload(&Credentials::generate(), &version),
            Err(PayloadError::NotPaired)
        ));
        assert!(matches!(
            login_payload(&paired("+1555"), &version),
            Err(PayloadError::BadPhoneNumber(p)) if p == "+1555"
        ));
    }

    #[test]
    fn versions_parse_print_and_hash() {
        let v: ClientVersion = "2.3000.1045649367".parse().unwrap();
        assert_eq!(v, ClientVersion::default());
        assert_eq!(v.to_string(), "2.3000.1045649367");
        assert!("2.3000".parse::<ClientVersion>().is_err());
        assert!("2.3000.1.4".parse::<ClientVersion>().is_err());
        assert!("2.x.1".parse::<ClientVersion>().is_err());
        // md5("2.2412.54"), computed with Python's hashlib.
        let hex: String = ClientVersion::new(2, 2412, 54)
            .build_hash()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(hex, "3a44e315e6c4cc03a1c870d942113623");
    }
}
