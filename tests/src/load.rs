//! A steady load of token requests for the fault tests: tasks that each keep one request in
//! flight until told to stop, through the SDK (which retries a timed-out or `unavailable`
//! request under the same idempotency key) or through a raw NATS client (one attempt, then
//! one retry with the same key if it timed out), recording how every request ended.
//! Also the two views of issued tokens the tests compare: Redis records and the
//! distribution stream.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tessera_protocol::rpc::{self, RpcError};
use tessera_schemas::messages::{TOKEN_REQUEST, TokenRequest, TokenResponse};
use tessera_schemas::{ErrorCode, Subjects, headers};

/// How one request ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// A token (for a raw request: `retried` says the first attempt timed out and the retry
    /// with the same key returned it).
    Token { token: TokenResponse, retried: bool },
    /// A typed error reply.
    Typed(ErrorCode),
    /// No typed answer: the SDK's `unavailable` after its attempts, or a raw request whose
    /// retry timed out too.
    Untyped(String),
}

/// Everything the load saw.
#[derive(Debug, Default)]
pub struct Report {
    pub sdk: Vec<Outcome>,
    pub raw: Vec<Outcome>,
    /// Raw first attempts that timed out (each then retried under its key).
    pub raw_timeouts: usize,
}

impl Report {
    /// Every token a client received.
    pub fn token_ids(&self) -> BTreeSet<String> {
        self.sdk
            .iter()
            .chain(&self.raw)
            .filter_map(|o| match o {
                Outcome::Token { token, .. } => Some(token.token_id.clone()),
                _ => None,
            })
            .collect()
    }

    pub fn count(&self, f: impl Fn(&Outcome) -> bool) -> usize {
        self.sdk.iter().chain(&self.raw).filter(|o| f(o)).count()
    }
}

/// A running load; [`Load::stop`] ends it and returns the [`Report`].
pub struct Load {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicUsize>,
    sdk: Vec<tokio::task::JoinHandle<Vec<Outcome>>>,
    raw: Vec<tokio::task::JoinHandle<(Vec<Outcome>, usize)>>,
}

/// What the load asks for.
#[derive(Clone)]
pub struct Target {
    pub subjects: Subjects,
    pub account_token: String,
    pub plugin: String,
    /// Raw requests' first-attempt timeout.
    pub raw_timeout: Duration,
}

impl Load {
    /// `sdk` tasks on `sdk_client`, `raw` tasks on `raw_nats` (client role).
    pub fn start(
        target: Target,
        sdk_client: tessera_sdk::Client,
        sdk: usize,
        raw_nats: async_nats::Client,
        raw: usize,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicUsize::new(0));
        let sdk = (0..sdk)
            .map(|_| {
                let (client, t, stop, done) = (
                    sdk_client.clone(),
                    target.clone(),
                    stop.clone(),
                    done.clone(),
                );
                tokio::spawn(async move {
                    let mut out = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let o = match client
                            .request_token(&t.account_token, &t.plugin, None)
                            .await
                        {
                            Ok(token) => Outcome::Token {
                                token,
                                retried: false,
                            },
                            Err(e) if e.kind() == tessera_sdk::ErrorKind::Rejected => {
                                Outcome::Typed(e.code())
                            }
                            Err(e) => Outcome::Untyped(e.to_string()),
                        };
                        out.push(o);
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    out
                })
            })
            .collect();
        let raw = (0..raw)
            .map(|_| {
                let (nats, t, stop, done) =
                    (raw_nats.clone(), target.clone(), stop.clone(), done.clone());
                tokio::spawn(async move {
                    let mut out = Vec::new();
                    let mut timeouts = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let key = uuid::Uuid::new_v4().to_string();
                        let o = match raw_request(&nats, &t, &key, t.raw_timeout).await {
                            Err(RpcError::Timeout(..)) => {
                                timeouts += 1;
                                tracing::warn!(
                                    key,
                                    "raw token request timed out; retrying with its key"
                                );
                                // The same key again: the token, if one was issued.
                                match raw_request(&nats, &t, &key, Duration::from_secs(5)).await {
                                    Ok(token) => Outcome::Token {
                                        token,
                                        retried: true,
                                    },
                                    Err(e) => outcome_of(e),
                                }
                            }
                            Ok(token) => Outcome::Token {
                                token,
                                retried: false,
                            },
                            Err(e) => outcome_of(e),
                        };
                        out.push(o);
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    (out, timeouts)
                })
            })
            .collect();
        Load {
            stop,
            done,
            sdk,
            raw,
        }
    }

    /// Requests finished so far.
    pub fn done(&self) -> usize {
        self.done.load(Ordering::Relaxed)
    }

    /// Waits (bounded) until `n` requests have finished; panics otherwise.
    pub async fn wait_for(&self, n: usize, bound: Duration) {
        assert!(
            crate::eventually(bound, || async { self.done() >= n }).await,
            "the load finished {} of {n} requests within {bound:?}",
            self.done()
        );
    }

    /// Stops the tasks after their current request and collects what they saw.
    pub async fn stop(self) -> Report {
        self.stop.store(true, Ordering::Relaxed);
        let mut report = Report::default();
        for t in self.sdk {
            report.sdk.extend(t.await.expect("a load task"));
        }
        for t in self.raw {
            let (out, timeouts) = t.await.expect("a load task");
            report.raw.extend(out);
            report.raw_timeouts += timeouts;
        }
        report
    }
}

