//! What the fuzz targets share: a fixed Ed25519 key (so a seed signed once stays valid), and
//! the product's pure checking code, compiled from the product's own files.

#![forbid(unsafe_code)]

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};

/// What every token verifier shares, and the gateway's plugin-token check
/// (libs/protocol/src/jwt.rs).
#[path = "../../libs/protocol/src/jwt.rs"]
pub mod jwt;


/// The SDK's signed-manifest check (sdk/src/assets/manifest.rs).
#[path = "../../sdk/src/assets/manifest.rs"]
pub mod asset_manifest;

/// The auth node's package-manifest check (processes/auth/src/packages/manifest.rs).
#[path = "../../processes/auth/src/packages/manifest.rs"]
pub mod package_manifest;

/// The key id the fixed key is published under. Any string works for the checks; this one
/// reads as what it is.
pub const KID: &str = "fuzz-key";

/// The fixed key: Ed25519 from a constant seed. Deterministic signatures (RFC 8032), so
/// `tessera-fuzz-seeds` writes the same seed files every time.
pub struct FixedKey {
    pub pair: Ed25519KeyPair,
    pub encoding: EncodingKey,
    pub decoding: DecodingKey,
    pub jwks: JwkSet,
    /// Raw 32-byte public key (for package manifests).
    pub public: [u8; 32],
}

impl FixedKey {
    pub fn new() -> FixedKey {
        let pair = Ed25519KeyPair::from_seed_unchecked(&[7u8; 32]).expect("a 32-byte seed");
        let pkcs8 = pair.to_pkcs8v1().expect("pkcs8");
        let public: [u8; 32] = pair.public_key().as_ref().try_into().expect("32-byte key");
        let jwk: Jwk = serde_json::from_value(serde_json::json!({
            "kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": KID,
            "x": URL_SAFE_NO_PAD.encode(public),
        }))
        .expect("a valid JWK");
        FixedKey {
            encoding: EncodingKey::from_ed_der(pkcs8.as_ref()),
            decoding: DecodingKey::from_ed_der(&public),
            jwks: JwkSet { keys: vec![jwk] },
            public,
            pair,
        }
    }

    /// A compact JWS of `claims` (any JSON value), EdDSA with [`KID`].
    pub fn sign_json(&self, claims: &serde_json::Value) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(KID.to_owned());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("signing cannot fail")
    }

    /// base64url Ed25519 signature of `bytes`.
    pub fn sign_raw(&self, bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(self.pair.sign(bytes).as_ref())
    }
}

impl Default for FixedKey {
    fn default() -> Self {
        Self::new()
    }
}

/// Splits an input into a selector byte and the rest.
pub fn split(data: &[u8]) -> Option<(u8, &[u8])> {
    data.split_first().map(|(s, rest)| (*s, rest))
}
