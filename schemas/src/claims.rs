//! JWT claim sets. Plugin tokens are minted by the broker; account tokens by the auth worker
//! (or an external issuer the auth worker is configured to trust).

use serde::{Deserialize, Serialize};

/// `iss` of plugin tokens.
pub const PLUGIN_TOKEN_ISSUER: &str = "tessera-broker";
/// `aud` of account tokens issued by our auth worker.
pub const ACCOUNT_TOKEN_AUDIENCE: &str = "tessera";

/// Claims of a plugin token (seed 000 step 3: bound to one plugin and one account).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginClaims {
    pub iss: String,
    /// Account id.
    pub sub: String,
    pub plugin_id: String,
    /// Plugin server ids the token is valid at.
    pub aud: Vec<String>,
    /// Token id (uuid).
    pub jti: String,
    pub iat: u64,
    pub exp: u64,
}

/// Claims of an account token issued by our auth worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountClaims {
    pub iss: String,
    /// Account id.
    pub sub: String,
    pub aud: String,
    pub jti: String,
    pub iat: u64,
    pub exp: u64,
    /// Username for local accounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Third-party identity provider (app id) and subject, for third-party logins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idp_sub: Option<String>,
}
