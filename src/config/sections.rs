//! Reads each table of sessions.toml into its part of `Config`, recording every problem.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use toml::de::{DeTable, DeValue};

use crate::session::policy::Policy;
use crate::wa::device::DeviceName;
use crate::wa::payload::ClientVersion;

use super::error::{ConfigError, ConfigErrors, Hint, Position, Problem, closest};
use super::messages::{MESSAGES_KEYS, read_messages};
use super::overrides::{POLICY_KEYS, overlay};
use super::probe::{PROBE_KEYS, read_probe};
use super::proxy::{SessionProxy, assign, read_server_proxies, read_session_proxy};
use super::read::{Problems, Span, Table, describe};
use super::webhook::{WEBHOOK_KEYS, read_session_webhook, read_webhook};
use super::{
    ClusterConfig, Config, CredentialStore, HttpConfig, HttpToken, Limits, ServerConfig,
    SessionConfig, StorageConfig, check_session_id,
};

const TOP_LEVEL: [&str; 10] = [
    "server", "storage", "policy", "limits", "http", "cluster", "messages", "webhook", "probe",
    "session",
];
const SERVER_KEYS: [&str; 8] = [
    "url",
    "trust_root",
    "client_version",
    "discover_version",
    "device_name",
    "proxy",
    "proxies",
    "ca_file",
];
const STORAGE_KEYS: [&str; 1] = ["data_dir"];
const LIMITS_KEYS: [&str; 4] = [
    "connects_per_second",
    "connect_burst",
    "handshakes_in_flight",
    "max_sessions",
];
const HTTP_KEYS: [&str; 8] = [
    "listen",
    "token_env",
    "token",
    "max_connections",
    "reserve_connections",
    "header_timeout",
    "idle_timeout",
    "read_token_env",
];
const CLUSTER_KEYS: [&str; 4] = ["redis_url", "node_id", "lease_ttl", "credentials"];
const SESSION_KEYS: [&str; 6] = ["id", "label", "phone", "autostart", "webhook", "proxy"];

/// The table a key belongs to, for "unknown key ...; it belongs in [storage]".
fn home_of(key: &str) -> Option<&'static str> {
    let tables: [(&[&str], &'static str); 10] = [
        (&SERVER_KEYS, "[server]"),
        (&STORAGE_KEYS, "[storage]"),
        (&POLICY_KEYS, "[policy] or a [[session]]"),
        (&LIMITS_KEYS, "[limits]"),
        (&HTTP_KEYS, "[http]"),
        (&CLUSTER_KEYS, "[cluster]"),
        (&SESSION_KEYS, "a [[session]]"),
        (&MESSAGES_KEYS, "[messages]"),
        (&WEBHOOK_KEYS, "[webhook]"),
        (&PROBE_KEYS, "[probe]"),
    ];
    tables
        .iter()
        .find(|(keys, _)| keys.contains(&key))
        .map(|(_, home)| *home)
}

pub(super) fn parse(text: &str, file_name: &str) -> Result<Config, ConfigErrors> {
    let (document, syntax) = DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        // A broken document cannot be checked further without inventing problems.
        let problems = syntax
            .into_iter()
            .map(|error| Problem {
                position: Some(Position::of_offset(
                    text,
                    error.span().map_or(0, |span| span.start),
                )),
                error: ConfigError::Syntax {
                    message: error.message().to_string(),
                },
            })
            .collect();
        return Err(ConfigErrors::new(file_name, problems));
    }
    let root = document.get_ref();
    let mut problems = Problems::default();
    check_top_level(&mut problems, root);

    let server = table(&mut problems, root, "server")
        .map_or_else(ServerConfig::default, |t| read_server(&mut problems, &t));
    let storage = table(&mut problems, root, "storage")
        .map_or_else(StorageConfig::default, |t| read_storage(&mut problems, &t));
    let policy = match table(&mut problems, root, "policy") {
        Some(t) => {
            t.check_keys(&mut problems, &POLICY_KEYS, home_of);
            overlay(&mut problems, &t, &Policy::default())
        }
        None => Policy::default(),
    };
    let limits = table(&mut problems, root, "limits")
        .map_or_else(Limits::default, |t| read_limits(&mut problems, &t));
    let http = table(&mut problems, root, "http").map(|t| read_http(&mut problems, &t));
    let cluster = table(&mut problems, root, "cluster").map(|t| read_cluster(&mut problems, &t));
    let messages = table(&mut problems, root, "messages")
        .map(|t| read_messages(&mut problems, &t))
        .unwrap_or_default();
    let webhook = table(&mut problems, root, "webhook").map(|t| read_webhook(&mut problems, &t));
    let mut sessions = read_sessions(&mut problems, root, &policy, &limits, text);
    let ids: Vec<&str> = sessions.iter().map(|(s, _)| s.id.as_str()).collect();
    let wanted: Vec<SessionProxy> = sessions.iter().map(|(_, p)| p.clone()).collect();
    let paths = assign(&server.proxies, &wanted, &ids);
    for ((session, _), path) in sessions.iter_mut().zip(paths) {
        session.proxy = path;
    }
    let sessions: Vec<SessionConfig> = sessions.into_iter().map(|(s, _)| s).collect();
    let ids: Vec<&str> = sessions.iter().map(|s| s.id.as_str()).collect();
    let probe =
        table(&mut problems, root, "probe").and_then(|t| read_probe(&mut problems, &t, &ids));

    if !problems.is_empty() {
        return Err(problems.into_errors(text, file_name));
    }
    Ok(Config {
        server,
        storage,
        policy,
        limits,
        http,
        cluster,
        messages,
        webhook,
        probe,
        sessions,
    })
}

