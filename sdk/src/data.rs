//! Data access: a client app signs a data-access packet for a plugin and sends it to the
//! gateway on `data.<plugin_id>`; the gateway checks it and answers with the plugin server's
//! data. (Registering client apps and data routes is the operator's:
//! `operator::data_routes`.)
//!
//! ```no_run
//! # async fn demo(client: tessera_sdk::Client, plugin_token: String) -> Result<(), tessera_sdk::Error> {
//! use tessera_sdk::data::{ClientAppCredentials, DataCall};
//! // The secret `tessera client-apps add my-app` printed once.
//! let app = ClientAppCredentials::from_base64("my-app", "wu6JCYjZNARHSZZAPkMtPk_QU9DEWUU301eEYfesOH4")?;
//! let call = DataCall::new("weather", &plugin_token, "forecast", "192.0.2.10", "device-42")
//!     .query("city=Oslo")
//!     .body(b"{}".to_vec());
//! let reply = client.data_request(&app, &call).await?;
//! println!("{} bytes", reply.body.len());
//! # Ok(()) }
//! ```

use std::time::{SystemTime, UNIX_EPOCH};

use async_nats::HeaderMap;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use tessera_protocol::data_sign;
use tessera_schemas::data::{
    CLIENT_SECRET_LEN, DATA_REQUEST, DataRequest, PACKET_VERSION, Verification,
};
use tessera_schemas::{codec, headers, ids};

use crate::{Client, Error};

/// A client app's id and signing secret.
#[derive(Clone)]
pub struct ClientAppCredentials {
    pub app_id: String,
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for ClientAppCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientAppCredentials")
            .field("app_id", &self.app_id)
            .finish_non_exhaustive()
    }
}

impl ClientAppCredentials {
    /// From the base64url secret `tessera client-apps add` prints.
    pub fn from_base64(app_id: &str, secret: &str) -> Result<Self, Error> {
        ids::check("app_id", app_id)?;
        let secret = URL_SAFE_NO_PAD
            .decode(secret.trim().trim_end_matches('='))
            .map_err(|e| {
                Error::invalid_input(format!("secret is not base64url: {e}")).with_source(e)
            })?;
        if secret.len() != CLIENT_SECRET_LEN {
            return Err(Error::invalid_input(format!(
                "secret is {} bytes, not {CLIENT_SECRET_LEN}",
                secret.len()
            )));
        }
        Ok(Self {
            app_id: app_id.to_owned(),
            secret,
        })
    }

    /// The secret as `tessera client-apps add` prints it (base64url, no padding).
    pub fn secret_base64(&self) -> String {
        URL_SAFE_NO_PAD.encode(&self.secret)
    }
}

/// What a plugin asks for: the operation address and the verification info.
#[derive(Debug, Clone)]
pub struct DataCall {
    pub plugin_id: String,
    pub plugin_token: String,
    pub operation: String,
    pub query: String,
    pub body: Vec<u8>,
    pub user_ip: String,
    pub device_id: String,
}

impl DataCall {
    pub fn new(
        plugin_id: &str,
        plugin_token: &str,
        operation: &str,
        user_ip: &str,
        device_id: &str,
    ) -> Self {
        Self {
            plugin_id: plugin_id.into(),
            plugin_token: plugin_token.into(),
            operation: operation.into(),
            query: String::new(),
            body: Vec::new(),
            user_ip: user_ip.into(),
            device_id: device_id.into(),
        }
    }

    pub fn query(mut self, query: &str) -> Self {
        self.query = query.into();
        self
    }

    pub fn body(mut self, body: Vec<u8>) -> Self {
        self.body = body;
        self
    }
}

/// The plugin server's answer, relayed by the gateway.
#[derive(Debug, Clone)]
pub struct DataReply {
    /// The `Tessera-Schema` header of the plugin server's reply, if it set one.
    pub schema: Option<String>,
    pub body: Bytes,
}

/// A fresh nonce: 16 random bytes as base64url (22 characters).
pub fn new_nonce() -> String {
    let mut b = [0u8; 16];
    aws_lc_rs::rand::fill(&mut b).expect("system randomness");
    URL_SAFE_NO_PAD.encode(b)
}

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Builds and signs a packet with the given timestamp and nonce (for tests and for callers
/// that manage their own clock); [`Client::data_request`] uses now and a fresh nonce.
pub fn build_packet(
    app: &ClientAppCredentials,
    call: &DataCall,
    timestamp_ms: u64,
    nonce: &str,
) -> DataRequest {
    let mut packet = DataRequest {
        version: PACKET_VERSION,
        app_id: app.app_id.clone(),
        plugin_token: call.plugin_token.clone(),
        timestamp: timestamp_ms,
        nonce: nonce.to_owned(),
        operation: call.operation.clone(),
        query: call.query.clone(),
        body: call.body.clone(),
        verification: Verification {
            plugin_id: call.plugin_id.clone(),
            user_ip: call.user_ip.clone(),
            device_id: call.device_id.clone(),
        },
        signature: String::new(),
    };
    packet.signature = data_sign::sign(&app.secret, &packet);
    packet
}

impl Client {
    /// Signs a packet for `call` (now, fresh nonce) and sends it to the gateway. Not retried:
    /// a retry needs a new nonce, i.e. a new call.
    pub async fn data_request(
        &self,
        app: &ClientAppCredentials,
        call: &DataCall,
    ) -> Result<DataReply, Error> {
        ids::check("plugin_id", &call.plugin_id)?;
        ids::check("operation", &call.operation)?;
        let packet = build_packet(app, call, now_ms(), &new_nonce());
        self.send_packet(&call.plugin_id, &packet).await
    }

    /// Sends an already signed packet on `data.<plugin_id>`.
    pub async fn send_packet(
        &self,
        plugin_id: &str,
        packet: &DataRequest,
    ) -> Result<DataReply, Error> {
        ids::check("plugin_id", plugin_id)?;
        let mut h = HeaderMap::new();
        h.insert(headers::SCHEMA, DATA_REQUEST.header_value().as_str());
        let msg = self
            .request_raw(
                self.subjects().data(plugin_id),
                h,
                codec::encode(packet).into(),
            )
            .await?;
        let schema = msg
            .headers
            .as_ref()
            .and_then(|h| h.get(headers::SCHEMA))
            .map(|v| v.to_string());
        Ok(DataReply {
            schema,
            body: msg.payload,
        })
    }
}
