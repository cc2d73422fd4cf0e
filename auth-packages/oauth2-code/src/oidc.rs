//! OpenID Connect: the provider's endpoints by discovery, and the ID token's checks.
//!
//! Discovery (OpenID Connect Discovery 1.0, 4): `GET <issuer>/.well-known/openid-configuration`,
//! whose `issuer` must be the configured one exactly (4.3), so a document served for another
//! issuer cannot redirect the login. The ID token (OpenID Connect Core 1.0, 3.1.3.7): signed
//! by a key of the provider's JWKS, issued by the issuer, for this client, unexpired, and
//! carrying the login's nonce when the login gave one.
//!
//! Both documents are fetched with the node's cache (`cache: use`), so a login costs no
//! extra round trips while they are fresh; a token signed with a key the cached JWKS lacks
//! (the provider rotated) makes one `cache: refresh` fetch.

use auth_package_kit::jwt::{self, JwtError};
use auth_package_kit::{self as kit, Cache, Outcome};
use serde_json::Value;

/// Seconds of clock difference tolerated between the node and the provider for `exp`,
/// `nbf` and `iat` (OpenID Core allows "a small leeway").
const LEEWAY_SECS: u64 = 60;

/// The endpoints discovery gave.
#[derive(Debug)]
pub struct Provider {
    pub issuer: String,
    pub token_endpoint: String,
    /// Optional in discovery: without it the ID token alone names the user.
    pub userinfo_endpoint: Option<String>,
    pub jwks_uri: String,
}

fn get_json(url: &str, cache: Cache, what: &str) -> Result<Value, Outcome> {
    let req = kit::Request::new(url)
        .with_header("Accept", "application/json")
        .with_cache(cache);
    let resp = kit::send(&req, None)?;
    match resp.status_code() {
        200 => kit::json_body(&resp, what),
        other => Err(Outcome::error(format!(
            "{what} answered {other}{}",
            crate::error_code_suffix(&resp.body())
        ))),
    }
}

/// Reads the discovery document of `issuer`.
pub fn discover(issuer: &str) -> Result<Provider, Outcome> {
    let url = kit::join_url(issuer, ".well-known/openid-configuration");
    let doc = get_json(&url, Cache::Use, "discovery")?;
    let field = |name: &str| {
        doc.get(name)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
    };
    if field("issuer") != Some(issuer) {
        return Err(Outcome::error(format!(
            "discovery names issuer {:?}, the app is configured for {issuer:?}",
            field("issuer").unwrap_or_default()
        )));
    }
    let endpoint = |name: &str| -> Result<String, Outcome> {
        match field(name) {
            Some(url) if url.starts_with("https://") || url.starts_with("http://") => {
                Ok(url.to_owned())
            }
            Some(url) => Err(Outcome::error(format!(
                "discovery {name} {url:?} is not an absolute http(s) URL"
            ))),
            None => Err(Outcome::error(format!("discovery has no {name}"))),
        }
    };
    Ok(Provider {
        issuer: issuer.to_owned(),
        token_endpoint: endpoint("token_endpoint")?,
        userinfo_endpoint: field("userinfo_endpoint")
            .is_some()
            .then(|| endpoint("userinfo_endpoint"))
            .transpose()?,
        jwks_uri: endpoint("jwks_uri")?,
    })
}

/// Verifies the ID token's signature (refetching the JWKS once for an unknown key) and its
/// claims; returns the claims. A token that fails is the provider's or an attacker's, never
/// the user's mistake, so every refusal is an `error` output.
pub fn check_id_token(
    provider: &Provider,
    id_token: &str,
    client_id: &str,
    nonce: Option<&str>,
    now: u64,
) -> Result<Value, Outcome> {
    let refused = |why: String| Outcome::error(format!("ID token refused: {why}"));
    let jwks = get_json(&provider.jwks_uri, Cache::Use, "jwks_uri")?;
    let claims = match jwt::verify(id_token, &jwks) {
        Err(JwtError::UnknownKey(_)) => {
            let fresh = get_json(&provider.jwks_uri, Cache::Refresh, "jwks_uri")?;
            jwt::verify(id_token, &fresh)
        }
        other => other,
    }
    .map_err(|e| refused(e.to_string()))?;
    check_claims(&claims, &provider.issuer, client_id, nonce, now).map_err(refused)?;
    Ok(claims)
}

