//! The Redis token ledger: the one owner of what Redis holds for issued plugin tokens.
//!
//! # Layout
//!
//! - [`keys`]: every Redis key Tessera uses, built in one place, and the ledger's shards
//!   (hash tags for a Redis Cluster).
//! - [`TokenRecord`] (`record.rs`): the record of one issued token.
//! - [`LedgerWriter`] (`writer.rs`): the broker's side: record, commit, forget, sweep,
//!   delete; the pending set and the remembered idempotent replies.
//! - [`LedgerReader`] (`reader.rs`): reads for introspection, revocation and the gateway.
//! - [`connect`] (`connection.rs`): the bounded-timeout connection every process uses, to
//!   one Redis or a Redis Cluster ([`LedgerConnection`]).
//!
//! Architecture invariant: no other crate names a Redis key or decodes a token record.

#![forbid(unsafe_code)]

mod connection;
pub mod keys;
mod reader;
mod record;
mod writer;

pub use connection::{LedgerConnection, RedisTarget, connect};
pub use keys::RedisKeys;
pub use reader::LedgerReader;
pub use record::TokenRecord;
pub use writer::{Commit, IDEMPOTENCY_WINDOW, LedgerWriter, Remember};
