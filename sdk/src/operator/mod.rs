//! The operator face (feature `operator`): admin calls, as `impl Client` blocks per concern.
//!
//! Every call here needs the admin role's credentials. On a connection with another role
//! the bus refuses the request: [`crate::ErrorKind::Forbidden`] on a connection the SDK made.
//!
//! - `users`: local accounts, revocation of a token or of an account's tokens;
//! - `routes`: plugin routes and their token-binding policy ([`RoutePolicy`]);
//! - [`plugin_server_credentials`]: register, list and remove plugin server ids (their bus
//!   credentials);
//! - [`data_routes`]: client apps (their signing secrets) and data routes;
//! - [`packages`]: third-party apps, publisher keys and package signing, package upload,
//!   `auth.nodes.status`;
//! - `assets_publish`: publish a plugin's static files ([`Client::publish_assets`]);
//! - `plugin_keys`: register a plugin's sealing key;
//! - [`audit`]: read the audit stream;
//! - `dist_shards`: the number of distribution shards, read and changed while no broker runs.

pub mod assets_publish;
pub mod audit;
pub mod data_routes;
mod dist_shards;
pub mod packages;
mod plugin_keys;
pub mod plugin_server_credentials;
mod routes;
mod users;

use async_nats::jetstream;
use futures::TryStreamExt as _;
pub use tessera_bus_config::provision::Durability;

pub use assets_publish::{PublishReport, content_type_for};
pub use plugin_server_credentials::PluginServerSecret;
pub use routes::RoutePolicy;

use crate::{Client, Error};

impl Client {
    /// Replicas for any bucket or store this client creates (`TESSERA_JS_REPLICAS`; default
    /// 1). Only admin commands create any, when no worker has yet.
    pub fn with_durability(mut self, durability: Durability) -> Client {
        self.durability = durability;
        self
    }

    pub(crate) fn durability(&self) -> Durability {
        self.durability
    }

    /// A JetStream context on this client's connection (object stores and buckets).
    pub(crate) fn js(&self) -> jetstream::Context {
        jetstream::new(self.nats().clone())
    }
}

/// Every key of a KV bucket, sorted (the admin listings).
pub(crate) async fn kv_keys(kv: &jetstream::kv::Store) -> Result<Vec<String>, Error> {
    let mut keys: Vec<String> = kv
        .keys()
        .await
        .map_err(Error::unavailable)?
        .try_collect()
        .await
        .map_err(Error::unavailable)?;
    keys.sort();
    Ok(keys)
}
