//! Auth package `http-password`: username and password checked by the third party's userinfo
//! endpoint with HTTP Basic auth (docs/auth-packages.md).
#![forbid(unsafe_code)]

use auth_package_kit::{self as kit, Outcome};
use base64::Engine;
use extism_pdk::{FnResult, plugin_fn};

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
    let username = input.param("username")?;
    let password = input.param("password")?;
    let secret = kit::client_secret()?;
    let url = input
        .app
        .url(input.app.setting("userinfo_path", "/userinfo"));
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    let req = kit::Request::new(url)
        .with_method("POST")
        .with_header("Authorization", format!("Basic {basic}"))
        .with_header("X-Client-Id", input.app.client_id.as_str())
        .with_header("X-Client-Secret", secret)
        .with_header("Accept", "application/json");
    let resp = kit::send(&req, None)?;
    Ok(match resp.status_code() {
        200 => kit::identity(&kit::json_body(&resp, "userinfo")?, "userinfo"),
        401 | 403 => Outcome::denied("invalid credentials"),
        other => Outcome::error(format!("upstream answered {other}")),
    })
}
