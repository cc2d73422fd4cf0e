//! Request and reply bodies. One struct per message; each has a [`Schema`] constant.
//!
//! Rules (see docs/protocol.md): MessagePack maps with named fields; within a version, new
//! fields are optional (`#[serde(default)]`) so older peers keep working; unknown fields are
//! ignored. Request bodies decode strictly: every string field through
//! [`crate::strict`] (a `str`, never a `bin`), so what we accept is what §1 says.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::codec::Schema;
use crate::strict;

pub const AUTH_LOGIN: Schema = Schema::v1("auth.login");
pub const AUTH_VERIFY: Schema = Schema::v1("auth.verify");
pub const USERS_ADD: Schema = Schema::v1("users.add");
pub const TOKEN_REQUEST: Schema = Schema::v1("token.request");
pub const TOKEN_REVOKE: Schema = Schema::v1("token.revoke");
pub const TOKEN_INTROSPECT: Schema = Schema::v1("token.introspect");
pub const DIST_EVENT: Schema = Schema::v1("dist.event");
pub const DIST_OPEN: Schema = Schema::v1("distribution.open");
pub const ECHO: Schema = Schema::v1("svc.echo");

/// `auth.login`. Local accounts use `username`/`password`; third-party apps (a later
/// addition behind the same subject) use `app_id`/`params`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginRequest {
    #[serde(default, deserialize_with = "strict::opt_text")]
    pub username: Option<String>,
    #[serde(default, deserialize_with = "strict::opt_text")]
    pub password: Option<String>,
    #[serde(default, deserialize_with = "strict::opt_text")]
    pub app_id: Option<String>,
    #[serde(default, deserialize_with = "strict::text_map")]
    pub params: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginResponse {
    pub account_token: String,
    pub account_id: String,
    /// Unix seconds.
    pub expires_at: u64,
}

/// `auth.verify`: the auth result for an account token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyRequest {
    #[serde(deserialize_with = "strict::text")]
    pub account_token: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyResponse {
    pub account_id: String,
    /// `iss` of the account token (ours, or a configured external issuer).
    pub issuer: String,
    /// Unix seconds.
    pub expires_at: u64,
}

/// `users.add` (admin): create a local account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsersAddRequest {
    #[serde(deserialize_with = "strict::text")]
    pub username: String,
    #[serde(deserialize_with = "strict::text")]
    pub password: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsersAddResponse {
    pub account_id: String,
}

/// `token.request`: a plugin token for one plugin, on behalf of one account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRequest {
    #[serde(deserialize_with = "strict::text")]
    pub account_token: String,
    #[serde(deserialize_with = "strict::text")]
    pub plugin_id: String,
    /// Same key, same account, same plugin, within 5 minutes: the same token comes back.
    #[serde(default, deserialize_with = "strict::opt_text")]
    pub idempotency_key: Option<String>,
    /// The end user's device, for plugins whose route binds tokens to a device
    /// (`Route::bind_device`): required there, ignored elsewhere.
    #[serde(default, deserialize_with = "strict::opt_text")]
    pub device_id: Option<String>,
    /// The end user's IP address, for plugins whose route binds tokens to an IP
    /// (`Route::bind_ip`): required there, ignored elsewhere.
    #[serde(default, deserialize_with = "strict::opt_text")]
    pub user_ip: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    /// The plugin token (a JWT). A bearer credential: keep it secret.
    pub token: String,
    pub token_id: String,
    pub plugin_id: String,
    pub account_id: String,
    /// Unix seconds.
    pub expires_at: u64,
    /// The plugin server ids the token was distributed to.
    pub servers: Vec<String>,
}

/// `token.revoke` (admin): exactly one of the two fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokeRequest {
    #[serde(default, deserialize_with = "strict::opt_text")]
    pub token_id: Option<String>,
    #[serde(default, deserialize_with = "strict::opt_text")]
    pub account_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokeResponse {
    /// How many live tokens were revoked.
    pub revoked: u32,
}

