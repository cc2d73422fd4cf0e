//! The provider's HTTP surface: an axum router over the shared [`State`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State as Shared};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use serde_json::{Value, json};

use super::keys::{SigningKey, pkce_challenge};
use super::{ClientAuth, State, Tamper};

pub(super) fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/userinfo", get(bearer_userinfo).post(password_userinfo))
        .route("/oauth/token", post(token))
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .fallback(|| async { oauth_error(StatusCode::NOT_FOUND, "not_found") })
        .layer(middleware::from_fn_with_state(Arc::clone(&state), gate))
        .with_state(state)
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

fn oauth_error(status: StatusCode, error: &str) -> Response {
    json_response(status, json!({ "error": error }))
}

/// Counts every request by path and answers the outage status while one is set.
async fn gate(Shared(state): Shared<Arc<State>>, request: Request, next: Next) -> Response {
    let fail_with = {
        let mut inner = state.lock();
        *inner
            .hits
            .entry(request.uri().path().to_owned())
            .or_default() += 1;
        inner.fail_with
    };
    if let Some(status) = fail_with {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let error = if status == StatusCode::SERVICE_UNAVAILABLE {
            "temporarily_unavailable"
        } else {
            "server_error"
        };
        return oauth_error(status, error);
    }
    next.run(request).await
}

fn cacheable(state: &State, body: Value) -> Response {
    let max_age = state.lock().max_age_secs;
    let mut response = json_response(StatusCode::OK, body);
    if let Ok(value) = HeaderValue::from_str(&format!("public, max-age={max_age}")) {
        response.headers_mut().insert(header::CACHE_CONTROL, value);
    }
    response
}

async fn discovery(Shared(state): Shared<Arc<State>>) -> Response {
    let methods: Vec<&str> = state
        .lock()
        .client_auth
        .iter()
        .map(|m| match m {
            ClientAuth::Basic => "client_secret_basic",
            ClientAuth::Post => "client_secret_post",
        })
        .collect();
    let issuer = &state.issuer;
    cacheable(
        &state,
        json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/authorize"),
            "token_endpoint": format!("{issuer}/oauth/token"),
            "userinfo_endpoint": format!("{issuer}/userinfo"),
            "jwks_uri": format!("{issuer}/jwks"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "grant_types_supported": ["authorization_code"],
            "token_endpoint_auth_methods_supported": methods,
            "code_challenge_methods_supported": ["S256"],
            "id_token_signing_alg_values_supported": ["RS256", "ES256", "EdDSA"],
        }),
    )
}

async fn jwks(Shared(state): Shared<Arc<State>>) -> Response {
    let jwk = state.lock().key.jwk();
    cacheable(&state, json!({ "keys": [jwk] }))
}

async fn password_userinfo(Shared(state): Shared<Arc<State>>, headers: HeaderMap) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if header("x-client-id") != Some(&state.client_id)
        || header("x-client-secret") != Some(&state.client_secret)
    {
        // 400, not 401: the packages read 401 as "wrong user or password", and a wrong
        // client is the app's configuration, which must surface as an upstream error.
        oauth_error(StatusCode::BAD_REQUEST, "invalid_client")
    } else {
        match header("authorization").and_then(basic_credentials) {
            None => oauth_error(StatusCode::UNAUTHORIZED, "invalid_request"),
            Some((username, password)) => {
                let inner = state.lock();
                match inner.users.get(&username) {
                    Some(user) if user.password == password => json_response(
                        StatusCode::OK,
                        json!({ "sub": user.sub, "name": inner.names.get(&user.sub) }),
                    ),
                    _ => oauth_error(StatusCode::UNAUTHORIZED, "invalid_credentials"),
                }
            }
        }
    }
}

