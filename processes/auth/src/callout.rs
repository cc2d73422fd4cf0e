//! The NATS auth callout: how client apps and plugin servers get onto the bus, each with
//! permissions of its own.
//!
//! nats.conf (rendered by bus-config) lists the static role users (workers, admin) as
//! `auth_users` and sends every other connection's credentials to `$SYS.REQ.USER.AUTH`. The
//! responder here (run by each auth node, one queue group) reads the request and answers
//! with a user JWT, or with an error, which nats-server turns into an immediate
//! authorization violation: a refused connection never hangs.
//!
//! - **Plugin servers** (user `plugin-server.<id>`): the id's record in
//!   `<P>_PLUGIN_SERVERS` must hold the SHA-256 of the password. Placed in the plugin
//!   servers' account with [`Permissions::for_plugin_server`] for that id.
//! - **Client apps** (user `client`): the password must be `<client password>:<inbox key>`
//!   ([`clients::join_password`]), with the client password this node was given. Placed in the client
//!   apps' account with
//!   [`Permissions::for_client`] on the inbox that key opens
//!   ([`tessera_protocol::bus::client_inbox`]), so a connection reads its own replies and no
//!   other's.
//!
//! # Layout
//!
//! - this file: [`start`] and the decision for one request;
//! - [`jwt`]: the request, user and response JWTs (nkey-signed), encoded and checked.
//!
//! Architecture invariant: no secret is logged or stored; the responder only reads the
//! bucket (the admin writes it), and the permissions come from bus-config.

pub mod jwt;

use std::sync::Arc;

use async_nats::jetstream::kv;
use futures::StreamExt;
use tessera_bus_config::plugin_servers::password_matches;
use tessera_bus_config::provision::{self, Durability};
use tessera_bus_config::{Account, Permissions};
use tessera_protocol::bus::client_inbox;
use tessera_runtime::Shutdown;
use tessera_schemas::clients::{self, CLIENT_USER};
use tessera_schemas::plugin_servers::{PluginServerRecord, dist_server_id_of, server_id_of};
use tessera_schemas::subjects::{AUTH_CALLOUT, QUEUE_CALLOUT};
use tessera_schemas::{Subjects, codec};
use tokio::sync::Semaphore;

/// Authorization requests answered at once (each is a KV read and two signatures).
const MAX_IN_FLIGHT: usize = 64;

/// Why a connection was refused. Sent to nats-server (which logs it; the client sees only
/// "Authorization Violation"), so it names no secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("not a client or plugin-server user")]
    UnknownUser,
    #[error("unknown plugin server")]
    Unknown,
    #[error("wrong secret")]
    WrongSecret,
    #[error("plugin-server registry unavailable")]
    Unavailable,
    #[error("client apps are not admitted by this auth node (no client password set)")]
    ClientsNotConfigured,
    #[error(
        "a client connection needs an inbox key in its password: <client password>:<43-128 base64url characters>"
    )]
    NoInboxKey,
    /// The earlier contract (the key as the CONNECT's `auth_token`), refused with a reason
    /// that says what changed rather than a bare `wrong secret`.
    #[error(
        "the inbox key goes in the password now (<client password>:<inbox key>), not in auth_token"
    )]
    KeyInAuthToken,
}

/// Who a connection was admitted as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admitted {
    /// A plugin server's serving connection, by id.
    PluginServer(String),
    /// A plugin server's distribution connection, by id.
    PluginServerDistribution(String),
    /// A client app connection, with the inbox prefix its key opens.
    Client { inbox: String },
}

/// The client apps' bus password, as this node checks it: never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientPassword(String);

impl ClientPassword {
    pub fn new(password: &str) -> anyhow::Result<ClientPassword> {
        anyhow::ensure!(!password.is_empty(), "the client password is empty");
        Ok(ClientPassword(password.to_owned()))
    }

    /// Constant time in the compared digests, whatever `given` is.
    fn matches(&self, given: &str) -> bool {
        use aws_lc_rs::constant_time::verify_slices_are_equal;
        let digest = |s: &str| aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, s.as_bytes());
        verify_slices_are_equal(digest(&self.0).as_ref(), digest(given).as_ref()).is_ok()
    }
}

impl std::fmt::Debug for ClientPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientPassword(***)")
    }
}

/// What the responder needs.
pub struct Callout {
    issuer: nkeys::KeyPair,
    subjects: Subjects,
    registry: kv::Store,
    client_password: Option<ClientPassword>,
}

