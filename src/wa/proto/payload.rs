//! `ClientPayload` (sent encrypted in the Noise `clientFinish`) and `DeviceProps`.
//!
//! Only the fields wasp writes or the simulator reads are declared; prost skips unknown fields
//! when decoding, so a payload from a richer client still decodes. Numbers checked against
//! whatsmeow's `proto/waWa6/WAWebProtobufsWa6.proto` and `proto/waCompanionReg/
//! WACompanionReg.proto` (proto2, snapshot of 2026-08), agreeing with Baileys' `WAProto`:
//! - `ClientPayload { username = 1 (uint64); passive = 3; userAgent = 5; webInfo = 6;
//!   pushName = 7; connectType = 12; connectReason = 13; device = 18 (uint32);
//!   devicePairingData = 19; pull = 33 }`
//! - `UserAgent { platform = 1; appVersion = 2; mcc = 3; mnc = 4; osVersion = 5;
//!   manufacturer = 6; device = 7; osBuildNumber = 8; releaseChannel = 10;
//!   localeLanguageIso6391 = 11; localeCountryIso31661Alpha2 = 12 }`
//! - `AppVersion { primary = 1; secondary = 2; tertiary = 3; quaternary = 4; quinary = 5 }`
//!   (the same shape in `UserAgent` and `DeviceProps`)
//! - `WebInfo { refToken = 1; version = 2; webSubPlatform = 4 }`
//! - `DevicePairingRegistrationData { eRegid = 1; eKeytype = 2; eIdent = 3; eSkeyID = 4;
//!   eSkeyVal = 5; eSkeySig = 6; buildHash = 7; deviceProps = 8 }` (all bytes)
//! - `DeviceProps { os = 1; version = 2; platformType = 3; requireFullSync = 4;
//!   historySyncConfig = 5 }`
//! - `DeviceProps.HistorySyncConfig { fullSyncDaysLimit = 1; fullSyncSizeMbLimit = 2;
//!   storageQuotaMb = 3; inlineInitialPayloadInE2EeMsg = 4; recentSyncDaysLimit = 5;
//!   supportCallLogHistory = 6; supportBotUserAgentChatHistory = 7;
//!   supportCagReactionsAndPolls = 8; supportBizHostedMsg = 9;
//!   supportRecentSyncChunkMessageCountTuning = 10; supportHostedGroupMsg = 11;
//!   supportFbidBotChatHistory = 12; supportAddOnHistorySyncMigration = 13;
//!   supportMessageAssociation = 14; supportGroupHistory = 15 }`

/// `ClientPayload.ConnectType` (only the values a desktop client uses).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ConnectType {
    CellularUnknown = 0,
    WifiUnknown = 1,
}

/// `ClientPayload.ConnectReason`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ConnectReason {
    Push = 0,
    UserActivated = 1,
    Scheduled = 2,
    ErrorReconnect = 3,
    NetworkSwitch = 4,
    PingReconnect = 5,
    Unknown = 6,
}

/// `ClientPayload.UserAgent.Platform` (a subset; WEB is what web companions send).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum Platform {
    Android = 0,
    Ios = 1,
    SmbAndroid = 10,
    SmbIos = 12,
    Windows = 13,
    Web = 14,
    Macos = 24,
}

/// `ClientPayload.UserAgent.ReleaseChannel`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ReleaseChannel {
    Release = 0,
    Beta = 1,
    Alpha = 2,
    Debug = 3,
}

/// `ClientPayload.WebInfo.WebSubPlatform`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum WebSubPlatform {
    WebBrowser = 0,
    AppStore = 1,
    WinStore = 2,
    Darwin = 3,
    Win32 = 4,
    WinHybrid = 5,
}

/// `DeviceProps.PlatformType`: how the phone labels the linked device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum PlatformType {
    Unknown = 0,
    Chrome = 1,
    Firefox = 2,
    Ie = 3,
    Opera = 4,
    Safari = 5,
    Edge = 6,
    Desktop = 7,
    Ipad = 8,
    AndroidTablet = 9,
}

