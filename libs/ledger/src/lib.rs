//! The Redis token ledger: what the broker writes for every issued plugin token and what the
//! gateway and introspection read back.
//!
//! # Layout
//!
//! - [`keys`]: every Redis key Tessera uses, built in one place.

#![forbid(unsafe_code)]

pub mod keys;

pub use keys::RedisKeys;
