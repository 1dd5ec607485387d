//! Proxies: `[server] proxy = "<url>"` or `proxies = [..]` (assigned round-robin), and a
//! session's own `proxy = "<url>" | "direct"`. A `ProxyUrl` never shows its password: its
//! `Display` and `Debug` read `socks5://user:***@host:port`, and so do the config's messages.

use std::fmt;

use toml::de::DeValue;

use super::error::ConfigError;
use super::read::{Problems, Span, Table, describe};

/// How the proxy is spoken to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyKind {
    /// `socks5://`: the target's name is resolved here, the proxy gets its address.
    Socks5,
    /// `socks5h://`: the proxy resolves the target's name.
    Socks5h,
    /// `http://`: an HTTP `CONNECT` tunnel.
    Http,
}

impl ProxyKind {
    pub fn scheme(self) -> &'static str {
        match self {
            ProxyKind::Socks5 => "socks5",
            ProxyKind::Socks5h => "socks5h",
            ProxyKind::Http => "http",
        }
    }
}

/// A proxy password. `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyPassword(String);

impl ProxyPassword {
    /// The password itself, for the one place that sends it to the proxy.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ProxyPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// User name and password for the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyAuth {
    pub user: String,
    pub password: ProxyPassword,
}

/// A checked proxy URL: `scheme://[user[:password]@]host:port`.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyUrl {
    pub kind: ProxyKind,
    /// A name or an IP address (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    pub auth: Option<ProxyAuth>,
}

impl ProxyUrl {
    /// Parses `text`, or says in a few words why it is not a proxy URL (never repeating the
    /// password).
    pub fn parse(text: &str) -> Result<ProxyUrl, String> {
        let shown = redact(text);
        let schemes = [
            ("socks5://", ProxyKind::Socks5),
            ("socks5h://", ProxyKind::Socks5h),
            ("http://", ProxyKind::Http),
        ];
        let Some((kind, rest)) = schemes
            .iter()
            .find_map(|(prefix, kind)| text.strip_prefix(prefix).map(|rest| (*kind, rest)))
        else {
            return Err(format!(
                "\"{shown}\" must start with socks5://, socks5h:// or http://"
            ));
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '?', '#']) || authority.contains(char::is_whitespace) {
            return Err(format!(
                "\"{shown}\" has a path or spaces; a proxy is only host:port"
            ));
        }
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((userinfo, hostport)) => (Some(userinfo), hostport),
            None => (None, authority),
        };
        let auth = userinfo.map(|u| parse_userinfo(u, &shown)).transpose()?;
        let (host, port) = split_host_port(hostport, &shown)?;
        Ok(ProxyUrl {
            kind,
            host,
            port,
            auth,
        })
    }

    /// `host:port` as a dial target (IPv6 in brackets).
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

fn parse_userinfo(userinfo: &str, shown: &str) -> Result<ProxyAuth, String> {
    let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    let user = percent_decode(user)
        .ok_or_else(|| format!("\"{shown}\" has a user name with a bad %-escape"))?;
    let password = percent_decode(password)
        .ok_or_else(|| format!("\"{shown}\" has a password with a bad %-escape"))?;
    if user.is_empty() {
        return Err(format!("\"{shown}\" has credentials without a user name"));
    }
    // RFC 1929 carries each in one length byte.
    if user.len() > 255 || password.len() > 255 {
        return Err(format!(
            "\"{shown}\" has a user name or password longer than 255 bytes"
        ));
    }
    Ok(ProxyAuth {
        user,
        password: ProxyPassword(password),
    })
}

fn split_host_port(hostport: &str, shown: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("\"{shown}\" has an unclosed '[' in its host"))?;
        (host, after.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') => (host, Some(port)),
            Some(_) => return Err(format!("\"{shown}\" needs brackets around an IPv6 host")),
            None => (hostport, None),
        }
    };
    let Some(port) = port else {
        return Err(format!("\"{shown}\" has no port (write host:port)"));
    };
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("\"{shown}\" has a port that is not 1 to 65535"))?;
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
    if !host_ok {
        return Err(format!("\"{shown}\" has no valid host name"));
    }
    Ok((host.to_string(), port))
}

