//! The client SDK: everything a client app or an operator sends on the bus.
//!
//! Which calls succeed depends on the credentials in the URL: a client-role connection can
//! log in, request tokens, fetch keys and call plugin servers; admin calls need the admin
//! role (bus permissions refuse them otherwise, which shows up as [`Error::Unavailable`]
//! after the request timeout: nats-server drops a refused publish without a reply, and
//! reports the permissions violation only to the connection's event callback).

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream;
use bytes::Bytes;
use futures::TryStreamExt;
use jsonwebtoken::jwk::JwkSet;
use serde::{Serialize, de::DeserializeOwned};
use tessera_bus_config::provision::Durability;
use tessera_protocol::rpc;
use tessera_schemas::messages::{
    AUTH_LOGIN, EchoReply, IntrospectRequest, IntrospectResponse, LoginRequest, LoginResponse,
    RevokeRequest, RevokeResponse, Route, TOKEN_INTROSPECT, TOKEN_REQUEST, TOKEN_REVOKE,
    TokenRequest, TokenResponse, USERS_ADD, UsersAddRequest, UsersAddResponse,
};
use tessera_schemas::{Schema, Subjects, codec, headers, ids};

use crate::Error;

/// How many times [`Client::request_token`] tries a request that failed retryably.
const TOKEN_ATTEMPTS: u32 = 3;

/// What a plugin token is to be bound to ([`Client::request_token_bound`]). Only the fields
/// the plugin's route binds are used; a bound field left `None` is refused (`bad_request`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Binding {
    /// The end user's device id (1-128 of `A-Z a-z 0-9 - _ . :`).
    pub device_id: Option<String>,
    /// The end user's IP address (IPv4 or IPv6).
    pub user_ip: Option<String>,
}

/// A plugin's token-binding policy ([`Client::set_route_with`]). Default: unbound.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoutePolicy {
    /// Tokens are bound to the device id given when they are requested.
    pub bind_device: bool,
    /// Tokens are bound to the user IP given when they are requested.
    pub bind_ip: bool,
}

/// A connection to Tessera. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Client {
    nats: async_nats::Client,
    subjects: Subjects,
    timeout: Duration,
    /// Replicas of a bucket or store this client creates (admin commands run before the
    /// workers create what they write); the workers raise an existing one to theirs anyway.
    durability: Durability,
}

/// A bucket's or store's trouble, as the SDK reports it: the bus side is unavailable.
pub(crate) fn kv_error(e: impl std::fmt::Display) -> Error {
    Error::Unavailable(e.to_string())
}

/// Every key of a KV bucket, sorted (the admin listings).
pub(crate) async fn kv_keys(kv: &async_nats::jetstream::kv::Store) -> Result<Vec<String>, Error> {
    let mut keys: Vec<String> = kv
        .keys()
        .await
        .map_err(kv_error)?
        .try_collect()
        .await
        .map_err(kv_error)?;
    keys.sort();
    Ok(keys)
}

impl Client {
    /// Connects with the default subject prefix.
    pub async fn connect(url: &str) -> Result<Client, Error> {
        let nats = tessera_protocol::bus::connect(url, "tessera-client", Duration::from_secs(5))
            .await
            .map_err(|e| Error::Connect(e.to_string()))?;
        Ok(Client::new(nats, Subjects::default()))
    }

    /// Wraps an existing NATS connection.
    pub fn new(nats: async_nats::Client, subjects: Subjects) -> Client {
        Client {
            nats,
            subjects,
            timeout: Duration::from_secs(5),
            durability: Durability::default(),
        }
    }

