//! Plugin tokens as the gateway checks them (libs/protocol/src/jwt.rs, compiled here): the
//! header read and its `alg` refused unless EdDSA, the `kid`, then the signature, issuer and
//! times under a key (`verify_plugin_claims`, leeway 5 s).
//!
//! Two modes, by the first byte:
//! - even: the rest is a token string from the wire (e.g. a forged one). Properties: no
//!   panic (also in the unverified claims read a plugin server does first); every refusal is
//!   `unauthenticated`; an accepted token carries our issuer and an unexpired `exp`, and its
//!   unverified reading gives the same claims.
//! - odd: the rest is a JSON claims object, which we sign with the fixed key and then
//!   verify. Properties: whatever verifies decodes to exactly the claims that were signed; and
//!   claims that are a valid plugin token's (our issuer, unexpired) always verify.

#![no_main]

use std::sync::LazyLock;
use std::time::{SystemTime, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use tessera_fuzz::FixedKey;
use tessera_fuzz::jwt::{self, Rejection};
use tessera_schemas::ErrorCode;
use tessera_schemas::claims::{PLUGIN_TOKEN_ISSUER, PluginClaims};

static KEY: LazyLock<FixedKey> = LazyLock::new(FixedKey::new);

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

const LEEWAY: std::time::Duration = std::time::Duration::from_secs(5);

/// The gateway's path before the key lookup: header, algorithm, key id.
fn token_kid(token: &str) -> Result<String, Rejection> {
    let header = jwt::header(token)?;
    jwt::allowed_alg(&header, &[jsonwebtoken::Algorithm::EdDSA])?;
    header
        .kid
        .ok_or_else(|| Rejection::new(jwt::Reason::Kid, "plugin token has no key id"))
}

/// The whole check under the fixed key, as the gateway runs it.
fn verify_plugin_token(
    token: &str,
    key: &jsonwebtoken::DecodingKey,
) -> Result<PluginClaims, tessera_schemas::WireError> {
    token_kid(token)
        .and_then(|_| jwt::verify_plugin_claims(token, key, LEEWAY, now()))
        .map_err(|r| r.into_wire(jwt::Verifier::Gateway))
}

fuzz_target!(|data: &[u8]| {
    let Some((sel, rest)) = tessera_fuzz::split(data) else {
        return;
    };
    if sel % 2 == 0 {
        let Ok(token) = std::str::from_utf8(rest) else {
            return;
        };
        if let Err(r) = token_kid(token) {
            assert_eq!(r.into_wire(jwt::Verifier::Gateway).code, ErrorCode::Unauthenticated);
        }
        // What a plugin server reads from a bearer token it has not received by distribution,
        // before any signature check (sdk/src/plugin_server/verify.rs, `claims`): the same
        // library call on the same type.
        let unverified = jsonwebtoken::dangerous::insecure_decode_claims::<PluginClaims>(token);
        match verify_plugin_token(token, &KEY.decoding) {
            Ok(claims) => {
                assert_eq!(claims.iss, PLUGIN_TOKEN_ISSUER);
                assert!(
                    claims.exp + LEEWAY.as_secs() >= now(),
                    "expired token accepted: {claims:?}"
                );
                // Both readings of a verified token agree.
                assert_eq!(unverified.expect("verified token decodes"), claims);
            }
            Err(e) => assert_eq!(e.code, ErrorCode::Unauthenticated),
        }
        return;
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(rest) else {
        return;
    };
    let token = KEY.sign_json(&value);
    assert_eq!(token_kid(&token).unwrap(), tessera_fuzz::KID);
    let wanted = serde_json::from_value::<PluginClaims>(value.clone()).ok();
    match verify_plugin_token(&token, &KEY.decoding) {
        Ok(claims) => assert_eq!(Some(&claims), wanted.as_ref(), "signed {value}"),
        Err(e) => {
            assert_eq!(e.code, ErrorCode::Unauthenticated);
            if let Some(c) = wanted {
                // Leave a minute's margin: the check reads the clock again.
                // `nbf` (not a field of ours, but checked when present) and a future `iat`
                // are refusals too.
                let valid = c.iss == PLUGIN_TOKEN_ISSUER
                    && c.exp > now() + 60
                    && c.iat <= now()
                    && value.get("nbf").is_none();
                assert!(!valid, "a valid plugin token was refused ({e}): {value}");
            }
        }
    }
});