/// The first message the client sends inside the Noise channel: who it is and how it connects.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ClientPayload {
    /// The account's phone number as an integer (login only).
    #[prost(uint64, optional, tag = "1")]
    pub username: Option<u64>,
    #[prost(bool, optional, tag = "3")]
    pub passive: Option<bool>,
    #[prost(message, optional, tag = "5")]
    pub user_agent: Option<UserAgent>,
    #[prost(message, optional, tag = "6")]
    pub web_info: Option<WebInfo>,
    #[prost(string, optional, tag = "7")]
    pub push_name: Option<String>,
    #[prost(enumeration = "ConnectType", optional, tag = "12")]
    pub connect_type: Option<i32>,
    #[prost(enumeration = "ConnectReason", optional, tag = "13")]
    pub connect_reason: Option<i32>,
    /// The companion's device number within the account (login only).
    #[prost(uint32, optional, tag = "18")]
    pub device: Option<u32>,
    /// Present only when registering a new device (before pairing).
    #[prost(message, optional, tag = "19")]
    pub device_pairing_data: Option<DevicePairingRegistrationData>,
    #[prost(bool, optional, tag = "33")]
    pub pull: Option<bool>,
}

/// A three-to-five part version number.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AppVersion {
    #[prost(uint32, optional, tag = "1")]
    pub primary: Option<u32>,
    #[prost(uint32, optional, tag = "2")]
    pub secondary: Option<u32>,
    #[prost(uint32, optional, tag = "3")]
    pub tertiary: Option<u32>,
    #[prost(uint32, optional, tag = "4")]
    pub quaternary: Option<u32>,
    #[prost(uint32, optional, tag = "5")]
    pub quinary: Option<u32>,
}

/// What software the client claims to be.
#[derive(Clone, PartialEq, prost::Message)]
pub struct UserAgent {
    #[prost(enumeration = "Platform", optional, tag = "1")]
    pub platform: Option<i32>,
    #[prost(message, optional, tag = "2")]
    pub app_version: Option<AppVersion>,
    #[prost(string, optional, tag = "3")]
    pub mcc: Option<String>,
    #[prost(string, optional, tag = "4")]
    pub mnc: Option<String>,
    #[prost(string, optional, tag = "5")]
    pub os_version: Option<String>,
    #[prost(string, optional, tag = "6")]
    pub manufacturer: Option<String>,
    #[prost(string, optional, tag = "7")]
    pub device: Option<String>,
    #[prost(string, optional, tag = "8")]
    pub os_build_number: Option<String>,
    #[prost(enumeration = "ReleaseChannel", optional, tag = "10")]
    pub release_channel: Option<i32>,
    #[prost(string, optional, tag = "11")]
    pub locale_language_iso_639_1: Option<String>,
    #[prost(string, optional, tag = "12")]
    pub locale_country_iso_3166_1_alpha_2: Option<String>,
}

/// Web-client specifics.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WebInfo {
    #[prost(string, optional, tag = "1")]
    pub ref_token: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub version: Option<String>,
    #[prost(enumeration = "WebSubPlatform", optional, tag = "4")]
    pub web_sub_platform: Option<i32>,
}

/// The keys a new device registers with (all fields are raw bytes, "e" for "encoded").
#[derive(Clone, PartialEq, prost::Message)]
pub struct DevicePairingRegistrationData {
    /// Registration id, 4 bytes big-endian.
    #[prost(bytes = "vec", optional, tag = "1")]
    pub e_regid: Option<Vec<u8>>,
    /// Key type, the single byte 0x05 (Curve25519).
    #[prost(bytes = "vec", optional, tag = "2")]
    pub e_keytype: Option<Vec<u8>>,
    /// Identity public key, 32 bytes.
    #[prost(bytes = "vec", optional, tag = "3")]
    pub e_ident: Option<Vec<u8>>,
    /// Signed pre-key id, 3 bytes big-endian.
    #[prost(bytes = "vec", optional, tag = "4")]
    pub e_skey_id: Option<Vec<u8>>,
    /// Signed pre-key public key, 32 bytes.
    #[prost(bytes = "vec", optional, tag = "5")]
    pub e_skey_val: Option<Vec<u8>>,
    /// XEdDSA signature of `05 || signed pre-key public` by the identity key, 64 bytes.
    #[prost(bytes = "vec", optional, tag = "6")]
    pub e_skey_sig: Option<Vec<u8>>,
    /// MD5 of the version string `"primary.secondary.tertiary"`.
    #[prost(bytes = "vec", optional, tag = "7")]
    pub build_hash: Option<Vec<u8>>,
    /// An encoded `DeviceProps`.
    #[prost(bytes = "vec", optional, tag = "8")]
    pub device_props: Option<Vec<u8>>,
}

