//! Every Redis key Tessera uses, built in one place.
//!
//! Keys start with the subject prefix, so two stacks can share one Redis. Ids inside keys are
//! validated ids or uuids; caller-chosen strings (idempotency keys) are hashed first, so no
//! key can be made to collide or grow without bound.
//!
//! # Shards (Redis Cluster)
//!
//! The broker's keys carry a hash tag, `{<shard>}` right after the prefix, so that a Redis
//! Cluster puts every key of one request's pipeline in one slot: a token's record, its
//! account's index, the account's remembered replies and the pending set they go into. The
//! shard is [`Shard::of_account`] (the first byte of the account id's SHA-256), so all of an
//! account's keys share one: [`LedgerWriter::record`](crate::LedgerWriter::record) and
//! [`commit`](crate::LedgerWriter::commit) stay single-slot pipelines. There are [`SHARDS`]
//! of them, spread over the cluster's 16384 slots (and so over its masters); the pending
//! set, one key per shard, is no single hot key.
//!
//! A token id carries its account's shard as its first byte ([`new_token_id`]), so whoever
//! holds only the id (an admin revoking by id, the gateway, introspection) finds the record
//! without knowing the account. The gateway's nonces are not tagged: a nonce claim is its
//! own command, sent beside the record read (see
//! [`LedgerReader::query_with_record`](crate::LedgerReader::query_with_record)).
//!
//! **Changing this layout (the tag's place, [`SHARDS`], how a shard is derived) changes
//! every key**: what the previous layout wrote is no longer found (docs/reliability.md,
//! "Upgrading").

/// How many ledger shards there are: one byte of the account id's hash, and the first byte
/// of every token id. 256 hash tags spread the ledger over the slots of any cluster of up to
/// a few dozen masters; more would need a longer id prefix.
pub const SHARDS: usize = 256;

/// One of the [`SHARDS`] ledger shards: the hash tag `{xx}` (two lowercase hex digits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Shard(pub u8);

impl Shard {
    /// The shard of every key of `account_id`: the first byte of its SHA-256.
    pub fn of_account(account_id: &str) -> Shard {
        Shard(first_byte_of_sha256(account_id))
    }

    /// The shard a token id names (its first two hex digits, see [`new_token_id`]). An id
    /// that does not start with them (not one we minted) gets a shard from its hash; its
    /// record is not found there, which is the right answer for an id we never issued.
    pub fn of_token(token_id: &str) -> Shard {
        match token_id.get(..2).map(|h| u8::from_str_radix(h, 16)) {
            Some(Ok(b)) if token_id.as_bytes()[..2].iter().all(u8::is_ascii_hexdigit) => Shard(b),
            _ => Shard(first_byte_of_sha256(token_id)),
        }
    }

    /// Every shard, in order (the sweeper's walk).
    pub fn all() -> impl Iterator<Item = Shard> {
        (0..=u8::MAX).map(Shard)
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:02x}", self.0)
    }
}

fn first_byte_of_sha256(s: &str) -> u8 {
    tessera_protocol::signing::sha256_first_byte(s)
}

