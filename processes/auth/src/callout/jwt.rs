//! The three NATS JWTs of an auth callout, encoded and checked by hand (serde_json and
//! base64; no maintained Rust crate covers the authorization claims). Formats as
//! nats-server 2.10+ reads them (the `nats-io/jwt` v2 claim types):
//!
//! - header `{"typ":"JWT","alg":"ed25519-nkey"}`; the signature is Ed25519 by the `iss`
//!   nkey over `<header b64url>.<claims b64url>`, all base64url without padding;
//! - the **authorization request** (nats-server -> us, signed by the server's `N...` key):
//!   `nats.type = "authorization_request"`, `nats.user_nkey` (a key the server made for
//!   this connection), `nats.server_id.id`, `nats.connect_opts.{user, pass, auth_token}`;
//! - the **user** claims we issue: `sub` = that user nkey, `aud` = the account name (config
//!   mode places the connection there), `nats.pub/sub.allow`, `nats.resp`, `type = "user"`;
//! - the **authorization response** wrapping it: `sub` = the user nkey, `aud` = the
//!   server id, `nats.jwt` (or `nats.error`), `type = "authorization_response"`.
//!
//! The user and response JWTs are signed by the issuer account key named in nats.conf.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tessera_bus_config::Permissions;
use thiserror::Error;

