//! The client: one NATS connection and what every face shares (the request path, the
//! broker's keys, introspection). The app face's calls are in `calls.rs`, the operator's
//! in `operator/`.
//!
//! Which calls succeed depends on the credentials in the URL: a client-role connection can
//! log in, request tokens, fetch keys and call plugin servers; admin calls need the admin
//! role. nats-server drops a publish the role does not allow; a connection the SDK made
//! ([`Client::connect`]) hears of it and fails the call at once as
//! [`crate::ErrorKind::Forbidden`]. A connection made elsewhere ([`Client::new`]) cannot:
//! there the call times out as [`crate::ErrorKind::Unavailable`].

use std::sync::Arc;
use std::time::Duration;

use async_nats::HeaderMap;
use bytes::Bytes;
use jsonwebtoken::jwk::JwkSet;
use serde::{Serialize, de::DeserializeOwned};
use tessera_protocol::rpc::{self, RpcError};
use tessera_schemas::Schema;
use tessera_schemas::Subjects;
use tessera_schemas::messages::{IntrospectRequest, IntrospectResponse, TOKEN_INTROSPECT};

use crate::Error;
use crate::connection::Refusals;

/// The name [`Client::connect`] gives its connection (the server's monitoring and the
/// SDK's logs show it).
pub const DEFAULT_CONNECTION_NAME: &str = "tessera-client";

/// A connection to Tessera. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Client {
    nats: async_nats::Client,
    subjects: Subjects,
    timeout: Duration,
    /// The publishes the server refused, when the SDK made the connection (and so installed
    /// the event callback that hears of them).
    refusals: Option<Arc<Refusals>>,
    /// Replicas of a bucket or store this client creates (admin commands run before the
    /// workers create what they write); the workers raise an existing one to theirs anyway.
    #[cfg(feature = "operator")]
    pub(crate) durability: tessera_bus_config::provision::Durability,
}

impl Client {
    /// Connects with the default subject prefix, as [`DEFAULT_CONNECTION_NAME`].
    pub async fn connect(url: &str) -> Result<Client, Error> {
        Client::connect_named(url, DEFAULT_CONNECTION_NAME).await
    }

    /// Connects with the default subject prefix under the connection name `name` (shown by
    /// the server's monitoring; the SDK logs the connection's events under it).
    pub async fn connect_named(url: &str, name: &str) -> Result<Client, Error> {
        let (nats, refusals) =
            crate::connection::connect(url, name, Duration::from_secs(5), |o| o).await?;
        Ok(Client::new(nats, Subjects::default()).with_refusals(refusals))
    }

    /// Wraps an existing NATS connection. Its refused publishes are not seen (the SDK did
    /// not install its event callback): a call the bus refuses times out as unavailable.
    pub fn new(nats: async_nats::Client, subjects: Subjects) -> Client {
        Client {
            nats,
            subjects,
            timeout: Duration::from_secs(5),
            refusals: None,
            #[cfg(feature = "operator")]
            durability: Default::default(),
        }
    }

    pub(crate) fn with_refusals(mut self, refusals: Arc<Refusals>) -> Client {
        self.refusals = Some(refusals);
        self
    }

    /// The same connection with another subject prefix.
    pub fn with_subjects(mut self, subjects: Subjects) -> Client {
        self.subjects = subjects;
        self
    }

    /// Per-request timeout (default 5 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self
    }

    /// The per-request timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub fn nats(&self) -> &async_nats::Client {
        &self.nats
    }

    pub fn subjects(&self) -> &Subjects {
        &self.subjects
    }

    /// Runs a request on `subject`: a publish the bus refuses is [`crate::ErrorKind::Forbidden`]
    /// (when this client made its connection), anything else as the request ended.
    async fn guarded<T>(
        &self,
        subject: &str,
        request: impl std::future::Future<Output = Result<T, RpcError>>,
    ) -> Result<T, Error> {
        match &self.refusals {
            Some(refusals) => refusals.guard(subject, request).await,
            None => Ok(request.await?),
        }
    }

    pub(crate) async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        subject: String,
        schema: Schema,
        body: &Req,
    ) -> Result<Resp, Error> {
        self.call_with_timeout(subject, schema, body, self.timeout)
            .await
    }

    pub(crate) async fn call_with_timeout<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        subject: String,
        schema: Schema,
        body: &Req,
        timeout: Duration,
    ) -> Result<Resp, Error> {
        self.guarded(
            &subject.clone(),
            rpc::request(&self.nats, subject, schema, body, timeout),
        )
        .await
    }

    /// A request with raw headers and body; error replies are already typed.
    pub(crate) async fn request_raw(
        &self,
        subject: String,
        headers: HeaderMap,
        payload: Bytes,
    ) -> Result<async_nats::Message, Error> {
        self.guarded(
            &subject.clone(),
            rpc::request_raw(&self.nats, subject, headers, payload, self.timeout),
        )
        .await
    }

    /// The raw `keys` reply (a JWKS in JSON), read two ways below.
    async fn keys_reply(&self) -> Result<async_nats::Message, Error> {
        self.request_raw(self.subjects.keys(), HeaderMap::new(), Bytes::new())
            .await
    }

    /// The broker's public keys (RFC 7517 JWKS).
    pub async fn keys(&self) -> Result<JwkSet, Error> {
        let msg = self.keys_reply().await?;
        serde_json::from_slice(&msg.payload).map_err(Error::bad_reply)
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
        let set: Set = serde_json::from_slice(&msg.payload).map_err(Error::bad_reply)?;
        Ok(set
            .keys
            .into_iter()
            .filter_map(|v| tessera_protocol::signing::PublishedKey::from_value(v).ok())
            .collect())
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
}
