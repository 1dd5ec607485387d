//! The messaging stanzas as data (PROTOCOL-MESSAGING.md §3–§5): builders for what a client
//! sends and parsers for what it reads, plus the server side of each (for the simulator).
//! `usync`: device lists; `keys`: pre-key bundle fetch; `stanza`: the `<message>` out and in;
//! `receipt`: delivery/read receipts and retry receipts.

pub mod keys;
pub mod receipt;
pub mod stanza;
pub mod usync;

#[cfg(test)]
mod tests;

use crate::wa::jid::{Jid, JidError};
use crate::wa::node::Node;
use crate::wa::prekey::PreKeyError;

/// Why a messaging stanza could not be read; each names the stanza and the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessagingError {
    #[error("the {stanza} has no {field}")]
    Missing {
        stanza: &'static str,
        field: &'static str,
    },
    #[error("the {stanza}'s {field} is invalid: {value:?}")]
    Invalid {
        stanza: &'static str,
        field: &'static str,
        value: String,
    },
    #[error("the {stanza}'s {field} is not a JID")]
    Jid {
        stanza: &'static str,
        field: &'static str,
        #[source]
        source: JidError,
    },
    #[error("the pre-key bundle of {jid} is malformed")]
    Bundle {
        jid: String,
        #[source]
        source: PreKeyError,
    },
}

/// Reads attribute `field` of `node` as a JID.
pub(crate) fn jid_attr(
    node: &Node,
    stanza: &'static str,
    field: &'static str,
) -> Result<Jid, MessagingError> {
    let value = node
        .get_attr(field)
        .ok_or(MessagingError::Missing { stanza, field })?;
    value.parse().map_err(|source| MessagingError::Jid {
        stanza,
        field,
        source,
    })
}

/// Reads attribute `field` of `node` as text.
pub(crate) fn attr<'a>(
    node: &'a Node,
    stanza: &'static str,
    field: &'static str,
) -> Result<&'a str, MessagingError> {
    node.get_attr(field)
        .ok_or(MessagingError::Missing { stanza, field })
}

/// Reads an optional attribute as a JID; a present but bad value is an error.
pub(crate) fn opt_jid_attr(
    node: &Node,
    stanza: &'static str,
    field: &'static str,
) -> Result<Option<Jid>, MessagingError> {
    node.get_attr(field)
        .map(|value| {
            value.parse().map_err(|source| MessagingError::Jid {
                stanza,
                field,
                source,
            })
        })
        .transpose()
}
