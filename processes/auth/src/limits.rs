//! How much login work one node takes on, so that a flood of logins (right or wrong) cannot
//! starve the rest: `auth.verify`, which every token request may need, runs in a service of
//! its own with its own bound on work in flight (lib.rs), and logins pass three limits here
//! before any password is hashed or any package runs:
//!
//! 1. **Per client connection** (`TESSERA_AUTH_LOGINS_PER_CONNECTION`, per second, burst
//!    twice that): the connection is the one nats-server names in `Nats-Request-Info` on a
//!    request that crossed from the client apps' account (the import shares it, and the
//!    server overwrites any such header a client sends). Requests from the workers' own
//!    account (the admin) carry none and are not limited here.
//! 2. **Per username** (`TESSERA_AUTH_LOGINS_PER_USERNAME`, per minute): every attempt
//!    counts, right or wrong, so guessing one account's password is slow whatever the
//!    number of connections. The price: an attacker can keep one username's logins refused
//!    for as long as it keeps sending (the account itself, and its tokens, are untouched).
//! 3. **At once** (`TESSERA_AUTH_LOGIN_QUEUE`): logins waiting for or holding an argon2 slot
//!    or a package instance. Beyond it a login is refused at once instead of queueing.
//!
//! Each refusal is `rate_limited` (429, retryable) with `retry_after_ms`. A limit of 0
//! turns that limit off. Keys are pruned every few seconds, so the memory a flood of made-up
//! usernames takes is bounded by what the limits let through in a minute.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tessera_schemas::WireError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The limits, as settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginLimitsConfig {
    /// Logins per second per client connection (0: off).
    pub per_connection: u32,
    /// Logins per minute per username (0: off).
    pub per_username: u32,
    /// Logins in progress at once on this node (0: off).
    pub queue: usize,
}

impl Default for LoginLimitsConfig {
    fn default() -> Self {
        use tessera_runtime::config::registry::{
            LOGIN_QUEUE, LOGINS_PER_CONNECTION, LOGINS_PER_USERNAME,
        };
        LoginLimitsConfig {
            per_connection: LOGINS_PER_CONNECTION.default_parsed(),
            per_username: LOGINS_PER_USERNAME.default_parsed(),
            queue: LOGIN_QUEUE.default_parsed(),
        }
    }
}

/// The header nats-server sets on a request that crossed a service import with `share`.
pub const REQUEST_INFO: &str = "Nats-Request-Info";

/// The client connection a request came from, as nats-server names it: its server and
/// connection id (unique while it is connected). `None` for a request that did not cross
/// an account boundary: only on those does the server set (and overwrite) the header.
pub fn connection_of(crossed_account: bool, request_info: Option<&str>) -> Option<String> {
    if !crossed_account {
        return None;
    }
    let info: serde_json::Value = serde_json::from_str(request_info?).ok()?;
    let server = info.get("server")?.as_str()?;
    let id = info.get("id")?.as_u64()?;
    Some(format!("{server}/{id}"))
}

pub struct LoginLimits {
    per_connection: Option<DefaultKeyedRateLimiter<String>>,
    per_username: Option<DefaultKeyedRateLimiter<String>>,
    in_progress: Option<Arc<Semaphore>>,
}

/// Holds a login's place among those in progress until it is done.
pub struct Admitted {
    _permit: Option<OwnedSemaphorePermit>,
}

impl LoginLimits {
    pub fn new(config: LoginLimitsConfig) -> LoginLimits {
        let keyed = |quota: Option<Quota>| quota.map(RateLimiter::keyed);
        LoginLimits {
            // A burst of twice the rate: an app that logs in a few users at once is not
            // refused for it.
            per_connection: keyed(NonZeroU32::new(config.per_connection).map(|n| {
                Quota::per_second(n)
                    .allow_burst(NonZeroU32::new(n.get().saturating_mul(2)).unwrap_or(n))
            })),
            per_username: keyed(NonZeroU32::new(config.per_username).map(Quota::per_minute)),
            in_progress: (config.queue > 0).then(|| Arc::new(Semaphore::new(config.queue))),
        }
    }

