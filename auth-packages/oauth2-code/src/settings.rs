//! The app settings and user parameters `oauth2-code` reads, checked before any request:
//! a bad setting is the app's configuration (`error`), a missing parameter the user's
//! (`ok: false`).

use auth_package_kit::{self as kit, Outcome};

/// How the package authenticates itself at the token endpoint (RFC 6749 2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `Authorization: Basic base64(urlencode(client_id):urlencode(secret))`: the OpenID
    /// default, and the method every provider must accept.
    Basic,
    /// `client_id` and `client_secret` in the form body.
    Post,
}

/// What one login uses, from the app's settings and the user's parameters.
#[derive(Debug)]
pub struct Login<'a> {
    pub code: &'a str,
    pub redirect_uri: &'a str,
    pub code_verifier: Option<&'a str>,
    pub nonce: Option<&'a str>,
    pub client_auth: ClientAuth,
    /// `Some`: endpoints by OpenID discovery and a required, verified ID token.
    pub issuer: Option<&'a str>,
}

fn optional<'a>(input: &'a kit::Input, key: &str) -> Option<&'a str> {
    input
        .params
        .get(key)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

impl<'a> Login<'a> {
    pub fn read(input: &'a kit::Input) -> Result<Login<'a>, Outcome> {
        let app = &input.app;
        let client_auth = match app.setting("token_endpoint_auth_method", "client_secret_basic") {
            "client_secret_basic" => ClientAuth::Basic,
            "client_secret_post" => ClientAuth::Post,
            other => {
                return Err(Outcome::error(format!(
                    "setting token_endpoint_auth_method {other:?}: use client_secret_basic or \
                     client_secret_post"
                )));
            }
        };
        let pkce_required = match app.setting("pkce", "optional") {
            "required" => true,
            "optional" => false,
            other => {
                return Err(Outcome::error(format!(
                    "setting pkce {other:?}: use required or optional"
                )));
            }
        };
        let issuer = app.settings.get("issuer").map(String::as_str);
        if let Some(issuer) = issuer.filter(|i| !i.is_empty()) {
            // OpenID Discovery 3: an https URL without query or fragment; http is let through
            // for a provider inside the network (the allow-list still names its host).
            let scheme_ok = issuer.starts_with("https://") || issuer.starts_with("http://");
            if !scheme_ok || issuer.contains(['?', '#']) {
                return Err(Outcome::error(format!(
                    "setting issuer {issuer:?}: an http(s) URL without query or fragment"
                )));
            }
        }
        let code = input.param("code")?;
        let code_verifier = optional(input, "code_verifier");
        if pkce_required && code_verifier.is_none() {
            return Err(Outcome::denied("missing parameter code_verifier"));
        }
        // A configured redirect URI is the one registered with the provider: a login may not
        // name another (the provider would refuse it anyway, after spending the code).
        let redirect_uri = match app.settings.get("redirect_uri").map(String::as_str) {
            Some(configured) if !configured.is_empty() => match optional(input, "redirect_uri") {
                Some(given) if given != configured => {
                    return Err(Outcome::denied(
                        "redirect_uri differs from the one configured for the app",
                    ));
                }
                _ => configured,
            },
            _ => input.param("redirect_uri")?,
        };
        Ok(Login {
            code,
            redirect_uri,
            code_verifier,
            nonce: optional(input, "nonce"),
            client_auth,
            issuer: issuer.filter(|i| !i.is_empty()),
        })
    }
}
