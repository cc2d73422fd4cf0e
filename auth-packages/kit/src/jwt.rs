//! Signed JWTs (JWS compact serialisation, RFC 7515) checked against a JSON Web Key Set
//! (RFC 7517): what an OpenID provider's ID token needs.
//!
//! Only asymmetric algorithms, each tied to its key type: `RS256`/`RS384`/`RS512` (RSA,
//! PKCS#1 v1.5), `ES256` (P-256) and `EdDSA` (Ed25519). `none` and the `HS*` family are
//! refused by name: a package holds the client secret, and an HMAC key it can compute is no
//! proof that the provider signed anything. The header's `alg` must match the key's type (and
//! the key's own `alg`, when the JWKS gives one), so a public RSA key is never used as an
//! HMAC secret or for another algorithm.
//!
//! Claims are returned unchecked: what they must say is the caller's (issuer, audience,
//! expiry, nonce).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use sha2::{Digest as _, Sha256, Sha384, Sha512};

/// Why a token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwtError {
    /// Not three base64url parts, or a header or payload that is not a JSON object.
    Malformed(String),
    /// `none`, `HS*`, or an algorithm this kit does not verify.
    Algorithm(String),
    /// No key in the set fits the header's `kid` and `alg`: the provider may have rotated
    /// its keys, so the caller may fetch the set again once.
    UnknownKey(String),
    /// A key fits but the signature does not verify (or the key itself is unusable).
    BadSignature(String),
}

impl std::fmt::Display for JwtError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JwtError::Malformed(why) => write!(f, "malformed token: {why}"),
            JwtError::Algorithm(why) => write!(f, "algorithm refused: {why}"),
            JwtError::UnknownKey(why) => write!(f, "no matching key: {why}"),
            JwtError::BadSignature(why) => write!(f, "bad signature: {why}"),
        }
    }
}

/// The algorithms this kit verifies, each with the key type it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Alg {
    Rs256,
    Rs384,
    Rs512,
    Es256,
    EdDsa,
}

impl Alg {
    fn parse(name: &str) -> Result<Alg, JwtError> {
        Ok(match name {
            "RS256" => Alg::Rs256,
            "RS384" => Alg::Rs384,
            "RS512" => Alg::Rs512,
            "ES256" => Alg::Es256,
            "EdDSA" => Alg::EdDsa,
            "none" => return Err(JwtError::Algorithm("unsigned tokens (none)".into())),
            hs if hs.starts_with("HS") => {
                return Err(JwtError::Algorithm(format!(
                    "{hs}: symmetric signatures are not proof of the provider"
                )));
            }
            other => return Err(JwtError::Algorithm(format!("{other} is not supported"))),
        })
    }

    fn name(self) -> &'static str {
        match self {
            Alg::Rs256 => "RS256",
            Alg::Rs384 => "RS384",
            Alg::Rs512 => "RS512",
            Alg::Es256 => "ES256",
            Alg::EdDsa => "EdDSA",
        }
    }

    /// Whether a JWK can verify this algorithm: its `kty` (and `crv`), and its `alg` and
    /// `use` when it states them.
    fn fits(self, jwk: &Value) -> bool {
        let field = |k: &str| jwk.get(k).and_then(Value::as_str);
        let kind = match self {
            Alg::Rs256 | Alg::Rs384 | Alg::Rs512 => field("kty") == Some("RSA"),
            Alg::Es256 => field("kty") == Some("EC") && field("crv") == Some("P-256"),
            Alg::EdDsa => field("kty") == Some("OKP") && field("crv") == Some("Ed25519"),
        };
        kind && field("alg").is_none_or(|a| a == self.name())
            && field("use").is_none_or(|u| u == "sig")
    }
}

/// The parts of a compact JWS.
struct Parts<'a> {
    header: Value,
    payload: Value,
    signing_input: &'a [u8],
    signature: Vec<u8>,
}

fn split(token: &str) -> Result<Parts<'_>, JwtError> {
    let mut it = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (it.next(), it.next(), it.next(), it.next()) else {
        return Err(JwtError::Malformed("not three dot-separated parts".into()));
    };
    let object = |part: &str, what: &str| -> Result<Value, JwtError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| JwtError::Malformed(format!("{what} is not base64url")))?;
        serde_json::from_slice::<Value>(&bytes)
            .ok()
            .filter(Value::is_object)
            .ok_or_else(|| JwtError::Malformed(format!("{what} is not a JSON object")))
    };
    Ok(Parts {
        header: object(h, "header")?,
        payload: object(p, "payload")?,
        signing_input: &token.as_bytes()[..h.len() + 1 + p.len()],
        signature: URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| JwtError::Malformed("signature is not base64url".into()))?,
    })
}