fn check_top_level(problems: &mut Problems, root: &DeTable<'_>) {
    for (key, value) in root.iter() {
        let name: &str = key.get_ref();
        if TOP_LEVEL.contains(&name) {
            continue;
        }
        let error = match value.get_ref() {
            DeValue::Table(_) | DeValue::Array(_) => ConfigError::UnknownTable {
                name: name.to_string(),
                hint: closest(name, &TOP_LEVEL).map_or(Hint::None, |close| {
                    Hint::DidYouMean(if close == "session" {
                        "[[session]]".to_string()
                    } else {
                        format!("[{close}]")
                    })
                }),
            },
            _ => ConfigError::UnknownKey {
                key: name.to_string(),
                place: "the top level".to_string(),
                hint: home_of(name).map_or(Hint::None, |home| Hint::BelongsIn(home.to_string())),
            },
        };
        problems.report(&key.span(), error);
    }
}

/// The top-level table `name`, if present and a table.
fn table<'a, 'i>(
    problems: &mut Problems,
    root: &'a DeTable<'i>,
    name: &str,
) -> Option<Table<'a, 'i>> {
    let value = root.get(name)?;
    match value.get_ref() {
        DeValue::Table(entries) => Some(Table {
            entries,
            span: value.span(),
            place: format!("[{name}]"),
        }),
        other => {
            problems.report(
                &value.span(),
                ConfigError::WrongType {
                    field: name.to_string(),
                    expected: "a table",
                    found: describe(other),
                },
            );
            None
        }
    }
}

fn read_server(problems: &mut Problems, t: &Table<'_, '_>) -> ServerConfig {
    t.check_keys(problems, &SERVER_KEYS, home_of);
    let mut server = ServerConfig::default();
    if let Some((url, span)) = t.non_empty_string(problems, "url") {
        check_scheme(
            problems,
            t,
            "url",
            url,
            &span,
            &["ws://", "wss://"],
            "ws:// or wss://",
        );
        server.url = url.to_string();
    }
    if let Some((text, span)) = t.non_empty_string(problems, "trust_root") {
        server.trust_root = decode_key(problems, t, text, &span);
    }
    if let Some((file, span)) = t.non_empty_string(problems, "ca_file") {
        let read = std::fs::read(file)
            .map_err(|e| e.to_string())
            .and_then(|pem| crate::net::tls::ca_certificates(&pem).map_err(|e| e.to_string()));
        match read {
            Ok(certs) => server.ca_certs = certs,
            Err(reason) => problems.report(
                &span,
                ConfigError::BadCaFile {
                    field: t.field("ca_file"),
                    file: file.to_string(),
                    reason,
                },
            ),
        }
        server.ca_file = Some(PathBuf::from(file));
    }
    if let Some((text, span)) = t.non_empty_string(problems, "client_version") {
        match text.parse::<ClientVersion>() {
            // WhatsApp Web versions are 2.3000.N; anything else would be refused (405).
            Ok(v) if v.primary == 2 && v.secondary == 3000 && v.tertiary > 0 => {
                server.client_version = Some(v);
            }
            _ => problems.report(
                &span,
                ConfigError::BadClientVersion {
                    field: t.field("client_version"),
                    found: text.to_string(),
                },
            ),
        }
    }
    if let Some(flag) = t.bool(problems, "discover_version") {
        server.discover_version = flag;
    }
    if let Some((text, span)) = t.non_empty_string(problems, "device_name") {
        match text.parse::<DeviceName>() {
            Ok(name) => server.device_name = name,
            Err(e) => problems.report(
                &span,
                ConfigError::BadDeviceName {
                    field: t.field("device_name"),
                    reason: e.to_string(),
                },
            ),
        }
    }
    server.proxies = read_server_proxies(problems, t);
    server
}

