//! Plugin keys, the operator's side: registering a plugin's X25519 public key (part of
//! plugin setup), which client apps then seal data to.

use tessera_bus_config::provision;
use tessera_schemas::assets::{PluginKeyRecord, SEAL_SUITE};
use tessera_schemas::{codec, ids};

use crate::sealed::PluginPublicKey;
use crate::{Client, Error};

impl Client {
    /// Registers (or replaces) `plugin_id`'s public key, base64url of 32 bytes (admin role).
    pub async fn register_plugin_key(
        &self,
        plugin_id: &str,
        public_key: &str,
    ) -> Result<PluginKeyRecord, Error> {
        ids::check("plugin_id", plugin_id)?;
        let key = PluginPublicKey::from_base64url(public_key)?;
        let record = PluginKeyRecord {
            public_key: key.to_base64url(),
            suite: SEAL_SUITE.to_owned(),
            created_at: tessera_protocol::now_unix(),
        };
        // The broker creates the bucket too; creating it here lets setup come first.
        let kv = provision::plugin_keys_bucket(&self.js(), self.subjects(), self.durability())
            .await
            .map_err(Error::unavailable)?;
        kv.put(plugin_id, codec::encode(&record).into())
            .await
            .map_err(Error::unavailable)?;
        Ok(record)
    }
}
