//! Auth results the broker already got, by SHA-256 of the account token, for a short time.
//!
//! A client logs in once and then asks for many plugin tokens with the same account token.
//! Asking the auth worker every time costs a full NATS round trip per token (two messages
//! through the server, a span and a decode on each side): at 64 requests in flight that was a
//! fifth of the broker's CPU. The auth worker is still asked for every account token it has
//! not answered for within [`crate::config::BrokerConfig::auth_cache_ttl`] (default 30 s;
//! zero turns the cache off), so a change on the account side (a key rotated, an external
//! issuer removed) takes effect within that bound. Only successes are kept: a refused token
//! is asked about again each time. An entry never outlives the account token itself.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tessera_schemas::messages::VerifyResponse;

/// Entries kept at most; the map is emptied when full (it refills with the tokens in use).
const MAX_ENTRIES: usize = 100_000;

pub struct AuthCache {
    ttl: Duration,
    map: Mutex<HashMap<[u8; 32], (VerifyResponse, Instant)>>,
}

fn key(account_token: &str) -> [u8; 32] {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, account_token.as_bytes())
        .as_ref()
        .try_into()
        .expect("SHA-256 is 32 bytes")
}

impl AuthCache {
    pub fn new(ttl: Duration) -> Self {
        AuthCache {
            ttl,
            map: Mutex::default(),
        }
    }

    /// The remembered auth result, if it is still fresh and its token has not expired.
    pub fn get(&self, account_token: &str) -> Option<VerifyResponse> {
        if self.ttl.is_zero() {
            return None;
        }
        let map = self.map.lock().expect("lock poisoned");
        let (result, until) = map.get(&key(account_token))?;
        (Instant::now() < *until && result.expires_at > tessera_protocol::now_unix())
            .then(|| result.clone())
    }

    pub fn put(&self, account_token: &str, result: &VerifyResponse) {
        if self.ttl.is_zero() {
            return;
        }
        let mut map = self.map.lock().expect("lock poisoned");
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(
            key(account_token),
            (result.clone(), Instant::now() + self.ttl),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(expires_at: u64) -> VerifyResponse {
        VerifyResponse {
            account_id: "a1".into(),
            issuer: "tessera-auth".into(),
            expires_at,
        }
    }

    #[test]
    fn keeps_fresh_results_of_live_tokens_only() {
        let cache = AuthCache::new(Duration::from_secs(30));
        let live = tessera_protocol::now_unix() + 600;
        cache.put("t1", &result(live));
        assert_eq!(cache.get("t1"), Some(result(live)));
        assert_eq!(cache.get("t2"), None);
        // An expired account token is never answered from the cache.
        cache.put("t3", &result(tessera_protocol::now_unix() - 1));
        assert_eq!(cache.get("t3"), None);
    }

    #[test]
    fn zero_ttl_keeps_nothing() {
        let cache = AuthCache::new(Duration::ZERO);
        cache.put("t1", &result(tessera_protocol::now_unix() + 600));
        assert_eq!(cache.get("t1"), None);
    }

    #[test]
    fn entries_age_out() {
        let cache = AuthCache::new(Duration::from_millis(1));
        cache.put("t1", &result(tessera_protocol::now_unix() + 600));
        let deadline = Instant::now() + Duration::from_secs(2);
        while cache.get("t1").is_some() {
            assert!(Instant::now() < deadline, "entry outlived its ttl");
            std::thread::yield_now();
        }
    }
}
