//! The OpenID endpoints: discovery and JWKS with their cache lifetime, signed ID tokens,
//! PKCE, the client authentication methods, key rotation and the outage switch.

use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use serde_json::json;

use super::*;

const REDIRECT: &str = "https://app.example/cb";

fn form(code: &str, verifier: Option<&str>, post_secret: Option<&str>) -> String {
    let mut f = form_urlencoded::Serializer::new(String::new());
    f.append_pair("grant_type", "authorization_code")
        .append_pair("code", code)
        .append_pair("redirect_uri", REDIRECT);
    if let Some(v) = verifier {
        f.append_pair("code_verifier", v);
    }
    if let Some(secret) = post_secret {
        f.append_pair("client_id", ID)
            .append_pair("client_secret", secret);
    }
    f.finish()
}

async fn token(c: &mut Client, form: &str, basic_secret: Option<&str>) -> Reply {
    let auth = basic_secret.map(|s| basic(ID, s));
    let mut headers = vec![("Content-Type", "application/x-www-form-urlencoded")];
    if let Some(auth) = &auth {
        headers.push(("Authorization", auth.as_str()));
    }
    c.send("POST", "/oauth/token", &headers, form).await
}

/// Checks an RS256 ID token against the JWKS and returns its claims.
fn verified_claims(id_token: &str, jwks: &Value) -> Value {
    let mut parts = id_token.split('.');
    let (h, p, s) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).unwrap()).unwrap();
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .expect("the token's kid is in the JWKS");
    let component = |name: &str| URL_SAFE_NO_PAD.decode(key[name].as_str().unwrap()).unwrap();
    let public = RsaPublicKeyComponents {
        n: component("n"),
        e: component("e"),
    };
    public
        .verify(
            &RSA_PKCS1_2048_8192_SHA256,
            format!("{h}.{p}").as_bytes(),
            &URL_SAFE_NO_PAD.decode(s).unwrap(),
        )
        .expect("signature verifies");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap()
}

#[tokio::test]
async fn discovery_and_jwks_describe_the_provider_and_may_be_cached() {
    let idp = StubIdp::start(ID, SECRET).await.unwrap();
    idp.set_max_age(120);
    let mut c = Client::connect(&idp).await;
    let doc = c
        .send("GET", "/.well-known/openid-configuration", &[], "")
        .await;
    assert_eq!(doc.status, 200);
    assert_eq!(doc.headers["cache-control"], "public, max-age=120");
    assert_eq!(doc.body["issuer"], idp.issuer());
    assert_eq!(doc.body["jwks_uri"], idp.jwks_uri());
    assert_eq!(
        doc.body["token_endpoint"],
        format!("{}/oauth/token", idp.issuer())
    );
    assert_eq!(
        doc.body["code_challenge_methods_supported"],
        json!(["S256"])
    );
    let jwks = c.send("GET", "/jwks", &[], "").await;
    assert_eq!(jwks.headers["cache-control"], "public, max-age=120");
    assert_eq!(jwks.body["keys"][0]["kid"], idp.kid());

    // Rotation: a new kid, and the JWKS lists only it.
    let old = idp.kid();
    let new = idp.rotate_keys();
    assert_ne!(old, new);
    let jwks = c.send("GET", "/jwks", &[], "").await;
    assert_eq!(jwks.body["keys"].as_array().unwrap().len(), 1);
    assert_eq!(jwks.body["keys"][0]["kid"], new.as_str());
}

