//! `[webhook]`: where events are POSTed (`url`), the variable holding the signing secret
//! (`secret_env`), which events go out, and the delivery timing; and a session's own
//! `webhook = "<url>" | "off"`.

use std::time::Duration;

use toml::de::DeValue;

use super::error::ConfigError;
use super::read::{Problems, Table, describe};

pub(super) const WEBHOOK_KEYS: [&str; 7] = [
    "url",
    "secret_env",
    "events",
    "timeout",
    "retry_base",
    "retry_cap",
    "give_up_after",
];

/// An event kind a webhook can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WebhookEvent {
    /// A received message.
    Message,
    /// A sent message changed status.
    Receipt,
    /// A session changed state (online, backoff, logged out, ...).
    State,
}

impl WebhookEvent {
    pub const ALL: [WebhookEvent; 3] = [
        WebhookEvent::Message,
        WebhookEvent::Receipt,
        WebhookEvent::State,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WebhookEvent::Message => "message",
            WebhookEvent::Receipt => "receipt",
            WebhookEvent::State => "state",
        }
    }

    fn parse(text: &str) -> Option<WebhookEvent> {
        Self::ALL.into_iter().find(|e| e.as_str() == text)
    }
}

/// A checked `http://` or `https://` URL: scheme, host, port and path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// Starts with '/'; includes the query.
    pub path: String,
    text: String,
}

impl WebhookUrl {
    /// Parses `text`, or says in a few words why it is not a webhook URL.
    pub fn parse(text: &str) -> Result<WebhookUrl, String> {
        let (tls, rest) = if let Some(rest) = text.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = text.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(format!("\"{text}\" must start with http:// or https://"));
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest[i..].starts_with('/') => (&rest[..i], rest[i..].to_string()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_string()),
        };
        if authority.contains('@') {
            return Err(format!(
                "\"{text}\" carries credentials; sign with secret_env instead"
            ));
        }
        if authority.is_empty() || path.contains(char::is_whitespace) {
            return Err(format!("\"{text}\" names no host or has spaces"));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(']') || host.starts_with('[') => {
                let port = port
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| format!("its port \"{port}\" is not 1 to 65535"))?;
                (host, port)
            }
            _ => (authority, if tls { 443 } else { 80 }),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty()
            || !host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'))
        {
            return Err(format!("\"{text}\" has no valid host name"));
        }
        Ok(WebhookUrl {
            tls,
            host: host.to_string(),
            port,
            path,
            text: text.to_string(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl std::fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// `[webhook]`.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookConfig {
    /// Where every session's events go, unless the session says otherwise.
    pub url: Option<WebhookUrl>,
    /// The variable holding the HMAC secret (`X-Wasp-Signature: sha256=<hex>`).
    pub secret_env: Option<String>,
    /// Which events are sent.
    pub events: Vec<WebhookEvent>,
    /// A request that has not answered in this long failed (and is retried).
    pub timeout: Duration,
    /// The first retry waits about this long; each next one twice as long.
    pub retry_base: Duration,
    /// The longest wait between two tries.
    pub retry_cap: Duration,
    /// An event still failing this long after it was queued goes to the dead letters.
    pub give_up_after: Duration,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            url: None,
            secret_env: None,
            events: WebhookEvent::ALL.to_vec(),
            timeout: Duration::from_secs(10),
            retry_base: Duration::from_secs(1),
            retry_cap: Duration::from_secs(300),
            give_up_after: Duration::from_secs(24 * 3600),
        }
    }
}

impl WebhookConfig {
    /// The `secret_env` variable when it is named but unset or blank.
    pub fn missing_secret(&self) -> Option<&str> {
        let name = self.secret_env.as_deref()?;
        let blank = std::env::var(name).map_or(true, |v| v.trim().is_empty());
        blank.then_some(name)
    }
}

/// A session's `webhook` key.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SessionWebhook {
    /// Not given: `[webhook] url`, if any.
    #[default]
    Inherit,
    /// `webhook = "off"`: none of this session's events are sent.
    Off,
    /// `webhook = "<url>"`: this session's events go here.
    Url(WebhookUrl),
}

