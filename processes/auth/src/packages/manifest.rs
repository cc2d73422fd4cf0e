//! Package manifests: shape, trusted publisher, Ed25519 signature, SHA-256 digest.
//!
//! Every check answers `package_rejected` with what was wrong; nothing is stored before all
//! of them pass.

use aws_lc_rs::digest;
use aws_lc_rs::signature::{ED25519, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tessera_schemas::packages::PackageManifest;
use tessera_schemas::{ErrorCode, WireError};

fn rejected(msg: impl Into<String>) -> WireError {
    WireError::new(ErrorCode::PackageRejected, msg)
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let d = digest::digest(&digest::SHA256, bytes);
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks shape, that the publisher key is trusted, and the signature. Not the digest (the
/// bytes may not be at hand yet): see [`check_digest`].
pub fn verify(m: &PackageManifest, trusted: &[[u8; 32]]) -> Result<(), WireError> {
    m.validate()
        .map_err(|e| rejected(format!("manifest: {e}")))?;
    let key = URL_SAFE_NO_PAD
        .decode(&m.publisher_key)
        .map_err(|_| rejected("publisher_key is not base64url"))?;
    if !trusted.iter().any(|t| t.as_slice() == key.as_slice()) {
        return Err(rejected(format!(
            "package {} {}: publisher key is not trusted by this node",
            m.name, m.version
        )));
    }
    let sig = URL_SAFE_NO_PAD
        .decode(&m.signature)
        .map_err(|_| rejected("signature is not base64url"))?;
    UnparsedPublicKey::new(&ED25519, &key)
        .verify(&m.signed_bytes(), &sig)
        .map_err(|_| {
            rejected(format!(
                "package {} {}: bad publisher signature",
                m.name, m.version
            ))
        })
}

/// Checks the bytes against the manifest's digest.
pub fn check_digest(m: &PackageManifest, wasm: &[u8]) -> Result<(), WireError> {
    let got = sha256_hex(wasm);
    if got != m.sha256 {
        return Err(rejected(format!(
            "package {} {}: digest mismatch (manifest {}, file {got})",
            m.name, m.version, m.sha256
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};

    fn signed(key: &Ed25519KeyPair, wasm: &[u8]) -> PackageManifest {
        let mut m = PackageManifest {
            name: "demo".into(),
            version: "1.0.0".into(),
            interface: 1,
            sha256: sha256_hex(wasm),
            publisher_key: URL_SAFE_NO_PAD.encode(key.public_key().as_ref()),
            signature: String::new(),
        };
        m.signature = URL_SAFE_NO_PAD.encode(key.sign(&m.signed_bytes()).as_ref());
        m
    }

    #[test]
    fn signature_trust_and_digest() {
        let key = Ed25519KeyPair::generate().unwrap();
        let other = Ed25519KeyPair::generate().unwrap();
        let pk: [u8; 32] = key.public_key().as_ref().try_into().unwrap();
        let other_pk: [u8; 32] = other.public_key().as_ref().try_into().unwrap();
        let m = signed(&key, b"wasm");
        assert!(verify(&m, &[pk]).is_ok());
        assert!(check_digest(&m, b"wasm").is_ok());
        assert_eq!(
            check_digest(&m, b"wasn").unwrap_err().code,
            ErrorCode::PackageRejected
        );
        // Untrusted publisher.
        assert!(verify(&m, &[other_pk]).is_err());
        // A field changed after signing.
        let mut bumped = m.clone();
        bumped.version = "1.0.1".into();
        assert_eq!(
            verify(&bumped, &[pk]).unwrap_err().code,
            ErrorCode::PackageRejected
        );
        // Signed by another key but claiming the trusted one.
        let mut forged = signed(&other, b"wasm");
        forged.publisher_key = m.publisher_key.clone();
        assert!(verify(&forged, &[pk]).is_err());
    }
}