fn check_scheme(
    problems: &mut Problems,
    t: &Table<'_, '_>,
    key: &str,
    url: &str,
    span: &Span,
    schemes: &[&str],
    listed: &'static str,
) {
    if !schemes
        .iter()
        .any(|s| url.starts_with(s) && url.len() > s.len())
    {
        let error = ConfigError::BadUrlScheme {
            field: t.field(key),
            schemes: listed,
            found: url.to_string(),
        };
        problems.report(span, error);
    }
}

/// A 32-byte key in standard base64, padding optional.
fn decode_key(
    problems: &mut Problems,
    t: &Table<'_, '_>,
    text: &str,
    span: &Span,
) -> Option<[u8; 32]> {
    let engine = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    match engine.decode(text.trim()) {
        Err(error) => {
            let field = t.field("trust_root");
            let reason = match error {
                base64::DecodeError::InvalidByte(at, byte)
                | base64::DecodeError::InvalidLastSymbol(at, byte) => {
                    format!(
                        "{:?} at position {} does not belong there",
                        char::from(byte),
                        at + 1
                    )
                }
                base64::DecodeError::InvalidLength(len) => {
                    format!("{len} base64 characters cannot encode whole bytes")
                }
                base64::DecodeError::InvalidPadding => "its '=' padding is wrong".to_string(),
            };
            problems.report(span, ConfigError::TrustRootNotBase64 { field, reason });
            None
        }
        Ok(bytes) => match <[u8; 32]>::try_from(bytes.as_slice()) {
            Ok(key) => Some(key),
            Err(_) => {
                let field = t.field("trust_root");
                let len = bytes.len();
                problems.report(span, ConfigError::TrustRootWrongLength { field, len });
                None
            }
        },
    }
}

fn read_storage(problems: &mut Problems, t: &Table<'_, '_>) -> StorageConfig {
    t.check_keys(problems, &STORAGE_KEYS, home_of);
    let mut storage = StorageConfig::default();
    if let Some((dir, _)) = t.non_empty_string(problems, "data_dir") {
        storage.data_dir = PathBuf::from(dir);
    }
    storage
}

fn read_limits(problems: &mut Problems, t: &Table<'_, '_>) -> Limits {
    t.check_keys(problems, &LIMITS_KEYS, home_of);
    let mut limits = Limits::default();
    let slots = [
        ("connects_per_second", &mut limits.connects_per_second),
        ("connect_burst", &mut limits.connect_burst),
        ("handshakes_in_flight", &mut limits.handshakes_in_flight),
        ("max_sessions", &mut limits.max_sessions),
    ];
    for (key, slot) in slots {
        if let Some((value, _)) = t.count(problems, key, 1) {
            *slot = value;
        }
    }
    limits
}

fn read_http(problems: &mut Problems, t: &Table<'_, '_>) -> HttpConfig {
    t.check_keys(problems, &HTTP_KEYS, home_of);
    let mut http = HttpConfig::default();
    if let Some((text, span)) = t.string(problems, "listen") {
        match text.parse::<SocketAddr>() {
            Ok(addr) => http.listen = addr,
            Err(_) => {
                let error = ConfigError::BadAddress {
                    field: t.field("listen"),
                    found: text.to_string(),
                };
                problems.report(&span, error);
            }
        }
    }
    http.token_env = t
        .non_empty_string(problems, "token_env")
        .map(|(name, _)| name.to_string());
    if let Some((token, span)) = t.non_empty_string(problems, "token") {
        if http.token_env.is_some() {
            problems.report(&span, ConfigError::TokenTwice);
        }
        http.token = Some(HttpToken::new(token));
    }
    if let Some((n, _)) = t.count(problems, "max_connections", 1) {
        http.max_connections = n;
    }
    if let Some((n, _)) = t.count(problems, "reserve_connections", 1) {
        http.reserve_connections = n;
    }
    if let Some((d, _)) = t.duration(problems, "header_timeout") {
        http.header_timeout = d;
    }
    if let Some((d, _)) = t.duration(problems, "idle_timeout") {
        http.idle_timeout = d;
    }
    http.read_token_env = t
        .non_empty_string(problems, "read_token_env")
        .map(|(name, _)| name.to_string());
    http
}