fn outcome_of(e: RpcError) -> Outcome {
    match e {
        RpcError::Wire(w) => Outcome::Typed(w.code),
        other => Outcome::Untyped(other.to_string()),
    }
}

/// One raw `token.request` with idempotency key `key`.
pub async fn raw_request(
    nats: &async_nats::Client,
    t: &Target,
    key: &str,
    timeout: Duration,
) -> Result<TokenResponse, RpcError> {
    let req = TokenRequest {
        account_token: t.account_token.clone(),
        plugin_id: t.plugin.clone(),
        idempotency_key: Some(key.to_owned()),
        device_id: None,
        user_ip: None,
    };
    // The key doubles as the request id, so a worker's log names the request.
    let mut h = async_nats::HeaderMap::new();
    h.insert(headers::SCHEMA, TOKEN_REQUEST.header_value().as_str());
    h.insert(headers::REQUEST_ID, key);
    let msg = rpc::request_raw(
        nats,
        t.subjects.token_request(),
        h,
        tessera_schemas::codec::encode(&req).into(),
        timeout,
    )
    .await?;
    tessera_schemas::codec::decode(&msg.payload).map_err(|e| RpcError::BadReply {
        subject: t.subjects.token_request(),
        message: e.to_string(),
    })
}

/// The ids of every token record in Redis under `prefix`.
pub async fn redis_token_ids(redis_url: &str, prefix: &str) -> BTreeSet<String> {
    let keys = tessera_ledger::keys::RedisKeys::new(prefix);
    let client = redis::Client::open(redis_url).expect("a Redis URL");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connecting to Redis");
    let found: Vec<String> = redis::cmd("KEYS")
        .arg(keys.token_pattern())
        .query_async(&mut conn)
        .await
        .expect("KEYS");
    found
        .iter()
        .filter_map(|k| keys.token_id_in(k).map(str::to_owned))
        .collect()
}

/// The ids of the live tokens in the distribution stream for `server`: every distributed
/// token (its id from its claims, read unverified: the stream is the broker's) not followed by a
/// revocation event for it (an admin's, or the broker withdrawing a token that lost an
/// idempotency race). Read with `nats` (admin role).
pub async fn distributed_token_ids(
    nats: &async_nats::Client,
    subjects: &Subjects,
    server: &str,
) -> BTreeSet<String> {
    use futures::StreamExt;
    use tessera_schemas::messages::DistEvent;
    let js = async_nats::jetstream::new(nats.clone());
    let mut stream = js
        .get_stream(subjects.dist_stream())
        .await
        .expect("the distribution stream");
    let last = stream
        .info()
        .await
        .expect("stream info")
        .state
        .last_sequence;
    let subject = subjects.dist(server);
    let id_of = |token: &str| {
        jsonwebtoken::dangerous::insecure_decode_claims::<tessera_schemas::claims::PluginClaims>(
            token,
        )
        .expect("a distributed token has readable claims")
        .jti
    };
    let mut ids = BTreeSet::new();
    let seqs = futures::stream::iter(1..=last)
        .map(|seq| {
            let stream = stream.clone();
            async move { stream.get_raw_message(seq).await }
        })
        .buffered(32);
    futures::pin_mut!(seqs);
    while let Some(msg) = seqs.next().await {
        let Ok(msg) = msg else { continue }; // deleted (e.g. expired) messages
        if msg.subject.as_str() != subject {
            continue;
        }
        match tessera_schemas::codec::decode::<DistEvent>(&msg.payload) {
            Ok(DistEvent::Token { token }) => {
                ids.insert(id_of(&token));
            }
            Ok(DistEvent::Tokens { tokens }) => {
                ids.extend(tokens.iter().map(|t| id_of(t)));
            }
            Ok(DistEvent::Revoke { token_ids }) => {
                for id in token_ids {
                    ids.remove(&id);
                }
            }
            Err(e) => panic!("an undecodable distribution event: {e}"),
        }
    }
    ids
}