/// A fresh token id for `account_id`: a UUID (version 8, RFC 9562's custom layout) whose
/// first byte is the account's [`Shard`] and whose other 114 bits outside the version and
/// variant are random, as unguessable as the v4 ids it replaces.
pub fn new_token_id(account_id: &str) -> String {
    let mut bytes = *uuid::Uuid::new_v4().as_bytes();
    bytes[0] = Shard::of_account(account_id).0;
    uuid::Builder::from_custom_bytes(bytes)
        .into_uuid()
        .to_string()
}

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

    /// The record of one issued plugin token (MessagePack), with the token's TTL; in the
    /// shard its id names.
    pub fn token(&self, token_id: &str) -> String {
        format!(
            "{}:{{{}}}:token:{token_id}",
            self.prefix,
            Shard::of_token(token_id)
        )
    }

    /// A `KEYS`/`SCAN` pattern that matches every token record (for inspection and tests).
    pub fn token_pattern(&self) -> String {
        format!("{}:{{??}}:token:*", self.prefix)
    }

    /// The token id in a token record's key (`None` for any other key).
    pub fn token_id_in<'a>(&self, key: &'a str) -> Option<&'a str> {
        let rest = key.strip_prefix(self.prefix.as_str())?.strip_prefix(":{")?;
        let (_, id) = rest.split_once("}:token:")?;
        Some(id)
    }

    /// Sorted set of one shard's token ids recorded but not yet committed (distributed and
    /// handed out), scored by the time (Unix ms) after which a sweeper withdraws them: a
    /// replica that died between recording and committing leaves nothing valid behind.
    pub fn pending(&self, shard: Shard) -> String {
        format!("{}:{{{shard}}}:pending", self.prefix)
    }

    /// Sorted set of the token ids issued to one account, scored by expiry (for revoke-all).
    pub fn account_tokens(&self, account_id: &str) -> String {
        format!(
            "{}:{{{}}}:account:{account_id}:tokens",
            self.prefix,
            Shard::of_account(account_id)
        )
    }

    /// The id of the token an idempotent token request was answered with, in the account's
    /// shard, kept for the token's life, at most 5 minutes (never the token: see
    /// `LedgerWriter::record`). `binding` is what the token is bound to (see
    /// [`idempotency_binding`]; empty when unbound), so a retry for another device or IP
    /// never gets back a token bound to the first one.
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
            "{}:{{{}}}:idem:{}",
            self.prefix,
            Shard::of_account(account_id),
            tessera_protocol::signing::token_hash(&input)
        )
    }

    /// A data-access packet's nonce, scoped by client app, kept for the replay window
    /// (`SET NX PX`). `app_id` and `nonce` are validated (id, base64url) before use. Not in
    /// a shard: its claim is a command of its own (a cluster spreads nonces by their hash).
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
    fn a_tokens_keys_share_its_accounts_shard_and_its_id_names_it() {
        let k = RedisKeys::new("t");
        for account in ["ann", "acme:u\nweather", "", "b0b"] {
            let shard = Shard::of_account(account);
            let id = new_token_id(account);
            assert_eq!(Shard::of_token(&id), shard, "{account:?}");
            assert_eq!(id.len(), 36);
            assert_eq!(&id[14..15], "8", "a version 8 uuid: {id}");
            let tag = format!("{{{shard}}}");
            for key in [
                k.token(&id),
                k.account_tokens(account),
                k.idempotency(account, "p", "", "key"),
                k.pending(shard),
            ] {
                assert_eq!(hash_tag(&key), Some(&tag[1..3]), "{key}");
            }
        }
        // Random apart from the shard: two ids for one account differ.
        assert_ne!(new_token_id("ann"), new_token_id("ann"));
        // The layout, spelled out.
        let id = "3f1c2d4e-0000-8000-8000-000000000000";
        assert_eq!(k.token(id), format!("t:{{3f}}:token:{id}"));
        assert_eq!(k.token_id_in(&k.token(id)), Some(id));
        assert_eq!(k.token_id_in(&k.pending(Shard(1))), None);
        assert_eq!(k.token_pattern(), "t:{??}:token:*");
        assert_eq!(k.pending(Shard(0x0a)), "t:{0a}:pending");
        assert_eq!(k.nonce("app", "n"), "t:nonce:app:n");
    }

    #[test]
    fn ids_we_did_not_mint_still_get_a_shard_and_accounts_spread_over_all() {
        // Not hex, too short, empty, a brace: a shard from the hash, never a panic, and the
        // id's bytes never come before the tag (they cannot move the key's slot).
        for id in ["zz-not-ours", "a", "", "{00}x", "é9"] {
            let key = RedisKeys::new("t").token(id);
            assert_eq!(
                hash_tag(&key),
                Some(format!("{}", Shard::of_token(id)).as_str())
            );
        }
        let shards: std::collections::BTreeSet<Shard> = (0..5000)
            .map(|i| Shard::of_account(&format!("account-{i}")))
            .collect();
        assert_eq!(shards.len(), SHARDS);
        assert_eq!(Shard::all().count(), SHARDS);
    }

    /// What Redis Cluster hashes: the text between the first `{` and the next `}`.
    fn hash_tag(key: &str) -> Option<&str> {
        let open = key.find('{')?;
        let close = key[open + 1..].find('}')? + open + 1;
        Some(&key[open + 1..close])
    }

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
