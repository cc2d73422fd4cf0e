//! Auth package `oauth2-code`: an OAuth 2.0 authorization code (RFC 6749 4.1.3) exchanged for an
//! access token, which then reads the user from the userinfo endpoint (docs/auth-packages.md).
#![forbid(unsafe_code)]

use auth_package_kit::{self as kit, Outcome};
use extism_pdk::{FnResult, plugin_fn};
use serde_json::Value;

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

fn run(raw: &[u8]) -> Result<Outcome, Outcome> {
    let input = kit::parse_input(raw)?;
    let code = input.param("code")?;
    let redirect_uri = input.param("redirect_uri")?;
    let secret = kit::client_secret()?;
    let app = &input.app;

    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "authorization_code")
        .append_pair("code", code)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("client_id", &app.client_id)
        .append_pair("client_secret", &secret)
        .finish();
    let token_req = kit::Request::new(app.url(app.setting("token_path", "/oauth/token")))
        .with_method("POST")
        .with_header("Content-Type", "application/x-www-form-urlencoded")
        .with_header("Accept", "application/json");
    let resp = kit::send(&token_req, Some(form))?;
    let token = match resp.status_code() {
        200 => kit::json_body(&resp, "token endpoint")?,
        400 => {
            // RFC 6749 5.2: only invalid_grant is the user's (a bad, used or expired code);
            // invalid_client and the rest are the app's configuration.
            let body: Value = serde_json::from_slice(&resp.body()).unwrap_or(Value::Null);
            return Ok(match body.get("error").and_then(Value::as_str) {
                Some("invalid_grant") => Outcome::denied("invalid_grant"),
                Some(other) => Outcome::error(format!("token endpoint answered 400 {other}")),
                None => Outcome::error("token endpoint answered 400"),
            });
        }
        other => return Ok(Outcome::error(format!("token endpoint answered {other}"))),
    };
    let access_token = match token.get("access_token").and_then(Value::as_str) {
        Some(t) if !t.is_empty() => t,
        _ => {
            return Ok(Outcome::error(
                "token endpoint answered without an access_token",
            ));
        }
    };

    let info_req = kit::Request::new(app.url(app.setting("userinfo_path", "/userinfo")))
        .with_method("GET")
        .with_header("Authorization", format!("Bearer {access_token}"))
        .with_header("Accept", "application/json");
    let resp = kit::send(&info_req, None)?;
    Ok(match resp.status_code() {
        200 => kit::identity(&kit::json_body(&resp, "userinfo")?, "userinfo"),
        other => Outcome::error(format!("userinfo answered {other}")),
    })
}
