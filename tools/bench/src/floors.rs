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

use super::measure::{Figures, closed_loop, per_call};

#[derive(Debug, Clone, Serialize)]
pub struct Floors {
    /// Core request-reply to a trivial responder, per concurrency.
    pub nats_request_reply: Vec<Figures>,
    /// The issuance steps with no product logic, per concurrency: an auth hop to a trivial
    /// responder, an EdDSA signature, one Redis pipeline (SET PX, SADD, PEXPIRE), two
    /// JetStream publishes with ack, the reply.
    pub composed_issuance: Vec<Figures>,
    pub jetstream_publish_ack: Figures,
    pub redis_set_px: Figures,
    pub eddsa_sign: Figures,
    pub eddsa_verify: Figures,
    pub argon2id_verify: Figures,
}

pub struct Env<'a> {
    pub subjects: &'a Subjects,
    pub client: Client,
    pub broker: Client,
    pub auth: Client,
    pub redis_url: String,
    pub key: Arc<SigningKey>,
    pub warmup: Duration,
    pub window: Duration,
    pub concurrency: &'a [usize],
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
    env: &Env<'_>,
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

/// Measures every floor. `progress` is called once per finished measurement.
pub async fn measure(env: &Env<'_>, mut progress: impl FnMut(&str)) -> anyhow::Result<Floors> {
    let js = async_nats::jetstream::new(env.broker.clone());
    provision::dist_stream(
        &js,
        env.subjects,
        Duration::from_secs(960),
        Durability::default(),
    )
    .await?;
    let redis = super::redis_connection(&env.redis_url).await?;
    let request = |nats: Client, subject: String| {
        move || {
            let (nats, subject) = (nats.clone(), subject.clone());
            async move { nats.request(subject, Bytes::new()).await.map(drop) }
        }
    };

    // Core request-reply.
    let stop = Shutdown::new();
    let responder = trivial(
        env.broker.clone(),
        env.subjects.token_request(),
        Bytes::new(),
        stop.clone(),
    )
    .await?;
    let mut nats_request_reply = Vec::new();
    for &c in env.concurrency {
        let op = request(env.client.clone(), env.subjects.token_request());
        nats_request_reply.push(closed_loop(c, env.warmup, env.window, op).await);
        progress("floor: NATS request-reply");
    }
    stop.cancel();
    responder.await?;

    // The composed issuance floor.
    let stop = Shutdown::new();
    let auth = trivial(
        env.auth.clone(),
        env.subjects.auth_verify(),
        Bytes::from_static(b"ok"),
        stop.clone(),
    )
    .await?;
    let responder = composed(env, redis.clone(), stop.clone()).await?;
    let mut composed_issuance = Vec::new();
    for &c in env.concurrency {
        let op = request(env.client.clone(), env.subjects.token_request());
        composed_issuance.push(closed_loop(c, env.warmup, env.window, op).await);
        progress("floor: composed issuance");
    }
    stop.cancel();
    responder.await?;
    auth.await?;

    // JetStream publish with ack, and Redis SET with expiry, at 64 in flight.
    let subject = env.subjects.dist("floor-js");
    let jetstream_publish_ack = closed_loop(64, env.warmup, env.window, move || {
        let (js, subject) = (js.clone(), subject.clone());
        async move {
            js.publish(subject, Bytes::from_static(&[0u8; 400]))
                .await?
                .await
                .map(drop)
                .map_err(anyhow::Error::from)
        }
    })
    .await;
    progress("floor: JetStream publish");
    let redis_set_px = closed_loop(64, env.warmup, env.window, move || {
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
    .await;
    progress("floor: Redis SET");

    // Crypto, one call at a time.
    let iterations = (env.window.as_millis() as u64 * 20).max(500);
    let mut i = 0;
    let eddsa_sign = per_call(iterations, || {
        i += 1;
        let _ = env.key.sign(&claims(i));
    });
    let token = env.key.sign(&claims(0))?;
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    v.set_audience(&["bench-a"]);
    let eddsa_verify = per_call(iterations, || {
        let _ = jsonwebtoken::decode::<PluginClaims>(&token, env.key.decoding_key(), &v);
    });
    progress("floor: EdDSA");
    let argon2id_verify = argon2_floor(if env.window < Duration::from_secs(2) {
        5
    } else {
        20
    });
    progress("floor: argon2id");
    Ok(Floors {
        nats_request_reply,
        composed_issuance,
        jetstream_publish_ack,
        redis_set_px,
        eddsa_sign,
        eddsa_verify,
        argon2id_verify,
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
