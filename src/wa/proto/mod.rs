//! The protobuf messages wasp uses, written by hand with prost derives (no protoc).

pub mod adv;
pub mod handshake;
pub mod payload;
