//! Per-plugin-server bus credentials (admin): register, list and remove plugin server ids.
//! (Connecting as one is the plugin-server face's: `PluginServerBuilder::connect`.)
//!
//! `add` makes a random 32-byte secret, stores only its SHA-256 under the id in the
//! `<P>_PLUGIN_SERVERS` bucket and returns the secret once. The plugin server connects as
//! user `plugin-server.<id>` with that secret; the auth callout checks it and gives the
//! connection the permissions of that id alone (`Permissions::for_plugin_server`).
//!
//! ```no_run
//! # async fn demo(admin: tessera_sdk::Client) -> Result<(), tessera_sdk::Error> {
//! let creds = admin.add_plugin_server("ps1", false).await?;
//! // What the plugin server connects with (`TESSERA_PLUGIN_SERVER_URL`).
//! let url = creds.url(&["127.0.0.1:4222".to_owned()]);
//! # drop(url); Ok(()) }
//! ```

use async_nats::jetstream::kv;
use tessera_bus_config::provision;
use tessera_schemas::plugin_servers::check_id;
use tessera_schemas::{ErrorCode, WireError, codec};

pub use tessera_bus_config::plugin_servers::PluginServerSecret;

use crate::{Client, Error};

impl Client {
    async fn plugin_servers_bucket(&self) -> Result<kv::Store, Error> {
        // The auth nodes create it too; creating it here lets an operator register plugin
        // servers before any auth node has started.
        provision::plugin_servers_bucket(&self.js(), self.subjects(), self.durability())
            .await
            .map_err(Error::unavailable)
    }

    /// Registers plugin server `id` with a fresh secret (admin role) and returns the
    /// credentials, once: only the secret's SHA-256 is stored. An id that exists already is
    /// `conflict`, unless `rotate`: then the new secret replaces the old one (connections
    /// made with the old one stay up until they reconnect).
    pub async fn add_plugin_server(
        &self,
        id: &str,
        rotate: bool,
    ) -> Result<PluginServerSecret, Error> {
        check_id(id)?;
        let secret = PluginServerSecret::generate(id);
        let value = codec::encode(&secret.record(tessera_protocol::now_unix()));
        let kv = self.plugin_servers_bucket().await?;
        if rotate {
            kv.put(id, value.into()).await.map_err(Error::unavailable)?;
        } else {
            kv.create(id, value.into())
                .await
                .map_err(|e| match e.kind() {
                    kv::CreateErrorKind::AlreadyExists => Error::rejected(WireError::new(
                        ErrorCode::Conflict,
                        format!("plugin server {id} exists already (rotate its secret instead)"),
                    )),
                    _ => Error::unavailable(e),
                })?;
        }
        Ok(secret)
    }

    /// Removes plugin server `id` (admin role): new connections with its credentials are
    /// refused from then on. Connections already made stay up until they reconnect
    /// (nats-server does not re-check a connection); restart them to cut them off.
    pub async fn remove_plugin_server(&self, id: &str) -> Result<(), Error> {
        check_id(id)?;
        let kv = self.plugin_servers_bucket().await?;
        if kv.get(id).await.map_err(Error::unavailable)?.is_none() {
            return Err(Error::rejected(WireError::new(
                ErrorCode::NotFound,
                format!("no plugin server {id}"),
            )));
        }
        kv.delete(id).await.map_err(Error::unavailable)
    }

    /// Every registered plugin server id, sorted (admin role). Secrets are never stored.
    pub async fn plugin_servers(&self) -> Result<Vec<String>, Error> {
        let kv = self.plugin_servers_bucket().await?;
        let ids = super::kv_keys(&kv).await?;
        Ok(ids)
    }
}
