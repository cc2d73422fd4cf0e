//! Ed25519 signing keys for JWTs: generated, saved and loaded as PKCS#8 PEM, identified by
//! their RFC 7638 thumbprint (`kid`), published as public JWKs.
//!
//! Keys are built once and cached: building a jsonwebtoken key per signature would cost more
//! than the signature itself.

use std::path::Path;

use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, Jwk, KeyAlgorithm,
    OctetKeyPairParameters, OctetKeyPairType, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey, Header};
use serde::Serialize;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum KeyError {
    #[error("not a PKCS#8 Ed25519 private key in PEM form")]
    BadPem,
    #[error("reading or writing the key file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// A private signing key with everything derived from it precomputed.
pub struct SigningKey {
    kid: String,
    pkcs8: Vec<u8>,
    /// The parsed key pair. jsonwebtoken's `encode` parses the PKCS#8 document again for
    /// every signature, which cost more than a tenth of a token's issuance; we sign with
    /// the pair directly and build the compact JWS ourselves (RFC 7515, section 3.1).
    pair: Ed25519KeyPair,
    /// `base64url(header JSON)`, the same for every token this key signs.
    header_b64: String,
    decoding: DecodingKey,
    public_x: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh random key.
    pub fn generate() -> SigningKey {
        let doc =
            Ed25519KeyPair::generate_pkcs8v1(&SystemRandom::new()).expect("system randomness");
        Self::from_pkcs8(doc.as_ref()).expect("a generated key is valid")
    }

    fn from_pkcs8(der: &[u8]) -> Result<SigningKey, KeyError> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(|_| KeyError::BadPem)?;
        // jsonwebtoken wants the 48-byte PKCS#8 v1 form; normalise whatever we were given.
        let v1 = pair.to_pkcs8v1().map_err(|_| KeyError::BadPem)?;
        let public = pair.public_key().as_ref().to_vec();
        let public_x = URL_SAFE_NO_PAD.encode(&public);
        let kid = thumbprint(&public_x);
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid.clone());
        let header_json = serde_json::to_vec(&header).map_err(|_| KeyError::BadPem)?;
        Ok(SigningKey {
            kid,
            pkcs8: v1.as_ref().to_vec(),
            pair,
            header_b64: URL_SAFE_NO_PAD.encode(header_json),
            decoding: DecodingKey::from_ed_der(&public),
            public_x,
        })
    }

    /// Parses `-----BEGIN PRIVATE KEY-----` PEM (as written by [`SigningKey::to_pem`] or
    /// `openssl genpkey -algorithm ed25519`).
    pub fn from_pem(pem: &str) -> Result<SigningKey, KeyError> {
        let body: String = pem
            .lines()
            .map(str::trim)
            .filter(|l| !l.starts_with("-----") && !l.is_empty())
            .collect();
        if !pem.contains("-----BEGIN PRIVATE KEY-----") {
            return Err(KeyError::BadPem);
        }
        let der = STANDARD.decode(body).map_err(|_| KeyError::BadPem)?;
        Self::from_pkcs8(&der)
    }

    pub fn to_pem(&self) -> String {
        let b64 = STANDARD.encode(&self.pkcs8);
        let mut out = String::from("-----BEGIN PRIVATE KEY-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
            out.push('\n');
        }
        out.push_str("-----END PRIVATE KEY-----\n");
        out
    }

    /// Loads the key at `path`, or creates it (mode 0600) when the file does not exist.
    pub fn load_or_generate(path: &Path) -> Result<SigningKey, KeyError> {
        let io = |source| KeyError::Io {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(pem) => Self::from_pem(&pem),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate();
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(io)?;
                }
                write_private(path, key.to_pem().as_bytes()).map_err(io)?;
                Ok(key)
            }
            Err(e) => Err(io(e)),
        }
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Signs claims as a compact JWS with `alg: EdDSA` and this key's `kid`.
    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String, serde_json::Error> {
        let claims = serde_json::to_vec(claims)?;
        let mut jws = String::with_capacity(self.header_b64.len() + claims.len() * 4 / 3 + 90);
        jws.push_str(&self.header_b64);
        jws.push('.');
        URL_SAFE_NO_PAD.encode_string(&claims, &mut jws);
        let signature = self.pair.sign(jws.as_bytes());
        jws.push('.');
        URL_SAFE_NO_PAD.encode_string(signature.as_ref(), &mut jws);
        Ok(jws)
    }

    /// The public half, for verifying our own tokens.
    pub fn decoding_key(&self) -> &DecodingKey {
        &self.decoding
    }

    /// The public key as an RFC 7517 JWK (`kty: OKP`, `crv: Ed25519`, `alg: EdDSA`, `kid`).
    pub fn public_jwk(&self) -> Jwk {
        Jwk {
            common: CommonParameters {
                public_key_use: Some(PublicKeyUse::Signature),
                key_algorithm: Some(KeyAlgorithm::EdDSA),
                key_id: Some(self.kid.clone()),
                ..Default::default()
            },
            algorithm: AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
                key_type: OctetKeyPairType::OctetKeyPair,
                curve: EllipticCurve::Ed25519,
                x: self.public_x.clone(),
            }),
        }
    }
}

/// A broker key as the keys bucket holds it and `P.keys` lists it: the public JWK's members
/// plus `exp`, the Unix second until which verifiers may use it. Every broker replica that
/// signs with the key pushes `exp` forward while it runs; once none does, the key lapses a
/// token lifetime plus the leeway after its last token was signed, and every verifier then
/// refuses it, from memory, without waiting for the bucket's delete. A record without `exp`
/// (written before keys expired) never lapses.
#[derive(Debug, Clone)]
pub struct PublishedKey {
    pub jwk: Jwk,
    pub expires_at: Option<u64>,
}

