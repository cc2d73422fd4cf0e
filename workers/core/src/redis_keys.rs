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

    /// Sorted set of the token ids recorded but not yet committed (distributed and handed
    /// out), scored by the time (Unix ms) after which a sweeper withdraws them: a replica
    /// that died between recording and committing leaves nothing valid behind.
    pub fn pending(&self) -> String {
        format!("{}:pending", self.prefix)
    }

    /// Sorted set of the token ids issued to one account, scored by expiry (for revoke-all).
    pub fn account_tokens(&self, account_id: &str) -> String {
        format!("{}:account:{account_id}:tokens", self.prefix)
    }

    /// The reply to an idempotent token request, kept 5 minutes. `binding` is what the
    /// token is bound to (see [`idempotency_binding`]; empty when unbound), so a retry for
    /// another device or IP never gets back a token bound to the first one.
    pub fn idempotency(
        &self,
        account_id: &str,
        plugin_id: &str,
        binding: &str,
        key: &str,
    ) -> String {
        // The caller-chosen key goes last: every line before it is newline-free (ids, a
        // checked device id, a canonical IP), so no two inputs share a digest input.
        let input = if binding.is_empty() {
            format!("{account_id}\n{plugin_id}\n{key}")
        } else {
            format!("{account_id}\n{plugin_id}\n{binding}\n{key}")
        };
        format!(
            "{}:idem:{}",
            self.prefix,
            crate::signing::token_hash(&input)
        )
    }

    /// A data-access packet's nonce, scoped by client app, kept for the replay window
    /// (`SET NX PX`). `app_id` and `nonce` are validated (id, base64url) before use.
    pub fn nonce(&self, app_id: &str, nonce: &str) -> String {
        format!("{}:nonce:{app_id}:{nonce}", self.prefix)
    }
}

/// The binding part of an idempotency key: `d=<device_id>` and/or `i=<user_ip>` (one line
/// each, in that order), empty for an unbound token.
pub fn idempotency_binding(device_id: Option<&str>, user_ip: Option<&str>) -> String {
    let mut out = Vec::new();
    if let Some(d) = device_id {
        out.push(format!("d={d}"));
    }
    if let Some(i) = user_ip {
        out.push(format!("i={i}"));
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_differ_by_binding() {
        let k = RedisKeys::new("t");
        let unbound = k.idempotency("a", "p", "", "key");
        let dev_a = k.idempotency("a", "p", &idempotency_binding(Some("A"), None), "key");
        let dev_b = k.idempotency("a", "p", &idempotency_binding(Some("B"), None), "key");
        let ip = k.idempotency(
            "a",
            "p",
            &idempotency_binding(None, Some("192.0.2.1")),
            "key",
        );
        let both = k.idempotency(
            "a",
            "p",
            &idempotency_binding(Some("A"), Some("192.0.2.1")),
            "key",
        );
        let all = [&unbound, &dev_a, &dev_b, &ip, &both];
        for (i, x) in all.iter().enumerate() {
            for y in &all[i + 1..] {
                assert_ne!(x, y);
            }
        }
        assert_eq!(dev_a, k.idempotency("a", "p", "d=A", "key"));
    }
}