/// How the companion describes itself to the phone (shown in "Linked devices").
#[derive(Clone, PartialEq, prost::Message)]
pub struct DeviceProps {
    #[prost(string, optional, tag = "1")]
    pub os: Option<String>,
    #[prost(message, optional, tag = "2")]
    pub version: Option<AppVersion>,
    #[prost(enumeration = "PlatformType", optional, tag = "3")]
    pub platform_type: Option<i32>,
    #[prost(bool, optional, tag = "4")]
    pub require_full_sync: Option<bool>,
    #[prost(message, optional, tag = "5")]
    pub history_sync_config: Option<HistorySyncConfig>,
}

/// `DeviceProps.HistorySyncConfig`: what history the companion can take from the phone.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HistorySyncConfig {
    #[prost(uint32, optional, tag = "1")]
    pub full_sync_days_limit: Option<u32>,
    #[prost(uint32, optional, tag = "2")]
    pub full_sync_size_mb_limit: Option<u32>,
    #[prost(uint32, optional, tag = "3")]
    pub storage_quota_mb: Option<u32>,
    #[prost(bool, optional, tag = "4")]
    pub inline_initial_payload_in_e2ee_msg: Option<bool>,
    #[prost(uint32, optional, tag = "5")]
    pub recent_sync_days_limit: Option<u32>,
    #[prost(bool, optional, tag = "6")]
    pub support_call_log_history: Option<bool>,
    #[prost(bool, optional, tag = "7")]
    pub support_bot_user_agent_chat_history: Option<bool>,
    #[prost(bool, optional, tag = "8")]
    pub support_cag_reactions_and_polls: Option<bool>,
    #[prost(bool, optional, tag = "9")]
    pub support_biz_hosted_msg: Option<bool>,
    #[prost(bool, optional, tag = "10")]
    pub support_recent_sync_chunk_message_count_tuning: Option<bool>,
    #[prost(bool, optional, tag = "11")]
    pub support_hosted_group_msg: Option<bool>,
    #[prost(bool, optional, tag = "12")]
    pub support_fbid_bot_chat_history: Option<bool>,
    #[prost(bool, optional, tag = "13")]
    pub support_add_on_history_sync_migration: Option<bool>,
    #[prost(bool, optional, tag = "14")]
    pub support_message_association: Option<bool>,
    #[prost(bool, optional, tag = "15")]
    pub support_group_history: Option<bool>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn field_numbers_match_the_published_schema() {
        // username = 1 varint -> 0x08; passive = 3 -> 0x18; device = 18 -> 0x90 0x01;
        // pull = 33 -> 0x88 0x02.
        let p = ClientPayload {
            username: Some(5),
            passive: Some(true),
            device: Some(2),
            pull: Some(true),
            ..Default::default()
        };
        assert_eq!(
            p.encode_to_vec(),
            vec![0x08, 5, 0x18, 1, 0x90, 0x01, 2, 0x88, 0x02, 1]
        );
        // connectType = 12 -> 0x60; connectReason = 13 -> 0x68.
        let p = ClientPayload {
            connect_type: Some(ConnectType::WifiUnknown as i32),
            connect_reason: Some(ConnectReason::UserActivated as i32),
            ..Default::default()
        };
        assert_eq!(p.encode_to_vec(), vec![0x60, 1, 0x68, 1]);
        // webSubPlatform = 4 -> 0x20; releaseChannel = 10 -> 0x50; platform WEB = 14.
        let w = WebInfo {
            web_sub_platform: Some(WebSubPlatform::WebBrowser as i32),
            ..Default::default()
        };
        assert_eq!(w.encode_to_vec(), vec![0x20, 0]);
        let ua = UserAgent {
            platform: Some(Platform::Web as i32),
            release_channel: Some(ReleaseChannel::Release as i32),
            ..Default::default()
        };
        assert_eq!(ua.encode_to_vec(), vec![0x08, 14, 0x50, 0]);
        // buildHash = 7 -> 0x3a; deviceProps = 8 -> 0x42.
        let d = DevicePairingRegistrationData {
            build_hash: Some(vec![1]),
            device_props: Some(vec![2]),
            ..Default::default()
        };
        assert_eq!(d.encode_to_vec(), vec![0x3a, 1, 1, 0x42, 1, 2]);
    }
}