/// The JSON member of a published key that carries [`PublishedKey::expires_at`]. RFC 7517
/// allows extra members; JWK readers that do not know it ignore it.
pub const PUBLISHED_KEY_EXP: &str = "exp";

impl PublishedKey {
    /// Whether verifiers may still use the key at `now`.
    pub fn usable_at(&self, now: u64) -> bool {
        self.expires_at.is_none_or(|exp| now < exp)
    }

    pub fn kid(&self) -> Option<&str> {
        self.jwk.common.key_id.as_deref()
    }

    pub fn to_value(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(&self.jwk).expect("a JWK serializes");
        if let (Some(exp), Some(obj)) = (self.expires_at, v.as_object_mut()) {
            obj.insert(PUBLISHED_KEY_EXP.into(), exp.into());
        }
        v
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(&self.to_value()).expect("JSON serializes")
    }

    pub fn from_value(mut v: serde_json::Value) -> Result<PublishedKey, String> {
        let expires_at = match v.as_object_mut().and_then(|o| o.remove(PUBLISHED_KEY_EXP)) {
            None => None,
            Some(exp) => Some(exp.as_u64().ok_or("exp is not an unsigned integer")?),
        };
        let jwk: Jwk = serde_json::from_value(v).map_err(|e| e.to_string())?;
        Ok(PublishedKey { jwk, expires_at })
    }

    pub fn from_json(bytes: &[u8]) -> Result<PublishedKey, String> {
        Self::from_value(serde_json::from_slice(bytes).map_err(|e| e.to_string())?)
    }
}

/// RFC 7638 JWK thumbprint of an Ed25519 public key: stable across replicas sharing a key.
fn thumbprint(x: &str) -> String {
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, canonical.as_bytes()))
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)?.write_all(bytes)
}

/// SHA-256 of a bearer token, hex encoded: what we store instead of the token itself.
pub fn token_hash(token: &str) -> String {
    crate::data_sign::sha256_hex(token.as_bytes())
}

/// The first byte of SHA-256 of `s` (what picks a ledger shard).
pub fn sha256_first_byte(s: &str) -> u8 {
    digest::digest(&digest::SHA256, s.as_bytes()).as_ref()[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_hash_is_lowercase_hex_sha256_and_the_first_byte_agrees() {
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        for s in ["", "abc", "acc-1", "a much longer account id with spaces"] {
            let hex = token_hash(s);
            assert_eq!(
                sha256_first_byte(s),
                u8::from_str_radix(&hex[..2], 16).unwrap(),
                "{s:?}"
            );
        }
    }
    use jsonwebtoken::{Validation, decode};

    #[derive(Debug, Serialize, serde::Deserialize, PartialEq)]
    struct C {
        sub: String,
        exp: u64,
    }

    #[test]
    fn sign_verify_and_pem_round_trip() {
        let key = SigningKey::generate();
        let claims = C {
            sub: "a".into(),
            exp: crate::now_unix() + 60,
        };
        let jwt = key.sign(&claims).unwrap();
        let again = SigningKey::from_pem(&key.to_pem()).unwrap();
        assert_eq!(again.kid(), key.kid());
        let got = decode::<C>(
            &jwt,
            again.decoding_key(),
            &Validation::new(Algorithm::EdDSA),
        )
        .unwrap();
        assert_eq!(got.claims, claims);
        assert_eq!(got.header.kid.as_deref(), Some(key.kid()));
        // The published JWK verifies it too.
        let from_jwk = DecodingKey::from_jwk(&key.public_jwk()).unwrap();
        assert!(decode::<C>(&jwt, &from_jwk, &Validation::new(Algorithm::EdDSA)).is_ok());
    }

    #[test]
    fn other_keys_do_not_verify() {
        let a = SigningKey::generate();
        let b = SigningKey::generate();
        assert_ne!(a.kid(), b.kid());
        let jwt = a
            .sign(&C {
                sub: "a".into(),
                exp: crate::now_unix() + 60,
            })
            .unwrap();
        assert!(decode::<C>(&jwt, b.decoding_key(), &Validation::new(Algorithm::EdDSA)).is_err());
    }

    #[test]
    fn published_keys_round_trip_with_and_without_exp() {
        let key = SigningKey::generate();
        let p = PublishedKey {
            jwk: key.public_jwk(),
            expires_at: Some(100),
        };
        let back = PublishedKey::from_json(&p.to_json()).unwrap();
        assert_eq!(back.expires_at, Some(100));
        assert_eq!(back.kid(), Some(key.kid()));
        assert!(back.usable_at(99) && !back.usable_at(100));
        // A plain JWK (what older brokers wrote) never lapses.
        let plain = serde_json::to_vec(&key.public_jwk()).unwrap();
        let old = PublishedKey::from_json(&plain).unwrap();
        assert_eq!(old.expires_at, None);
        assert!(old.usable_at(u64::MAX));
        // And a JWK reader ignores the extra member.
        assert!(serde_json::from_slice::<Jwk>(&p.to_json()).is_ok());
    }

    #[test]
    fn rejects_garbage_pem() {
        assert!(SigningKey::from_pem("hello").is_err());
        assert!(
            SigningKey::from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
                .is_err()
        );
    }

    #[test]
    fn load_or_generate_persists() {
        let dir = tempfile_dir();
        let path = dir.join("k.pem");
        let a = SigningKey::load_or_generate(&path).unwrap();
        let b = SigningKey::load_or_generate(&path).unwrap();
        assert_eq!(a.kid(), b.kid());
        let _ = std::fs::remove_dir_all(dir);
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("tessera-key-{}", SigningKey::generate().kid()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
