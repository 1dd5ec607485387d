//! What can be wrong with a config file, and the list of every problem found, each rendered
//! as `FILE:LINE:COL: message`.

use std::fmt;

/// Extra advice after an unknown key or table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hint {
    /// Nothing close enough to suggest.
    None,
    /// A known name one or two typos away.
    DidYouMean(String),
    /// The key is known, but in another table.
    BelongsIn(String),
}

impl fmt::Display for Hint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hint::None => Ok(()),
            Hint::DidYouMean(name) => write!(f, "; did you mean {name}?"),
            Hint::BelongsIn(table) => write!(f, "; it belongs in {table}"),
        }
    }
}

/// One problem in a config file. `field` reads like "backoff_cap in [policy]" or
/// "phone in session \"sales-1\"".
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("the file is not valid TOML: {message}")]
    Syntax { message: String },
    #[error("unknown table [{name}]{hint}")]
    UnknownTable { name: String, hint: Hint },
    #[error("unknown key {key} in {place}{hint}")]
    UnknownKey {
        key: String,
        place: String,
        hint: Hint,
    },
    #[error("{field} must be {expected}, found {found}")]
    WrongType {
        field: String,
        expected: &'static str,
        found: String,
    },
    #[error("{field} is required but missing")]
    MissingKey { field: String },
    #[error("{field} must not be empty")]
    Empty { field: String },
    #[error("{field} is not a valid duration: {reason}")]
    BadDuration { field: String, reason: String },
    #[error("{field} must be longer than zero")]
    ZeroDuration { field: String },
    #[error("{field} must be at least {min}, found {found}")]
    NumberTooSmall { field: String, min: u32, found: i64 },
    #[error("{field} must be at most {max}, found {found}")]
    NumberTooLarge {
        field: String,
        max: u32,
        found: String,
    },
    #[error("{field} ({value}) must not be shorter than {other} ({other_value})")]
    ShorterThan {
        field: String,
        value: String,
        other: &'static str,
        other_value: String,
    },
    #[error("{field} ({value}) must not be longer than {other} ({other_value})")]
    LongerThan {
        field: String,
        value: String,
        other: &'static str,
        other_value: String,
    },
    #[error("{field} must be at least 0 and below 1, found {found}")]
    JitterOutOfRange { field: String, found: f64 },
    #[error("{field} must be {choices}, found \"{found}\"")]
    UnknownChoice {
        field: String,
        choices: &'static str,
        found: String,
    },
    #[error("{field} is not valid base64: {reason}")]
    TrustRootNotBase64 { field: String, reason: String },
    #[error("{field} must be a 32-byte public key, but it decodes to {len} bytes")]
    TrustRootWrongLength { field: String, len: usize },
    #[error("{field} names {file}, which cannot be trusted: {reason}")]
    BadCaFile {
        field: String,
        file: String,
        reason: String,
    },
    #[error("{field} must start with {schemes}, found \"{found}\"")]
    BadUrlScheme {
        field: String,
        schemes: &'static str,
        found: String,
    },
    #[error("{field} must be an address and port such as \"127.0.0.1:9464\", found \"{found}\"")]
    BadAddress { field: String, found: String },
    #[error("{field} must be digits with an optional leading '+', found \"{found}\"")]
    BadPhone { field: String, found: String },
    #[error("session id \"{id}\" may only use letters, digits, '.', '_' and '-', found {found:?}")]
    UnsafeSessionId { id: String, found: char },
    #[error("session id \"{id}\" must not start with '.'")]
    SessionIdStartsWithDot { id: String },
    #[error(
        "session id \"{id}\" is the name of one of wasp's own files in the data directory; choose another"
    )]
    SessionIdReserved { id: String },
    #[error("session id \"{id}\" is {len} characters long; the limit is {max}")]
    SessionIdTooLong { id: String, len: usize, max: usize },
    #[error("session id \"{id}\" is already used by the session on line {first_line}")]
    DuplicateSessionId { id: String, first_line: usize },
    #[error("{count} sessions are configured but max_sessions in [limits] allows {max}")]
    TooManySessions { count: usize, max: u32 },
    #[error("[http] sets both token and token_env; keep only one")]
    TokenTwice,
    #[error(
        "{field} must be a WhatsApp Web version such as \"2.3000.1045649367\", found \"{found}\""
    )]
    BadClientVersion { field: String, found: String },
    #[error("{field} is not a device name: {reason}")]
    BadDeviceName { field: String, reason: String },
    #[error("{field} must be a configured session id or a phone number, found \"{found}\"")]
    BadProbePeer { field: String, found: String },
    #[error("{field} has a bad warm-up step: {reason}")]
    BadWarmup { field: String, reason: String },
    #[error("{field} is not a webhook URL: {reason}")]
    BadWebhookUrl { field: String, reason: String },
    #[error("{field} names an unknown event \"{found}\": use message, receipt or state")]
    UnknownWebhookEvent { field: String, found: String },
    #[error("{field} is not a proxy URL: {reason}")]
    BadProxyUrl { field: String, reason: String },
    #[error("set proxy or proxies in [server], not both")]
    ProxyTwice,
}

