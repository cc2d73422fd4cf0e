//! Plugin keys: registered by the admin (part of plugin setup), looked up by client apps
//! through `plugins.key` (served by the broker from its watched view: one request, no
//! JetStream access needed), and used to seal sensitive data to the plugin.

use tessera_schemas::assets::{
    PLUGINS_KEY, PluginKeyRecord, PluginKeyRequest, PluginKeyResponse, SEAL_SUITE, SealedBox,
};
use tessera_schemas::{ErrorCode, WireError, codec, ids};

use crate::sealed::{self, PluginPublicKey};
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
        let js = async_nats::jetstream::new(self.nats().clone());
        // The broker creates the bucket too; creating it here lets setup come first.
        let kv = tessera_bus_config::provision::plugin_keys_bucket(
            &js,
            self.subjects(),
            self.durability(),
        )
        .await
        .map_err(|e| Error::Unavailable(e.to_string()))?;
        kv.put(plugin_id, codec::encode(&record).into())
            .await
            .map_err(|e| Error::Unavailable(e.to_string()))?;
        Ok(record)
    }

    /// `plugin_id`'s registered public key (`not_found` if none).
    pub async fn plugin_key(&self, plugin_id: &str) -> Result<PluginKeyResponse, Error> {
        ids::check("plugin_id", plugin_id)?;
        self.call(
            self.subjects().plugins_key(),
            PLUGINS_KEY,
            &PluginKeyRequest {
                plugin_id: plugin_id.to_owned(),
            },
        )
        .await
    }

    /// Seals `plaintext` to `plugin_id`'s registered key: only that plugin can open it.
    pub async fn seal_for_plugin(
        &self,
        plugin_id: &str,
        plaintext: &[u8],
    ) -> Result<SealedBox, Error> {
        let key = self.plugin_key(plugin_id).await?;
        if key.suite != SEAL_SUITE {
            return Err(Error::Rejected(WireError::new(
                ErrorCode::BadRequest,
                format!("plugin {plugin_id:?} has a key of suite {:?}", key.suite),
            )));
        }
        let public = PluginPublicKey::from_base64url(&key.public_key)?;
        Ok(sealed::seal(&public, plugin_id, plaintext)?)
    }
}
