//! Data access, the operator's side: client apps (the secrets their packets are signed
//! with) and data routes (which plugin-server operation serves an operation address).

use tessera_bus_config::provision;
use tessera_schemas::data::{CLIENT_SECRET_LEN, ClientApp, DataRoute, data_route_key};
use tessera_schemas::{ErrorCode, WireError, codec, ids};

use super::kv_keys;
use crate::data::ClientAppCredentials;
use crate::{Client, Error};

impl Client {
    async fn data_bucket(&self, apps: bool) -> Result<async_nats::jetstream::kv::Store, Error> {
        let (js, s, d) = (self.js(), self.subjects(), self.durability());
        // The gateway creates the buckets too; creating them here lets an operator register
        // apps and routes before any gateway has started.
        let r = if apps {
            provision::client_apps_bucket(&js, s, d).await
        } else {
            provision::data_routes_bucket(&js, s, d).await
        };
        r.map_err(Error::unavailable)
    }

    /// Registers a client app with a fresh 32-byte secret (admin role). The secret is
    /// returned once; an app id that exists already is `conflict`.
    pub async fn add_client_app(&self, app_id: &str) -> Result<ClientAppCredentials, Error> {
        ids::check("app_id", app_id)?;
        let mut secret = vec![0u8; CLIENT_SECRET_LEN];
        aws_lc_rs::rand::fill(&mut secret).expect("system randomness");
        let value = ClientApp {
            secret: secret.clone(),
            created_at: tessera_protocol::now_unix(),
        };
        let kv = self.data_bucket(true).await?;
        kv.create(app_id, codec::encode(&value).into())
            .await
            .map_err(|e| match e.kind() {
                async_nats::jetstream::kv::CreateErrorKind::AlreadyExists => {
                    Error::rejected(WireError::new(
                        ErrorCode::Conflict,
                        format!("client app {app_id} exists already"),
                    ))
                }
                _ => Error::unavailable(e),
            })?;
        Ok(ClientAppCredentials {
            app_id: app_id.to_owned(),
            secret,
        })
    }

    /// Removes a client app (admin role): its packets are refused from then on.
    pub async fn delete_client_app(&self, app_id: &str) -> Result<(), Error> {
        ids::check("app_id", app_id)?;
        self.data_bucket(true)
            .await?
            .delete(app_id)
            .await
            .map_err(Error::unavailable)
    }

    /// Every client app id, sorted (admin role). Secrets are never listed.
    pub async fn client_apps(&self) -> Result<Vec<String>, Error> {
        let kv = self.data_bucket(true).await?;
        let keys = kv_keys(&kv).await?;
        Ok(keys)
    }

    /// Routes the operation address `operation` of `plugin_id` to
    /// `svc.<server_id>.<server_operation>` (admin role).
    pub async fn set_data_route(
        &self,
        plugin_id: &str,
        operation: &str,
        server_id: &str,
        server_operation: &str,
    ) -> Result<(), Error> {
        ids::check("plugin_id", plugin_id)?;
        ids::check("operation", operation)?;
        ids::check("server id", server_id)?;
        ids::check("server operation", server_operation)?;
        let route = DataRoute {
            server_id: server_id.into(),
            server_operation: server_operation.into(),
        };
        self.data_bucket(false)
            .await?
            .put(
                data_route_key(plugin_id, operation),
                codec::encode(&route).into(),
            )
            .await
            .map_err(Error::unavailable)?;
        Ok(())
    }

    /// Removes a data route (admin role).
    pub async fn delete_data_route(&self, plugin_id: &str, operation: &str) -> Result<(), Error> {
        ids::check("plugin_id", plugin_id)?;
        ids::check("operation", operation)?;
        self.data_bucket(false)
            .await?
            .delete(data_route_key(plugin_id, operation))
            .await
            .map_err(Error::unavailable)
    }

    /// Every data route as `(plugin_id, operation, route)`, sorted (admin role).
    pub async fn data_routes(&self) -> Result<Vec<(String, String, DataRoute)>, Error> {
        let kv = self.data_bucket(false).await?;
        let keys = kv_keys(&kv).await?;
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let Some((plugin, op)) = key.split_once('.') else {
                continue;
            };
            if let Some(Ok(route)) = kv
                .get(&key)
                .await
                .map_err(Error::unavailable)?
                .map(|b| codec::decode::<DataRoute>(&b))
            {
                out.push((plugin.to_owned(), op.to_owned(), route));
            }
        }
        out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        Ok(out)
    }
}
