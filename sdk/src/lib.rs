//! Tessera SDKs.
//!
//! # Layout
//!
//! - [`client`]: [`Client`], for client apps and operators: log in, request plugin tokens,
//!   call plugin-server operations; admin calls (users, routes, revocation).
//! - [`plugin_server`]: [`PluginServer`], for plugin servers: consume the tokens distributed
//!   to a server id, keep them in a [`TokenStore`], and serve `svc.<server_id>.<operation>`
//!   requests only for tokens that were distributed to it.
//! - [`plugin_servers`]: per-plugin-server bus credentials: register, list, remove (admin)
//!   and [`plugin_servers::connect`] as one.
//! - [`data`]: data access (seed 002): sign a data-access packet and send it to the
//!   gateway ([`Client::data_request`]); register client apps and data routes (admin).
//! - [`packages`]: third-party logins ([`Client::login_app`]), publisher keys and package
//!   signing, package upload, app configs, and `auth.nodes.status` (admin).
//! - [`audit`]: read the audit stream (admin): the last events, by kind, following new ones.
//! - [`error`]: [`Error`], with [`Error::code`] to match on.
//! - [`assets`] (issue 5, part 1): publish a plugin's static files, download its signed,
//!   verified bundle into a local cache, fetch single files on demand;
//!   [`sealed`]: seal sensitive data to a plugin's registered key (HPKE), and open it;
//!   `plugin_keys.rs`: register and look up plugin keys.
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> Result<(), tessera_sdk::Error> {
//! let client = tessera_sdk::Client::connect("nats://client:secret@127.0.0.1:4222").await?;
//! let login = client.login("ann", "correct horse battery").await?;
//! let token = client.request_token(&login.account_token, "weather", None).await?;
//! let reply = client.echo("ps1", &token.token, b"hello".to_vec()).await?;
//! assert_eq!(reply.plugin_id, "weather");
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

pub mod assets;
pub mod audit;
pub mod client;
pub mod data;
pub mod error;
pub mod packages;
mod plugin_keys;
pub mod plugin_server;
pub mod plugin_servers;
pub mod sealed;

pub use client::{Binding, Client, RoutePolicy};
pub use error::Error;
pub use plugin_server::{
    PluginScope, PluginServer, PluginServerBuilder, ServiceRequest, TokenInfo, TokenStore,
};
pub use tessera_schemas as schemas;
