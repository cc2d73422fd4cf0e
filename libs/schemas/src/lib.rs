//! The Tessera wire contract: what travels on the bus, and nothing else.
//!
//! # Layout
//!
//! - [`subjects`]: every NATS subject, queue group, stream and bucket name, built from one
//!   configurable prefix. No other crate writes a subject literal.
//! - [`dist_shards`]: the distribution split into N streams: a plugin server's shard,
//!   each shard's stream and subjects.
//! - [`headers`]: header names (schema, request id, trace context, micro error headers).
//! - [`messages`]: the request and reply bodies, one struct per message, plus the
//!   distribution events that flow to plugin servers.
//! - [`data`]: signed data-access packets, their canonical signing string, the
//!   data routes and client apps the gateway reads.
//! - [`packages`]: third-party app configs, package manifests and index records, and the
//!   bodies of the package-upload, update-broadcast and node subjects.
//! - [`claims`]: JWT claim sets for plugin tokens and account tokens.
//! - [`error`]: the closed [`ErrorCode`] enum and the [`WireError`] body.
//! - [`codec`]: MessagePack encode/decode with a size limit, the map check and the
//!   schema-version check; [`strict`]: the field decoders that hold request fields to
//!   their wire types (`str`, `bin`, maps).
//! - [`assets`]: plugin static assets (object-store layout, signed manifests), plugin keys
//!   and sealed boxes.
//! - [`audit`]: the audit event: who, what, when and outcome, never a secret.
//! - [`plugin_servers`]: per-plugin-server bus credentials: user names and the stored
//!   record (a hash of the secret).
//! - [`clients`]: how a client app connects: its user name and its own inbox, bound to a
//!   key only that connection knows.
//! - [`ids`]: validation of the identifiers that end up inside subjects and keys.
//!
//! Architecture invariant: this crate depends on serde and nothing async, so any program
//! (a plugin server in another stack, a fuzzer) can speak the protocol without our runtime.

#![forbid(unsafe_code)]

pub mod assets;
#[cfg(test)]
mod asyncapi;
pub mod audit;
pub mod claims;
pub mod clients;
pub mod codec;
pub mod data;
pub mod dist_shards;
pub mod error;
pub mod headers;
pub mod ids;
pub mod messages;
pub mod packages;
pub mod plugin_servers;
pub mod strict;
pub mod subjects;

pub use codec::{DecodeError, MAX_MESSAGE_BYTES, Schema, decode, encode};
pub use error::{ErrorCode, WireError};
pub use subjects::Subjects;
