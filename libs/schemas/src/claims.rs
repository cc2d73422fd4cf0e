//! JWT claim sets. Plugin tokens are minted by the broker; account tokens by the auth worker
//! (or an external issuer the auth worker is configured to trust).

use serde::{Deserialize, Serialize};

/// `iss` of plugin tokens.
pub const PLUGIN_TOKEN_ISSUER: &str = "tessera-broker";
/// `aud` of account tokens issued by our auth worker.
pub const ACCOUNT_TOKEN_AUDIENCE: &str = "tessera";

/// Claims of a plugin token (bound to one plugin and one account).
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
    /// The device the token is bound to, when the plugin's route binds devices. Absent from
    /// unbound tokens, which stay byte-for-byte what they were before binding existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// The end user's IP address (canonical text form) the token is bound to, when the
    /// plugin's route binds IPs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_ip: Option<String>,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn unbound() -> PluginClaims {
        PluginClaims {
            iss: PLUGIN_TOKEN_ISSUER.into(),
            sub: "acct".into(),
            plugin_id: "weather".into(),
            aud: vec!["ps1".into()],
            jti: "id".into(),
            iat: 1,
            exp: 2,
            device_id: None,
            user_ip: None,
        }
    }

    /// An unbound token's claims carry exactly the fields they carried before binding.
    #[test]
    fn unbound_claims_serialize_without_binding_fields() {
        let json = serde_json::to_value(unbound()).unwrap();
        let mut keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["aud", "exp", "iat", "iss", "jti", "plugin_id", "sub"]
        );
        // And a token minted before binding existed decodes as unbound.
        let old = r#"{"iss":"tessera-broker","sub":"acct","plugin_id":"weather","aud":["ps1"],"jti":"id","iat":1,"exp":2}"#;
        assert_eq!(
            serde_json::from_str::<PluginClaims>(old).unwrap(),
            unbound()
        );
    }

    #[test]
    fn bound_claims_carry_the_binding() {
        let mut c = unbound();
        c.device_id = Some("phone-1".into());
        c.user_ip = Some("192.0.2.1".into());
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["device_id"], "phone-1");
        assert_eq!(json["user_ip"], "192.0.2.1");
        assert_eq!(serde_json::from_value::<PluginClaims>(json).unwrap(), c);
    }
}
