//! `StoreError`: every way the credential store can fail, one sentence each, naming the session
//! and the file. No variant carries file content.

use std::io;
use std::path::PathBuf;

use super::atomic::EnvelopeError;
use super::lock::LockHolder;

/// A failure of the credential store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "session id {session:?} cannot name a directory (it must be 1-200 bytes, not start with '.', and hold no '/', '\\\\' or control characters)"
    )]
    BadSessionId { session: String },

    #[error("could not create the directory for session {session} ({}): {source}", path.display())]
    CreateDir {
        session: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("could not read {what} for session {session} ({}): {source}", path.display())]
    Read {
        session: String,
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("could not write {what} for session {session} ({}): {source}", path.display())]
    Write {
        session: String,
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("could not remove {what} for session {session} ({}): {source}", path.display())]
    Remove {
        session: String,
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("{what} for session {session} ({}) failed verification: {problem}", path.display())]
    Corrupt {
        session: String,
        what: &'static str,
        path: PathBuf,
        #[source]
        problem: EnvelopeError,
    },

    #[error("session {session} has no usable credentials: {reason}")]
    NoUsableCredentials {
        session: String,
        reason: String,
        /// Where the refused credentials file was kept for inspection.
        corrupt_kept: Option<PathBuf>,
    },

    #[error("session {session} has no credentials to back up ({})", path.display())]
    NothingToBackUp { session: String, path: PathBuf },

    #[error("the new backup of session {session} ({}) did not read back intact: {problem}", path.display())]
    BackupVerifyFailed {
        session: String,
        path: PathBuf,
        problem: String,
    },

    #[error("could not encode {what} for session {session}: {detail}")]
    Encode {
        session: String,
        what: &'static str,
        detail: String,
    },

    #[error("could not decode {what} for session {session} ({}): {detail}", path.display())]
    Decode {
        session: String,
        what: &'static str,
        path: PathBuf,
        detail: String,
    },

    #[error("session {session} is held by {holder} (lock file {})", path.display())]
    Locked {
        session: String,
        path: PathBuf,
        holder: LockHolder,
    },

    #[error("Redis refused or could not answer a {what} call for session {session}: {detail}")]
    Redis {
        session: String,
        what: &'static str,
        detail: String,
    },

    #[error(
        "session {session}: the {what} write was refused because this node no longer holds the lease (a newer fencing token exists)"
    )]
    Fenced { session: String, what: &'static str },

    #[error("could not take the lock for session {session} ({}): {source}", path.display())]
    Lock {
        session: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl StoreError {
    /// The session the error is about.
    pub fn session(&self) -> &str {
        match self {
            StoreError::BadSessionId { session }
            | StoreError::CreateDir { session, .. }
            | StoreError::Read { session, .. }
            | StoreError::Write { session, .. }
            | StoreError::Remove { session, .. }
            | StoreError::Corrupt { session, .. }
            | StoreError::NoUsableCredentials { session, .. }
            | StoreError::NothingToBackUp { session, .. }
            | StoreError::BackupVerifyFailed { session, .. }
            | StoreError::Encode { session, .. }
            | StoreError::Decode { session, .. }
            | StoreError::Locked { session, .. }
            | StoreError::Redis { session, .. }
            | StoreError::Fenced { session, .. }
            | StoreError::Lock { session, .. } => session,
        }
    }
}

/// A serde_json error described without quoting any of the data (its own message may quote a
/// string from the body, which could be key material).
pub(crate) fn describe_json_error(e: &serde_json::Error) -> String {
    let kind = match e.classify() {
        serde_json::error::Category::Io => "an I/O error",
        serde_json::error::Category::Syntax => "malformed JSON",
        serde_json::error::Category::Data => "content that does not fit the expected shape",
        serde_json::error::Category::Eof => "JSON that ends early",
    };
    if e.line() == 0 {
        kind.to_owned()
    } else {
        format!("{kind} at line {} column {}", e.line(), e.column())
    }
}
