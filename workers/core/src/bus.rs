//! Connecting to NATS.

use std::time::Duration;

use async_nats::{Client, ConnectOptions};
use thiserror::Error;

#[derive(Debug, Error)]
#[error("cannot connect to NATS at {url}: {source}")]
pub struct ConnectError {
    /// The URL with any password removed.
    pub url: String,
    #[source]
    pub source: async_nats::ConnectError,
}

/// Removes the password from `nats://user:pass@host:port` for logs and errors (from each
/// URL of a comma-separated list).
pub fn redact(url: &str) -> String {
    if url.contains(',') {
        return url.split(',').map(redact).collect::<Vec<_>>().join(",");
    }
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***@{}", &url[..scheme + 3], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// Connects with a client name (shown by the server's monitoring), retrying the first
/// connection for up to `wait` so a worker started before its server comes up by itself.
/// After the first connection, async-nats reconnects on its own, forever.
///
/// `url` may list several servers of one cluster, comma-separated
/// (`nats://u:p@n1:4222,nats://u:p@n2:4222`): the client connects to any of them and moves to
/// another when its server goes away. The credentials of the first URL that has some are used.
pub async fn connect(url: &str, name: &str, wait: Duration) -> Result<Client, ConnectError> {
    connect_with(url, name, wait, |o| o).await
}

/// [`connect`], with `customize` applied to the options of every attempt (e.g. a plugin
/// server's own inbox prefix).
pub async fn connect_with(
    url: &str,
    name: &str,
    wait: Duration,
    customize: impl Fn(ConnectOptions) -> ConnectOptions,
) -> Result<Client, ConnectError> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut backoff = Duration::from_millis(50);
    // async-nats ignores credentials in the URL; take them out and pass them explicitly.
    let addrs = url
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::parse::<async_nats::ServerAddr>)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e: std::io::Error| ConnectError {
            url: redact(url),
            source: async_nats::ConnectError::with_source(
                async_nats::ConnectErrorKind::ServerParse,
                e,
            ),
        })?;
    let credentials = addrs.iter().find_map(|addr| {
        addr.username()
            .map(|u| (u.to_owned(), addr.password().unwrap_or_default().to_owned()))
    });
    loop {
        let mut opts = ConnectOptions::new();
        if let Some((user, pass)) = &credentials {
            opts = opts.user_and_password(user.clone(), pass.clone());
        }
        let opts = opts
            .name(name)
            .connection_timeout(Duration::from_secs(2))
            .request_timeout(Some(Duration::from_secs(5)))
            .max_reconnects(None);
        let opts = customize(opts);
        match opts.connect(addrs.as_slice()).await {
            Ok(client) => return Ok(client),
            Err(e) if tokio::time::Instant::now() + backoff < deadline => {
                tracing::debug!(url = %redact(url), error = %e, "NATS not reachable yet; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
            Err(e) => {
                return Err(ConnectError {
                    url: redact(url),
                    source: e,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_passwords() {
        assert_eq!(
            super::redact("nats://client:s3cret@127.0.0.1:4222"),
            "nats://client:***@127.0.0.1:4222"
        );
        assert_eq!(
            super::redact("nats://127.0.0.1:4222"),
            "nats://127.0.0.1:4222"
        );
        assert_eq!(
            super::redact("nats://a:x@n1:4222,nats://a:x@n2:4222"),
            "nats://a:***@n1:4222,nats://a:***@n2:4222"
        );
    }
}
