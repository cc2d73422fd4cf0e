//! Auth-package manifests and app configs as an auth node reads them: the JSON manifest
//! beside an installed `.wasm` and in `tessera packages upload`, the MessagePack upload
//! request and index record, and the JSON app config; then the node's checks (shape,
//! trusted publisher, Ed25519 signature: processes/auth/src/packages/manifest.rs, compiled
//! here).
//!
//! Selector byte, then: 0 a JSON manifest, checked as it is (a forged one); 1 the same, but
//! signed by the trusted (fixed) key first, so the signature passes and only the shape rules
//! decide; 2 a MessagePack upload request; 3 a MessagePack index record; 4 a JSON app
//! config. Properties: no panic; a manifest that verifies has a valid shape and its signed
//! bytes are exactly five lines; a correctly signed manifest verifies iff its shape is valid;
//! every refusal is `package_rejected`; a valid app config's base URL has no control
//! characters.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use tessera_fuzz::FixedKey;
use tessera_fuzz::package_manifest::verify;
use tessera_schemas::packages::{AppConfig, PackageManifest, PackageRecord, PackageUploadRequest};
use tessera_schemas::{ErrorCode, codec};

static KEY: LazyLock<FixedKey> = LazyLock::new(FixedKey::new);

fn check(m: &PackageManifest) -> bool {
    match verify(m, &[KEY.public]) {
        Ok(()) => {
            assert!(m.validate().is_ok());
            let signed = m.signed_bytes();
            assert_eq!(signed.split(|b| *b == b'\n').count(), 5, "{m:?}");
            true
        }
        Err(e) => {
            assert_eq!(e.code, ErrorCode::PackageRejected, "{e}");
            false
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((sel, rest)) = tessera_fuzz::split(data) else {
        return;
    };
    match sel % 5 {
        0 => {
            if let Ok(m) = serde_json::from_slice::<PackageManifest>(rest) {
                check(&m);
            }
        }
        1 => {
            if let Ok(mut m) = serde_json::from_slice::<PackageManifest>(rest) {
                m.publisher_key = base64::Engine::encode(
                    &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                    KEY.public,
                );
                m.signature = KEY.sign_raw(&m.signed_bytes());
                assert_eq!(check(&m), m.validate().is_ok(), "{m:?}");
            }
        }
        2 => {
            if let Ok(req) = codec::decode::<PackageUploadRequest>(rest) {
                check(&req.manifest);
            }
        }
        3 => {
            if let Ok(rec) = codec::decode::<PackageRecord>(rest) {
                check(&rec.manifest);
            }
        }
        _ => {
            if let Ok(app) = serde_json::from_slice::<AppConfig>(rest)
                && app.validate().is_ok()
            {
                // The package gets `base_url` as is: a valid config's must be one clean line.
                let url = app.base_url();
                assert!(!url.contains(char::is_control), "{url:?}");
            }
        }
    }
});
