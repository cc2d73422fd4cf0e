//! Cached GETs: a provider's well-known documents (OIDC discovery, JWKS) without a round trip
//! per login, and an external issuer's keys still usable while the issuer is unreachable.
//!
//! Asked for per request (`cache: "use"` or `"refresh"`), never implied. Only a `200` to a
//! GET without a body, an `Authorization` or a `Cookie` header is stored, so no user's answer
//! can be served to another user's login. How long an answer stays fresh is the origin's
//! `Cache-Control: max-age` (less its `Age`), [`DEFAULT_TTL`] without one, at most
//! [`MAX_TTL`]; `no-cache` means fresh for no time, `no-store` means not stored. A refetch
//! that fails (no answer, or a 5xx) serves the last stored answer for up to [`MAX_STALE`]
//! after it stopped being fresh. `refresh` refetches now, at most once per [`MIN_REFETCH`]
//! per URL (tokens with made-up `kid`s cannot make us hammer an issuer); a URL whose last
//! fetch failed is not tried again within that time either. An origin that forbids storing
//! (`no-store`) or asks to revalidate (`no-cache`) is asked on every `use`: its choice.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;

/// Fresh time of an answer without `max-age`.
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);
/// Longest fresh time, whatever the origin says.
pub const MAX_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long after it stopped being fresh an answer is served when the origin fails.
pub const MAX_STALE: Duration = Duration::from_secs(24 * 3600);
/// Least time between two fetches of one URL for `refresh`, or after a failed fetch.
pub const MIN_REFETCH: Duration = Duration::from_secs(10);
/// URLs kept per client (one app, or one external issuer).
pub const MAX_ENTRIES: usize = 32;
/// Larger answers are passed on but not stored.
pub const MAX_CACHED_BYTES: usize = 256 * 1024;

/// What a request asks of the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheMode {
    /// A fresh stored answer if there is one, else fetch (and store).
    Use,
    /// Fetch now, unless this URL was fetched within [`MIN_REFETCH`].
    Refresh,
}

/// What to do with one request.
#[derive(Debug, PartialEq)]
pub enum Plan {
    /// Answer with this stored body (status 200).
    Serve(String),
    /// Send the request, then [`ResponseCache::record`] what came back.
    Fetch,
    /// The last fetch failed moments ago and nothing usable is stored.
    Refuse,
}

/// How a fetch ended, for [`ResponseCache::record`].
pub enum Fetched<'a> {
    /// A 200, with the origin's `Cache-Control` and `Age` headers.
    Ok {
        body: &'a str,
        cache_control: Option<&'a str>,
        age: Option<&'a str>,
    },
    /// No answer, or a 5xx.
    Failed,
    /// Any other status: passed on, nothing stored changes.
    Other,
}

struct Entry {
    body: Option<String>,
    fresh_until: Instant,
    stale_until: Instant,
    last_fetch: Instant,
    last_failed: bool,
    /// When a `refresh` last went out.
    last_refresh: Option<Instant>,
}

impl Entry {
    fn usable(&self, now: Instant) -> Option<String> {
        self.body.clone().filter(|_| now < self.stale_until)
    }
}

#[derive(Default)]
pub struct ResponseCache {
    entries: Mutex<HashMap<String, Entry>>,
}

