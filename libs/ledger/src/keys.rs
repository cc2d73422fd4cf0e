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

    /// The id of the token an idempotent token request was answered with, kept for the
    /// token's life, at most 5 minutes (never the token: see `LedgerWriter::record`). `binding` is what the
    /// token is bound to (see [`idempotency_binding`]; empty when unbound), so a retry for
    /// another device or IP never gets back a token bound to the first one.
    ///
    /// The key is a SHA-256 of [`idempotency_input`]: every field length-prefixed, because
    /// no separator is safe. A third-party account id is `<app_id>:<subject>` and the
    /// subject is whatever the third party says (newlines included), and the idempotency
    /// key is the caller's; with fields joined by `\n`, account `app:u\nweather` asking
    /// for plugin `news` with key `K` and account `app:u` asking for `weather` with key
    /// `news\nK` hashed the same bytes, and the second got the first's token.
    pub fn idempotency(
        &self,
        account_id: &str,
        plugin_id: &str,
        binding: &str,
        key: &str,
    ) -> String {
        let input = idempotency_input(account_id, plugin_id, binding, key);
        format!(
            "{}:idem:{}",
            self.prefix,
            tessera_protocol::signing::token_hash(&input)
        )
    }

    /// A data-access packet's nonce, scoped by client app, kept for the replay window
    /// (`SET NX PX`). `app_id` and `nonce` are validated (id, base64url) before use.
    pub fn nonce(&self, app_id: &str, nonce: &str) -> String {
        format!("{}:nonce:{app_id}:{nonce}", self.prefix)
    }
}

/// What an idempotency key's hash covers: a version tag, then account, plugin, binding and
/// the caller's key, each as `<byte length>:<bytes>` (netstring-like, no terminator needed:
/// the length says where a field ends). Two different tuples never give the same input,
/// whatever bytes the fields hold. Changing this changes every key: replies remembered
/// under the previous encoding are no longer found (see docs/reliability.md, "Hardening").
pub fn idempotency_input(account_id: &str, plugin_id: &str, binding: &str, key: &str) -> String {
    let mut input = String::with_capacity(
        IDEMPOTENCY_TAG.len() + account_id.len() + plugin_id.len() + binding.len() + key.len() + 24,
    );
    for field in [IDEMPOTENCY_TAG, account_id, plugin_id, binding, key] {
        use std::fmt::Write;
        let _ = write!(input, "{}:{field}", field.len());
    }
    input
}

/// First field of [`idempotency_input`]: names the encoding, so a later one cannot meet it.
const IDEMPOTENCY_TAG: &str = "tessera-idem/2";

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

    /// The encoding this replaced: fields joined by newlines, the binding line left out
    /// when empty.
    fn newline_joined(account_id: &str, plugin_id: &str, binding: &str, key: &str) -> String {
        if binding.is_empty() {
            format!("{account_id}\n{plugin_id}\n{key}")
        } else {
            format!("{account_id}\n{plugin_id}\n{binding}\n{key}")
        }
    }

    /// Pairs of different (account, plugin, binding, key) tuples that the newline-joined
    /// encoding hashed alike: third-party account ids (`<app_id>:<subject>`) and keys may
    /// hold newlines. Length-prefixed, each pair differs.
    #[test]
    fn different_requests_never_share_an_idempotency_key() {
        let collisions = [
            // Two third-party accounts: the subject of one ends in "\nweather".
            (
                ("acme:u\nweather", "news", "", "K"),
                ("acme:u", "weather", "", "news\nK"),
            ),
            // An unbound request whose key looks like a binding line, and a bound one.
            (
                ("acme:u", "weather", "", "d=dev-1\nK"),
                ("acme:u", "weather", "d=dev-1", "K"),
            ),
            // The binding carried inside the account id.
            (
                ("acme:u\nweather\nd=x", "p", "", "K"),
                ("acme:u", "weather", "d=x", "p\nK"),
            ),
        ];
        let k = RedisKeys::new("t");
        for (a, b) in collisions {
            assert_ne!(a, b);
            assert_eq!(
                newline_joined(a.0, a.1, a.2, a.3),
                newline_joined(b.0, b.1, b.2, b.3),
                "{a:?} and {b:?} collide under the old encoding"
            );
            assert_ne!(
                idempotency_input(a.0, a.1, a.2, a.3),
                idempotency_input(b.0, b.1, b.2, b.3),
                "{a:?} and {b:?}"
            );
            assert_ne!(
                k.idempotency(a.0, a.1, a.2, a.3),
                k.idempotency(b.0, b.1, b.2, b.3)
            );
        }
        // The encoding itself, spelled out.
        assert_eq!(
            idempotency_input("acme:u", "weather", "", "K"),
            "14:tessera-idem/26:acme:u7:weather0:1:K"
        );
    }
}
