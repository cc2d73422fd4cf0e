//! §9.5 sealed boxes (RFC 9180 HPKE, base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
//! ChaCha20-Poly1305, info `tessera-seal/1:<plugin id>`, empty aad): boxes that open, and
//! boxes that must not (wrong plugin id, wrong key, tampered, another suite).
//!
//! Deterministic: the plugin's key pair is `DeriveKeyPair(ikm_r)` and the sender's
//! ephemeral key `DeriveKeyPair(ikm_e)` (RFC 9180 §7.1.3; what the `hpke` crate does with
//! the bytes its random generator gives), both from fixed labels. The SDK's `seal` draws
//! ikm_e from the system's generator; only these vectors fix it.

use std::convert::Infallible;

use hpke::aead::ChaCha20Poly1305;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Kem as _, OpModeS, Serializable};
use serde_json::{Value, json};
use tessera_schemas::assets::{SEAL_SUITE, SealedBox, seal_info};
use tessera_schemas::codec;

use super::{b64url, fixed_bytes, hex, vector_file};

type Kem = X25519HkdfSha256;

/// A generator that hands out [`fixed_bytes`] of a label, and remembers what it handed out
/// (the ikm_e a vector records). Only for these vectors: nothing random about it.
struct FixedRng {
    label: String,
    drawn: Vec<u8>,
}

impl FixedRng {
    fn new(label: &str) -> Self {
        Self {
            label: label.to_owned(),
            drawn: Vec::new(),
        }
    }
}

impl rand_core::TryRng for FixedRng {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        let start = self.drawn.len();
        let stream = fixed_bytes(&self.label, start + dst.len());
        dst.copy_from_slice(&stream[start..]);
        self.drawn.extend_from_slice(dst);
        Ok(())
    }
}

impl rand_core::TryCryptoRng for FixedRng {}

/// A plugin key pair from fixed input keying material.
struct PluginKey {
    ikm: Vec<u8>,
    private: Vec<u8>,
    public: Vec<u8>,
}

fn plugin_key(label: &str) -> PluginKey {
    let ikm = fixed_bytes(label, 32);
    let (sk, pk) = Kem::derive_keypair(&ikm);
    PluginKey {
        ikm,
        private: sk.to_bytes().to_vec(),
        public: pk.to_bytes().to_vec(),
    }
}

/// Seals `plaintext` to `key` for `plugin_id`, the ephemeral key from `label`.
fn seal(key: &PluginKey, plugin_id: &str, plaintext: &[u8], label: &str) -> (SealedBox, Vec<u8>) {
    let (_, pk) = Kem::derive_keypair(&key.ikm);
    let mut rng = FixedRng::new(label);
    let (enc, ct) = hpke::single_shot_seal_with_rng::<ChaCha20Poly1305, HkdfSha256, Kem>(
        &OpModeS::Base,
        &pk,
        &seal_info(plugin_id),
        plaintext,
        b"",
        &mut rng,
    )
    .expect("sealing to a valid key");
    let sealed = SealedBox {
        suite: SEAL_SUITE.to_owned(),
        enc: enc.to_bytes().to_vec(),
        ct,
    };
    (sealed, rng.drawn)
}

fn box_json(sealed: &SealedBox) -> Value {
    let bytes = codec::encode(sealed);
    json!({
        "suite": sealed.suite,
        "enc_b64url": b64url(&sealed.enc),
        "ct_b64url": b64url(&sealed.ct),
        "msgpack_b64url": b64url(&bytes),
    })
}

/// One case: the box, who opens it with which key, and the outcome.
struct Case<'a> {
    name: &'a str,
    why: &'a str,
    sealed_for: &'a str,
    ikm_e: &'a [u8],
    sealed: &'a SealedBox,
    open_as: &'a str,
    key: &'a PluginKey,
    expect: Value,
}

fn case(c: Case<'_>) -> Value {
    json!({
        "name": c.name,
        "why": c.why,
        "sealed_for_plugin_id": c.sealed_for,
        "info_hex": hex(&seal_info(c.sealed_for)),
        "ikm_e_hex": hex(c.ikm_e),
        "box": box_json(c.sealed),
        "open_as_plugin_id": c.open_as,
        "private_key_b64url": b64url(&c.key.private),
        "public_key_b64url": b64url(&c.key.public),
        "ikm_r_hex": hex(&c.key.ikm),
        "expect": c.expect,
    })
}

fn opens(plaintext: &[u8]) -> Value {
    json!({"opens": true, "plaintext_hex": hex(plaintext)})
}

