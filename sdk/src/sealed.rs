//! Sealed sensitive data: what a client app hands a plugin (account info,
//! user actions) is sealed to the plugin's registered public key, so only the plugin can
//! open it, not anybody on the path.
//!
//! RFC 9180 HPKE (crate `hpke`), base mode, single shot: DHKEM(X25519, HKDF-SHA256),
//! HKDF-SHA256, ChaCha20-Poly1305; `info` = `tessera-seal/1:` + plugin id (so a box sealed
//! for one plugin does not open as another's), empty `aad`. The wire form is the MessagePack
//! map [`SealedBox`] `{suite, enc, ct}`; see docs/protocol.md, "Sealed data".
//!
//! ```
//! use tessera_sdk::sealed::{PluginSecretKey, open, seal};
//! let secret = PluginSecretKey::generate();
//! let public = secret.public_key();
//! let sealed = seal(&public, "weather", b"account 42").unwrap();
//! assert_eq!(open(&secret, "weather", &sealed).unwrap(), b"account 42");
//! assert!(open(&secret, "other", &sealed).is_err());
//! ```

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hpke::aead::ChaCha20Poly1305;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use tessera_schemas::assets::{SEAL_SUITE, SealedBox, seal_info};
use tessera_schemas::codec;

type Kem = X25519HkdfSha256;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    /// A key that is not 32 bytes of base64url, or not a valid X25519 key.
    #[error("invalid key: {0}")]
    BadKey(String),
    /// A box of another suite, or one that does not decode.
    #[error("not a sealed box this SDK opens: {0}")]
    BadBox(String),
    /// Wrong key, wrong plugin id, or a tampered box. Deliberately one error: which of the
    /// three it was is not something to tell anybody.
    #[error("the sealed box does not open with this key for this plugin")]
    CannotOpen,
}

/// A plugin's public key: what the admin registers and clients seal to.
#[derive(Clone)]
pub struct PluginPublicKey(<Kem as hpke::Kem>::PublicKey);

/// A plugin's private key: stays with the plugin.
pub struct PluginSecretKey(<Kem as hpke::Kem>::PrivateKey);

impl std::fmt::Debug for PluginPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PluginPublicKey({})", self.to_base64url())
    }
}

impl std::fmt::Debug for PluginSecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PluginSecretKey(..)")
    }
}

impl PluginPublicKey {
    /// Base64url without padding of the 32-byte X25519 public key.
    pub fn to_base64url(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0.to_bytes())
    }

    pub fn from_base64url(b64: &str) -> Result<Self, SealError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(b64.trim())
            .map_err(|e| SealError::BadKey(format!("not base64url: {e}")))?;
        <Kem as hpke::Kem>::PublicKey::from_bytes(&bytes)
            .map(PluginPublicKey)
            .map_err(|e| SealError::BadKey(e.to_string()))
    }
}

impl PluginSecretKey {
    /// A fresh random key pair.
    pub fn generate() -> Self {
        PluginSecretKey(Kem::gen_keypair().0)
    }

    pub fn public_key(&self) -> PluginPublicKey {
        PluginPublicKey(Kem::sk_to_pk(&self.0))
    }

    /// Base64url without padding of the 32-byte X25519 private key (keep it secret).
    pub fn to_base64url(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0.to_bytes())
    }

    pub fn from_base64url(b64: &str) -> Result<Self, SealError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(b64.trim())
            .map_err(|e| SealError::BadKey(format!("not base64url: {e}")))?;
        <Kem as hpke::Kem>::PrivateKey::from_bytes(&bytes)
            .map(PluginSecretKey)
            .map_err(|e| SealError::BadKey(e.to_string()))
    }
}

/// Seals `plaintext` so that only the holder of `plugin_id`'s private key can open it.
pub fn seal(
    public_key: &PluginPublicKey,
    plugin_id: &str,
    plaintext: &[u8],
) -> Result<SealedBox, SealError> {
    let (enc, ct) = hpke::single_shot_seal::<ChaCha20Poly1305, HkdfSha256, Kem>(
        &OpModeS::Base,
        &public_key.0,
        &seal_info(plugin_id),
        plaintext,
        b"",
    )
    .map_err(|e| SealError::BadKey(e.to_string()))?;
    Ok(SealedBox {
        suite: SEAL_SUITE.to_owned(),
        enc: enc.to_bytes().to_vec(),
        ct,
    })
}

/// Opens a box sealed to `plugin_id` with its private key.
pub fn open(
    secret_key: &PluginSecretKey,
    plugin_id: &str,
    sealed: &SealedBox,
) -> Result<Vec<u8>, SealError> {
    if sealed.suite != SEAL_SUITE {
        return Err(SealError::BadBox(format!("suite {:?}", sealed.suite)));
    }
    let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(&sealed.enc)
        .map_err(|e| SealError::BadBox(format!("enc: {e}")))?;
    hpke::single_shot_open::<ChaCha20Poly1305, HkdfSha256, Kem>(
        &OpModeR::Base,
        &secret_key.0,
        &enc,
        &seal_info(plugin_id),
        &sealed.ct,
        b"",
    )
    .map_err(|_| SealError::CannotOpen)
}

/// [`seal`], encoded as the MessagePack bytes a client app hands over.
pub fn seal_to_bytes(
    public_key: &PluginPublicKey,
    plugin_id: &str,
    plaintext: &[u8],
) -> Result<Vec<u8>, SealError> {
    Ok(codec::encode(&seal(public_key, plugin_id, plaintext)?))
}

/// [`open`] from the MessagePack bytes.
pub fn open_bytes(
    secret_key: &PluginSecretKey,
    plugin_id: &str,
    bytes: &[u8],
) -> Result<Vec<u8>, SealError> {
    let sealed: SealedBox =
        codec::decode(bytes).map_err(|e| SealError::BadBox(format!("undecodable: {e}")))?;
    open(secret_key, plugin_id, &sealed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_base64url() {
        let sk = PluginSecretKey::generate();
        let again = PluginSecretKey::from_base64url(&sk.to_base64url()).unwrap();
        assert_eq!(
            again.public_key().to_base64url(),
            sk.public_key().to_base64url()
        );
        let pk = PluginPublicKey::from_base64url(&sk.public_key().to_base64url()).unwrap();
        assert_eq!(pk.to_base64url().len(), 43);
        assert!(PluginPublicKey::from_base64url("AAAA").is_err());
        assert!(PluginPublicKey::from_base64url("not base64!").is_err());
    }

    #[test]
    fn a_tampered_box_or_suite_is_refused() {
        let sk = PluginSecretKey::generate();
        let mut b = seal(&sk.public_key(), "p", b"secret").unwrap();
        assert_eq!(b.enc.len(), 32);
        assert_eq!(b.ct.len(), b"secret".len() + 16);
        b.ct[0] ^= 1;
        assert_eq!(open(&sk, "p", &b), Err(SealError::CannotOpen));
        b.ct[0] ^= 1;
        assert_eq!(open(&sk, "p", &b).unwrap(), b"secret");
        b.suite = "other".into();
        assert!(matches!(open(&sk, "p", &b), Err(SealError::BadBox(_))));
        assert!(matches!(
            open_bytes(&sk, "p", b"\x01"),
            Err(SealError::BadBox(_))
        ));
    }
}