/// The header of every v2 NATS JWT.
const HEADER: &str = r#"{"typ":"JWT","alg":"ed25519-nkey"}"#;
/// The `aud` nats-server gives its authorization requests.
pub const REQUEST_AUDIENCE: &str = "nats-authorization-request";
/// "No limit" in NATS JWT limits.
const NO_LIMIT: i64 = -1;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum JwtError {
    #[error("not a JWT of three parts")]
    Shape,
    #[error("bad base64 in the {0}")]
    Base64(&'static str),
    #[error("the header is not a NATS ed25519-nkey header")]
    Header,
    #[error("unreadable claims: {0}")]
    Claims(String),
    #[error("the issuer is not a {0} key")]
    Issuer(&'static str),
    #[error("bad signature")]
    Signature,
    #[error("expired")]
    Expired,
    #[error("unexpected claims: {0}")]
    Unexpected(&'static str),
}

/// Signs `claims` with `key` (its public key must already be the claims' `iss`).
pub fn encode(claims: &impl Serialize, key: &nkeys::KeyPair) -> String {
    let payload = serde_json::to_vec(claims).expect("claims serialize");
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(HEADER),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let sig = key
        .sign(signing_input.as_bytes())
        .expect("a key pair with a seed signs");
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// Whose key may have signed a token.
#[derive(Debug, Clone, Copy)]
pub enum IssuerKind {
    Server,
    Account,
}

/// Decodes a token and checks its signature against its own `iss`, which must be a key of
/// kind `issuer`. The caller checks what the issuer may say.
pub fn decode<T: DeserializeOwned>(token: &str, issuer: IssuerKind) -> Result<T, JwtError> {
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Shape);
    };
    let header = URL_SAFE_NO_PAD
        .decode(h)
        .map_err(|_| JwtError::Base64("header"))?;
    let header: serde_json::Value =
        serde_json::from_slice(&header).map_err(|_| JwtError::Header)?;
    if header.get("alg").and_then(|a| a.as_str()) != Some("ed25519-nkey") {
        return Err(JwtError::Header);
    }
    let claims = URL_SAFE_NO_PAD
        .decode(c)
        .map_err(|_| JwtError::Base64("claims"))?;
    let sig = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| JwtError::Base64("signature"))?;
    let common: Common =
        serde_json::from_slice(&claims).map_err(|e| JwtError::Claims(e.to_string()))?;
    let key = nkeys::KeyPair::from_public_key(&common.iss).map_err(|_| JwtError::Issuer("NATS"))?;
    let (want, name) = match issuer {
        IssuerKind::Server => (nkeys::KeyPairType::Server, "server"),
        IssuerKind::Account => (nkeys::KeyPairType::Account, "account"),
    };
    if key.key_pair_type() != want {
        return Err(JwtError::Issuer(name));
    }
    key.verify(format!("{h}.{c}").as_bytes(), &sig)
        .map_err(|_| JwtError::Signature)?;
    if common.exp.is_some_and(|exp| exp < now()) {
        return Err(JwtError::Expired);
    }
    serde_json::from_slice(&claims).map_err(|e| JwtError::Claims(e.to_string()))
}

#[derive(Deserialize)]
struct Common {
    iss: String,
    #[serde(default)]
    exp: Option<i64>,
}

fn now() -> i64 {
    i64::try_from(tessera_protocol::now_unix()).unwrap_or(i64::MAX)
}

fn jti() -> String {
    // nats-io/jwt puts a hash of the claims here; nats-server only needs it unique.
    uuid::Uuid::new_v4()
        .simple()
        .to_string()
        .to_ascii_uppercase()
}

// --- the authorization request (from nats-server) ---------------------------------------

#[derive(Debug, Clone, Deserialize)]
pub struct RequestClaims {
    pub iss: String,
    #[serde(default)]
    pub aud: String,
    pub nats: AuthorizationRequest,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AuthorizationRequest {
    pub server_id: ServerId,
    pub user_nkey: String,
    #[serde(default)]
    pub client_info: ClientInfo,
    #[serde(default)]
    pub connect_opts: ConnectOpts,
    #[serde(default, rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub version: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ServerId {
    pub id: String,
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ClientInfo {
    #[serde(default)]
    pub host: String,
    #[serde(default)]
    pub id: u64,
    #[serde(default)]
    pub name: String,
}

#[derive(Clone, Default, Deserialize)]
pub struct ConnectOpts {
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub pass: String,
    /// Read only to tell a client of the earlier contract (inbox key here, not in the
    /// password) why it is refused; empty for everyone else.
    #[serde(default)]
    pub auth_token: String,
}

impl std::fmt::Debug for ConnectOpts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectOpts")
            .field("user", &self.user)
            .field("pass", &"***")
            .field("auth_token", &"***")
            .finish()
    }
}

/// Decodes and checks an authorization request: signed by a server key, for the callout,
/// with a user nkey to answer for.
pub fn decode_request(token: &str) -> Result<RequestClaims, JwtError> {
    let claims: RequestClaims = decode(token, IssuerKind::Server)?;
    if claims.aud != REQUEST_AUDIENCE || claims.nats.kind != "authorization_request" {
        return Err(JwtError::Unexpected("not an authorization request"));
    }
    let user = nkeys::KeyPair::from_public_key(&claims.nats.user_nkey)
        .map_err(|_| JwtError::Unexpected("user_nkey is not a public key"))?;
    if user.key_pair_type() != nkeys::KeyPairType::User {
        return Err(JwtError::Unexpected("user_nkey is not a user key"));
    }
    Ok(claims)
}

// --- what we answer ---------------------------------------------------------------------

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Allow {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ResponsePermission {
    /// Replies per request.
    pub max: i64,
    /// Nanoseconds; 0: the server's default.
    pub ttl: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct User {
    #[serde(rename = "pub")]
    pub publish: Allow,
    #[serde(rename = "sub")]
    pub subscribe: Allow,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resp: Option<ResponsePermission>,
    pub subs: i64,
    pub data: i64,
    pub payload: i64,
    #[serde(rename = "type")]
    pub kind: String,
    pub version: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct UserClaims {
    pub jti: String,
    pub iat: i64,
    pub iss: String,
    pub name: String,
    pub sub: String,
    pub aud: String,
    pub nats: User,
}

/// The user JWT for connection `user_nkey`, named `name`, placed in `account`, with
/// `permissions`, signed by `issuer`.
pub fn user_jwt(
    issuer: &nkeys::KeyPair,
    user_nkey: &str,
    name: &str,
    account: &str,
    permissions: &Permissions,
) -> String {
    let claims = UserClaims {
        jti: jti(),
        iat: now(),
        iss: issuer.public_key(),
        name: name.to_owned(),
        sub: user_nkey.to_owned(),
        aud: account.to_owned(),
        nats: User {
            publish: Allow {
                allow: permissions.publish.clone(),
            },
            subscribe: Allow {
                allow: permissions.subscribe.clone(),
            },
            resp: permissions
                .allow_responses
                .then_some(ResponsePermission { max: 1, ttl: 0 }),
            subs: NO_LIMIT,
            data: NO_LIMIT,
            payload: NO_LIMIT,
            kind: "user".into(),
            version: 2,
        },
    };
    encode(&claims, issuer)
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuthorizationResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(rename = "type")]
    pub kind: String,
    pub version: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ResponseClaims {
    pub jti: String,
    pub iat: i64,
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub nats: AuthorizationResponse,
}

/// The answer to `request`: the user JWT, or an error that makes nats-server refuse the
/// connection at once (an authorization violation, not a timeout).
pub fn response(
    issuer: &nkeys::KeyPair,
    request: &AuthorizationRequest,
    outcome: Result<String, String>,
) -> String {
    let (jwt, error) = match outcome {
        Ok(jwt) => (Some(jwt), None),
        Err(e) => (None, Some(e)),
    };
    let claims = ResponseClaims {
        jti: jti(),
        iat: now(),
        iss: issuer.public_key(),
        sub: request.user_nkey.clone(),
        aud: request.server_id.id.clone(),
        nats: AuthorizationResponse {
            jwt,
            error,
            kind: "authorization_response".into(),
            version: 2,
        },
    };
    encode(&claims, issuer)
}

#[cfg(test)]
mod tests;
