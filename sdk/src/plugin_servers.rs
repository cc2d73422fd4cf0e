//! Per-plugin-server bus credentials (issue 8): register, list and remove plugin server ids
//! (admin), and connect as one.
//!
//! `add` makes a random 32-byte secret, stores only its SHA-256 under the id in the
//! `<P>_PLUGIN_SERVERS` bucket and returns the secret once. The plugin server connects as
//! user `plugin-server.<id>` with that secret; the auth callout checks it and gives the
//! connection the permissions of that id alone (`Permissions::for_plugin_server`).
//!
//! ```no_run
//! # async fn demo(admin: tessera_sdk::Client) -> Result<(), tessera_sdk::Error> {
//! let creds = admin.add_plugin_server("ps1", false).await?;
//! let url = creds.url(&["127.0.0.1:4222".to_owned()]);
//! let nats = tessera_sdk::plugin_servers::connect(&url, admin.subjects(), "ps1").await?;
//! # Ok(()) }
//! ```

use std::time::Duration;

use async_nats::jetstream::kv;
use tessera_bus_config::provision;
use tessera_schemas::plugin_servers::{check_id, dist_user_name, server_id_of};
use tessera_schemas::{ErrorCode, Subjects, WireError, codec};

pub use tessera_bus_config::plugin_servers::PluginServerSecret;

use crate::client::kv_error;
use crate::{Client, Error};

/// How long [`connect`] keeps trying (a plugin server may start before its NATS server or
/// the auth node that admits it).
const CONNECT_WAIT: Duration = Duration::from_secs(10);

impl Client {
    async fn plugin_servers_bucket(&self) -> Result<kv::Store, Error> {
        let js = async_nats::jetstream::new(self.nats().clone());
        // The auth nodes create it too; creating it here lets an operator register plugin
        // servers before any auth node has started.
        provision::plugin_servers_bucket(&js, self.subjects(), self.durability())
            .await
            .map_err(kv_error)
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
            kv.put(id, value.into()).await.map_err(kv_error)?;
        } else {
            kv.create(id, value.into())
                .await
                .map_err(|e| match e.kind() {
                    kv::CreateErrorKind::AlreadyExists => Error::Rejected(WireError::new(
                        ErrorCode::Conflict,
                        format!("plugin server {id} exists already (rotate its secret instead)"),
                    )),
                    _ => kv_error(e),
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
        if kv.get(id).await.map_err(kv_error)?.is_none() {
            return Err(Error::Rejected(WireError::new(
                ErrorCode::NotFound,
                format!("no plugin server {id}"),
            )));
        }
        kv.delete(id).await.map_err(kv_error)
    }

    /// Every registered plugin server id, sorted (admin role). Secrets are never stored.
    pub async fn plugin_servers(&self) -> Result<Vec<String>, Error> {
        let kv = self.plugin_servers_bucket().await?;
        let ids = crate::client::kv_keys(&kv).await?;
        Ok(ids)
    }
}

/// Connects as plugin server `id` with the credentials in `url` (as `add_plugin_server`
/// made them; comma-separated URLs of a cluster are fine), on `id`'s own inbox prefix,
/// which its credentials require. Retries for a few seconds, then fails with
/// [`Error::Connect`] (wrong, unknown or removed credentials: "authorization violation").
pub async fn connect(
    url: &str,
    subjects: &Subjects,
    id: &str,
) -> Result<async_nats::Client, Error> {
    connect_with_wait(url, subjects, id, CONNECT_WAIT).await
}

/// [`connect`], trying for `wait` at most.
pub async fn connect_with_wait(
    url: &str,
    subjects: &Subjects,
    id: &str,
    wait: Duration,
) -> Result<async_nats::Client, Error> {
    connect_as(url, subjects, id, wait, false).await
}

/// Connects plugin server `id`'s *distribution* connection with the credentials in `url`
/// (the same URL as [`connect`]): user `plugin-server-dist.<id>`, same secret, own inbox.
/// Give it to [`crate::plugin_server::PluginServerBuilder::distribution`]: it reads the
/// server's distributions and nothing else (see
/// `tessera_schemas::plugin_servers::DIST_USER_PREFIX` for why it is separate).
pub async fn connect_distribution(
    url: &str,
    subjects: &Subjects,
    id: &str,
) -> Result<async_nats::Client, Error> {
    connect_distribution_with_wait(url, subjects, id, CONNECT_WAIT).await
}

/// [`connect_distribution`], trying for `wait` at most.
pub async fn connect_distribution_with_wait(
    url: &str,
    subjects: &Subjects,
    id: &str,
    wait: Duration,
) -> Result<async_nats::Client, Error> {
    connect_as(url, subjects, id, wait, true).await
}

/// One of plugin server `id`'s connections: the serving one as the URL's user, or the
/// distribution one (`distribution`) as `plugin-server-dist.<id>` with the URL's secret.
async fn connect_as(
    url: &str,
    subjects: &Subjects,
    id: &str,
    wait: Duration,
    distribution: bool,
) -> Result<async_nats::Client, Error> {
    check_id(id)?;
    // A URL for another id would connect and then fail on every subject: refuse it here.
    if let Some(user) = url_user(url)
        && server_id_of(&user) != Some(id)
    {
        return Err(Error::InvalidInput(format!(
            "the URL's user {user:?} is not plugin server {id}'s (plugin-server.{id})"
        )));
    }
    let inbox = subjects.plugin_server_inbox(id);
    let (name, dist_user) = if distribution {
        let password = url_password(url).unwrap_or_default();
        (
            format!("tessera-plugin-server-{id}-dist"),
            Some((dist_user_name(id), password)),
        )
    } else {
        (format!("tessera-plugin-server-{id}"), None)
    };
    tessera_protocol::bus::connect_with(url, &name, wait, |o| {
        let o = match &dist_user {
            Some((user, password)) => o.user_and_password(user.clone(), password.clone()),
            None => o,
        };
        o.custom_inbox_prefix(inbox.clone())
    })
    .await
    .map_err(|e| Error::Connect(e.to_string()))
}

/// The password of the first URL that has a user.
fn url_password(url: &str) -> Option<String> {
    url.split(',')
        .filter_map(|u| u.trim().parse::<async_nats::ServerAddr>().ok())
        .find(|a| a.username().is_some())
        .and_then(|a| a.password().map(str::to_owned))
}

/// The user name of the first URL that has one.
fn url_user(url: &str) -> Option<String> {
    url.split(',')
        .filter_map(|u| u.trim().parse::<async_nats::ServerAddr>().ok())
        .find_map(|a| a.username().map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_url_for_another_id_is_refused_before_connecting() {
        let s = PluginServerSecret::generate("ps2");
        let url = s.url(&["127.0.0.1:1".to_owned()]);
        let err = connect(&url, &Subjects::default(), "ps1")
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
        assert_eq!(url_user(&url).as_deref(), Some("plugin-server.ps2"));
    }
}
