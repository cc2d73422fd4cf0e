//! Signed asset manifests as a client checks them (sdk/src/assets/manifest.rs, compiled
//! here) before it writes any file of the bundle under its cache directory.
//!
//! Two modes, by the first byte:
//! - even: the rest is a JWS from the versions bucket (anyone who can write there, or a
//!   corrupted store). Properties: no panic; what passes is for the expected plugin.
//! - odd: the rest is a JSON claims object, signed with the platform (fixed) key, so the
//!   file-list rules are reached. Property: every path of an accepted manifest, joined under
//!   a cache directory, stays inside it (no `..`, no root, no prefix, no empty segment).

#![no_main]

use std::path::{Component, Path};
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use tessera_fuzz::FixedKey;
use tessera_fuzz::asset_manifest::check_manifest;
use tessera_schemas::assets::{MANIFEST_KIND, MAX_ASSET_FILES, ManifestClaims};

static KEY: LazyLock<FixedKey> = LazyLock::new(FixedKey::new);
const PLUGIN: &str = "weather";

fn accepted(claims: &ManifestClaims) {
    assert_eq!(claims.plugin_id, PLUGIN);
    assert_eq!(claims.kind, MANIFEST_KIND);
    assert!(!claims.files.is_empty() && claims.files.len() <= MAX_ASSET_FILES);
    let cache = Path::new("/cache").join(PLUGIN);
    for f in &claims.files {
        let joined = cache.join(&f.path);
        assert!(joined.starts_with(&cache), "{:?} escapes the cache", f.path);
        let inside = joined.strip_prefix(&cache).unwrap();
        assert!(
            inside
                .components()
                .all(|c| matches!(c, Component::Normal(_))),
            "{:?} has a non-plain component",
            f.path
        );
        assert_eq!(f.sha256.len(), 64);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((sel, rest)) = tessera_fuzz::split(data) else {
        return;
    };
    let jws = if sel % 2 == 0 {
        let Ok(jws) = std::str::from_utf8(rest) else {
            return;
        };
        jws.to_owned()
    } else {
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(rest) else {
            return;
        };
        KEY.sign_json(&value)
    };
    if let Ok(claims) = check_manifest(&jws, &KEY.jwks, PLUGIN) {
        accepted(&claims);
    }
});
