//! sessions.toml: the schema, its defaults, and validation that reports every problem at
//! its `FILE:LINE:COL`.
//!
//! `parse` walks the spanned TOML tree (`toml::de::DeTable`) by hand instead of deriving
//! `Deserialize`, so that one pass can report every unknown key, bad value and broken
//! cross-field rule, each at its own position.

mod duration;
mod error;
mod messages;
mod overrides;
mod proxy;

mod probe;
mod read;
mod sections;
mod webhook;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use subtle::ConstantTimeEq;

use crate::session::policy::Policy;
use crate::wa::device::DeviceName;
use crate::wa::payload::ClientVersion;

pub use duration::{format_duration, parse_duration};
pub use error::{ConfigError, ConfigErrors, Hint, Position, Problem, escape_controls};
pub use messages::{MessagesConfig, WarmupStep, parse_warmup_step};
pub use proxy::{ProxyAuth, ProxyKind, ProxyPassword, ProxyUrl};

pub use probe::{ProbeConfig, ProbePeer};
pub use webhook::{SessionWebhook, WebhookConfig, WebhookEvent, WebhookUrl};

/// The real WhatsApp Web endpoint, used when `[server] url` is not given.
pub const WHATSAPP_URL: &str = "wss://web.whatsapp.com/ws/chat";
/// Where credentials, backups and logs go when `[storage] data_dir` is not given.
pub const DEFAULT_DATA_DIR: &str = "./wasp-data";
/// The HTTP endpoint's address when `[http]` is present without `listen`.
pub const DEFAULT_HTTP_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 9464);
/// `[http] max_connections` when not given.
pub const DEFAULT_HTTP_MAX_CONNECTIONS: u32 = 256;
/// `[http] reserve_connections` when not given.
pub const DEFAULT_HTTP_RESERVE_CONNECTIONS: u32 = 16;
/// The largest config file read (a sessions file is a few kilobytes).
pub const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;
/// The longest session id (ids name directories and Redis keys).
pub const MAX_SESSION_ID_LEN: usize = 64;

/// A whole sessions.toml, resolved: every default filled in and every session's policy
/// being the global one overlaid with that session's keys.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    /// The global policy (`[policy]` over the defaults). Sessions carry their own copy.
    pub policy: Policy,
    pub limits: Limits,
    pub http: Option<HttpConfig>,
    pub cluster: Option<ClusterConfig>,
    /// `[messages]`: send limits and retention of the outbox.
    pub messages: MessagesConfig,
    /// `[webhook]`: where events are POSTed, when present.
    pub webhook: Option<WebhookConfig>,
    /// `[probe]`: the end-to-end probe, when present.
    pub probe: Option<ProbeConfig>,
    /// In file order.
    pub sessions: Vec<SessionConfig>,
}

impl Config {
    /// The session with this id.
    pub fn session(&self, id: &str) -> Option<&SessionConfig> {
        self.sessions.iter().find(|s| s.id == id)
    }

    /// How many sessions have `autostart = true`.
    pub fn autostart_count(&self) -> usize {
        self.sessions.iter().filter(|s| s.autostart).count()
    }
}

/// `[server]`: where sessions connect.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// `ws://` or `wss://` URL.
    pub url: String,
    /// The Noise certificate root to trust instead of WhatsApp's (for `wasp sim`).
    pub trust_root: Option<[u8; 32]>,
    /// `client_version = "2.3000.N"`: the WhatsApp Web version to claim when discovery is
    /// off or fails (the built-in one when not set).
    pub client_version: Option<ClientVersion>,
    /// Look up WhatsApp Web's current revision at start (only for web.whatsapp.com).
    pub discover_version: bool,
    /// `device_name = "Browser (OS)"`: the name the phone shows under "Linked devices".
    pub device_name: DeviceName,
    /// `proxy = "<url>"` or `proxies = [..]`: dealt out to sessions without their own.
    pub proxies: Vec<ProxyUrl>,
    /// `ca_file = "ca.pem"`: certificates to trust besides the webpki roots (a `wasp sim
    /// --tls` CA), as written.
    pub ca_file: Option<PathBuf>,
    /// The certificates of `ca_file` (DER), read and checked when the config was read.
    pub ca_certs: Vec<Vec<u8>>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            url: WHATSAPP_URL.to_string(),
            trust_root: None,
            client_version: None,
            discover_version: true,
            device_name: DeviceName::default(),
            proxies: Vec::new(),
            ca_file: None,
            ca_certs: Vec::new(),
        }
    }
}

