//! Tessera SDKs, one crate with three faces chosen by Cargo feature.
//!
//! # Faces
//!
//! - `app` (default): what a client app links. [`Client`]: log in, request plugin tokens,
//!   call plugin servers ([`Client::call_raw`]); [`data`]: sign a data-access packet and
//!   send it to the gateway; [`assets`]: download a plugin's signed, verified bundle into a
//!   local cache and fetch single files; [`sealed`]: seal sensitive data to a plugin's
//!   registered key (HPKE).
//! - `operator` (includes `app`): the admin calls, in [`operator`]: users, routes,
//!   revocation, plugin-server credentials, client apps and data routes, third-party apps and
//!   packages, node status, asset publishing, plugin keys, the audit stream.
//! - `plugin-server`: [`plugin_server`]: [`PluginServer`] and its builder (which makes the
//!   server's two connections, [`PluginServerBuilder::connect`]), the [`TokenStore`] and the
//!   distribution consumer; [`Reply`], [`Shutdown`], [`WireError`] and [`ErrorCode`] are
//!   re-exported so a plugin-server author needs no other Tessera crate.
//!
//! Only the faces that need them pull the heavier crates: `operator` the bus configuration
//! (bucket provisioning, plugin-server secrets), `plugin-server` the worker runtime (its
//! request loop and drain); an app links neither.
//!
//! Why the operator calls are `impl Client` blocks and not a type of their own: what a
//! connection may do is decided by the credentials it connected with, not by a Rust type.
//! The same [`Client`] (one connection, one timeout, one subject prefix) serves an operator's
//! admin calls and the app calls it also makes (the CLI logs in and requests tokens on the
//! admin connection); a wrapper type would repeat the connection plumbing and still not
//! stop an app from connecting with admin credentials. The feature keeps the admin calls
//! (and what they link) out of an app's build; the bus keeps them out of an app's reach,
//! and a refused call is [`ErrorKind::Forbidden`].
//!
//! # Errors
//!
//! [`Error`] has an [`ErrorKind`] to match on, [`Error::code`] (the wire [`ErrorCode`]) and
//! the cause as its [`std::error::Error::source`]. A connection the SDK made logs its events
//! under its name and turns a publish the bus refused into [`ErrorKind::Forbidden`] at once
//! (see `connection.rs`).
//!
//! # Example
//!
//! ```no_run
//! # #[cfg(feature = "app")]
//! # async fn demo() -> Result<(), tessera_sdk::Error> {
//! let client = tessera_sdk::Client::connect("nats://client:secret@127.0.0.1:4222").await?;
//! let login = client.login("ann", "correct horse battery").await?;
//! let token = client.request_token(&login.account_token, "weather", None).await?;
//! let reply = client.call_raw("ps1", "echo", &token.token, "hello".into()).await?;
//! # drop(reply);
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

#[cfg(feature = "app")]
pub mod assets;
#[cfg(feature = "app")]
mod calls;
pub mod client;
mod connection;
#[cfg(feature = "app")]
pub mod data;
pub mod error;
#[cfg(feature = "operator")]
pub mod operator;
#[cfg(feature = "app")]
mod plugin_keys;
#[cfg(feature = "plugin-server")]
pub mod plugin_server;
#[cfg(feature = "app")]
pub mod sealed;

#[cfg(feature = "app")]
pub use calls::Binding;
pub use client::Client;
pub use error::{Error, ErrorKind};
#[cfg(feature = "operator")]
pub use operator::RoutePolicy;
#[cfg(feature = "plugin-server")]
pub use plugin_server::{
    PluginScope, PluginServer, PluginServerBuilder, Reply, ServiceRequest, Shutdown, TokenInfo,
    TokenStore,
};
pub use tessera_schemas as schemas;
pub use tessera_schemas::{ErrorCode, WireError};
