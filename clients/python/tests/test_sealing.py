"""Sealed data (docs/protocol.md §9.5) without a stack: the RFC 9180 test vector of this
suite, and the refusals."""

from __future__ import annotations

import hashlib
import hmac

import msgpack
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tessera import SealError
from tessera.sealed import (
    SUITE,
    generate_key,
    load_private_key,
    open_box,
    private_key_text,
    public_key,
    seal,
    seal_info,
)

# RFC 9180 appendix A.2.1: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20Poly1305, base.
V = {
    k: bytes.fromhex(v)
    for k, v in {
        "info": "4f6465206f6e2061204772656369616e2055726e",
        "skEm": "f4ec9b33b792c372c1d2c2063507b684ef925b8c75a42dbcbf57d63ccd381600",
        "pkEm": "1afa08d3dec047a643885163f1180476fa7ddb54c6a8029ea33f95796bf2ac4a",
        "skRm": "8057991eef8f1f1af18f4a9491d16a1ce333f695d4db8e38da75975c4478e0fb",
        "pkRm": "4310ee97d88cc1f088a5576c77ab0cf5c3ac797f3d95139c6c84b5429c59662a",
        "shared_secret": "0bbe78490412b4bbea4812666f7916932b828bba79942424abb65244930d69a7",
        "key": "ad2744de8e17f4ebba575b3f5f5a8fa1f69c2a07f6e7500bc60ca6e3e3ec1c91",
        "base_nonce": "5c4d98150661b848853b547f",
        "pt": "4265617574792069732074727574682c20747275746820626561757479",
        "aad0": "436f756e742d30",
        "ct0": "1c5250d8034ec2b784ba2cfd69dbdb8af406cfe3ff938e131f0def8c8b60b4db"
        "21993c62ce81883d2dd1b51a28",
    }.items()
}

# RFC 9180 §4, §5.1, §7: the labels and suite ids of this suite, written out from the RFC
# (a reference to check the library against, not what the SDK runs).
KEM_ID = b"KEM\x00\x20"
HPKE_ID = b"HPKE\x00\x20\x00\x01\x00\x03"


def labeled_extract(suite: bytes, salt: bytes, label: bytes, ikm: bytes) -> bytes:
    return hmac.new(salt, b"HPKE-v1" + suite + label + ikm, hashlib.sha256).digest()


def labeled_expand(suite: bytes, prk: bytes, label: bytes, info: bytes, length: int) -> bytes:
    labeled = length.to_bytes(2, "big") + b"HPKE-v1" + suite + label + info
    return HKDFExpand(hashes.SHA256(), length, labeled).derive(prk)


def raw(pk: X25519PublicKey) -> bytes:
    return pk.public_bytes(Encoding.Raw, PublicFormat.Raw)


def reference_context(dh: bytes, enc: bytes, pk_r: bytes, info: bytes) -> tuple[bytes, ...]:
    """(shared_secret, key, base_nonce) of base mode."""
    eae_prk = labeled_extract(KEM_ID, b"", b"eae_prk", dh)
    shared = labeled_expand(KEM_ID, eae_prk, b"shared_secret", enc + pk_r, 32)
    psk_id_hash = labeled_extract(HPKE_ID, b"", b"psk_id_hash", b"")
    info_hash = labeled_extract(HPKE_ID, b"", b"info_hash", info)
    context = b"\x00" + psk_id_hash + info_hash
    secret = labeled_extract(HPKE_ID, shared, b"secret", b"")
    key = labeled_expand(HPKE_ID, secret, b"key", context, 32)
    nonce = labeled_expand(HPKE_ID, secret, b"base_nonce", context, 12)
    return shared, key, nonce


def reference_seal(
    sk_e: bytes, pk_r: bytes, info: bytes, aad: bytes, pt: bytes
) -> tuple[bytes, bytes, tuple[bytes, ...]]:
    eph = X25519PrivateKey.from_private_bytes(sk_e)
    enc = raw(eph.public_key())
    ctx = reference_context(eph.exchange(X25519PublicKey.from_public_bytes(pk_r)), enc, pk_r, info)
    return enc, ChaCha20Poly1305(ctx[1]).encrypt(ctx[2], pt, aad), ctx


def reference_open(sk_r: bytes, enc: bytes, ct: bytes, info: bytes) -> bytes:
    recipient = X25519PrivateKey.from_private_bytes(sk_r)
    dh = recipient.exchange(X25519PublicKey.from_public_bytes(enc))
    _, key, nonce = reference_context(dh, enc, raw(recipient.public_key()), info)
    return ChaCha20Poly1305(key).decrypt(nonce, ct, b"")


def test_the_rfc9180_vector_of_this_suite_and_the_sdk_agree() -> None:
    # The reference reproduces RFC 9180 A.2.1 (sequence 0) exactly...
    enc, ct, (shared, key, nonce) = reference_seal(
        V["skEm"], V["pkRm"], V["info"], V["aad0"], V["pt"]
    )
    assert (enc, shared, key, nonce, ct) == (
        V["pkEm"], V["shared_secret"], V["key"], V["base_nonce"], V["ct0"]
    )
    # ...and the vector's recipient key in the SDK's text form is the RFC's.
    sk_r = load_private_key(private_key_text(X25519PrivateKey.from_private_bytes(V["skRm"])))
    assert raw(sk_r.public_key()) == V["pkRm"]

    # A box the reference seals (the vector's ephemeral key, this protocol's info, empty
    # aad) opens with the SDK, and one the SDK seals opens with the reference.
    enc, ct, _ = reference_seal(V["skEm"], V["pkRm"], seal_info("weather"), b"", V["pt"])
    box = msgpack.packb({"suite": SUITE, "enc": enc, "ct": ct})
    assert open_box(sk_r, "weather", box) == V["pt"]
    fields = msgpack.unpackb(seal(public_key(sk_r), "weather", V["pt"]))
    assert reference_open(V["skRm"], fields["enc"], fields["ct"], seal_info("weather")) == V["pt"]


def test_wrong_plugin_wrong_key_and_tampered_boxes_are_refused_alike() -> None:
    key = generate_key()
    box = seal(public_key(key), "weather", b"account 42")
    fields = msgpack.unpackb(box)
    assert (fields["suite"], len(fields["enc"]), len(fields["ct"])) == (SUITE, 32, 10 + 16)
    assert open_box(key, "weather", box) == b"account 42"
    assert open_box(private_key_text(key), "weather", box) == b"account 42"

    tampered = dict(fields, ct=bytes([fields["ct"][0] ^ 1]) + fields["ct"][1:])
    for k, plugin, b in [
        (key, "other", box),
        (generate_key(), "weather", box),
        (key, "weather", msgpack.packb(tampered)),
    ]:
        with pytest.raises(SealError) as refused:
            open_box(k, plugin, b)
        assert (refused.value.reason, refused.value.code) == ("cannot_open", "bad_request")

    for bad in [b"\xc1", msgpack.packb([1]), msgpack.packb(dict(fields, suite="other"))]:
        with pytest.raises(SealError) as not_a_box:
            open_box(key, "weather", bad)
        assert not_a_box.value.reason == "bad_box"
    for bad_key in ["AAAA", "not base64!", ""]:
        with pytest.raises(SealError) as refused_key:
            seal(bad_key, "weather", b"x")
        assert refused_key.value.reason == "bad_key"
