//! The bus as Tessera needs it: who may publish and subscribe where, and which JetStream
//! streams and buckets exist.
//!
//! # Layout
//!
//! - [`accounts`]: the three accounts (workers, client apps, plugin servers) and the
//!   services that cross between them: the trust boundary.
//! - [`roles`]: the five roles and their permissions within their account, and each plugin
//!   server id's, built from [`Subjects`].
//! - [`server`]: renders a nats-server configuration file (the accounts with their exports
//!   and imports, JetStream in the workers' account, one user per static role, the auth
//!   callout for client apps and plugin servers) and generates credentials.
//! - [`redis_acl`]: the Redis users (broker, gateway, admin) with only the keys and commands
//!   each needs, and their passwords.
//! - [`plugin_servers`]: per-plugin-server secrets: generation, the stored hash, the check.
//! - [`deploy`]: the cluster configuration and per-role env files of a Compose or Kubernetes
//!   deployment (passwords as environment references, so the config holds no secret).
//! - [`provision`]: creates the streams and KV buckets, idempotently; every worker calls it
//!   for what it owns, so a fresh server needs no manual setup.
//!
//! Architecture invariant: the permissions are derived from the same functions that build
//! the subjects, so a renamed subject cannot drift from its permission.

#![forbid(unsafe_code)]

pub mod accounts;
pub mod deploy;
pub mod plugin_servers;
pub mod provision;
pub mod redis_acl;
pub mod roles;
pub mod server;

pub use accounts::Account;
pub use roles::{Permissions, Role};
pub use server::{
    CALLOUT_ISSUER_ENV, CALLOUT_ISSUER_SEED_ENV, ClusterConfig, Credentials, RenderOptions,
    ServerConfig, password_env,
};
pub use tessera_schemas::Subjects;