impl ResponseCache {
    pub fn plan(&self, url: &str, mode: CacheMode, now: Instant) -> Plan {
        let mut entries = self.entries.lock().expect("lock poisoned");
        let Some(e) = entries.get_mut(url) else {
            if entries.len() >= MAX_ENTRIES {
                evict_oldest(&mut entries);
            }
            entries.insert(
                url.to_owned(),
                Entry {
                    body: None,
                    fresh_until: now,
                    stale_until: now,
                    last_fetch: now,
                    last_failed: false,
                    last_refresh: (mode == CacheMode::Refresh).then_some(now),
                },
            );
            return Plan::Fetch;
        };
        if mode == CacheMode::Use
            && now < e.fresh_until
            && let Some(body) = &e.body
        {
            return Plan::Serve(body.clone());
        }
        let failed_recently = e.last_failed && now < e.last_fetch + MIN_REFETCH;
        let refreshed_recently =
            mode == CacheMode::Refresh && e.last_refresh.is_some_and(|t| now < t + MIN_REFETCH);
        if failed_recently || refreshed_recently {
            match e.usable(now) {
                Some(body) => return Plan::Serve(body),
                None if failed_recently => return Plan::Refuse,
                // Nothing stored (the origin said no-store): as a `use` would.
                None => {}
            }
        }
        if mode == CacheMode::Refresh {
            e.last_refresh = Some(now);
        }
        e.last_fetch = now;
        Plan::Fetch
    }

    /// Stores what a fetch brought; for a failed one, returns the body to serve instead.
    pub fn record(&self, url: &str, fetched: Fetched<'_>, now: Instant) -> Option<String> {
        let mut entries = self.entries.lock().expect("lock poisoned");
        let e = entries.get_mut(url)?;
        match fetched {
            Fetched::Ok {
                body,
                cache_control,
                age,
            } => {
                e.last_failed = false;
                match fresh_for(cache_control, age) {
                    Some(ttl) if body.len() <= MAX_CACHED_BYTES => {
                        e.body = Some(body.to_owned());
                        e.fresh_until = now + ttl;
                        e.stale_until = e.fresh_until + MAX_STALE;
                    }
                    _ => e.body = None,
                }
                None
            }
            Fetched::Failed => {
                e.last_failed = true;
                e.usable(now)
            }
            Fetched::Other => {
                e.last_failed = false;
                None
            }
        }
    }
}

fn evict_oldest(entries: &mut HashMap<String, Entry>) {
    if let Some(oldest) = entries
        .iter()
        .min_by_key(|(_, e)| e.last_fetch)
        .map(|(url, _)| url.clone())
    {
        entries.remove(&oldest);
    }
}

