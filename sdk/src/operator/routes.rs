//! Plugin routes: which plugin servers serve a plugin, and its token-binding policy (admin
//! role).

use async_nats::jetstream;
use tessera_bus_config::provision;
use tessera_schemas::messages::Route;
use tessera_schemas::{codec, ids};

use super::kv_keys;
use crate::{Client, Error};

/// A plugin's token-binding policy ([`Client::set_route_with`]). Default: unbound.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoutePolicy {
    /// Tokens are bound to the device id given when they are requested.
    pub bind_device: bool,
    /// Tokens are bound to the user IP given when they are requested.
    pub bind_ip: bool,
}

impl Client {
    async fn routes_bucket(&self) -> Result<jetstream::kv::Store, Error> {
        // The broker creates the bucket; create it here too so routes can be set first.
        provision::routes_bucket(&self.js(), self.subjects(), self.durability())
            .await
            .map_err(Error::unavailable)
    }

    /// Routes a plugin to its plugin servers (admin role), with unbound tokens.
    pub async fn set_route(&self, plugin_id: &str, servers: &[String]) -> Result<(), Error> {
        self.set_route_with(plugin_id, servers, RoutePolicy::default())
            .await
    }

    /// Routes a plugin to its plugin servers with a token-binding policy (admin role).
    pub async fn set_route_with(
        &self,
        plugin_id: &str,
        servers: &[String],
        policy: RoutePolicy,
    ) -> Result<(), Error> {
        ids::check("plugin_id", plugin_id)?;
        if servers.is_empty() {
            return Err(Error::invalid_input("give at least one plugin server id"));
        }
        for s in servers {
            ids::check("server id", s)?;
        }
        let kv = self.routes_bucket().await?;
        let route = Route {
            servers: servers.to_vec(),
            bind_device: policy.bind_device,
            bind_ip: policy.bind_ip,
        };
        kv.put(plugin_id, codec::encode(&route).into())
            .await
            .map_err(Error::unavailable)?;
        Ok(())
    }

    /// Removes a plugin's route (admin role).
    pub async fn delete_route(&self, plugin_id: &str) -> Result<(), Error> {
        ids::check("plugin_id", plugin_id)?;
        let kv = self.routes_bucket().await?;
        kv.delete(plugin_id).await.map_err(Error::unavailable)
    }

    /// Every route, sorted by plugin id (admin role).
    pub async fn routes(&self) -> Result<Vec<(String, Route)>, Error> {
        let kv = self.routes_bucket().await?;
        let keys = kv_keys(&kv).await?;
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let value = kv.get(&key).await.map_err(Error::unavailable)?;
            if let Some(Ok(route)) = value.map(|b| codec::decode::<Route>(&b)) {
                out.push((key, route));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}
