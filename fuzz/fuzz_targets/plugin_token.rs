//! Plugin tokens as the gateway checks them (workers/gateway/src/token_check.rs, compiled
//! here): the header's `kid`, then the EdDSA signature, issuer and expiry under a key.
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
use tessera_fuzz::token_check::{token_kid, verify_plugin_token};
use tessera_schemas::ErrorCode;
use tessera_schemas::claims::{PLUGIN_TOKEN_ISSUER, PluginClaims};

static KEY: LazyLock<FixedKey> = LazyLock::new(FixedKey::new);

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fuzz_target!(|data: &[u8]| {
    let Some((sel, rest)) = tessera_fuzz::split(data) else {
        return;
    };
    if sel % 2 == 0 {
        let Ok(token) = std::str::from_utf8(rest) else {
            return;
        };
        if let Err(e) = token_kid(token) {
            assert_eq!(e.code, ErrorCode::Unauthenticated);
        }
        // What a plugin server reads from a bearer token it has not received by distribution,
        // before any signature check (sdk/src/plugin_server/verify.rs, `claims`): the same
        // library call on the same type.
        let unverified = jsonwebtoken::dangerous::insecure_decode_claims::<PluginClaims>(token);
        match verify_plugin_token(token, &KEY.decoding) {
            Ok(claims) => {
                assert_eq!(claims.iss, PLUGIN_TOKEN_ISSUER);
                assert!(claims.exp >= now(), "expired token accepted: {claims:?}");
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
                let valid = c.iss == PLUGIN_TOKEN_ISSUER && c.exp > now() + 60;
                assert!(!valid, "a valid plugin token was refused ({e}): {value}");
            }
        }
    }
});
