//! The token record: what Redis holds for one issued plugin token, under
//! [`RedisKeys::token`](crate::RedisKeys::token), with the token's TTL plus the clock leeway.
//! Its presence means "issued and not revoked"; it never holds the bearer string, only its
//! hash and the claims the broker needs to sign the same token again for a retried
//! idempotent request (see `LedgerWriter::record`).
//!
//! Stored as a MessagePack array (fields by position, not by name): one record per live
//! token is most of what Redis holds, and field names were a third of each record. A field
//! is added at the end with `#[serde(default)]`, so records written by an older broker still
//! decode (those written by name, before this layout, decode too: the gateway and
//! introspection keep honouring tokens issued before an upgrade; docs/reliability.md,
//! "Upgrading").

use serde::{Deserialize, Serialize};

/// What Redis holds for one issued token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub account_id: String,
    pub plugin_id: String,
    /// The plugin servers it was distributed to (where a revocation must go).
    pub servers: Vec<String>,
    /// SHA-256 (hex) of the token string.
    pub token_hash: String,
    pub expires_at: u64,
    /// The token's `iat`.
    #[serde(default)]
    pub issued_at: u64,
    /// The device and the user IP the token is bound to (its `device_id` and `user_ip`).
    #[serde(default)]
    pub device_id: Option<String>,
    #[serde(default)]
    pub user_ip: Option<String>,
}

impl TokenRecord {
    pub(crate) fn encode(&self) -> Vec<u8> {
        // Serialising a plain struct into a Vec cannot fail; a failure is a bug.
        rmp_serde::to_vec(self).expect("a token record always serialises")
    }

    /// A value that does not decode is treated as absent: it cannot vouch for a token.
    pub(crate) fn decode(raw: &[u8]) -> Option<TokenRecord> {
        rmp_serde::from_slice(raw).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> TokenRecord {
        TokenRecord {
            account_id: "acme:u-1".into(),
            plugin_id: "weather".into(),
            servers: vec!["ps1".into(), "ps2".into()],
            token_hash: "ab".repeat(32),
            expires_at: 2_000_000_000,
            issued_at: 1_999_999_000,
            device_id: Some("dev-1".into()),
            user_ip: None,
        }
    }

    #[test]
    fn a_record_round_trips_as_an_array_without_field_names() {
        let r = record();
        let bytes = r.encode();
        // fixarray of 8: positional, so no field name is stored.
        assert_eq!(bytes[0], 0x98);
        assert!(!bytes.windows(7).any(|w| w == b"servers"));
        assert_eq!(TokenRecord::decode(&bytes), Some(r));
    }

    /// What brokers wrote before this layout: a map by field name, without the claims
    /// added since. The gateway and introspection must still honour such a token.
    #[test]
    fn a_record_written_by_name_before_this_layout_still_decodes() {
        #[derive(Serialize)]
        struct Before<'a> {
            account_id: &'a str,
            plugin_id: &'a str,
            servers: &'a [&'a str],
            token_hash: String,
            expires_at: u64,
        }
        let bytes = rmp_serde::to_vec_named(&Before {
            account_id: "acme:u-1",
            plugin_id: "weather",
            servers: &["ps1"],
            token_hash: "ab".repeat(32),
            expires_at: 2_000_000_000,
        })
        .unwrap();
        let r = TokenRecord::decode(&bytes).expect("decodes");
        assert_eq!(r.token_hash, "ab".repeat(32));
        assert_eq!((r.issued_at, r.device_id, r.user_ip), (0, None, None));
    }

    #[test]
    fn a_value_of_another_shape_is_no_record() {
        assert_eq!(TokenRecord::decode(b"not msgpack"), None);
        assert_eq!(
            TokenRecord::decode(&rmp_serde::to_vec(&(1, 2)).unwrap()),
            None
        );
    }
}
