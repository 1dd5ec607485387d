//! The WhatsApp Web protocol as data: framing, Noise, binary nodes, protobufs, credentials,
//! pairing and typed stanzas. No tokio, no sockets and no clock here: time comes in as an
//! argument and bytes go in and out of plain functions, so both the client (`net`) and the
//! simulated server (`sim`) are built on the same code.

pub mod ack;
pub mod creds;
pub mod device;
pub mod frame;
pub mod jid;
pub mod message;
pub mod messaging;
pub mod node;
pub mod noise;
pub mod pair;
pub mod pair_code;
pub mod payload;
pub mod prekey;
pub mod proto;
pub mod signal;
pub mod stanza;
pub mod xeddsa;