/// How long an answer is fresh, or `None` when it must not be stored.
pub fn fresh_for(cache_control: Option<&str>, age: Option<&str>) -> Option<Duration> {
    let mut max_age = None;
    for directive in cache_control.unwrap_or_default().split(',') {
        let directive = directive.trim().to_ascii_lowercase();
        if directive == "no-store" {
            return None;
        }
        if directive == "no-cache" {
            return Some(Duration::ZERO);
        }
        if let Some(v) = directive.strip_prefix("max-age=") {
            // A malformed max-age means the answer must be revalidated (RFC 9111 4.2.1).
            max_age = Some(v.trim_matches('"').parse::<u64>().unwrap_or(0));
        }
    }
    let Some(max_age) = max_age else {
        return Some(DEFAULT_TTL);
    };
    let age = age.and_then(|a| a.trim().parse::<u64>().ok()).unwrap_or(0);
    Some(Duration::from_secs(max_age.saturating_sub(age)).min(MAX_TTL))
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "https://idp.example/.well-known/jwks.json";

    fn ok<'a>(body: &'a str, cc: Option<&'a str>) -> Fetched<'a> {
        Fetched::Ok {
            body,
            cache_control: cc,
            age: None,
        }
    }

    #[test]
    fn freshness_follows_cache_control() {
        assert_eq!(fresh_for(None, None), Some(DEFAULT_TTL));
        assert_eq!(
            fresh_for(Some("public, max-age=60"), None),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            fresh_for(Some("max-age=60"), Some("50")),
            Some(Duration::from_secs(10))
        );
        assert_eq!(fresh_for(Some("max-age=99999999"), None), Some(MAX_TTL));
        assert_eq!(fresh_for(Some("No-Cache"), None), Some(Duration::ZERO));
        assert_eq!(fresh_for(Some("max-age=60, no-store"), None), None);
        assert_eq!(fresh_for(Some("max-age=soon"), None), Some(Duration::ZERO));
    }

    #[test]
    fn a_fresh_answer_is_served_until_it_expires() {
        let cache = ResponseCache::default();
        let t0 = Instant::now();
        assert_eq!(cache.plan(URL, CacheMode::Use, t0), Plan::Fetch);
        assert_eq!(cache.record(URL, ok("k1", Some("max-age=60")), t0), None);
        let later = t0 + Duration::from_secs(59);
        assert_eq!(
            cache.plan(URL, CacheMode::Use, later),
            Plan::Serve("k1".into())
        );
        assert_eq!(
            cache.plan(URL, CacheMode::Use, t0 + Duration::from_secs(61)),
            Plan::Fetch
        );
    }

    #[test]
    fn refresh_refetches_at_most_once_per_interval() {
        let cache = ResponseCache::default();
        let t0 = Instant::now();
        cache.plan(URL, CacheMode::Use, t0);
        cache.record(URL, ok("k1", None), t0);
        // The first refresh goes out, however recent the last fetch.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(cache.plan(URL, CacheMode::Refresh, t1), Plan::Fetch);
        cache.record(URL, ok("k2", None), t1);
        // A second refresh moments later gets the stored answer, not a fetch.
        let t2 = t1 + Duration::from_secs(1);
        assert_eq!(
            cache.plan(URL, CacheMode::Refresh, t2),
            Plan::Serve("k2".into())
        );
        assert_eq!(
            cache.plan(URL, CacheMode::Refresh, t1 + MIN_REFETCH),
            Plan::Fetch
        );
    }

    #[test]
    fn a_failing_origin_is_served_from_the_stale_copy_then_not_hammered() {
        let cache = ResponseCache::default();
        let t0 = Instant::now();
        cache.plan(URL, CacheMode::Use, t0);
        cache.record(URL, ok("k1", Some("max-age=1")), t0);
        let t1 = t0 + Duration::from_secs(5);
        assert_eq!(cache.plan(URL, CacheMode::Use, t1), Plan::Fetch);
        assert_eq!(cache.record(URL, Fetched::Failed, t1), Some("k1".into()));
        // Within the interval the failed origin is not asked again.
        assert_eq!(
            cache.plan(URL, CacheMode::Use, t1 + Duration::from_secs(1)),
            Plan::Serve("k1".into())
        );
        // Past the stale limit nothing is served.
        let gone = t0 + Duration::from_secs(1) + MAX_STALE + Duration::from_secs(1);
        assert_eq!(cache.plan(URL, CacheMode::Use, gone), Plan::Fetch);
        assert_eq!(cache.record(URL, Fetched::Failed, gone), None);
        assert_eq!(
            cache.plan(URL, CacheMode::Use, gone + Duration::from_secs(1)),
            Plan::Refuse
        );
    }

    #[test]
    fn no_store_and_oversized_answers_are_not_kept() {
        let cache = ResponseCache::default();
        let t0 = Instant::now();
        cache.plan(URL, CacheMode::Use, t0);
        cache.record(URL, ok("k1", Some("no-store")), t0);
        assert_eq!(cache.plan(URL, CacheMode::Use, t0), Plan::Fetch);
        let big = "x".repeat(MAX_CACHED_BYTES + 1);
        cache.record(URL, ok(&big, None), t0);
        assert_eq!(cache.plan(URL, CacheMode::Use, t0), Plan::Fetch);
    }

    #[test]
    fn the_number_of_urls_is_bounded() {
        let cache = ResponseCache::default();
        let t0 = Instant::now();
        for i in 0..MAX_ENTRIES + 5 {
            let url = format!("{URL}?{i}");
            let t = t0 + Duration::from_millis(i as u64);
            cache.plan(&url, CacheMode::Use, t);
            cache.record(&url, ok("k", None), t);
        }
        assert_eq!(cache.entries.lock().unwrap().len(), MAX_ENTRIES);
        // The oldest went first.
        assert_eq!(
            cache.plan(&format!("{URL}?0"), CacheMode::Use, t0),
            Plan::Fetch
        );
    }
}
