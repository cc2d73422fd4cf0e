//! Auth package `oauth2-code`: an OAuth 2.0 authorization code (RFC 6749 4.1.3) exchanged for
//! an access token, which then reads the user from the userinfo endpoint; with the app setting
//! `issuer`, an OpenID Connect login: endpoints by discovery and a verified ID token
//! (docs/auth-packages.md).
//!
//! # Layout
//! - `settings`: the app settings and user parameters, checked before any request.
//! - `oidc`: discovery and the ID token's checks.
#![forbid(unsafe_code)]

mod oidc;
mod settings;

use auth_package_kit::{self as kit, Outcome};
use base64::Engine as _;
use extism_pdk::{FnResult, plugin_fn};
use serde_json::Value;

use settings::{ClientAuth, Login};

/// The interface version this package speaks; the node checks it on load.
#[plugin_fn]
pub fn interface_version() -> FnResult<String> {
    Ok(kit::INTERFACE.to_string())
}

/// Always returns an output JSON (never an Err), so the node sees what went wrong.
#[plugin_fn]
pub fn authenticate(input: Vec<u8>) -> FnResult<String> {
    Ok(run(&input).unwrap_or_else(|o| o).to_json())
}

/// `" <error>"` when a failure body carries an OAuth `error` code (RFC 6749 5.2, RFC 6750
/// 3.1), so the operator sees the provider's reason, whatever the status.
pub(crate) fn error_code_suffix(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|b| b.get("error").and_then(Value::as_str).map(str::to_owned))
        .map(|code| format!(" {code}"))
        .unwrap_or_default()
}

fn run(raw: &[u8]) -> Result<Outcome, Outcome> {
    let input = kit::parse_input(raw)?;
    let login = Login::read(&input)?;
    let secret = kit::client_secret()?;
    let app = &input.app;

    let provider = login.issuer.map(oidc::discover).transpose()?;
    let (token_url, userinfo_url) = match &provider {
        Some(p) => (p.token_endpoint.clone(), p.userinfo_endpoint.clone()),
        None => (
            app.url(app.setting("token_path", "/oauth/token")),
            Some(app.url(app.setting("userinfo_path", "/userinfo"))),
        ),
    };

    let token = exchange_code(&login, &token_url, &app.client_id, &secret)?;
    let access_token = match token.get("access_token").and_then(Value::as_str) {
        Some(t) if !t.is_empty() => t,
        _ => {
            return Err(Outcome::error(
                "token endpoint answered without an access_token",
            ));
        }
    };

    let id_claims = match &provider {
        Some(provider) => {
            let Some(id_token) = token.get("id_token").and_then(Value::as_str) else {
                return Err(Outcome::error(
                    "token endpoint answered without an id_token (the app has an issuer)",
                ));
            };
            let Some(now) = input.now else {
                return Err(Outcome::error(
                    "the node gives no clock (input field now): ID token expiry cannot be checked",
                ));
            };
            Some(oidc::check_id_token(
                provider,
                id_token,
                &app.client_id,
                login.nonce,
                now,
            )?)
        }
        None => None,
    };

    let Some(userinfo_url) = userinfo_url else {
        // Discovery named no userinfo endpoint: the verified ID token names the user.
        return Ok(match &id_claims {
            Some(claims) => kit::identity(claims, "ID token"),
            None => Outcome::error("no userinfo endpoint"),
        });
    };
    let info_req = kit::Request::new(userinfo_url)
        .with_header("Authorization", format!("Bearer {access_token}"))
        .with_header("Accept", "application/json");
    let resp = kit::send(&info_req, None)?;
    let info = match resp.status_code() {
        200 => kit::json_body(&resp, "userinfo")?,
        other => {
            return Err(Outcome::error(format!(
                "userinfo answered {other}{}",
                error_code_suffix(&resp.body())
            )));
        }
    };
    let identity = kit::identity(&info, "userinfo");
    if let (Some(claims), Outcome::Ok { subject, .. }) = (&id_claims, &identity) {
        // OpenID Core 5.3.2: a userinfo response about another user must not be used.
        let id_sub = claims
            .get("sub")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if subject != id_sub {
            return Err(Outcome::error(format!(
                "userinfo sub {subject:?} is not the ID token's sub {id_sub:?}"
            )));
        }
    }
    Ok(identity)
}

/// The token request (RFC 6749 4.1.3, with the PKCE verifier of RFC 7636 4.5) and its answer.
fn exchange_code(
    login: &Login<'_>,
    token_url: &str,
    client_id: &str,
    secret: &str,
) -> Result<Value, Outcome> {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", "authorization_code")
        .append_pair("code", login.code)
        .append_pair("redirect_uri", login.redirect_uri);
    if let Some(verifier) = login.code_verifier {
        form.append_pair("code_verifier", verifier);
    }
    let mut req = kit::Request::new(token_url)
        .with_method("POST")
        .with_header("Content-Type", "application/x-www-form-urlencoded")
        .with_header("Accept", "application/json");
    match login.client_auth {
        ClientAuth::Basic => {
            // RFC 6749 2.3.1: each part form-urlencoded before the Basic encoding.
            let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let pair = format!("{}:{}", enc(client_id), enc(secret));
            let basic = base64::engine::general_purpose::STANDARD.encode(pair);
            req = req.with_header("Authorization", format!("Basic {basic}"));
        }
        ClientAuth::Post => {
            form.append_pair("client_id", client_id)
                .append_pair("client_secret", secret);
        }
    }
    let resp = kit::send(&req, Some(form.finish()))?;
    match resp.status_code() {
        200 => kit::json_body(&resp, "token endpoint"),
        status => {
            let suffix = error_code_suffix(&resp.body());
            // RFC 6749 5.2: only invalid_grant is the user's (a bad, used or expired code, or
            // a PKCE verifier that does not match); invalid_client and the rest are the app's
            // configuration or the provider's fault.
            Err(if status == 400 && suffix == " invalid_grant" {
                Outcome::denied("invalid_grant")
            } else {
                Outcome::error(format!("token endpoint answered {status}{suffix}"))
            })
        }
    }
}
