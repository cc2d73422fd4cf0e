//! Checking a signed asset manifest: the pure part (no I/O, no async, nothing from this
//! crate), so the fuzz target `asset_manifest` (fuzz/) compiles this very file and fuzzes
//! what clients run. [`super::verify_manifest`] wraps the message in [`crate::Error`].

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use tessera_schemas::assets::{MANIFEST_ISSUER, MANIFEST_KIND, ManifestClaims, check_files};

/// Verifies a signed manifest against a JWKS: EdDSA with a known `kid`, our issuer and
/// kind, the expected plugin, and a file list that could not escape a cache directory.
/// The error says what was wrong.
pub fn check_manifest(
    jws: &str,
    keys: &jsonwebtoken::jwk::JwkSet,
    plugin_id: &str,
) -> Result<ManifestClaims, String> {
    let header = jsonwebtoken::decode_header(jws).map_err(|e| format!("header: {e}"))?;
    let kid = header.kid.ok_or_else(|| "no kid".to_owned())?;
    let jwk = keys
        .find(&kid)
        .ok_or_else(|| format!("kid {kid:?} is not a platform key"))?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("key {kid:?}: {e}"))?;
    let mut validation = Validation::new(Algorithm::EdDSA);
    // A manifest does not expire: a newer version replaces it.
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.set_issuer(&[MANIFEST_ISSUER]);
    let claims = jsonwebtoken::decode::<ManifestClaims>(jws, &key, &validation)
        .map_err(|e| format!("signature or claims: {e}"))?
        .claims;
    if claims.kind != MANIFEST_KIND {
        return Err(format!("kind {:?}, not {MANIFEST_KIND:?}", claims.kind));
    }
    if claims.plugin_id != plugin_id {
        return Err(format!("signed for plugin {:?}", claims.plugin_id));
    }
    check_files(&claims.files)?;
    Ok(claims)
}