impl Callout {
    /// Provisions the plugin-servers bucket (if missing) and checks the issuer seed. Client
    /// apps are admitted only with a `client_password`.
    pub async fn new(
        nats: &async_nats::Client,
        subjects: Subjects,
        issuer_seed: &IssuerSeed,
        client_password: Option<ClientPassword>,
        durability: Durability,
    ) -> anyhow::Result<Callout> {
        let issuer = issuer_key(&issuer_seed.0)?;
        let js = async_nats::jetstream::new(nats.clone());
        let registry = provision::plugin_servers_bucket(&js, &subjects, durability).await?;
        Ok(Callout {
            issuer,
            subjects,
            registry,
            client_password,
        })
    }

    /// Who `opts` (a CONNECT's credentials) stand for, if they are valid.
    pub async fn check(&self, opts: &jwt::ConnectOpts) -> Result<Admitted, Refusal> {
        if opts.user == CLIENT_USER {
            let expected = self
                .client_password
                .as_ref()
                .ok_or(Refusal::ClientsNotConfigured)?;
            // A client of the earlier contract sends the bare password: right as a whole,
            // so it is told that the key is missing rather than `wrong secret`.
            let (password, key) = match clients::split_password(&opts.pass) {
                Some((password, key)) if expected.matches(password) => (password, key),
                _ => (opts.pass.as_str(), ""),
            };
            if !expected.matches(password) {
                return Err(Refusal::WrongSecret);
            }
            if !clients::inbox_key_ok(key) {
                return Err(if key.is_empty() && !opts.auth_token.is_empty() {
                    Refusal::KeyInAuthToken
                } else {
                    Refusal::NoInboxKey
                });
            }
            return Ok(Admitted::Client {
                inbox: client_inbox(key),
            });
        }
        let (id, dist) = match (server_id_of(&opts.user), dist_server_id_of(&opts.user)) {
            (Some(id), _) => (id, false),
            (None, Some(id)) => (id, true),
            (None, None) => return Err(Refusal::UnknownUser),
        };
        let entry = self.registry.get(id).await.map_err(|e| {
            tracing::warn!(server_id = id, error = %e, "reading the plugin-server registry");
            Refusal::Unavailable
        })?;
        let record: PluginServerRecord = entry
            .and_then(|bytes| codec::decode(&bytes).ok())
            .ok_or(Refusal::Unknown)?;
        if !password_matches(&record, &opts.pass) {
            Err(Refusal::WrongSecret)
        } else if dist {
            Ok(Admitted::PluginServerDistribution(id.to_owned()))
        } else {
            Ok(Admitted::PluginServer(id.to_owned()))
        }
    }

    /// The account an admitted connection is placed in: client apps in theirs, plugin
    /// servers in theirs; never the workers' account.
    fn account(who: &Admitted) -> Account {
        match who {
            Admitted::PluginServer(_) | Admitted::PluginServerDistribution(_) => {
                Account::PluginServers
            }
            Admitted::Client { .. } => Account::Clients,
        }
    }

    /// The permissions of an admitted connection.
    fn permissions(&self, who: &Admitted) -> Permissions {
        match who {
            Admitted::PluginServer(id) => Permissions::for_plugin_server(id, &self.subjects),
            Admitted::PluginServerDistribution(id) => {
                Permissions::for_plugin_server_distribution(id, &self.subjects)
            }
            Admitted::Client { inbox } => Permissions::for_client(inbox, &self.subjects),
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
        let outcome = self.check(opts).await;
        let (host, client) = (&req.client_info.host, req.client_info.id);
        match &outcome {
            Ok(Admitted::PluginServer(id)) => {
                tracing::info!(server_id = %id, %host, client, "plugin server admitted")
            }
            Ok(Admitted::PluginServerDistribution(id)) => {
                tracing::info!(server_id = %id, %host, client, "plugin server distribution connection admitted")
            }
            // Client apps connect often; their inbox hash is not a secret.
            Ok(Admitted::Client { inbox }) => {
                tracing::debug!(%inbox, %host, client, "client app admitted")
            }
            Err(why) => tracing::warn!(
                user = %opts.user,
                %host,
                client,
                reason = %why,
                "bus connection refused"
            ),
        }
        let outcome = outcome
            .map(|who| {
                jwt::user_jwt(
                    &self.issuer,
                    &req.user_nkey,
                    &opts.user,
                    Self::account(&who).name(),
                    &self.permissions(&who),
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
