//! Floors: what the bus, JetStream, Redis and the crypto cost with no product logic, on the
//! same servers, in the same run. Each scenario's figure is read against its floor.
//!
//! The request-reply floors use the product's own subjects and roles (a trivial responder
//! stands in for the broker before the workers start), so permissions, subjects and the
//! server configuration are exactly those the product runs with.

use std::sync::Arc;
use std::time::Duration;

use async_nats::Client;
use bytes::Bytes;
use futures::StreamExt;
use serde::Serialize;
use tessera_bus_config::provision::{self, Durability};
use tessera_protocol::signing::SigningKey;
use tessera_runtime::Shutdown;
use tessera_schemas::Subjects;
use tessera_schemas::claims::{PLUGIN_TOKEN_ISSUER, PluginClaims};

use super::measure::{Figures, Timing, closed_loop, per_call};
use super::probe::Probe;
use super::spread::Repeated;

/// Every floor, each measured `--repeat` times beside the scenarios read against it.
#[derive(Debug, Clone, Serialize)]
pub struct Floors {
    /// Core request-reply to a trivial responder, per concurrency.
    pub nats_request_reply: Vec<Repeated>,
    /// The issuance steps with no product logic, per concurrency: an auth hop to a trivial
    /// responder, an EdDSA signature, one Redis pipeline (SET PX, SADD, PEXPIRE), two
    /// JetStream publishes with ack, the reply.
    pub composed_issuance: Vec<Repeated>,
    pub jetstream_publish_ack: Repeated,
    pub redis_set_px: Repeated,
    pub eddsa_sign: Figures,
    pub eddsa_verify: Figures,
    pub argon2id_verify: Repeated,
}

/// The connections a floor runs on: the servers of one stack with no worker serving (the
/// floors' responders take the workers' subjects).
pub struct Env {
    pub subjects: Subjects,
    pub client: Client,
    pub broker: Client,
    pub auth: Client,
    pub redis: redis::aio::ConnectionManager,
    pub key: Arc<SigningKey>,
    pub probe: Probe,
}

/// A queue-group responder answering every request with `reply`, until `stop`.
async fn trivial(
    nats: Client,
    subject: String,
    reply: Bytes,
    stop: Shutdown,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let mut sub = nats.queue_subscribe(subject, "bench-floor".into()).await?;
    nats.flush().await?;
    Ok(tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                msg = sub.next() => match msg {
                    Some(m) => if let Some(r) = m.reply { let _ = nats.publish(r, reply.clone()).await; },
                    None => break,
                },
            }
        }
        let _ = sub.unsubscribe().await;
        let _ = nats.flush().await;
    }))
}

fn claims(i: u64) -> PluginClaims {
    PluginClaims {
        iss: PLUGIN_TOKEN_ISSUER.into(),
        sub: "3651a34d-6432-4439-bab2-a5700fd5636c".into(),
        plugin_id: "bench".into(),
        aud: vec!["bench-a".into(), "bench-b".into()],
        jti: format!("00000000-0000-4000-8000-{i:012}"),
        iat: tessera_protocol::now_unix(),
        exp: tessera_protocol::now_unix() + 900,
        device_id: None,
        user_ip: None,
    }
}

/// The composed responder: the same I/O and crypto steps as issuance, no product logic.
async fn composed(
    env: &Env,
    redis: redis::aio::ConnectionManager,
    stop: Shutdown,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let nats = env.broker.clone();
    let js = async_nats::jetstream::new(nats.clone());
    let mut sub = nats
        .queue_subscribe(env.subjects.token_request(), "bench-floor".into())
        .await?;
    nats.flush().await?;
    let (verify, dist_a, dist_b) = (
        env.subjects.auth_verify(),
        env.subjects.dist("floor-a"),
        env.subjects.dist("floor-b"),
    );
    let key = env.key.clone();
    Ok(tokio::spawn(async move {
        let mut n = 0u64;
        loop {
            let msg = tokio::select! {
                _ = stop.cancelled() => break,
                msg = sub.next() => match msg { Some(m) => m, None => break },
            };
            n += 1;
            let (nats, js, mut redis, key) = (nats.clone(), js.clone(), redis.clone(), key.clone());
            let (verify, dist_a, dist_b) = (verify.clone(), dist_a.clone(), dist_b.clone());
            tokio::spawn(async move {
                let Some(reply) = msg.reply else { return };
                if nats
                    .request(verify, Bytes::from_static(b"x"))
                    .await
                    .is_err()
                {
                    return;
                }
                let c = claims(n);
                let token = key.sign(&c).expect("signing");
                let k = format!("floor:{}", c.jti);
                let stored: redis::RedisResult<()> = redis::pipe()
                    .cmd("SET")
                    .arg(&k)
                    .arg(token.as_bytes())
                    .arg("PX")
                    .arg(900_000)
                    .ignore()
                    .cmd("SADD")
                    .arg("floor:acct")
                    .arg(&c.jti)
                    .ignore()
                    .cmd("PEXPIRE")
                    .arg("floor:acct")
                    .arg(900_000)
                    .ignore()
                    .query_async(&mut redis)
                    .await;
                if stored.is_err() {
                    return;
                }
                let payload = Bytes::from(token);
                let (Ok(a), Ok(b)) = (
                    js.publish(dist_a, payload.clone()).await,
                    js.publish(dist_b, payload.clone()).await,
                ) else {
                    return;
                };
                if a.await.is_err() || b.await.is_err() {
                    return;
                }
                let _ = nats.publish(reply, payload).await;
            });
        }
        let _ = sub.unsubscribe().await;
        let _ = nats.flush().await;
    }))
}

