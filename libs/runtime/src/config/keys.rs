//! Workers' signing keys from PEM files. Reading only: a key file is made by whoever deploys
//! (`tessera bus-config render`, `tessera-dev up`, `openssl genpkey -algorithm ed25519`),
//! never by a worker or by `tessera check-config`. A worker that made its own key when the
//! file was missing would sign with a key its replicas do not share (each made one), and a
//! validation that made files would change what it validates.

use tessera_protocol::signing::SigningKey;

use super::Reader;
use super::registry::{DEV_EPHEMERAL_KEYS, Setting};

/// The signing key from the PEM file `setting` names: read and parsed, never created. A
/// missing, unreadable or unparsable file is reported. An unset `setting` is reported too,
/// unless `TESSERA_DEV_EPHEMERAL_KEYS=1` asks for a throw-away key (what it signs dies with
/// the process: development only).
pub fn signing_key(r: &mut Reader, setting: &Setting) -> Option<SigningKey> {
    let Some(path) = r.get(setting) else {
        if r.switch(&DEV_EPHEMERAL_KEYS) {
            tracing::warn!(
                "{setting} not set and {DEV_EPHEMERAL_KEYS}=1: signing with a throw-away key \
                 (what it signs dies with this process)"
            );
            return Some(SigningKey::generate());
        }
        r.report(
            setting,
            format!(
                "is required: the PEM file of this worker's signing key, shared by its replicas \
                 (or {DEV_EPHEMERAL_KEYS}=1 in development for a throw-away key)"
            ),
        );
        return None;
    };
    match std::fs::read_to_string(&path) {
        Ok(pem) => SigningKey::from_pem(&pem)
            .map_err(|e| r.report(setting, format!("{path}: {e}")))
            .ok(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            r.report(
                setting,
                format!(
                    "{path}: no such file (make one with `openssl genpkey -algorithm ed25519 \
                     -out {path}`; every replica must share it)"
                ),
            );
            None
        }
        Err(e) => {
            r.report(setting, format!("{path}: {e}"));
            None
        }
    }
}