/// The claims' checks (OpenID Core 3.1.3.7, steps 2-4, 9, 11).
pub fn check_claims(
    claims: &Value,
    issuer: &str,
    client_id: &str,
    nonce: Option<&str>,
    now: u64,
) -> Result<(), String> {
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    let time = |name: &str| claims.get(name).and_then(Value::as_u64);
    if text("iss") != Some(issuer) {
        return Err(format!(
            "iss {:?} is not {issuer:?}",
            text("iss").unwrap_or_default()
        ));
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
        _ => return Err("no aud".into()),
    };
    if !audiences.contains(&client_id) {
        return Err(format!(
            "aud {audiences:?} does not include client {client_id:?}"
        ));
    }
    match text("azp") {
        Some(azp) if azp != client_id => {
            return Err(format!("azp {azp:?} is not client {client_id:?}"));
        }
        None if audiences.len() > 1 => {
            return Err("several audiences and no azp".into());
        }
        _ => {}
    }
    match time("exp") {
        Some(exp) if exp.saturating_add(LEEWAY_SECS) > now => {}
        Some(exp) => return Err(format!("expired at {exp} (now {now})")),
        None => return Err("no exp".into()),
    }
    if time("iat").is_none() {
        return Err("no iat".into());
    }
    if let Some(nbf) = time("nbf").filter(|nbf| *nbf > now.saturating_add(LEEWAY_SECS)) {
        return Err(format!("not valid before {nbf} (now {now})"));
    }
    if let Some(expected) = nonce {
        match text("nonce") {
            Some(n) if n == expected => {}
            Some(_) => return Err("nonce does not match the login's".into()),
            None => return Err("no nonce, the login gave one".into()),
        }
    }
    match text("sub") {
        Some(sub) if !sub.is_empty() => Ok(()),
        _ => Err("no sub".into()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::check_claims;

    const NOW: u64 = 1_800_000_000;

    fn good() -> serde_json::Value {
        json!({"iss": "https://idp.example", "sub": "u1", "aud": "app", "exp": NOW + 300,
            "iat": NOW, "nonce": "n-1"})
    }

    fn check(claims: &serde_json::Value, nonce: Option<&str>) -> Result<(), String> {
        check_claims(claims, "https://idp.example", "app", nonce, NOW)
    }

    #[test]
    fn good_claims_pass_and_each_wrong_claim_fails() {
        assert_eq!(check(&good(), Some("n-1")), Ok(()));
        assert_eq!(check(&good(), None), Ok(()));
        let with = |k: &str, v: serde_json::Value| {
            let mut c = good();
            c[k] = v;
            c
        };
        let without = |k: &str| {
            let mut c = good();
            c.as_object_mut().unwrap().remove(k);
            c
        };
        for (claims, nonce, why) in [
            (with("iss", json!("https://idp.example/")), None, "iss"),
            (with("aud", json!("other")), None, "aud"),
            (with("aud", json!(["app", "other"])), None, "azp"),
            (with("azp", json!("other")), None, "azp"),
            (with("exp", json!(NOW - 61)), None, "expired"),
            (with("nbf", json!(NOW + 120)), None, "before"),
            (with("nonce", json!("n-2")), Some("n-1"), "nonce"),
            (without("nonce"), Some("n-1"), "nonce"),
            (without("exp"), None, "exp"),
            (without("iat"), None, "iat"),
            (without("sub"), None, "sub"),
            (without("aud"), None, "aud"),
        ] {
            let err = check(&claims, nonce).expect_err(why);
            assert!(err.contains(why), "{why}: {err}");
        }
        // Within the leeway, and several audiences with the right azp.
        assert_eq!(check(&with("exp", json!(NOW - 30)), None), Ok(()));
        let mut multi = with("aud", json!(["app", "other"]));
        multi["azp"] = json!("app");
        assert_eq!(check(&multi, None), Ok(()));
    }
}
