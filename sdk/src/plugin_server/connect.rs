//! Connecting as a plugin server: with the id's own credentials, on its own inbox prefix,
//! as two connections (serving, and reading distributions; see
//! `tessera_schemas::plugin_servers::DIST_USER_PREFIX` for why they are separate).

use std::sync::Arc;
use std::time::Duration;

use tessera_schemas::Subjects;
use tessera_schemas::plugin_servers::{check_id, dist_user_name, server_id_of};

use super::PluginServerBuilder;
use crate::Error;
use crate::connection::Refusals;

/// How long [`connect`] keeps trying (a plugin server may start before its NATS server or
/// the auth node that admits it).
const CONNECT_WAIT: Duration = Duration::from_secs(10);

/// Connects as plugin server `id` with the credentials in `url` (as `add_plugin_server`
/// made them; comma-separated URLs of a cluster are fine), on `id`'s own inbox prefix,
/// which its credentials require. Retries for a few seconds, then fails with
/// [`crate::ErrorKind::Connect`] (wrong, unknown or removed credentials: "authorization
/// violation"). [`PluginServerBuilder::connect`] makes this connection and the
/// distribution one together; this is for a connection of its own.
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
    Ok(connect_as(url, subjects, id, wait, false).await?.0)
}

/// Connects plugin server `id`'s *distribution* connection with the credentials in `url`
/// (the same URL as [`connect`]): user `plugin-server-dist.<id>`, same secret, own inbox.
/// Give it to [`PluginServerBuilder::distribution`]: it reads the
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
    Ok(connect_as(url, subjects, id, wait, true).await?.0)
}

/// One of plugin server `id`'s connections: the serving one as the URL's user, or the
/// distribution one (`distribution`) as `plugin-server-dist.<id>` with the URL's secret.
async fn connect_as(
    url: &str,
    subjects: &Subjects,
    id: &str,
    wait: Duration,
    distribution: bool,
) -> Result<(async_nats::Client, Arc<Refusals>), Error> {
    check_id(id)?;
    // A URL for another id would connect and then fail on every subject: refuse it here.
    if let Some(user) = url_user(url)
        && server_id_of(&user) != Some(id)
    {
        return Err(Error::invalid_input(format!(
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
    crate::connection::connect(url, &name, wait, |o| {
        let o = match &dist_user {
            Some((user, password)) => o.user_and_password(user.clone(), password.clone()),
            None => o,
        };
        o.custom_inbox_prefix(inbox.clone())
    })
    .await
}

impl PluginServerBuilder {
    /// Connects as plugin server `id` with the credentials in `url` (as `tessera
    /// plugin-servers add` printed them): the serving connection and the distribution one
    /// ([`connect`], [`connect_distribution`]), and a builder that uses both. Retries for a
    /// few seconds (a plugin server may start before its NATS server or the auth node that
    /// admits it).
    pub async fn connect(
        url: &str,
        subjects: Subjects,
        id: &str,
    ) -> Result<PluginServerBuilder, Error> {
        PluginServerBuilder::connect_with_wait(url, subjects, id, CONNECT_WAIT).await
    }

    /// [`PluginServerBuilder::connect`], trying for `wait` at most.
    pub async fn connect_with_wait(
        url: &str,
        subjects: Subjects,
        id: &str,
        wait: Duration,
    ) -> Result<PluginServerBuilder, Error> {
        let (serving, refusals) = connect_as(url, &subjects, id, wait, false).await?;
        let (dist, _) = connect_as(url, &subjects, id, wait, true).await?;
        let mut builder = PluginServerBuilder::new(serving, subjects, id).distribution(dist);
        builder.refusals = Some(refusals);
        Ok(builder)
    }
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
        let url = "nats://plugin-server.ps2:secret@127.0.0.1:1";
        let err = connect(url, &Subjects::default(), "ps1").await.unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::InvalidInput, "{err:?}");
        assert_eq!(url_user(url).as_deref(), Some("plugin-server.ps2"));
    }
}
