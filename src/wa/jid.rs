//! JIDs as the messaging code needs them: `user[.agent][:device]@server` parsed into parts,
//! printed back (device 0 without the `:0`), and the server names WhatsApp uses for phone
//! numbers, LIDs, hosted accounts and groups (PROTOCOL-MESSAGING.md §3, §6).

use std::fmt;
use std::str::FromStr;

/// Phone-number users.
pub const PN_SERVER: &str = "s.whatsapp.net";
/// Linked-identity users (`…@lid`).
pub const LID_SERVER: &str = "lid";
/// Hosted (business provider) phone-number users.
pub const HOSTED_SERVER: &str = "hosted";
/// Hosted LID users.
pub const HOSTED_LID_SERVER: &str = "hosted.lid";
/// Groups.
pub const GROUP_SERVER: &str = "g.us";

/// A parsed JID. `device` is 0 for the primary (the phone) and for bare user JIDs.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Jid {
    pub user: String,
    /// The agent part of `user.agent:device@server`; 0 when absent.
    pub agent: u8,
    pub device: u32,
    pub server: String,
}

/// Why a string is not a JID; names the string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a JID (expected user[:device]@server)")]
pub struct JidError(pub String);

impl Jid {
    /// A phone-number user JID (device 0).
    pub fn pn(user: &str) -> Self {
        Jid::new(user, 0, PN_SERVER)
    }

    /// A JID from its parts (agent 0).
    pub fn new(user: &str, device: u32, server: &str) -> Self {
        Jid {
            user: user.to_string(),
            agent: 0,
            device,
            server: server.to_string(),
        }
    }

    /// The same user with another device number.
    pub fn with_device(&self, device: u32) -> Self {
        Jid {
            device,
            ..self.clone()
        }
    }

    /// The bare user JID (`user@server`, no agent or device).
    pub fn to_user(&self) -> Self {
        Jid::new(&self.user, 0, &self.server)
    }

    /// Whether both name the same account (user and server), whatever the device.
    pub fn same_user(&self, other: &Jid) -> bool {
        self.user == other.user && self.server == other.server
    }

    pub fn is_lid(&self) -> bool {
        self.server == LID_SERVER || self.server == HOSTED_LID_SERVER
    }

    pub fn is_group(&self) -> bool {
        self.server == GROUP_SERVER
    }
}

impl FromStr for Jid {
    type Err = JidError;

    fn from_str(s: &str) -> Result<Self, JidError> {
        let bad = || JidError(s.to_string());
        let (local, server) = s.split_once('@').ok_or_else(bad)?;
        if server.is_empty() || local.is_empty() {
            return Err(bad());
        }
        let (local, device) = match local.split_once(':') {
            Some((local, device)) => (local, device.parse::<u32>().map_err(|_| bad())?),
            None => (local, 0),
        };
        let (user, agent) = match local.split_once('.') {
            Some((user, agent)) => (user, agent.parse::<u8>().map_err(|_| bad())?),
            None => (local, 0),
        };
        if user.is_empty() {
            return Err(bad());
        }
        Ok(Jid {
            user: user.to_string(),
            agent,
            device,
            server: server.to_string(),
        })
    }
}

impl fmt::Display for Jid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.user)?;
        if self.agent != 0 {
            write!(f, ".{}", self.agent)?;
        }
        if self.device != 0 {
            write!(f, ":{}", self.device)?;
        }
        write!(f, "@{}", self.server)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn jids_parse_and_print_back() {
        for s in [
            "15551234567@s.whatsapp.net",
            "15551234567:7@s.whatsapp.net",
            "987654:3@lid",
            "1203630@g.us",
            "15551234567.1:2@s.whatsapp.net",
        ] {
            let jid: Jid = s.parse().unwrap();
            assert_eq!(jid.to_string(), s);
        }
        let jid: Jid = "15551234567:0@s.whatsapp.net".parse().unwrap();
        assert_eq!(jid.to_string(), "15551234567@s.whatsapp.net");
        let jid: Jid = "987654:3@lid".parse().unwrap();
        assert_eq!((jid.user.as_str(), jid.device), ("987654", 3));
        assert!(jid.is_lid());
        assert_eq!(jid.to_user().to_string(), "987654@lid");
    }

    #[test]
    fn bad_jids_are_refused_by_name() {
        for s in ["", "abc", "@s.whatsapp.net", "1:x@s.whatsapp.net", "1@"] {
            let err = s.parse::<Jid>().unwrap_err();
            assert!(err.to_string().contains(&format!("{s:?}")), "{err}");
        }
    }
}