/// `%XX` escapes decoded (UTF-8 result), `None` for a broken escape.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `text` with whatever stands between the user name's ':' and the last '@' replaced by
/// `***`: safe to show even when `text` is not a valid URL.
pub fn redact(text: &str) -> String {
    let start = text.find("://").map_or(0, |i| i + 3);
    let rest = &text[start..];
    let Some(at) = rest.rfind('@') else {
        return text.to_string();
    };
    match rest[..at].find(':') {
        Some(colon) => format!("{}{}:***{}", &text[..start], &rest[..colon], &rest[at..]),
        None => text.to_string(),
    }
}

impl fmt::Display for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.kind.scheme())?;
        if let Some(auth) = &self.auth {
            write!(f, "{}:***@", auth.user)?;
        }
        f.write_str(&self.address())
    }
}

impl fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProxyUrl({self})")
    }
}

/// Reads `[server] proxy` or `[server] proxies` (not both): the list sessions without their
/// own `proxy` are spread over.
pub(super) fn read_server_proxies(problems: &mut Problems, t: &Table<'_, '_>) -> Vec<ProxyUrl> {
    let mut proxies = Vec::new();
    if let Some((text, span)) = t.non_empty_string(problems, "proxy") {
        proxies.extend(parse_at(problems, t, "proxy", text, &span));
    }
    let Some(value) = t.get("proxies") else {
        return proxies;
    };
    if t.get("proxy").is_some() {
        problems.report(&value.span(), ConfigError::ProxyTwice);
        return proxies;
    }
    let DeValue::Array(items) = value.get_ref() else {
        problems.report(
            &value.span(),
            ConfigError::WrongType {
                field: t.field("proxies"),
                expected: "an array of proxy URLs",
                found: describe(value.get_ref()),
            },
        );
        return proxies;
    };
    if items.is_empty() {
        let field = t.field("proxies");
        problems.report(&value.span(), ConfigError::Empty { field });
    }
    for item in items.iter() {
        match item.get_ref().as_str() {
            Some(text) => proxies.extend(parse_at(problems, t, "proxies", text, &item.span())),
            None => problems.report(
                &item.span(),
                ConfigError::WrongType {
                    field: t.field("proxies"),
                    expected: "an array of proxy URLs",
                    found: describe(item.get_ref()),
                },
            ),
        }
    }
    proxies
}

/// A session's `proxy` key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum SessionProxy {
    /// Not given: one of `[server]`'s proxies, if any.
    Inherit,
    /// `proxy = "direct"`: no proxy, whatever `[server]` says.
    Direct,
    Url(ProxyUrl),
}

pub(super) fn read_session_proxy(problems: &mut Problems, t: &Table<'_, '_>) -> SessionProxy {
    let Some((text, span)) = t.non_empty_string(problems, "proxy") else {
        return SessionProxy::Inherit;
    };
    if text.trim() == "direct" {
        return SessionProxy::Direct;
    }
    match parse_at(problems, t, "proxy", text, &span) {
        Some(url) => SessionProxy::Url(url),
        None => SessionProxy::Inherit,
    }
}

fn parse_at(
    problems: &mut Problems,
    t: &Table<'_, '_>,
    key: &str,
    text: &str,
    span: &Span,
) -> Option<ProxyUrl> {
    match ProxyUrl::parse(text.trim()) {
        Ok(url) => Some(url),
        Err(reason) => {
            let field = t.field(key);
            problems.report(span, ConfigError::BadProxyUrl { field, reason });
            None
        }
    }
}

/// Each session's path: its own proxy, none for `direct`, else `[server]`'s proxies dealt
/// out round-robin over the inheriting sessions sorted by id (so a session keeps its proxy
/// across restarts of the same file, whatever the order of the `[[session]]` tables).
pub(super) fn assign(
    server: &[ProxyUrl],
    wanted: &[SessionProxy],
    ids: &[&str],
) -> Vec<Option<ProxyUrl>> {
    let mut inheriting: Vec<usize> = (0..wanted.len())
        .filter(|i| wanted[*i] == SessionProxy::Inherit)
        .collect();
    inheriting.sort_by_key(|i| ids[*i]);
    let mut out: Vec<Option<ProxyUrl>> = wanted
        .iter()
        .map(|w| match w {
            SessionProxy::Url(url) => Some(url.clone()),
            SessionProxy::Inherit | SessionProxy::Direct => None,
        })
        .collect();
    if !server.is_empty() {
        for (n, i) in inheriting.into_iter().enumerate() {
            out[i] = Some(server[n % server.len()].clone());
        }
    }
    out
}

#[cfg(test)]
#[path = "proxy_tests.rs"]
mod tests;