/// The distribution stream the composed floor publishes to.
pub async fn prepare(env: &Env) -> anyhow::Result<()> {
    let js = async_nats::jetstream::new(env.broker.clone());
    provision::dist_stream(
        &js,
        &env.subjects,
        Duration::from_secs(960),
        Durability::default(),
    )
    .await?;
    Ok(())
}

fn request(nats: Client, subject: String) -> impl Fn() -> RequestFuture + Clone + Send + 'static {
    move || {
        let (nats, subject) = (nats.clone(), subject.clone());
        Box::pin(async move { nats.request(subject, Bytes::new()).await.map(drop) })
    }
}

type RequestFuture = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<(), async_nats::RequestError>> + Send>,
>;

/// Core request-reply: client role -> `token.request` -> a trivial responder (started for
/// this run and stopped after it, so a worker can take the subject in between).
pub async fn nats_request_reply(env: &Env, c: usize, timing: Timing) -> anyhow::Result<Figures> {
    let stop = Shutdown::new();
    let responder = trivial(
        env.broker.clone(),
        env.subjects.token_request(),
        Bytes::new(),
        stop.clone(),
    )
    .await?;
    let op = request(env.client.clone(), env.subjects.token_request());
    let f = closed_loop(&env.probe, c, timing, op).await;
    stop.cancel();
    responder.await?;
    Ok(f)
}

/// The composed issuance floor at `c` in flight.
pub async fn composed_issuance(env: &Env, c: usize, timing: Timing) -> anyhow::Result<Figures> {
    let stop = Shutdown::new();
    let auth = trivial(
        env.auth.clone(),
        env.subjects.auth_verify(),
        Bytes::from_static(b"ok"),
        stop.clone(),
    )
    .await?;
    let responder = composed(env, env.redis.clone(), stop.clone()).await?;
    let op = request(env.client.clone(), env.subjects.token_request());
    let f = closed_loop(&env.probe, c, timing, op).await;
    stop.cancel();
    responder.await?;
    auth.await?;
    Ok(f)
}

/// The composed floor's Redis keys, which would otherwise stay for their 15 minutes, so the
/// soak counts Redis memory from an empty start. The distribution stream the floor
/// provisioned (960 s max age) stays: no role of the bus may delete it (docs/security.md),
/// so the soak's stream figures are those of a 960 s stream (the soak prints the max age).
pub async fn clean_up(env: &Env) -> anyhow::Result<()> {
    let mut redis = env.redis.clone();
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg("floor:*")
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut redis)
            .await?;
        if !keys.is_empty() {
            redis::cmd("UNLINK")
                .arg(&keys)
                .query_async::<()>(&mut redis)
                .await?;
        }
        cursor = next;
        if cursor == 0 {
            return Ok(());
        }
    }
}

/// 400-byte JetStream publishes to `dist.*` with ack, 64 in flight.
pub async fn jetstream_publish_ack(env: &Env, timing: Timing) -> Figures {
    let js = async_nats::jetstream::new(env.broker.clone());
    let subject = env.subjects.dist("floor-js");
    closed_loop(&env.probe, 64, timing, move || {
        let (js, subject) = (js.clone(), subject.clone());
        async move {
            js.publish(subject, Bytes::from_static(&[0u8; 400]))
                .await?
                .await
                .map(drop)
                .map_err(anyhow::Error::from)
        }
    })
    .await
}

/// Redis SET with an expiry, 64 in flight.
pub async fn redis_set_px(env: &Env, timing: Timing) -> Figures {
    let redis = env.redis.clone();
    closed_loop(&env.probe, 64, timing, move || {
        let mut redis = redis.clone();
        async move {
            redis::cmd("SET")
                .arg("floor:set")
                .arg(&[0u8; 200][..])
                .arg("PX")
                .arg(60_000)
                .query_async::<()>(&mut redis)
                .await
        }
    })
    .await
}

/// EdDSA sign and verify of a plugin-token-sized JWT, one call at a time.
pub fn eddsa(key: &SigningKey, window: Duration) -> anyhow::Result<(Figures, Figures)> {
    let iterations = (window.as_millis() as u64 * 20).max(500);
    let mut i = 0;
    let sign = per_call(iterations, || {
        i += 1;
        let _ = key.sign(&claims(i));
    });
    let token = key.sign(&claims(0))?;
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    v.set_audience(&["bench-a"]);
    let verify = per_call(iterations, || {
        let _ = jsonwebtoken::decode::<PluginClaims>(&token, key.decoding_key(), &v);
    });
    Ok((sign, verify))
}

/// argon2id verifications (fewer in short windows: each takes tens of milliseconds).
pub fn argon2id(window: Duration) -> Figures {
    argon2_floor(if window < Duration::from_secs(2) {
        5
    } else {
        20
    })
}

/// One argon2id verification with the parameters local accounts use (the crate's defaults).
fn argon2_floor(iterations: u64) -> Figures {
    use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
    use argon2::{Argon2, PasswordHash, PasswordVerifier};
    let salt = SaltString::generate(&mut OsRng);
    let phc = Argon2::default()
        .hash_password(b"correct horse battery", &salt)
        .expect("hash")
        .to_string();
    let parsed = PasswordHash::new(&phc).expect("phc");
    per_call(iterations, || {
        let _ = Argon2::default().verify_password(b"correct horse battery", &parsed);
    })
}