    /// Per-request timeout (default 5 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self
    }

    /// Replicas for any bucket or store this client creates (`TESSERA_JS_REPLICAS`; default
    /// 1). Only admin commands create any, when no worker has yet.
    pub fn with_durability(mut self, durability: Durability) -> Client {
        self.durability = durability;
        self
    }

    pub(crate) fn durability(&self) -> Durability {
        self.durability
    }

    /// The per-request timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// A JetStream context on this client's connection (object stores and buckets).
    pub(crate) fn js(&self) -> async_nats::jetstream::Context {
        async_nats::jetstream::new(self.nats.clone())
    }

    pub fn nats(&self) -> &async_nats::Client {
        &self.nats
    }

    pub fn subjects(&self) -> &Subjects {
        &self.subjects
    }

    pub(crate) async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        subject: String,
        schema: Schema,
        body: &Req,
    ) -> Result<Resp, Error> {
        Ok(rpc::request(&self.nats, subject, schema, body, self.timeout).await?)
    }

    /// Logs in with a local account; returns the account token.
    pub async fn login(&self, username: &str, password: &str) -> Result<LoginResponse, Error> {
        let req = LoginRequest {
            username: Some(username.into()),
            password: Some(password.into()),
            ..Default::default()
        };
        self.call(self.subjects.auth_login(), AUTH_LOGIN, &req)
            .await
    }

    /// Asks the broker for a plugin token. A timed-out or `unavailable` request is retried
    /// with the same idempotency key (one is generated when none is given), so a retry never
    /// mints a second token.
    pub async fn request_token(
        &self,
        account_token: &str,
        plugin_id: &str,
        idempotency_key: Option<&str>,
    ) -> Result<TokenResponse, Error> {
        self.request_token_bound(
            account_token,
            plugin_id,
            idempotency_key,
            Binding::default(),
        )
        .await
    }

    /// [`Client::request_token`] for a plugin whose route binds tokens to the end user's
    /// device and/or IP: the token is only accepted (by the gateway) on packets whose
    /// verification info carries the same values.
    pub async fn request_token_bound(
        &self,
        account_token: &str,
        plugin_id: &str,
        idempotency_key: Option<&str>,
        binding: Binding,
    ) -> Result<TokenResponse, Error> {
        ids::check("plugin_id", plugin_id)?;
        let key = idempotency_key.map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
        let req = TokenRequest {
            account_token: account_token.to_owned(),
            plugin_id: plugin_id.to_owned(),
            idempotency_key: Some(key),
            device_id: binding.device_id,
            user_ip: binding.user_ip,
        };
        let mut attempt = 1;
        loop {
            match self
                .call(self.subjects.token_request(), TOKEN_REQUEST, &req)
                .await
            {
                Err(e) if e.is_retryable() && attempt < TOKEN_ATTEMPTS => {
                    tracing::debug!(attempt, error = %e, "token request failed; retrying with the same idempotency key");
                    tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// The raw `keys` reply (a JWKS in JSON), read two ways below.
    async fn keys_reply(&self) -> Result<async_nats::Message, Error> {
        Ok(rpc::request_raw(
            &self.nats,
            self.subjects.keys(),
            HeaderMap::new(),
            Bytes::new(),
            self.timeout,
        )
        .await?)
    }

    /// The broker's public keys (RFC 7517 JWKS).
    pub async fn keys(&self) -> Result<JwkSet, Error> {
        let msg = self.keys_reply().await?;
        serde_json::from_slice(&msg.payload).map_err(|e| Error::BadReply(e.to_string()))
    }

    /// The broker's public keys with the time until which each may be used (its `exp`
    /// member; `None` for a key that does not lapse). Keys that do not parse are skipped.
    pub async fn published_keys(
        &self,
    ) -> Result<Vec<tessera_protocol::signing::PublishedKey>, Error> {
        let msg = self.keys_reply().await?;
        #[derive(serde::Deserialize)]
        struct Set {
            keys: Vec<serde_json::Value>,
        }
        let set: Set =
            serde_json::from_slice(&msg.payload).map_err(|e| Error::BadReply(e.to_string()))?;
        Ok(set
            .keys
            .into_iter()
            .filter_map(|v| tessera_protocol::signing::PublishedKey::from_value(v).ok())
            .collect())
    }

    /// Calls `operation` on plugin server `server_id` with a plugin token; returns the raw
    /// reply body.
    pub async fn call_raw(
        &self,
        server_id: &str,
        operation: &str,
        plugin_token: &str,
        body: Bytes,
    ) -> Result<Bytes, Error> {
        ids::check("server id", server_id)?;
        ids::check("operation", operation)?;
        let mut h = HeaderMap::new();
        h.insert(
            headers::AUTHORIZATION,
            format!("{}{plugin_token}", headers::BEARER_PREFIX).as_str(),
        );
        let msg = rpc::request_raw(
            &self.nats,
            self.subjects.svc(server_id, operation),
            h,
            body,
            self.timeout,
        )
        .await?;
        Ok(msg.payload)
    }

    /// Calls the demo plugin server's `echo` operation.
    pub async fn echo(
        &self,
        server_id: &str,
        plugin_token: &str,
        body: Vec<u8>,
    ) -> Result<EchoReply, Error> {
        let raw = self
            .call_raw(server_id, "echo", plugin_token, body.into())
            .await?;
        codec::decode(&raw).map_err(|e| Error::BadReply(e.to_string()))
    }

    /// Is this plugin token live? (Plugin-server or admin role.)
    pub async fn introspect(&self, token: &str) -> Result<IntrospectResponse, Error> {
        self.call(
            self.subjects.token_introspect(),
            TOKEN_INTROSPECT,
            &IntrospectRequest {
                token: token.into(),
            },
        )
        .await
    }

    // --- admin ------------------------------------------------------------------------

    /// Creates a local account (admin role).
    pub async fn add_user(
        &self,
        username: &str,
        password: &str,
    ) -> Result<UsersAddResponse, Error> {
        ids::check("username", username)?;
        self.call(
            self.subjects.users_add(),
            USERS_ADD,
            &UsersAddRequest {
                username: username.into(),
                password: password.into(),
            },
        )
        .await
    }

    /// Revokes one token (admin role).
    pub async fn revoke_token(&self, token_id: &str) -> Result<RevokeResponse, Error> {
        let req = RevokeRequest {
            token_id: Some(token_id.into()),
            account_id: None,
        };
        self.call(self.subjects.token_revoke(), TOKEN_REVOKE, &req)
            .await
    }

    /// Revokes every live token of an account (admin role).
    pub async fn revoke_account(&self, account_id: &str) -> Result<RevokeResponse, Error> {
        let req = RevokeRequest {
            token_id: None,
            account_id: Some(account_id.into()),
        };
        self.call(self.subjects.token_revoke(), TOKEN_REVOKE, &req)
            .await
    }

    async fn routes_bucket(&self) -> Result<jetstream::kv::Store, Error> {
        let js = jetstream::new(self.nats.clone());
        // The broker creates the bucket; create it here too so routes can be set first.
        tessera_bus_config::provision::routes_bucket(&js, &self.subjects, self.durability())
            .await
            .map_err(|e| Error::Unavailable(e.to_string()))
    }

    /// Routes a plugin to its plugin servers (admin role), with unbound tokens.
    pub async fn set_route(&self, plugin_id: &str, servers: &[String]) -> Result<(), Error> {
        self.set_route_with(plugin_id, servers, RoutePolicy::default())
            .await
    }

    /// Routes a plugin to its plugin servers with a token-binding policy (admin role).
    pub async fn set_route_with(
        &self,
        plugin_id: &str,
        servers: &[String],
        policy: RoutePolicy,
    ) -> Result<(), Error> {
        ids::check("plugin_id", plugin_id)?;
        if servers.is_empty() {
            return Err(Error::InvalidInput(
                "give at least one plugin server id".into(),
            ));
        }
        for s in servers {
            ids::check("server id", s)?;
        }
        let kv = self.routes_bucket().await?;
        let route = Route {
            servers: servers.to_vec(),
            bind_device: policy.bind_device,
            bind_ip: policy.bind_ip,
        };
        kv.put(plugin_id, codec::encode(&route).into())
            .await
            .map_err(|e| Error::Unavailable(e.to_string()))?;
        Ok(())
    }

    /// Removes a plugin's route (admin role).
    pub async fn delete_route(&self, plugin_id: &str) -> Result<(), Error> {
        ids::check("plugin_id", plugin_id)?;
        let kv = self.routes_bucket().await?;
        kv.delete(plugin_id)
            .await
            .map_err(|e| Error::Unavailable(e.to_string()))
    }

    /// Every route, sorted by plugin id (admin role).
    pub async fn routes(&self) -> Result<Vec<(String, Route)>, Error> {
        let kv = self.routes_bucket().await?;
        let keys = kv_keys(&kv).await?;
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let value = kv
                .get(&key)
                .await
                .map_err(|e| Error::Unavailable(e.to_string()))?;
            if let Some(Ok(route)) = value.map(|b| codec::decode::<Route>(&b)) {
                out.push((key, route));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}
