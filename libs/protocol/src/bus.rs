//! Connecting to NATS.

use std::time::Duration;

use async_nats::{Client, ConnectOptions};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tessera_schemas::clients;
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

/// The inbox prefix of a client connection whose inbox key is `key`: `_C_INBOX.` and the
/// first 32 hex digits of SHA-256(key) (see [`tessera_schemas::clients`]). The auth callout
/// computes the same to decide what the connection may subscribe to.
pub fn client_inbox(key: &str) -> String {
    let digest = crate::data_sign::sha256_hex(key.as_bytes());
    format!(
        "{}.{}",
        clients::INBOX_ROOT,
        &digest[..clients::INBOX_HASH_HEX]
    )
}

/// A fresh inbox key: 32 random bytes, base64url.
pub fn new_inbox_key() -> String {
    let mut bytes = [0u8; clients::INBOX_KEY_BYTES];
    aws_lc_rs::rand::fill(&mut bytes).expect("system randomness");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `opts` with the credentials of `user`. A client connection (user `client`) gets an inbox
/// key of its own, sent in the password field after the client password
/// (`<password>:<key>`, [`clients::join_password`]), and the inbox prefix it opens, the only
/// one its permissions let it subscribe to. Other users get `password` as it is.
pub fn with_credentials(opts: ConnectOptions, user: &str, password: &str) -> ConnectOptions {
    if user != clients::CLIENT_USER {
        return opts.user_and_password(user.to_owned(), password.to_owned());
    }
    let key = new_inbox_key();
    let inbox = client_inbox(&key);
    opts.user_and_password(user.to_owned(), clients::join_password(password, &key))
        .custom_inbox_prefix(inbox)
}

/// Logs one connection event under the connection's name, at a level that says whether
/// anyone should look: async-nats alone logs "event: client error: nats: IO error" with no
/// name, a dozen times on a shutdown, and nobody can tell which connection it was.
pub fn log_event(name: &str, event: &async_nats::Event) {
    use async_nats::Event;
    match event {
        Event::Connected => tracing::debug!(connection = name, "NATS connected"),
        Event::Draining | Event::Closed => tracing::debug!(connection = name, %event, "NATS"),
        Event::Disconnected | Event::LameDuckMode => {
            tracing::warn!(connection = name, %event, "NATS")
        }
        Event::SlowConsumer(_) | Event::ServerError(_) | Event::ClientError(_) => {
            tracing::warn!(connection = name, %event, "NATS")
        }
    }
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
    // One inbox key for every attempt: the key is the connection's for its whole life.
    let with_credentials = match &credentials {
        Some((user, pass)) => with_credentials(ConnectOptions::new(), user, pass),
        None => ConnectOptions::new(),
    };
    loop {
        let opts = with_credentials.clone();
        let named = name.to_owned();
        let opts = opts
            .name(name)
            .event_callback(move |event| {
                log_event(&named, &event);
                std::future::ready(())
            })
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
    use tessera_schemas::clients;

    #[test]
    fn client_inboxes_are_bound_to_their_key() {
        let key = super::new_inbox_key();
        assert!(clients::inbox_key_ok(&key), "{key}");
        let inbox = super::client_inbox(&key);
        assert_eq!(inbox, super::client_inbox(&key));
        assert_ne!(inbox, super::client_inbox(&super::new_inbox_key()));
        let hash = inbox.strip_prefix("_C_INBOX.").unwrap();
        assert_eq!(hash.len(), 32);
        assert!(
            hash.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        // SHA-256("abc") starts with ba7816bf8f01cfea414140de5dae2223.
        assert_eq!(
            super::client_inbox("abc"),
            "_C_INBOX.ba7816bf8f01cfea414140de5dae2223"
        );
    }

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