/// Verifies `token`'s signature with a key of `jwks` (`{"keys": [...]}`) and returns its
/// claims. The key is the one whose `kid` equals the header's; a header without `kid` uses
/// the set's only key that fits the algorithm.
pub fn verify(token: &str, jwks: &Value) -> Result<Value, JwtError> {
    let parts = split(token)?;
    let alg = match parts.header.get("alg").and_then(Value::as_str) {
        Some(a) => Alg::parse(a)?,
        None => return Err(JwtError::Malformed("header has no alg".into())),
    };
    if parts.header.get("crit").is_some() {
        // RFC 7515 4.1.11: extensions we do not understand must make the token invalid.
        return Err(JwtError::Malformed("critical header extensions".into()));
    }
    let kid = parts.header.get("kid").and_then(Value::as_str);
    let keys = jwks
        .get("keys")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let fitting: Vec<&Value> = keys.iter().filter(|k| alg.fits(k)).collect();
    let key = match kid {
        Some(kid) => fitting
            .iter()
            .find(|k| k.get("kid").and_then(Value::as_str) == Some(kid))
            .ok_or_else(|| JwtError::UnknownKey(format!("kid {kid:?} for {}", alg.name())))?,
        None => match fitting.as_slice() {
            [only] => only,
            [] => return Err(JwtError::UnknownKey(format!("no {} key", alg.name()))),
            _ => {
                return Err(JwtError::UnknownKey(
                    "no kid and several keys fit".to_owned(),
                ));
            }
        },
    };
    check_signature(alg, key, parts.signing_input, &parts.signature)?;
    Ok(parts.payload)
}

fn component(jwk: &Value, name: &str) -> Result<Vec<u8>, JwtError> {
    jwk.get(name)
        .and_then(Value::as_str)
        .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
        .filter(|b| !b.is_empty())
        .ok_or_else(|| JwtError::BadSignature(format!("key has no usable {name}")))
}

fn check_signature(alg: Alg, jwk: &Value, input: &[u8], sig: &[u8]) -> Result<(), JwtError> {
    let bad = |why: &str| JwtError::BadSignature(why.to_owned());
    match alg {
        Alg::Rs256 | Alg::Rs384 | Alg::Rs512 => {
            use rsa::BoxedUint;
            let n = BoxedUint::from_be_slice_vartime(&component(jwk, "n")?);
            let e = BoxedUint::from_be_slice_vartime(&component(jwk, "e")?);
            // Default size limits: 1024 to 4096 bits.
            let key = rsa::PublicKey::new(n, e).map_err(|e| bad(&format!("RSA key: {e}")))?;
            let (scheme, hashed) = match alg {
                Alg::Rs256 => (
                    rsa::Pkcs1v15Sign::new::<Sha256>(),
                    Sha256::digest(input).to_vec(),
                ),
                Alg::Rs384 => (
                    rsa::Pkcs1v15Sign::new::<Sha384>(),
                    Sha384::digest(input).to_vec(),
                ),
                _ => (
                    rsa::Pkcs1v15Sign::new::<Sha512>(),
                    Sha512::digest(input).to_vec(),
                ),
            };
            key.verify(scheme, &hashed, sig)
                .map_err(|_| bad("RSA signature does not verify"))
        }
        Alg::Es256 => {
            use p256::ecdsa::signature::Verifier as _;
            let (x, y) = (component(jwk, "x")?, component(jwk, "y")?);
            if x.len() != 32 || y.len() != 32 {
                return Err(bad("P-256 key coordinates are not 32 bytes"));
            }
            let mut point = vec![4u8];
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&point)
                .map_err(|_| bad("P-256 key is not a point on the curve"))?;
            // JWS (RFC 7518 3.4): r || s, 32 bytes each, not DER.
            let sig = p256::ecdsa::Signature::from_slice(sig)
                .map_err(|_| bad("ES256 signature is not 64 bytes"))?;
            key.verify(input, &sig)
                .map_err(|_| bad("ES256 signature does not verify"))
        }
        Alg::EdDsa => {
            let x: [u8; 32] = component(jwk, "x")?
                .try_into()
                .map_err(|_| bad("Ed25519 key is not 32 bytes"))?;
            let key = ed25519_dalek::VerifyingKey::from_bytes(&x)
                .map_err(|_| bad("Ed25519 key is not a point on the curve"))?;
            let sig = ed25519_dalek::Signature::from_slice(sig)
                .map_err(|_| bad("EdDSA signature is not 64 bytes"))?;
            key.verify_strict(input, &sig)
                .map_err(|_| bad("EdDSA signature does not verify"))
        }
    }
}

#[cfg(test)]
mod tests;