pub(super) fn read_webhook(problems: &mut Problems, t: &Table<'_, '_>) -> WebhookConfig {
    t.check_keys(problems, &WEBHOOK_KEYS, |_| None);
    let mut webhook = WebhookConfig::default();
    if let Some((text, span)) = t.non_empty_string(problems, "url") {
        match WebhookUrl::parse(text.trim()) {
            Ok(url) => webhook.url = Some(url),
            Err(reason) => problems.report(
                &span,
                ConfigError::BadWebhookUrl {
                    field: t.field("url"),
                    reason,
                },
            ),
        }
    }
    webhook.secret_env = t
        .non_empty_string(problems, "secret_env")
        .map(|(name, _)| name.to_string());
    let durations = [
        ("timeout", &mut webhook.timeout),
        ("retry_base", &mut webhook.retry_base),
        ("retry_cap", &mut webhook.retry_cap),
        ("give_up_after", &mut webhook.give_up_after),
    ];
    for (key, slot) in durations {
        if let Some((d, _)) = t.duration(problems, key) {
            *slot = d;
        }
    }
    if let Some(value) = t.get("events") {
        let DeValue::Array(items) = value.get_ref() else {
            problems.report(
                &value.span(),
                ConfigError::WrongType {
                    field: t.field("events"),
                    expected: "an array such as [\"message\", \"receipt\", \"state\"]",
                    found: describe(value.get_ref()),
                },
            );
            return webhook;
        };
        webhook.events.clear();
        for item in items.iter() {
            let text = item.get_ref().as_str();
            match text.and_then(WebhookEvent::parse) {
                Some(event) if !webhook.events.contains(&event) => webhook.events.push(event),
                Some(_) => {}
                None => problems.report(
                    &item.span(),
                    ConfigError::UnknownWebhookEvent {
                        field: t.field("events"),
                        found: text.map_or_else(|| describe(item.get_ref()), str::to_string),
                    },
                ),
            }
        }
    }
    webhook
}

/// A session's `webhook = "<url>" | "off"`.
pub(super) fn read_session_webhook(problems: &mut Problems, t: &Table<'_, '_>) -> SessionWebhook {
    let Some((text, span)) = t.non_empty_string(problems, "webhook") else {
        return SessionWebhook::Inherit;
    };
    if text.trim() == "off" {
        return SessionWebhook::Off;
    }
    match WebhookUrl::parse(text.trim()) {
        Ok(url) => SessionWebhook::Url(url),
        Err(reason) => {
            let reason = format!("{reason} (or write \"off\")");
            let field = t.field("webhook");
            problems.report(&span, ConfigError::BadWebhookUrl { field, reason });
            SessionWebhook::Inherit
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_their_parts() {
        let u = WebhookUrl::parse("https://hooks.example.com/wasp?x=1").unwrap();
        assert_eq!(
            (u.tls, u.host.as_str(), u.port),
            (true, "hooks.example.com", 443)
        );
        assert_eq!(u.path, "/wasp?x=1");
        let u = WebhookUrl::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!((u.tls, u.port, u.path.as_str()), (false, 8080, "/"));
        assert!(WebhookUrl::parse("ftp://x").is_err());
        assert!(WebhookUrl::parse("http://").is_err());
        assert!(WebhookUrl::parse("http://h:99999/").is_err());
        assert!(WebhookUrl::parse("http://user:pw@h/").is_err());
    }

    #[test]
    fn the_section_and_a_session_override_read() {
        let config = super::super::parse(
            "[webhook]\nurl = \"https://h.example/hook\"\nsecret_env = \"S\"\nevents = [\"message\"]\ntimeout = \"2s\"\n\
             [[session]]\nid = \"a\"\nwebhook = \"off\"\n[[session]]\nid = \"b\"\nwebhook = \"http://127.0.0.1:9/b\"\n[[session]]\nid = \"c\"\n",
            "s.toml",
        )
        .unwrap();
        let w = config.webhook.unwrap();
        assert_eq!(w.events, vec![WebhookEvent::Message]);
        assert_eq!(w.timeout, Duration::from_secs(2));
        assert_eq!(w.secret_env.as_deref(), Some("S"));
        assert_eq!(config.sessions[0].webhook, SessionWebhook::Off);
        assert!(matches!(&config.sessions[1].webhook, SessionWebhook::Url(u) if u.port == 9));
        assert_eq!(config.sessions[2].webhook, SessionWebhook::Inherit);
    }

    #[test]
    fn bad_values_name_the_field() {
        let err = super::super::parse(
            "[webhook]\nurl = \"ftp://x\"\nevents = [\"mesage\"]\nsecrets_env = \"S\"\n[[session]]\nid = \"a\"\nwebhook = \"nope\"\n",
            "s.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("url in [webhook] is not a webhook URL"),
            "{err}"
        );
        assert!(err.contains("unknown event \"mesage\""), "{err}");
        assert!(err.contains("secrets_env"), "{err}");
        assert!(err.contains("webhook in session \"a\""), "{err}");
    }
}
