//! How a client app connects to the bus, so that no connection can read another's replies
//!.
//!
//! Every client app connects as user [`CLIENT_USER`] with the client password, plus an
//! *inbox key* of its own: 32 random bytes made at connect, base64url, sent as the CONNECT's
//! `auth_token`. Its replies arrive under `_C_INBOX.<h>`, where `<h>` is the first 32 hex
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
}
