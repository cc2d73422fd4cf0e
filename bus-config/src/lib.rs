//! The bus as Tessera needs it: who may publish and subscribe where, and which JetStream
//! streams and buckets exist.
//!
//! # Layout
//!
//! - [`roles`]: the six roles and their permissions, built from [`Subjects`].
//! - [`server`]: renders a nats-server configuration file (one account with JetStream, one
//!   user per role) and generates credentials.
//! - [`deploy`]: the cluster configuration and per-role env files of a Compose or Kubernetes
//!   deployment (passwords as environment references, so the config holds no secret).
//! - [`provision`]: creates the streams and KV buckets, idempotently; every worker calls it
//!   for what it owns, so a fresh server needs no manual setup.
//!
//! Architecture invariant: the permissions are derived from the same functions that build
//! the subjects, so a renamed subject cannot drift from its permission.

#![forbid(unsafe_code)]

pub mod deploy;
pub mod provision;
pub mod roles;
pub mod server;

pub use roles::{Permissions, Role};
pub use server::{ClusterConfig, Credentials, RenderOptions, ServerConfig, password_env};
pub use tessera_schemas::Subjects;