/// `cannot_open`: the AEAD check fails (wrong key, wrong plugin id, tampered box: one error
/// alike). `bad_box`: refused before decryption (another suite, an `enc` that is no key).
fn refused(reason: &str) -> Value {
    json!({"opens": false, "reason": reason})
}

pub(super) fn file() -> (&'static str, Value) {
    let weather = plugin_key("sealed/weather-key");
    let other = plugin_key("sealed/other-key");
    let texts: [(&str, &[u8], &str); 3] = [
        ("account_info", b"account 42", "sealed/eph-1"),
        ("empty_plaintext", b"", "sealed/eph-2"),
        (
            "binary_plaintext",
            &[0x00, 0xff, 0x0a, 0x80, 0xc3, 0x28],
            "sealed/eph-3",
        ),
    ];
    let mut cases = Vec::new();
    for (name, plaintext, eph) in texts {
        let (sealed, ikm_e) = seal(&weather, "weather", plaintext, eph);
        cases.push(case(Case {
            name,
            why: "sealed to the plugin's registered key for this plugin id",
            sealed_for: "weather",
            ikm_e: &ikm_e,
            sealed: &sealed,
            open_as: "weather",
            key: &weather,
            expect: opens(plaintext),
        }));
    }
    let (good, ikm_e) = seal(&weather, "weather", b"account 42", "sealed/eph-1");
    let mut flipped_ct = good.clone();
    flipped_ct.ct[0] ^= 0x01;
    let mut flipped_tag = good.clone();
    *flipped_tag.ct.last_mut().expect("a tag") ^= 0x80;
    let mut truncated = good.clone();
    truncated.ct.pop();
    let mut flipped_enc = good.clone();
    flipped_enc.enc[5] ^= 0x01;
    let mut short_enc = good.clone();
    short_enc.enc.pop();
    let mut other_suite = good.clone();
    other_suite.suite = "X25519-SHA256-AES128GCM".into();
    let refusals: [(&str, &str, &SealedBox, &str, &PluginKey, &str); 8] = [
        (
            "wrong_plugin_id",
            "sealed for `weather`, opened as `news` (info differs)",
            &good,
            "news",
            &weather,
            "cannot_open",
        ),
        (
            "wrong_key",
            "opened with another plugin's private key",
            &good,
            "weather",
            &other,
            "cannot_open",
        ),
        (
            "tampered_ciphertext",
            "first ciphertext byte flipped",
            &flipped_ct,
            "weather",
            &weather,
            "cannot_open",
        ),
        (
            "tampered_tag",
            "last tag byte flipped",
            &flipped_tag,
            "weather",
            &weather,
            "cannot_open",
        ),
        (
            "truncated_ciphertext",
            "last byte of ct removed",
            &truncated,
            "weather",
            &weather,
            "cannot_open",
        ),
        (
            "tampered_enc",
            "a byte of the encapsulated key flipped",
            &flipped_enc,
            "weather",
            &weather,
            "cannot_open",
        ),
        (
            "enc_of_31_bytes",
            "enc is not a 32-byte X25519 key",
            &short_enc,
            "weather",
            &weather,
            "bad_box",
        ),
        (
            "other_suite",
            "suite names AES-128-GCM: refused before any decryption",
            &other_suite,
            "weather",
            &weather,
            "bad_box",
        ),
    ];
    for (name, why, sealed, open_as, key, reason) in refusals {
        cases.push(case(Case {
            name,
            why,
            sealed_for: "weather",
            ikm_e: &ikm_e,
            sealed,
            open_as,
            key,
            expect: refused(reason),
        }));
    }
    (
        "sealed_boxes.json",
        vector_file(
            "Sealed boxes: RFC 9180 HPKE base mode, KEM DHKEM(X25519, HKDF-SHA256) 0x0020, KDF \
             HKDF-SHA256 0x0001, AEAD ChaCha20Poly1305 0x0003, info = `tessera-seal/1:` + the \
             plugin id (info_hex, for sealed_for_plugin_id), empty aad. Keys are base64url \
             without padding: the X25519 private scalar and public key (RFC 9180 \
             SerializePrivateKey / SerializePublicKey); ikm_r_hex is what DeriveKeyPair made \
             the plugin's pair from, ikm_e_hex the sender's ephemeral one (so an HPKE library \
             with a deterministic encap can rebuild enc and ct exactly). box.msgpack_b64url is \
             the MessagePack map {suite, enc: bin, ct: bin} as the CLI prints it. Open as \
             open_as_plugin_id with private_key_b64url: expect.opens with plaintext_hex, or \
             refused with reason `cannot_open` (AEAD failure: wrong key, wrong plugin id, \
             tampered) or `bad_box` (another suite, or an enc that is not a key).",
            "docs/protocol.md §9.5",
            cases,
        ),
    )
}