/// `[storage]`.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageConfig {
    /// As written; a relative path is relative to the working directory.
    pub data_dir: PathBuf,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
        }
    }
}

/// `[limits]`: the global connect rate limit, how many handshakes may run at once, and the
/// pool size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub connects_per_second: u32,
    pub connect_burst: u32,
    /// Dials between their TCP connect and the end of their handshake, at most, at once.
    pub handshakes_in_flight: u32,
    pub max_sessions: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connects_per_second: 5,
            connect_burst: 10,
            handshakes_in_flight: 16,
            max_sessions: 5000,
        }
    }
}

/// `[http]`: the health, sessions and metrics endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// Name of the environment variable holding the bearer token.
    pub token_env: Option<String>,
    /// The bearer token written in the file itself.
    pub token: Option<HttpToken>,
    /// Connections open at once from anyone (`max_connections`); past it only the reserve.
    pub max_connections: u32,
    /// Extra connections kept for `/healthz` and requests with the token
    /// (`reserve_connections`).
    pub reserve_connections: u32,
    /// How long a client may take to send a request's headers (`header_timeout`).
    pub header_timeout: Duration,
    /// A connection with no request for this long is closed (`idle_timeout`).
    pub idle_timeout: Duration,
    /// Name of the variable holding a read-only token for monitoring (`read_token_env`): it
    /// gets GET requests through the reserve, never the QR or an action.
    pub read_token_env: Option<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: DEFAULT_HTTP_LISTEN,
            token_env: None,
            token: None,
            max_connections: DEFAULT_HTTP_MAX_CONNECTIONS,
            reserve_connections: DEFAULT_HTTP_RESERVE_CONNECTIONS,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            read_token_env: None,
        }
    }
}

impl HttpConfig {
    /// The bearer token that guards the POST endpoints: `token` if written in the file, else
    /// the non-empty value of the `token_env` variable, else none (POSTs are then refused).
    pub fn bearer_token(&self) -> Option<HttpToken> {
        if let Some(token) = &self.token {
            return Some(token.clone());
        }
        token_from_env(self.token_env.as_deref()?)
    }

    /// The read-only monitoring token: the non-empty value of the `read_token_env` variable.
    pub fn read_token(&self) -> Option<HttpToken> {
        token_from_env(self.read_token_env.as_deref()?)
    }

    /// The name of a `token_env` or `read_token_env` variable that is set but holds only
    /// whitespace (a mistake to refuse rather than a token to accept).
    pub fn blank_token_variable(&self) -> Option<&str> {
        [self.token_env.as_deref(), self.read_token_env.as_deref()]
            .into_iter()
            .flatten()
            .find(|name| {
                std::env::var_os(name).is_some_and(|v| v.to_string_lossy().trim().is_empty())
            })
    }

    /// Descriptors the endpoint may hold at once: the open share and the reserve.
    pub fn connection_budget(&self) -> u64 {
        u64::from(self.max_connections) + u64::from(self.reserve_connections)
    }
}

/// The trimmed value of the variable `name`, if set and not blank.
fn token_from_env(name: &str) -> Option<HttpToken> {
    let value = std::env::var(name).ok()?;
    (!value.trim().is_empty()).then(|| HttpToken::new(value.trim()))
}

/// A bearer token. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpToken(String);

impl HttpToken {
    pub fn new(token: impl Into<String>) -> Self {
        HttpToken(token.into())
    }

    /// The token itself, for the one place that must compare or send it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Compares a presented token in constant time.
    pub fn matches(&self, presented: &str) -> bool {
        self.0.as_bytes().ct_eq(presented.as_bytes()).into()
    }
}

impl std::fmt::Debug for HttpToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HttpToken(<redacted>)")
    }
}

