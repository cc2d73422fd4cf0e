//! The tokens one plugin server holds: looked up per request by the SHA-256 of the bearer
//! string, with revoked ids remembered until they would have expired.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use std::time::Duration;

use tessera_protocol::jwt::{Reason, Rejection, Verifier};
use tessera_schemas::{ErrorCode, WireError};

use super::PluginScope;

/// What a stored token says. Handlers receive it with each request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub token_id: String,
    pub account_id: String,
    pub plugin_id: String,
    pub expires_at: u64,
}

/// Why a bearer token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no token was distributed to this server for this bearer")]
    Unknown,
    #[error("token expired")]
    Expired,
    #[error("token revoked")]
    Revoked,
    #[error("token is for plugin {0:?}, which this operation does not serve")]
    WrongPlugin(String),
    /// Distributed but not yet verified: the caller verifies the signature once, then
    /// [`TokenStore::mark_verified`].
    #[error("token signature not verified yet")]
    Unverified,
}

/// Counts the refusal (`verifier="plugin_server"`): every refusal of a bearer reaches the
/// caller through here.
impl From<AuthError> for WireError {
    fn from(e: AuthError) -> WireError {
        let (reason, code) = match e {
            AuthError::WrongPlugin(_) => (Reason::Plugin, ErrorCode::Forbidden),
            AuthError::Expired => (Reason::Expired, ErrorCode::Unauthenticated),
            // Unknown reaches a caller only after the signature verified and the broker
            // said the token is not live: revoked (or its record lapsed).
            AuthError::Revoked | AuthError::Unknown => {
                (Reason::Revoked, ErrorCode::Unauthenticated)
            }
            AuthError::Unverified => (Reason::Signature, ErrorCode::Unauthenticated),
        };
        Rejection::new(reason, e.to_string()).into_wire_as(Verifier::PluginServer, code)
    }
}

type Digest = [u8; 32];

fn digest(token: &str) -> Digest {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    d.as_ref().try_into().expect("SHA-256 is 32 bytes")
}

/// A stored token. `verified` turns true once its signature has been checked; until then
/// its claims are only what the distribution said.
struct Slot {
    info: Arc<TokenInfo>,
    verified: bool,
}

#[derive(Default)]
struct Inner {
    by_digest: HashMap<Digest, Slot>,
    by_id: HashMap<String, Digest>,
    /// Revoked token ids, until they would have expired, so a late introspection or a
    /// reordered event cannot bring one back.
    revoked: HashMap<String, u64>,
}

/// The tokens distributed to one plugin server. Shared by all its request handlers.
pub struct TokenStore {
    inner: RwLock<Inner>,
    /// Clock leeway on `exp`, in seconds: a token is served until `exp + leeway`.
    leeway: u64,
}

impl Default for TokenStore {
    /// A store with the default clock leeway.
    fn default() -> Self {
        TokenStore::with_leeway(tessera_protocol::jwt::DEFAULT_LEEWAY)
    }
}

impl TokenStore {
    /// A store that serves tokens until `exp + leeway` (whole seconds).
    pub fn with_leeway(leeway: Duration) -> TokenStore {
        TokenStore {
            inner: RwLock::default(),
            leeway: leeway.as_secs(),
        }
    }

    /// Whether a token expiring at `exp` is over at `now`, leeway included.
    fn expired(&self, exp: u64, now: u64) -> bool {
        exp.saturating_add(self.leeway) <= now
    }

    /// Per-request authentication: a SHA-256 of the bearer string and a map lookup.
    pub fn authenticate(
        &self,
        bearer: &str,
        scope: &PluginScope,
        now: u64,
    ) -> Result<Arc<TokenInfo>, AuthError> {
        let d = digest(bearer);
        let info = {
            let inner = self.inner.read().expect("lock poisoned");
            let slot = inner.by_digest.get(&d).ok_or(AuthError::Unknown)?;
            if !slot.verified {
                return Err(AuthError::Unverified);
            }
            slot.info.clone()
        };
        if self.expired(info.expires_at, now) {
            return Err(AuthError::Expired);
        }
        if !scope.allows(&info.plugin_id) {
            return Err(AuthError::WrongPlugin(info.plugin_id.clone()));
        }
        Ok(info)
    }

    /// Stores a verified token, unless it was revoked.
    pub fn insert(&self, token: &str, info: TokenInfo) -> bool {
        self.put(token, info, true)
    }

    /// Stores a distributed token whose signature will be checked on first use.
    pub fn insert_unverified(&self, token: &str, info: TokenInfo) -> bool {
        self.put(token, info, false)
    }

    fn put(&self, token: &str, info: TokenInfo, verified: bool) -> bool {
        let mut inner = self.inner.write().expect("lock poisoned");
        if inner.revoked.contains_key(&info.token_id) {
            return false;
        }
        let d = digest(token);
        inner.by_id.insert(info.token_id.clone(), d);
        inner.by_digest.insert(
            d,
            Slot {
                info: Arc::new(info),
                verified,
            },
        );
        true
    }

