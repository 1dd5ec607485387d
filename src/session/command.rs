//! The operator's vocabulary: every command the console, the HTTP API and the keymap can send
//! to one session, with the one name each has everywhere (logs, timeline, HTTP paths, keymap
//! `run` values, JSON).

use std::fmt;
use std::str::FromStr;

/// What the operator (console, HTTP) asks of one session. The names (`name()`, `FromStr`,
/// serde) are kebab-case and identical in every layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "&'static str")]
pub enum Command {
    /// Start connecting (from `stopped`, `failed`, `conflict`, ...).
    Connect,
    /// Close any socket and dial now, skipping every wait.
    ReconnectNow,
    /// Close the socket and stay `stopped`.
    Disconnect,
    /// Clear a cooldown, backoff or logout wait, then connect.
    ResetCooldown,
    /// Remove the key material (after one last backup when `backup`).
    WipeCredentials { backup: bool },
    /// Start pairing (a session without credentials shows a QR).
    Pair,
}

/// A name that is not a command; the message lists the names that are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown command `{0}`: use {list}", list = Command::names().join(", "))]
pub struct UnknownCommand(pub String);

impl Command {
    /// Every command, once (wipe in both forms); a new variant is added here too.
    pub const ALL: [Command; 7] = [
        Command::Connect,
        Command::ReconnectNow,
        Command::Disconnect,
        Command::ResetCooldown,
        Command::WipeCredentials { backup: true },
        Command::WipeCredentials { backup: false },
        Command::Pair,
    ];

    /// The kebab-case name used in logs, the timeline, HTTP paths, keymap files and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Command::Connect => "connect",
            Command::ReconnectNow => "reconnect",
            Command::Disconnect => "disconnect",
            Command::ResetCooldown => "reset-cooldown",
            Command::WipeCredentials { backup: true } => "wipe",
            Command::WipeCredentials { backup: false } => "wipe-without-backup",
            Command::Pair => "pair",
        }
    }

    /// A one-word label for tight places (the console's footer).
    pub fn label(self) -> &'static str {
        match self {
            Command::ResetCooldown => "reset",
            Command::WipeCredentials { .. } => "wipe",
            other => other.name(),
        }
    }

    /// One sentence saying what the command does (help screens, error messages).
    pub fn description(self) -> &'static str {
        match self {
            Command::Connect => "Start connecting",
            Command::ReconnectNow => "Close any socket and dial now, skipping every wait",
            Command::Disconnect => "Close the socket and stay stopped",
            Command::ResetCooldown => "Clear a cooldown, backoff or logout wait, then connect",
            Command::WipeCredentials { backup: true } => {
                "Take one last backup, then remove the key material"
            }
            Command::WipeCredentials { backup: false } => {
                "Remove the key material without a last backup"
            }
            Command::Pair => "Start pairing (a session without credentials shows a QR)",
        }
    }

    /// Whether the command destroys something the server cannot give back (the key
    /// material): the console asks the operator to type the session id first, and the HTTP
    /// API does not offer it.
    pub fn is_destructive(self) -> bool {
        matches!(self, Command::WipeCredentials { .. })
    }

    /// Every name, in `ALL` order.
    pub fn names() -> Vec<&'static str> {
        Command::ALL.iter().map(|c| c.name()).collect()
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Command {
    type Err = UnknownCommand;

    fn from_str(text: &str) -> Result<Command, UnknownCommand> {
        Command::ALL
            .into_iter()
            .find(|c| c.name() == text)
            .ok_or_else(|| UnknownCommand(text.to_string()))
    }
}

impl TryFrom<String> for Command {
    type Error = UnknownCommand;

    fn try_from(text: String) -> Result<Command, UnknownCommand> {
        text.parse()
    }
}

impl From<Command> for &'static str {
    fn from(command: Command) -> &'static str {
        command.name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_round_trips_through_its_name_and_serde() {
        for command in Command::ALL {
            let name = command.name();
            assert_eq!(name.parse::<Command>(), Ok(command), "{name}");
            assert_eq!(command.to_string(), name);
            let json = serde_json::to_string(&command).unwrap();
            assert_eq!(json, format!("\"{name}\""));
            assert_eq!(serde_json::from_str::<Command>(&json).unwrap(), command);
            assert!(
                name.chars().all(|c| c.is_ascii_lowercase() || c == '-'),
                "{name} is kebab-case"
            );
        }
        let mut names = Command::names();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Command::ALL.len(), "names are unique");
    }

    #[test]
    fn the_documented_http_names_parse() {
        for (name, command) in [
            ("reconnect", Command::ReconnectNow),
            ("disconnect", Command::Disconnect),
            ("connect", Command::Connect),
            ("reset-cooldown", Command::ResetCooldown),
            ("pair", Command::Pair),
        ] {
            assert_eq!(name.parse::<Command>(), Ok(command));
        }
    }

    #[test]
    fn an_unknown_name_is_refused_with_the_list() {
        let err = "reset cooldown".parse::<Command>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown command `reset cooldown`: use connect, reconnect, disconnect, \
             reset-cooldown, wipe, wipe-without-backup, pair"
        );
        assert!(serde_json::from_str::<Command>("\"explode\"").is_err());
    }

    #[test]
    fn only_the_wipe_is_destructive() {
        for command in Command::ALL {
            assert_eq!(
                command.is_destructive(),
                matches!(command, Command::WipeCredentials { .. }),
                "{command}"
            );
        }
    }
}
