//! Tessera SDKs.
//!
//! # Layout
//!
//! - [`client`]: [`Client`], for client apps and operators: log in, request plugin tokens,
//!   call plugin-server operations; admin calls (users, routes, revocation).
//! - [`plugin_server`]: [`PluginServer`], for plugin servers: consume the tokens distributed
//!   to a server id, keep them in a [`TokenStore`], and serve `svc.<server_id>.<operation>`
//!   requests only for tokens that were distributed to it.
//! - [`demo`]: the demo plugin server's `echo` operation ([`demo::with_echo`]), shared by
//!   `tessera plugin-server` and the integration tests.
//! - [`packages`]: third-party logins ([`Client::login_app`]), publisher keys and package
//!   signing, package upload, app configs, and `auth.nodes.status` (admin).
//! - [`error`]: [`Error`], with [`Error::code`] to match on.
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

pub mod client;
pub mod demo;
pub mod error;
pub mod packages;
pub mod plugin_server;

pub use client::Client;
pub use error::Error;
pub use plugin_server::{
    PluginScope, PluginServer, PluginServerBuilder, ServiceRequest, TokenInfo, TokenStore,
};
pub use tessera_schemas as schemas;
