"""Sealed data (docs/protocol.md §9.5): what a client app hands a plugin is sealed to the
plugin's registered X25519 key, so only the holder of the plugin's private key opens it.

RFC 9180 HPKE, base mode, single shot: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
ChaCha20-Poly1305 (cryptography's `hazmat.primitives.hpke`), `info` =
`tessera-seal/1:<plugin_id>` (a box sealed for one plugin does not open as another's),
empty `aad`. The box is the MessagePack map `{suite: str, enc: bin, ct: bin}`.

    key = generate_key()                    # the plugin's; public_key(key) is registered
    box = seal(public_key(key), "weather", b"account 42")
    assert open_box(key, "weather", box) == b"account 42"
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgpack
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite

from .bus import b64url, b64url_decode
from .errors import SealError

#: The suite name on the wire (`suite` of a box and of a registered key).
SUITE = "X25519-SHA256-CHACHA20POLY1305"
INFO_PREFIX = "tessera-seal/1:"
#: The encapsulated key (the sender's ephemeral X25519 public key) is 32 bytes.
ENC_LEN = 32
_HPKE = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.CHACHA20_POLY1305)
_RAW = serialization.Encoding.Raw


def seal_info(plugin_id: str) -> bytes:
    """The HPKE `info` of a box sealed to `plugin_id`."""
    return f"{INFO_PREFIX}{plugin_id}".encode()


def generate_key() -> X25519PrivateKey:
    """A fresh plugin key pair (keep the private key with the plugin)."""
    return X25519PrivateKey.generate()


def public_key(key: X25519PrivateKey) -> str:
    """The public key to register: base64url without padding of its 32 bytes."""
    return b64url(key.public_key().public_bytes(_RAW, serialization.PublicFormat.Raw))


def private_key_text(key: X25519PrivateKey) -> str:
    """The private key as `tessera plugins keygen` writes it: base64url without padding of
    the 32-byte scalar (keep it secret)."""
    raw = key.private_bytes(_RAW, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    return b64url(raw)


def _key_bytes(text: str) -> bytes:
    try:
        raw = b64url_decode(text.strip())
    except ValueError as e:
        raise SealError("bad_key", "invalid key: not base64url") from e
    if len(raw) != 32:
        raise SealError("bad_key", f"invalid key: {len(raw)} bytes, not 32")
    return raw


def load_public_key(text: str) -> X25519PublicKey:
    """A public key from its base64url form (what `P.plugins.key` answers)."""
    return X25519PublicKey.from_public_bytes(_key_bytes(text))


def load_private_key(text: str) -> X25519PrivateKey:
    """A private key from its base64url form (the contents of a key file)."""
    return X25519PrivateKey.from_private_bytes(_key_bytes(text))


def read_private_key(path: str | Path) -> X25519PrivateKey:
    """The key file `tessera plugins keygen --out FILE` wrote."""
    return load_private_key(Path(path).read_text())


def seal(key: X25519PublicKey | str, plugin_id: str, plaintext: bytes) -> bytes:
    """The MessagePack box that only the holder of `plugin_id`'s private key opens."""
    pk = load_public_key(key) if isinstance(key, str) else key
    try:
        sealed = _HPKE.encrypt(bytes(plaintext), pk, info=seal_info(plugin_id))
    except ValueError as e:  # e.g. a low-order point: no shared secret to derive
        raise SealError("bad_key", f"invalid key: {e}") from e
    box: bytes = msgpack.packb({"suite": SUITE, "enc": sealed[:ENC_LEN], "ct": sealed[ENC_LEN:]})
    return box


def open_box(key: X25519PrivateKey | str, plugin_id: str, box: bytes) -> bytes:
    """The plaintext of a box sealed to `plugin_id`, opened with its private key. A box of
    another suite or that does not decode is `bad_box`; a wrong key, a wrong plugin id and
    a tampered box are all `cannot_open`."""
    sk = load_private_key(key) if isinstance(key, str) else key
    try:
        fields: Any = msgpack.unpackb(box, raw=False)
    except Exception as e:  # msgpack raises several kinds for bytes that are not a box
        raise SealError("bad_box", "not a sealed box: undecodable") from e
    if not isinstance(fields, dict):
        raise SealError("bad_box", "not a sealed box: not a map")
    suite, enc, ct = fields.get("suite"), fields.get("enc"), fields.get("ct")
    if suite != SUITE:
        raise SealError("bad_box", f"not a sealed box this SDK opens: suite {suite!r}")
    if not isinstance(enc, bytes) or len(enc) != ENC_LEN or not isinstance(ct, bytes):
        raise SealError("bad_box", "not a sealed box: enc must be 32 bytes and ct bytes")
    try:
        return _HPKE.decrypt(enc + ct, sk, info=seal_info(plugin_id))
    except (InvalidTag, ValueError) as e:
        raise SealError(
            "cannot_open", "the sealed box does not open with this key for this plugin"
        ) from e
