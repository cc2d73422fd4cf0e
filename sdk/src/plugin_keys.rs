//! Plugin keys, the app's side: looked up through `plugins.key` (served by the broker from
//! its watched view: one request, no JetStream access needed) and used to seal sensitive
//! data to the plugin. (The operator registers them: `operator::plugin_keys`.)

use tessera_schemas::assets::{
    PLUGINS_KEY, PluginKeyRequest, PluginKeyResponse, SEAL_SUITE, SealedBox,
};
use tessera_schemas::{ErrorCode, WireError, ids};

use crate::sealed::{self, PluginPublicKey};
use crate::{Client, Error};

impl Client {
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
            return Err(Error::rejected(WireError::new(
                ErrorCode::BadRequest,
                format!("plugin {plugin_id:?} has a key of suite {:?}", key.suite),
            )));
        }
        let public = PluginPublicKey::from_base64url(&key.public_key)?;
        Ok(sealed::seal(&public, plugin_id, plaintext)?)
    }
}