fn read_cluster(problems: &mut Problems, t: &Table<'_, '_>) -> ClusterConfig {
    t.check_keys(problems, &CLUSTER_KEYS, home_of);
    t.require(problems, "redis_url");
    t.require(problems, "node_id");
    let mut cluster = ClusterConfig::default();
    if let Some((url, span)) = t.non_empty_string(problems, "redis_url") {
        let schemes = ["redis://", "rediss://"];
        check_scheme(
            problems,
            t,
            "redis_url",
            url,
            &span,
            &schemes,
            "redis:// or rediss://",
        );
        cluster.redis_url = url.to_string();
    }
    if let Some((node_id, _)) = t.non_empty_string(problems, "node_id") {
        cluster.node_id = node_id.to_string();
    }
    if let Some((ttl, _)) = t.duration(problems, "lease_ttl") {
        cluster.lease_ttl = ttl;
    }
    let stores = [
        ("file", CredentialStore::File),
        ("redis", CredentialStore::Redis),
    ];
    if let Some((store, _)) = t.choice(problems, "credentials", &stores, "\"file\" or \"redis\"") {
        cluster.credentials = store;
    }
    cluster
}

fn read_sessions(
    problems: &mut Problems,
    root: &DeTable<'_>,
    global: &Policy,
    limits: &Limits,
    text: &str,
) -> Vec<(SessionConfig, SessionProxy)> {
    let Some(value) = root.get("session") else {
        return Vec::new();
    };
    let DeValue::Array(items) = value.get_ref() else {
        let error = ConfigError::WrongType {
            field: "session".to_string(),
            expected: "an array of tables written [[session]]",
            found: describe(value.get_ref()),
        };
        problems.report(&value.span(), error);
        return Vec::new();
    };
    let mut first_line_of: HashMap<&str, usize> = HashMap::new();
    let mut sessions = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let number = index + 1;
        let DeValue::Table(entries) = item.get_ref() else {
            let error = ConfigError::WrongType {
                field: format!("[[session]] number {number}"),
                expected: "a table",
                found: describe(item.get_ref()),
            };
            problems.report(&item.span(), error);
            continue;
        };
        let mut t = Table {
            entries,
            span: item.span(),
            place: format!("[[session]] number {number}"),
        };
        if index == limits.max_sessions as usize {
            let error = ConfigError::TooManySessions {
                count: items.len(),
                max: limits.max_sessions,
            };
            problems.report(&t.span, error);
        }
        let id = read_session_id(problems, &t);
        if let Some((id, span)) = &id {
            t.place = format!("session \"{id}\"");
            let line = Position::of_offset(text, span.start).line;
            if let Some(first_line) = first_line_of.insert(id, line) {
                first_line_of.insert(id, first_line);
                let id = id.to_string();
                problems.report(span, ConfigError::DuplicateSessionId { id, first_line });
            }
        }
        let known: Vec<&str> = SESSION_KEYS
            .iter()
            .chain(POLICY_KEYS.iter())
            .copied()
            .collect();
        t.check_keys(problems, &known, home_of);
        let policy = overlay(problems, &t, global);
        let mut session = SessionConfig::new(id.map(|(id, _)| id).unwrap_or_default(), policy);
        if let Some((label, _)) = t.non_empty_string(problems, "label") {
            session.label = label.to_string();
        }
        if let Some((phone, span)) = t.non_empty_string(problems, "phone") {
            let digits = phone.strip_prefix('+').unwrap_or(phone);
            if !digits.chars().all(|c| c.is_ascii_digit()) {
                let error = ConfigError::BadPhone {
                    field: t.field("phone"),
                    found: phone.to_string(),
                };
                problems.report(&span, error);
            }
            session.phone = Some(phone.to_string());
        }
        session.autostart = t.bool(problems, "autostart").unwrap_or(false);
        session.webhook = read_session_webhook(problems, &t);
        let proxy = read_session_proxy(problems, &t);
        sessions.push((session, proxy));
    }
    sessions
}

/// The session's id if present and safe; reports what is wrong otherwise.
fn read_session_id<'a>(problems: &mut Problems, t: &Table<'a, '_>) -> Option<(&'a str, Span)> {
    t.require(problems, "id");
    let (id, span) = t.string(problems, "id")?;
    if id.is_empty() {
        problems.report(
            &span,
            ConfigError::Empty {
                field: t.field("id"),
            },
        );
        return None;
    }
    match check_session_id(id) {
        Ok(()) => Some((id, span)),
        Err(error) => {
            problems.report(&span, error);
            None
        }
    }
}