/// Where a problem is: 1-based line and column (columns count characters, not bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl Position {
    /// The position of byte `offset` in `text` (clamped to the text, and to a char boundary).
    pub fn of_offset(text: &str, offset: usize) -> Position {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Position {
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }
}

/// One problem with its place in the file (none when the file could not be read).
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub position: Option<Position>,
    pub error: ConfigError,
}

/// Every problem found in one config file, in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigErrors {
    file: String,
    problems: Vec<Problem>,
}

impl ConfigErrors {
    /// Problems of `file`; they are sorted by position.
    pub fn new(file: impl Into<String>, mut problems: Vec<Problem>) -> Self {
        problems.sort_by_key(|p| p.position);
        ConfigErrors {
            file: file.into(),
            problems,
        }
    }

    /// The file was not readable at all.
    pub fn unreadable(file: impl Into<String>, reason: impl Into<String>) -> Self {
        let file = file.into();
        let error = ConfigError::Unreadable {
            path: file.clone(),
            reason: reason.into(),
        };
        ConfigErrors::new(
            file,
            vec![Problem {
                position: None,
                error,
            }],
        )
    }

    /// The file name as it was given.
    pub fn file(&self) -> &str {
        &self.file
    }

    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }

    /// One line per problem: `FILE:LINE:COL: message` (just the message when there is no
    /// position, as for an unreadable file, whose message names the file). Control
    /// characters (terminal escapes in a bad id) are shown escaped, never raw.
    pub fn lines(&self) -> Vec<String> {
        self.problems
            .iter()
            .map(|p| match p.position {
                Some(at) => format!("{}:{}:{}: {}", self.file, at.line, at.column, p.error),
                None => p.error.to_string(),
            })
            .map(|line| escape_controls(&line))
            .collect()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.lines().join("\n"))
    }
}

impl std::error::Error for ConfigErrors {}

/// `text` with every control character written as a Rust escape (`\u{1b}`), so that text
/// from a file cannot drive the terminal it is printed on.
pub fn escape_controls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The known name closest to `unknown`, if it is close enough to be a typo.
pub(crate) fn closest<'a>(unknown: &str, known: &[&'a str]) -> Option<&'a str> {
    let limit = match unknown.chars().count() {
        0..=4 => 1,
        5..=10 => 2,
        _ => 3,
    };
    known
        .iter()
        .map(|k| (edit_distance(unknown, k), *k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance over characters, ignoring ASCII case.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().map(|c| c.to_ascii_lowercase()).collect();
    let b: Vec<char> = b.chars().map(|c| c.to_ascii_lowercase()).collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_lines_and_characters() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(
            Position::of_offset(text, 0),
            Position { line: 1, column: 1 }
        );
        assert_eq!(
            Position::of_offset(text, 6),
            Position { line: 2, column: 1 }
        );
        // "é" is two bytes but one column.
        let eq = text.find("= 2").unwrap_or_default();
        assert_eq!(
            Position::of_offset(text, eq),
            Position { line: 2, column: 4 }
        );
        assert_eq!(
            Position::of_offset(text, 999),
            Position { line: 3, column: 1 }
        );
    }

    #[test]
    fn suggests_only_close_names() {
        let known = ["backoff_cap", "backoff_base", "keepalive_deadline"];
        assert_eq!(closest("bakoff_cap", &known), Some("backoff_cap"));
        assert_eq!(closest("Backoff_Base", &known), Some("backoff_base"));
        assert_eq!(closest("colour", &known), None);
    }

    #[test]
    fn lines_are_file_line_column_message() {
        let errors = ConfigErrors::new(
            "x.toml",
            vec![
                Problem {
                    position: Some(Position { line: 9, column: 2 }),
                    error: ConfigError::TokenTwice,
                },
                Problem {
                    position: Some(Position { line: 3, column: 1 }),
                    error: ConfigError::MissingKey {
                        field: "id in [[session]] number 1".into(),
                    },
                },
            ],
        );
        assert_eq!(
            errors.lines(),
            [
                "x.toml:3:1: id in [[session]] number 1 is required but missing",
                "x.toml:9:2: [http] sets both token and token_env; keep only one",
            ]
        );
    }
}