#[tokio::test]
async fn the_token_endpoint_checks_pkce_and_signs_an_id_token() {
    let idp = StubIdp::start(ID, SECRET).await.unwrap();
    idp.add_user("ann", "pw", "user-42", "Ann Example");
    let mut c = Client::connect(&idp).await;
    let verifier = "a-verifier-of-at-least-43-characters-0123456789";
    let code = idp.issue_code(
        "user-42",
        REDIRECT,
        Some(&pkce_challenge(verifier)),
        Some("n-1"),
    );
    let granted = token(&mut c, &form(&code, Some(verifier), None), Some(SECRET)).await;
    assert_eq!(granted.status, 200, "{}", granted.body);
    let jwks = c.send("GET", "/jwks", &[], "").await.body;
    let claims = verified_claims(granted.body["id_token"].as_str().unwrap(), &jwks);
    assert_eq!(claims["iss"], idp.issuer());
    assert_eq!(claims["aud"], ID);
    assert_eq!(claims["sub"], "user-42");
    assert_eq!(claims["nonce"], "n-1");
    assert!(claims["exp"].as_u64() > claims["iat"].as_u64());

    // A wrong or missing verifier for a code issued with a challenge: invalid_grant.
    let code = idp.issue_code("user-42", REDIRECT, Some(&pkce_challenge(verifier)), None);
    let wrong = token(&mut c, &form(&code, Some("another"), None), Some(SECRET)).await;
    assert_eq!(
        (wrong.status, wrong.body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let code = idp.issue_code("user-42", REDIRECT, Some(&pkce_challenge(verifier)), None);
    let missing = token(&mut c, &form(&code, None, None), Some(SECRET)).await;
    assert_eq!(missing.status, 400);
    // Required: a code without a challenge still needs a verifier.
    idp.require_pkce(true);
    let code = idp.issue_code("user-42", REDIRECT, None, None);
    let required = token(&mut c, &form(&code, None, None), Some(SECRET)).await;
    assert_eq!(
        (required.status, required.body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn client_authentication_follows_the_accepted_methods() {
    let idp = StubIdp::start(ID, "sec ret:&%").await.unwrap();
    let mut c = Client::connect(&idp).await;
    // Basic with the id and secret form-urlencoded first (RFC 6749 2.3.1).
    let encoded: String = form_urlencoded::byte_serialize(b"sec ret:&%").collect();
    let code = idp.issue_code("u", REDIRECT, None, None);
    let basic_ok = token(&mut c, &form(&code, None, None), Some(&encoded)).await;
    assert_eq!(basic_ok.status, 200, "{}", basic_ok.body);
    let code = idp.issue_code("u", REDIRECT, None, None);
    let post_ok = token(&mut c, &form(&code, None, Some("sec ret:&%")), None).await;
    assert_eq!(post_ok.status, 200, "{}", post_ok.body);

    idp.accept_client_auth(&[ClientAuth::Basic]);
    let code = idp.issue_code("u", REDIRECT, None, None);
    let post_refused = token(&mut c, &form(&code, None, Some("sec ret:&%")), None).await;
    assert_eq!(post_refused.status, 401);
    assert_eq!(post_refused.body["error"], "invalid_client");
    assert!(post_refused.headers.contains_key("www-authenticate"));
    let wrong = token(&mut c, &form(&code, None, None), Some("nope")).await;
    assert_eq!(wrong.status, 401);
    let both = token(&mut c, &form(&code, None, Some("x")), Some(&encoded)).await;
    assert_eq!(
        (both.status, both.body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    let doc = c
        .send("GET", "/.well-known/openid-configuration", &[], "")
        .await;
    assert_eq!(
        doc.body["token_endpoint_auth_methods_supported"],
        json!(["client_secret_basic"])
    );
}

#[tokio::test]
async fn unavailable_answers_503_until_it_is_back() {
    let idp = StubIdp::start(ID, SECRET).await.unwrap();
    let mut c = Client::connect(&idp).await;
    idp.set_unavailable(true);
    let down = c.send("GET", "/jwks", &[], "").await;
    assert_eq!(down.status, 503);
    assert_eq!(down.body["error"], "temporarily_unavailable");
    idp.set_unavailable(false);
    assert_eq!(c.send("GET", "/jwks", &[], "").await.status, 200);
    assert_eq!(idp.hits("/jwks"), 2);
}
