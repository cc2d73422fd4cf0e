//! Every Redis key Tessera uses, built in one place.
//!
//! Keys start with the subject prefix, so two stacks can share one Redis. Ids inside keys are
//! validated ids or uuids; caller-chosen strings (idempotency keys) are hashed first, so no
//! key can be made to collide or grow without bound.

/// Key builders for one prefix.
#[derive(Debug, Clone)]
pub struct RedisKeys {
    prefix: String,
}

impl RedisKeys {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    /// The record of one issued plugin token (MessagePack), with the token's TTL.
    pub fn token(&self, token_id: &str) -> String {
        format!("{}:token:{token_id}", self.prefix)
    }

    /// Sorted set of the token ids issued to one account, scored by expiry (for revoke-all).
    pub fn account_tokens(&self, account_id: &str) -> String {
        format!("{}:account:{account_id}:tokens", self.prefix)
    }

    /// The reply to an idempotent token request, kept 5 minutes.
    pub fn idempotency(&self, account_id: &str, plugin_id: &str, key: &str) -> String {
        let digest = crate::signing::token_hash(&format!("{account_id}\n{plugin_id}\n{key}"));
        format!("{}:idem:{digest}", self.prefix)
    }

    /// A data-access packet's nonce, scoped by client app, kept for the replay window
    /// (`SET NX PX`). `app_id` and `nonce` are validated (id, base64url) before use.
    pub fn nonce(&self, app_id: &str, nonce: &str) -> String {
        format!("{}:nonce:{app_id}:{nonce}", self.prefix)
    }
}