/// `user:password` from `Basic <base64>` (the password may contain colons).
fn basic_credentials(value: &str) -> Option<(String, String)> {
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// One `application/x-www-form-urlencoded` value, decoded (`+` is a space, `%XX` a byte); an
/// encoder never leaves a bare `&` in it.
fn form_decode(part: &str) -> String {
    form_urlencoded::parse(format!("v={part}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn unauthorized_client() -> Response {
    let mut response = oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    // RFC 6749 5.2: a 401 names the scheme the client may authenticate with.
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"stub-idp\""),
    );
    response
}

/// Why a token request's client authentication failed.
enum ClientRefusal {
    /// More than one method in one request (400 `invalid_request`).
    TwoMethods,
    /// No method, a method the provider does not accept, or wrong credentials (401).
    Unauthorized,
}

impl ClientRefusal {
    fn response(self) -> Response {
        match self {
            ClientRefusal::TwoMethods => oauth_error(StatusCode::BAD_REQUEST, "invalid_request"),
            ClientRefusal::Unauthorized => unauthorized_client(),
        }
    }
}

/// Checks the token request's client authentication against the accepted methods.
fn authenticate_client(
    state: &State,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<(), ClientRefusal> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.starts_with("Basic "));
    let posted = form.contains_key("client_secret");
    let (method, id, secret) = match (basic, posted) {
        // RFC 6749 2.3: a client uses one authentication method per request.
        (Some(_), true) => return Err(ClientRefusal::TwoMethods),
        (Some(value), false) => {
            let (id, secret) = basic_credentials(value).ok_or(ClientRefusal::Unauthorized)?;
            // RFC 6749 2.3.1: both parts are form-urlencoded before the Basic encoding.
            (ClientAuth::Basic, form_decode(&id), form_decode(&secret))
        }
        (None, true) => (
            ClientAuth::Post,
            form.get("client_id").cloned().unwrap_or_default(),
            form.get("client_secret").cloned().unwrap_or_default(),
        ),
        (None, false) => return Err(ClientRefusal::Unauthorized),
    };
    let accepted = state.lock().client_auth.contains(&method);
    if !accepted || id != state.client_id || secret != state.client_secret {
        return Err(ClientRefusal::Unauthorized);
    }
    Ok(())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

async fn token(Shared(state): Shared<Arc<State>>, headers: HeaderMap, body: Bytes) -> Response {
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| form.get(name).map(String::as_str);
    if field("grant_type") != Some("authorization_code") {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }
    if let Err(refused) = authenticate_client(&state, &headers, &form) {
        return refused.response();
    }
    let mut inner = state.lock();
    // A presented code is spent whatever the outcome, like a real provider's single-use code.
    let Some(grant) = field("code").and_then(|c| inner.codes.remove(c)) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    };
    if field("redirect_uri") != Some(&grant.redirect_uri) {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    }
    // RFC 7636 4.6: the verifier must hash to the code's challenge; a code issued with a
    // challenge (or any code, when PKCE is required) without a verifier is refused.
    let verifier = field("code_verifier");
    let pkce_ok = match (&grant.code_challenge, verifier) {
        (Some(challenge), Some(v)) => pkce_challenge(v) == *challenge,
        (Some(_), None) => false,
        (None, _) => verifier.is_some() || !inner.require_pkce,
    };
    if !pkce_ok {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    }

    let tamper = inner.tamper.take();
    let access_token = format!("at-{}-{}", std::process::id(), state.next());
    let userinfo_sub = match tamper {
        Some(Tamper::UserinfoSub) => format!("{}-other", grant.sub),
        _ => grant.sub.clone(),
    };
    inner.tokens.insert(access_token.clone(), userinfo_sub);
    let now = unix_now();
    let mut claims = json!({
        "iss": state.issuer,
        "sub": grant.sub,
        "aud": if tamper == Some(Tamper::WrongAudience) { "another-client" } else { state.client_id.as_str() },
        "iat": now,
        "exp": now + 300,
    });
    if let Some(name) = inner.names.get(&grant.sub) {
        claims["name"] = json!(name);
    }
    match (&grant.nonce, tamper) {
        (_, Some(Tamper::WrongNonce)) => claims["nonce"] = json!("not-the-login-nonce"),
        (Some(nonce), _) => claims["nonce"] = json!(nonce),
        (None, _) => {}
    }
    let id_token = match tamper {
        Some(Tamper::ForeignKey) => {
            SigningKey::generate(inner.key.alg, "forger".into()).sign(&inner.key.kid, &claims)
        }
        _ => inner.key.sign(&inner.key.kid, &claims),
    };
    json_response(
        StatusCode::OK,
        json!({
            "access_token": access_token, "token_type": "Bearer", "expires_in": 3600,
            "id_token": id_token,
        }),
    )
}

async fn bearer_userinfo(Shared(state): Shared<Arc<State>>, headers: HeaderMap) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let inner = state.lock();
    let Some(sub) = token.and_then(|t| inner.tokens.get(t.trim())) else {
        let mut response = oauth_error(StatusCode::UNAUTHORIZED, "invalid_token");
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer error=\"invalid_token\""),
        );
        return response;
    };
    match inner.names.get(sub) {
        Some(name) => json_response(StatusCode::OK, json!({ "sub": sub, "name": name })),
        None => json_response(StatusCode::OK, json!({ "sub": sub })),
    }
}