    /// Records that a stored token's signature checked out.
    pub fn mark_verified(&self, token: &str) {
        if let Some(slot) = self
            .inner
            .write()
            .expect("lock poisoned")
            .by_digest
            .get_mut(&digest(token))
        {
            slot.verified = true;
        }
    }

    /// Drops a stored token whose signature did not check out.
    pub fn remove(&self, token: &str) {
        let mut inner = self.inner.write().expect("lock poisoned");
        if let Some(slot) = inner.by_digest.remove(&digest(token)) {
            inner.by_id.remove(&slot.info.token_id);
        }
    }

    /// Drops tokens at once and remembers them as revoked.
    pub fn revoke(&self, token_ids: &[String], until: u64) {
        let mut inner = self.inner.write().expect("lock poisoned");
        for id in token_ids {
            let exp = inner
                .by_id
                .remove(id)
                .and_then(|d| inner.by_digest.remove(&d))
                .map_or(until, |s| s.info.expires_at);
            inner.revoked.insert(id.clone(), exp);
        }
    }

    pub fn is_revoked(&self, token_id: &str) -> bool {
        self.inner
            .read()
            .expect("lock poisoned")
            .revoked
            .contains_key(token_id)
    }

    /// Whether a token id is stored (and not revoked).
    pub fn contains(&self, token_id: &str) -> bool {
        self.inner
            .read()
            .expect("lock poisoned")
            .by_id
            .contains_key(token_id)
    }

    pub fn len(&self) -> usize {
        self.inner.read().expect("lock poisoned").by_digest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets what has expired; memory stays bounded by the tokens alive at once.
    pub fn purge_expired(&self, now: u64) {
        let mut inner = self.inner.write().expect("lock poisoned");
        let expired: Vec<(String, Digest)> = inner
            .by_digest
            .iter()
            .filter(|(_, s)| self.expired(s.info.expires_at, now))
            .map(|(d, s)| (s.info.token_id.clone(), *d))
            .collect();
        for (id, d) in expired {
            inner.by_digest.remove(&d);
            inner.by_id.remove(&id);
        }
        let leeway = self.leeway;
        inner
            .revoked
            .retain(|_, exp| exp.saturating_add(leeway) > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: &str, plugin: &str, exp: u64) -> TokenInfo {
        TokenInfo {
            token_id: id.into(),
            account_id: "acct".into(),
            plugin_id: plugin.into(),
            expires_at: exp,
        }
    }

    #[test]
    fn store_authenticates_only_live_tokens_for_the_right_plugin() {
        let s = TokenStore::with_leeway(Duration::ZERO);
        assert!(s.insert("tok-a", info("a", "weather", 100)));
        assert_eq!(
            s.authenticate("tok-a", &PluginScope::Any, 50)
                .unwrap()
                .token_id,
            "a"
        );
        assert_eq!(
            s.authenticate("tok-b", &PluginScope::Any, 50),
            Err(AuthError::Unknown)
        );
        assert_eq!(
            s.authenticate("tok-a", &PluginScope::Any, 100),
            Err(AuthError::Expired)
        );
        assert_eq!(
            s.authenticate("tok-a", &PluginScope::only(["maps"]), 50),
            Err(AuthError::WrongPlugin("weather".into()))
        );
        s.revoke(&["a".into()], 200);
        assert_eq!(
            s.authenticate("tok-a", &PluginScope::Any, 50),
            Err(AuthError::Unknown)
        );
        assert!(
            !s.insert("tok-a", info("a", "weather", 100)),
            "a revoked token stays out"
        );
    }

    #[test]
    fn unverified_tokens_are_served_only_after_verification() {
        let s = TokenStore::default();
        assert!(s.insert_unverified("tok-u", info("u", "weather", 100)));
        assert!(s.contains("u"));
        assert_eq!(
            s.authenticate("tok-u", &PluginScope::Any, 50),
            Err(AuthError::Unverified)
        );
        s.mark_verified("tok-u");
        assert_eq!(
            s.authenticate("tok-u", &PluginScope::Any, 50)
                .unwrap()
                .token_id,
            "u"
        );
        s.insert_unverified("tok-f", info("f", "weather", 100));
        s.remove("tok-f");
        assert!(!s.contains("f"));
        assert_eq!(
            s.authenticate("tok-f", &PluginScope::Any, 50),
            Err(AuthError::Unknown)
        );
    }

    #[test]
    fn expiry_allows_the_leeway_and_no_more() {
        let s = TokenStore::with_leeway(Duration::from_secs(5));
        s.insert("t", info("t", "p", 100));
        assert!(s.authenticate("t", &PluginScope::Any, 104).is_ok());
        assert_eq!(
            s.authenticate("t", &PluginScope::Any, 105),
            Err(AuthError::Expired)
        );
        s.purge_expired(104);
        assert!(s.contains("t"));
        s.purge_expired(105);
        assert!(!s.contains("t"));
    }

    #[test]
    fn purge_forgets_expired() {
        let s = TokenStore::with_leeway(Duration::ZERO);
        s.insert("t1", info("1", "p", 10));
        s.insert("t2", info("2", "p", 30));
        s.purge_expired(20);
        assert_eq!(s.len(), 1);
        assert!(s.contains("2"));
    }
}
