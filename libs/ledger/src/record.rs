//! The token record: what Redis holds for one issued plugin token (MessagePack, under
//! [`RedisKeys::token`](crate::RedisKeys::token), with the token's TTL plus the clock leeway).
//! Its presence means "issued and not revoked"; it never holds the bearer string.

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
}