    /// Checks the three limits for one login, in the order that spends the least: the
    /// connection's rate, the username's rate, then a place among the logins in progress.
    pub fn admit(
        &self,
        connection: Option<&str>,
        username: Option<&str>,
    ) -> Result<Admitted, WireError> {
        if let (Some(limiter), Some(conn)) = (&self.per_connection, connection) {
            check(limiter, conn, "too many logins from this connection")?;
        }
        if let (Some(limiter), Some(user)) = (&self.per_username, username) {
            check(limiter, user, "too many logins for this username")?;
        }
        let permit = match &self.in_progress {
            Some(sem) => Some(sem.clone().try_acquire_owned().map_err(|_| {
                WireError::rate_limited(
                    "this auth node is busy with logins",
                    Duration::from_millis(250),
                )
            })?),
            None => None,
        };
        Ok(Admitted { _permit: permit })
    }

    /// Forgets keys whose limit is back to full (run every few seconds).
    pub fn prune(&self) {
        for limiter in [&self.per_connection, &self.per_username]
            .into_iter()
            .flatten()
        {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    /// Keys currently remembered (for tests and metrics).
    pub fn keys(&self) -> usize {
        [&self.per_connection, &self.per_username]
            .into_iter()
            .flatten()
            .map(|l| l.len())
            .sum()
    }
}

fn check(limiter: &DefaultKeyedRateLimiter<String>, key: &str, why: &str) -> Result<(), WireError> {
    // Keys are caller-chosen: cap their length so a long one cannot cost memory.
    let key: String = key.chars().take(128).collect();
    limiter.check_key(&key).map_err(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        WireError::rate_limited(why, wait)
    })
}

/// Prunes `limits` every `every` until `shutdown`.
pub async fn prune_every(
    limits: Arc<LoginLimits>,
    every: Duration,
    shutdown: tessera_runtime::Shutdown,
) {
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => limits.prune(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_schemas::ErrorCode;

    #[test]
    fn each_limit_refuses_with_a_retry_hint() {
        let limits = LoginLimits::new(LoginLimitsConfig {
            per_connection: 2,
            per_username: 3,
            queue: 1,
        });
        // Per connection: a burst of twice the rate, then refused; another connection is not.
        let held: Vec<_> = (0..4)
            .map(|i| limits.admit(Some("s/1"), Some(&format!("u{i}"))))
            .map(|r| r.map(drop))
            .collect();
        assert!(held.iter().all(Result::is_ok), "{held:?}");
        let refused = limits.admit(Some("s/1"), Some("u9")).map(drop).unwrap_err();
        assert_eq!(refused.code, ErrorCode::RateLimited);
        assert!(refused.retryable);
        assert!(refused.retry_after_ms.is_some_and(|ms| ms > 0));
        assert!(limits.admit(Some("s/2"), Some("u9")).is_ok());
        // Per username, whatever the connection.
        for c in 0..2 {
            limits.admit(Some(&format!("x/{c}")), Some("ann")).unwrap();
        }
        // ann has had 2 of her 3.
        limits.admit(None, Some("ann")).unwrap();
        let refused = limits
            .admit(Some("x/9"), Some("ann"))
            .map(drop)
            .unwrap_err();
        assert_eq!(refused.code, ErrorCode::RateLimited);
        // At once: one in progress, the second refused until the first is done.
        let first = limits.admit(None, None).unwrap();
        assert_eq!(
            limits.admit(None, None).map(drop).unwrap_err().code,
            ErrorCode::RateLimited
        );
        drop(first);
        assert!(limits.admit(None, None).is_ok());
    }

    #[test]
    fn zero_turns_a_limit_off() {
        let limits = LoginLimits::new(LoginLimitsConfig {
            per_connection: 0,
            per_username: 0,
            queue: 0,
        });
        for _ in 0..1000 {
            let _held = limits.admit(Some("s/1"), Some("ann")).unwrap();
        }
        assert_eq!(limits.keys(), 0);
    }

    #[test]
    fn only_requests_that_crossed_an_account_name_a_connection() {
        let info = r#"{"server":"NABC","id":15,"acc":"CLIENTS","user":"client"}"#;
        assert_eq!(connection_of(true, Some(info)).as_deref(), Some("NABC/15"));
        // From the workers' account a header is whatever the sender wrote: ignored.
        assert_eq!(connection_of(false, Some(info)), None);
        assert_eq!(connection_of(true, None), None);
        assert_eq!(connection_of(true, Some("not json")), None);
    }
}