/// `distribution.open.<server_id>`: a plugin server asks the broker for a consumer of its
/// own distributions. The reply is the JetStream consumer info (JSON, as JetStream answers
/// a consumer create) of a pull consumer the plugin server reads with
/// `<prefix>.js.CONSUMER.MSG.NEXT.<stream>.<name>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DistOpenRequest {
    /// The stream sequence to start at; 0: the first event still kept.
    #[serde(default)]
    pub start_seq: u64,
    /// The stream `start_seq` counts in (the `stream_name` of the consumer the plugin
    /// server read last). When the distribution's layout changed since (another number of
    /// shards, docs/reliability.md), the broker opens the consumer on the new stream from
    /// its first event instead: a sequence of another stream means nothing there. Empty
    /// (older plugin servers): `start_seq` is taken as counting in the server's stream.
    #[serde(default, deserialize_with = "strict::text")]
    pub stream: String,
}

/// `token.introspect`: for plugin servers that have not received a token's distribution yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntrospectRequest {
    #[serde(deserialize_with = "strict::text")]
    pub token: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntrospectResponse {
    pub active: bool,
    #[serde(default)]
    pub token_id: Option<String>,
    #[serde(default)]
    pub account_id: Option<String>,
    #[serde(default)]
    pub plugin_id: Option<String>,
    #[serde(default)]
    pub expires_at: Option<u64>,
    #[serde(default)]
    pub servers: Vec<String>,
}

/// The most tokens one [`DistEvent::Tokens`] carries.
pub const MAX_DIST_BATCH: usize = 64;
/// The most bytes of tokens one [`DistEvent::Tokens`] carries (a batch stops growing once
/// past it), far under [`MAX_MESSAGE_BYTES`](crate::codec::MAX_MESSAGE_BYTES) that a
/// receiver decodes.
pub const MAX_DIST_BATCH_BYTES: usize = 32 * 1024;

/// One event on `dist.<server_id>` (JetStream), in stream order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DistEvent {
    /// A plugin token for this server. The receiver verifies it once, then stores it.
    /// Older brokers publish this; brokers now publish [`DistEvent::Tokens`].
    Token { token: String },
    /// Plugin tokens for this server, in the order they were issued: what a broker
    /// publishes, one message for the tokens issued while its previous publish to the same
    /// server awaited JetStream's ack (at most [`MAX_DIST_BATCH`], and under
    /// [`MAX_DIST_BATCH_BYTES`] of tokens). Each is applied as a `Token` would be.
    Tokens { tokens: Vec<String> },
    /// These tokens are revoked: drop them at once.
    Revoke { token_ids: Vec<String> },
}

/// Value of the routes bucket, keyed by plugin id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub servers: Vec<String>,
    /// Policy: this plugin's tokens are bound to the device id given at token request time,
    /// and the gateway refuses packets from any other device. Older records lack the field
    /// and decode as unbound.
    #[serde(default)]
    pub bind_device: bool,
    /// Policy: the same for the end user's IP address.
    #[serde(default)]
    pub bind_ip: bool,
}

/// Reply of the demo plugin server's `echo` operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EchoReply {
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
    pub account_id: String,
    pub plugin_id: String,
    pub server_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{decode, encode};

    #[test]
    fn dist_events_round_trip() {
        for ev in [
            DistEvent::Token {
                token: "a.b.c".into(),
            },
            DistEvent::Tokens {
                tokens: vec!["a.b.c".into(), "d.e.f".into()],
            },
            DistEvent::Revoke {
                token_ids: vec!["x".into(), "y".into()],
            },
        ] {
            assert_eq!(decode::<DistEvent>(&encode(&ev)).unwrap(), ev);
        }
    }

    #[test]
    fn login_request_fields_are_optional() {
        let req: LoginRequest = decode(&encode(&serde_json::json!({"username": "ann"}))).unwrap();
        assert_eq!(req.username.as_deref(), Some("ann"));
        assert!(req.password.is_none());
    }

    /// Routes and token requests written before binding existed decode as unbound.
    #[test]
    fn binding_fields_default_to_unbound() {
        let route: Route = decode(&encode(&serde_json::json!({"servers": ["ps1"]}))).unwrap();
        assert!(!route.bind_device && !route.bind_ip);
        let req: TokenRequest = decode(&encode(
            &serde_json::json!({"account_token": "t", "plugin_id": "p"}),
        ))
        .unwrap();
        assert!(req.device_id.is_none() && req.user_ip.is_none());
    }
}
