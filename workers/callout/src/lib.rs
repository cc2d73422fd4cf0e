//! The NATS auth callout: how a plugin server gets onto the bus with credentials of its
//! own (issue 8, "Bus permissions").
//!
//! nats.conf (rendered by bus-config) lists the static role users as `auth_users` and sends
//! every other connection's credentials to `$SYS.REQ.USER.AUTH`. The responder here (run by
//! each auth node, one queue group) reads the request, takes the plugin server id from the
//! user name (`plugin-server.<id>`), reads `<P>_PLUGIN_SERVERS[id]` and compares the
//! SHA-256 of the password with the stored one. It answers with a user JWT carrying
//! [`Permissions::for_plugin_server`] for that id, or with an error, which nats-server turns
//! into an immediate authorization violation: a refused plugin server never hangs.
//!
//! # Layout
//!
//! - this file: [`start`] and the decision for one request;
//! - [`jwt`]: the request, user and response JWTs (nkey-signed), encoded and checked.
//!
//! Architecture invariant: no secret is logged or stored; the responder only reads the
//! bucket (the admin writes it), and the permissions come from bus-config.

#![forbid(unsafe_code)]

pub mod jwt;

use std::sync::Arc;

use async_nats::jetstream::kv;
use futures::StreamExt;
use tessera_bus_config::plugin_servers::password_matches;
use tessera_bus_config::provision::{self, Durability};
use tessera_bus_config::{ACCOUNT, Permissions};
use tessera_core::Shutdown;
use tessera_schemas::plugin_servers::{PluginServerRecord, server_id_of};
use tessera_schemas::subjects::{AUTH_CALLOUT, QUEUE_CALLOUT};
use tessera_schemas::{Subjects, codec};
use tokio::sync::Semaphore;

/// Authorization requests answered at once (each is a KV read and two signatures).
const MAX_IN_FLIGHT: usize = 64;

/// Why a connection was refused. Sent to nats-server (which logs it; the client sees only
/// "Authorization Violation"), so it names no secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("not a plugin-server user")]
    NotAPluginServer,
    #[error("unknown plugin server")]
    Unknown,
    #[error("wrong secret")]
    WrongSecret,
    #[error("plugin-server registry unavailable")]
    Unavailable,
}

/// What the responder needs.
pub struct Callout {
    issuer: nkeys::KeyPair,
    subjects: Subjects,
    registry: kv::Store,
}

impl Callout {
    /// Provisions the plugin-servers bucket (if missing) and checks the issuer seed.
    pub async fn new(
        nats: &async_nats::Client,
        subjects: Subjects,
        issuer_seed: &IssuerSeed,
        durability: Durability,
    ) -> anyhow::Result<Callout> {
        let issuer = issuer_key(&issuer_seed.0)?;
        let js = async_nats::jetstream::new(nats.clone());
        let registry = provision::plugin_servers_bucket(&js, &subjects, durability).await?;
        Ok(Callout {
            issuer,
            subjects,
            registry,
        })
    }

    /// The plugin server id `user`/`password` stand for, if they are valid.
    pub async fn check(&self, user: &str, password: &str) -> Result<String, Refusal> {
        let id = server_id_of(user).ok_or(Refusal::NotAPluginServer)?;
        let entry = self.registry.get(id).await.map_err(|e| {
            tracing::warn!(server_id = id, error = %e, "reading the plugin-server registry");
            Refusal::Unavailable
        })?;
        let record: PluginServerRecord = entry
            .and_then(|bytes| codec::decode(&bytes).ok())
            .ok_or(Refusal::Unknown)?;
        if password_matches(&record, password) {
            Ok(id.to_owned())
        } else {
            Err(Refusal::WrongSecret)
        }
    }

    /// The signed answer to one authorization request (`None`: not a request we can
    /// answer at all; nats-server then times the connection out).
    pub async fn answer(&self, request: &[u8]) -> Option<String> {
        let token = std::str::from_utf8(request).ok()?;
        let req = match jwt::decode_request(token) {
            Ok(r) => r.nats,
            Err(e) => {
                tracing::warn!(error = %e, "ignoring an unreadable authorization request");
                return None;
            }
        };
        let opts = &req.connect_opts;
        let outcome = self.check(&opts.user, &opts.pass).await;
        match &outcome {
            Ok(id) => tracing::info!(
                server_id = %id,
                host = %req.client_info.host,
                client = req.client_info.id,
                "plugin server admitted"
            ),
            Err(why) => tracing::warn!(
                user = %opts.user,
                host = %req.client_info.host,
                client = req.client_info.id,
                reason = %why,
                "bus connection refused"
            ),
        }
        let outcome = outcome
            .map(|id| {
                jwt::user_jwt(
                    &self.issuer,
                    &req.user_nkey,
                    &opts.user,
                    ACCOUNT,
                    &Permissions::for_plugin_server(&id, &self.subjects),
                )
            })
            .map_err(|why| why.to_string());
        Some(jwt::response(&self.issuer, &req, outcome))
    }
}

/// The callout issuer's seed, as a setting: never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuerSeed(String);

impl IssuerSeed {
    /// Checks that `seed` is an account seed.
    pub fn new(seed: &str) -> anyhow::Result<IssuerSeed> {
        issuer_key(seed)?;
        Ok(IssuerSeed(seed.trim().to_owned()))
    }

    /// The issuer's public key (what nats.conf names).
    pub fn public_key(&self) -> String {
        issuer_key(&self.0)
            .map(|k| k.public_key())
            .unwrap_or_default()
    }
}

impl std::fmt::Debug for IssuerSeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IssuerSeed({})", self.public_key())
    }
}

/// The issuer key from its seed: it must be an account seed (`SA...`).
pub fn issuer_key(seed: &str) -> anyhow::Result<nkeys::KeyPair> {
    let kp = nkeys::KeyPair::from_seed(seed.trim())
        .map_err(|e| anyhow::anyhow!("the callout issuer seed is not an nkey seed: {e}"))?;
    anyhow::ensure!(
        kp.key_pair_type() == nkeys::KeyPairType::Account,
        "the callout issuer seed must be an account seed (SA...)"
    );
    Ok(kp)
}

/// Answers authorization requests on `nats` until `shutdown`. Returns once subscribed, so
/// a plugin server started after this can connect.
pub async fn start(
    nats: async_nats::Client,
    callout: Callout,
    shutdown: Shutdown,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let mut requests = nats
        .queue_subscribe(AUTH_CALLOUT, QUEUE_CALLOUT.to_owned())
        .await?;
    // The subscription must reach the server before anyone relies on it.
    nats.flush().await?;
    let callout = Arc::new(callout);
    let limit = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    Ok(tokio::spawn(async move {
        loop {
            let msg = tokio::select! {
                _ = shutdown.cancelled() => break,
                msg = requests.next() => match msg {
                    Some(m) => m,
                    None => break,
                },
            };
            let Some(reply) = msg.reply.clone() else {
                continue;
            };
            let Ok(permit) = limit.clone().acquire_owned().await else {
                break;
            };
            let (nats, callout) = (nats.clone(), callout.clone());
            tokio::spawn(async move {
                let _permit = permit;
                if let Some(answer) = callout.answer(&msg.payload).await
                    && let Err(e) = nats.publish(reply, answer.into()).await
                {
                    tracing::warn!(error = %e, "sending an authorization response");
                }
            });
        }
        let _ = requests.unsubscribe().await;
    }))
}
