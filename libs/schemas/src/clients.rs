//! How a client app connects to the bus, so that no connection can read another's replies
//!.
//!
//! Every client app connects as user [`CLIENT_USER`] with the client password, plus an
//! *inbox key* of its own: 32 random bytes made at connect, base64url, sent in the CONNECT's
//! password field after the client password and a [`KEY_SEPARATOR`]
//! (`<client password>:<inbox key>`, [`join_password`]). Every NATS client library sends a
//! user and password, so a stock client needs no special option; the password is never shown
//! by nats-server's monitoring or logs (the user name and connection name are, so the key
//! goes in neither). Its replies arrive under `_C_INBOX.<h>`, where `<h>` is the first 32 hex
//! digits of SHA-256(key) (`tessera_protocol::bus::client_inbox`). The auth callout checks the
//! password and gives the connection permission to subscribe to that prefix alone.
//!
//! Why a hash: responders (workers, plugin servers) see a request's reply subject, so they
//! learn `<h>`; only the key opens it, and the key never leaves the connection.

/// The bus user name of every client app (its password is the `client` role's).
pub const CLIENT_USER: &str = "client";

/// The first token of every client inbox: outside `_INBOX.>`.
pub const INBOX_ROOT: &str = "_C_INBOX";

/// Hex digits of the key's SHA-256 in the inbox prefix (128 bits).
pub const INBOX_HASH_HEX: usize = 32;

/// Bytes of randomness in an inbox key.
pub const INBOX_KEY_BYTES: usize = 32;

/// Between the client password and the inbox key in a client connection's password. Never
/// in a key (base64url), so the last one in a password is the separator whatever the client
/// password holds.
pub const KEY_SEPARATOR: char = ':';

/// The CONNECT password of a client connection: `<client password>:<inbox key>`.
pub fn join_password(client_password: &str, key: &str) -> String {
    format!("{client_password}{KEY_SEPARATOR}{key}")
}

/// A client connection's CONNECT password split into the client password and the inbox key,
/// at the last [`KEY_SEPARATOR`]; `None` if there is none. The key's shape is not checked
/// here ([`inbox_key_ok`]).
pub fn split_password(pass: &str) -> Option<(&str, &str)> {
    pass.rsplit_once(KEY_SEPARATOR)
}

/// Whether `key` looks like an inbox key: 43 to 128 characters of `A-Z a-z 0-9 - _` (32
/// random bytes in base64url are 43). A longer key is allowed (not required by anything),
/// a shorter one would be guessable.
pub fn inbox_key_ok(key: &str) -> bool {
    (43..=128).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbox_keys_must_be_long_and_url_safe() {
        assert!(inbox_key_ok(&"a".repeat(43)));
        assert!(inbox_key_ok(&"A-_9".repeat(32)));
        assert!(!inbox_key_ok(&"a".repeat(42)));
        assert!(!inbox_key_ok(&"a".repeat(129)));
        assert!(!inbox_key_ok(&format!("{}.", "a".repeat(43))));
        assert!(!inbox_key_ok(&format!("{}*", "a".repeat(43))));
        assert!(!inbox_key_ok(""));
    }

    #[test]
    fn the_key_is_split_off_at_the_last_separator() {
        let key = "k".repeat(43);
        let pass = join_password("pa:ss", &key);
        assert_eq!(pass, format!("pa:ss:{key}"));
        assert_eq!(split_password(&pass), Some(("pa:ss", key.as_str())));
        assert_eq!(split_password("no-key"), None);
        assert_eq!(split_password(":"), Some(("", "")));
    }
}