/// `[cluster]`: several hosts sharing one fleet through Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    pub redis_url: String,
    /// This host's name in leases; must differ between hosts.
    pub node_id: String,
    pub lease_ttl: Duration,
    pub credentials: CredentialStore,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            redis_url: "redis://127.0.0.1:6379".to_string(),
            node_id: "wasp".to_string(),
            lease_ttl: Duration::from_secs(15),
            credentials: CredentialStore::File,
        }
    }
}

/// Where credentials live when clustered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CredentialStore {
    /// In the data dir of the host that runs the session.
    #[default]
    File,
    /// In Redis, so a session can fail over to another host.
    Redis,
}

/// One `[[session]]`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SessionConfig {
    /// Safe as a directory name: `[A-Za-z0-9._-]`, not starting with '.', at most 64.
    pub id: String,
    /// Defaults to the id.
    pub label: String,
    pub phone: Option<String>,
    /// Connect at start even if it was not online before.
    pub autostart: bool,
    /// The global policy overlaid with this session's keys.
    pub policy: Policy,
    /// `webhook = "<url>" | "off"`: this session's own webhook.
    pub webhook: SessionWebhook,
    /// The proxy this session dials through (its own, or one of `[server]`'s), or none.
    pub proxy: Option<ProxyUrl>,
}

impl SessionConfig {
    /// A session with this id as its label, no phone, no autostart.
    pub fn new(id: impl Into<String>, policy: Policy) -> Self {
        let id = id.into();
        SessionConfig {
            label: id.clone(),
            id,
            phone: None,
            autostart: false,
            policy,
            webhook: SessionWebhook::Inherit,
            proxy: None,
        }
    }
}

/// The names of wasp's own files and directories in the data directory, where each session
/// has a directory named after its id.
const RESERVED_IDS: [&str; 8] = [
    "keys.db",
    "keys.db-wal",
    "keys.db-shm",
    "keys.db-journal",
    "sessions.lock",
    "http-token",
    "wasp.sock",
    "logs",
];

/// Checks that `id` can name a directory and a Redis key: non-empty, at most 64
/// characters of `[A-Za-z0-9._-]`, not starting with '.', not one of `RESERVED_IDS`.
pub fn check_session_id(id: &str) -> Result<(), ConfigError> {
    if id.is_empty() {
        return Err(ConfigError::Empty {
            field: "session id".to_string(),
        });
    }
    if let Some(found) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(ConfigError::UnsafeSessionId {
            id: id.to_string(),
            found,
        });
    }
    if id.starts_with('.') {
        return Err(ConfigError::SessionIdStartsWithDot { id: id.to_string() });
    }
    if RESERVED_IDS.contains(&id) {
        return Err(ConfigError::SessionIdReserved { id: id.to_string() });
    }
    if id.len() > MAX_SESSION_ID_LEN {
        return Err(ConfigError::SessionIdTooLong {
            id: id.to_string(),
            len: id.len(),
            max: MAX_SESSION_ID_LEN,
        });
    }
    Ok(())
}

/// Reads and validates a config file. Problems are named after `path` as given.
/// Reads at most `MAX_CONFIG_BYTES` (so `/dev/zero` or a huge file is refused, not read
/// forever).
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    use std::io::Read;
    let file = path.display().to_string();
    let mut bytes = Vec::new();
    let read = std::fs::File::open(path)
        .and_then(|f| f.take(MAX_CONFIG_BYTES + 1).read_to_end(&mut bytes));
    if let Err(error) = read {
        return Err(ConfigErrors::unreadable(file, error.to_string()));
    }
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        let reason = format!(
            "it is larger than {} MiB, far more than a sessions file",
            MAX_CONFIG_BYTES / (1024 * 1024)
        );
        return Err(ConfigErrors::unreadable(file, reason));
    }
    match String::from_utf8(bytes) {
        Ok(text) => parse(&text, &file),
        Err(_) => Err(ConfigErrors::unreadable(file, "it is not UTF-8 text")),
    }
}

/// Validates config text; `file_name` is only used in the rendered problems.
pub fn parse(text: &str, file_name: &str) -> Result<Config, ConfigErrors> {
    sections::parse(text, file_name)
}

#[cfg(test)]
mod tests;
