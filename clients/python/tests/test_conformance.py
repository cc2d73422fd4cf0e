"""The conformance vectors of the repository's conformance/ folder, checked with this
package (no stack needed). Each file is written by `tessera-dev conformance --out
conformance` from the Rust implementation; conformance/README.md says what each holds."""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import json
from pathlib import Path
from typing import Any

import msgpack
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from jwt import PyJWK

from tessera import client_inbox, client_password
from tessera.bus import b64url, b64url_decode
from tessera.data import ClientApp, Verification, packet, sign, signing_string
from tessera.errors import BadManifest, SealError, TesseraError, from_reply
from tessera.keys import kid_of
from tessera.manifest import verify as verify_manifest
from tessera.sealed import load_private_key, open_box, public_key, seal_info

FOLDER = Path(__file__).resolve().parents[3] / "conformance"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FOLDER / name).read_text(encoding="utf-8"))
    assert data["description"] and data["section"].startswith("docs/protocol.md")
    return data


def test_every_vector_file_is_checked_here() -> None:
    """A new vector file needs a test here (or a named skip)."""
    checked = {
        "data_packets.json",
        "jwk_thumbprints.json",
        "client_connections.json",
        "idempotency.json",
        "sealed_boxes.json",
        "asset_manifests.json",
        "error_replies.json",
    }
    assert {p.name for p in FOLDER.glob("*.json")} == checked


def verification(fields: dict[str, Any]) -> Verification:
    v = fields["verification"]
    return Verification(v["plugin_id"], v["user_ip"], v["device_id"])


def text_of(fields: dict[str, Any]) -> str:
    return signing_string(
        fields["app_id"],
        fields["plugin_token"],
        fields["timestamp"],
        fields["nonce"],
        verification(fields),
        fields["operation"],
        fields["query"],
        bytes.fromhex(fields["body_hex"]),
        version=fields["version"],
    )


def test_data_packets_sign_as_the_vectors_say() -> None:
    """§8.1: signing string, HMAC, signature and the packet's exact MessagePack bytes."""
    cases = [c for c in load("data_packets.json")["cases"] if c["kind"] == "valid"]
    assert cases
    for case in cases:
        fields, expect = case["fields"], case["expect"]
        app = ClientApp.from_printed(fields["app_id"], case["secret_b64url"])
        text = text_of(fields)
        assert text == expect["signing_string"], case["name"]
        assert sign(app.secret, text) == expect["signature"], case["name"]
        assert b64url_decode(expect["signature"]).hex() == expect["hmac_sha256_hex"]
        sent = packet(
            app,
            fields["plugin_token"],
            fields["operation"],
            bytes.fromhex(fields["body_hex"]),
            verification(fields),
            fields["query"],
            timestamp_ms=fields["timestamp"],
            nonce=fields["nonce"],
        )
        assert msgpack.packb(sent).hex() == expect["packet_msgpack_hex"], case["name"]


def test_refused_packets_do_not_carry_their_own_signature() -> None:
    """Every packet refused `bad_signature` is one whose signature this package would not
    have made from its fields and the app's secret."""
    cases = [
        c
        for c in load("data_packets.json")["cases"]
        if c["kind"] == "refused" and c["expect"]["code"] == "bad_signature"
    ]
    assert cases
    for case in cases:
        fields = case["fields"]
        secret = b64url_decode(case["secret_b64url"])
        assert sign(secret, text_of(fields)) != fields["signature"], case["name"]


@pytest.mark.skip(
    reason="no client-side packet checks in this package: it signs what it is given, and the "
    "gateway refuses decode/shape/verification errors (cases with expect.check decode, shape "
    "or verification and a code other than bad_signature)"
)
def test_packet_shape_refusals() -> None:
    pass


def test_key_ids_are_rfc7638_thumbprints() -> None:
    """§4, §3.7: seed -> x (with `cryptography`) -> kid (with this package)."""
    for case in load("jwk_thumbprints.json")["cases"]:
        seed = bytes.fromhex(case["seed_hex"])
        public = Ed25519PrivateKey.from_private_bytes(seed).public_key()
        x = b64url(public.public_bytes(Encoding.Raw, PublicFormat.Raw))
        assert x == case["x"], case["name"]
        expect = case["expect"]
        assert kid_of(x) == expect["kid"], case["name"]
        digest = hashlib.sha256(expect["thumbprint_input"].encode()).digest()
        assert b64url(digest) == expect["kid"]
        assert expect["published_jwk"]["kid"] == expect["kid"]
        assert expect["published_jwk"]["x"] == x


def test_client_inboxes_and_passwords() -> None:
    """§3.11: the inbox prefix and CONNECT password of each key."""
    for case in load("client_connections.json")["cases"]:
        expect = case["expect"]
        assert client_inbox(case["inbox_key"]) == expect["inbox_prefix"], case["name"]
        password = client_password(case["client_password"], case["inbox_key"])
        assert password == expect["connect_password"], case["name"]
        assert expect["connect_user"] == "client"


def idempotency_hash_input(account: str, plugin: str, binding: str, key: str) -> bytes:
    """§3.4's rule as the document states it (a broker-side rule: no client function)."""
    out = b""
    for field in ("tessera-idem/2", account, plugin, binding, key):
        raw = field.encode()
        out += str(len(raw)).encode() + b":" + raw
    return out


def test_idempotency_vectors_follow_the_documented_rule() -> None:
    file = load("idempotency.json")
    keys = {}
    for case in file["cases"]:
        req, route, expect = case["request"], case["route"], case["expect"]
        lines = []
        if route["bind_device"] and req["device_id"] is not None:
            lines.append(f"d={req['device_id']}")
        if route["bind_ip"] and req["user_ip"] is not None:
            lines.append(f"i={ipaddress.ip_address(req['user_ip']).compressed}")
        binding = "\n".join(lines)
        assert binding == expect["binding"], case["name"]
        raw = idempotency_hash_input(
            req["account_id"], req["plugin_id"], binding, req["idempotency_key"]
        )
        assert raw.hex() == expect["hash_input_hex"], case["name"]
        assert hashlib.sha256(raw).hexdigest() == expect["sha256_hex"], case["name"]
        keys[case["name"]] = expect["redis_key"]
    for pair in file["same_request"]:
        assert (keys[pair["a"]] == keys[pair["b"]]) == pair["same"], pair


def test_sealed_boxes_open_or_are_refused() -> None:
    """§9.5: every box that must open gives its plaintext; every other one is refused with
    the vector's reason (`cannot_open` or `bad_box`)."""
    for case in load("sealed_boxes.json")["cases"]:
        key = load_private_key(case["private_key_b64url"])
        assert public_key(key) == case["public_key_b64url"], case["name"]
        assert seal_info(case["sealed_for_plugin_id"]).hex() == case["info_hex"]
        box = b64url_decode(case["box"]["msgpack_b64url"])
        expect = case["expect"]
        if expect["opens"]:
            plaintext = open_box(key, case["open_as_plugin_id"], box)
            assert plaintext.hex() == expect["plaintext_hex"], case["name"]
        else:
            with pytest.raises(SealError) as refused:
                open_box(key, case["open_as_plugin_id"], box)
            assert refused.value.reason == expect["reason"], case["name"]


def test_manifest_key_ids_match_their_jwks() -> None:
    """§9.2, what this package can check: each manifest names its key by the thumbprint of
    a key in the JWKS (or, for `unknown_kid`, of none)."""
    for case in load("asset_manifests.json")["cases"]:
        header = json.loads(b64url_decode(case["jws"].split(".")[0]))
        kids = {kid_of(k["x"]) for k in case["jwks"]["keys"]}
        assert (header["kid"] in kids) == (case["name"] != "unknown_kid"), case["name"]


# What each reason's refusal says (the package's messages name the rule).
MANIFEST_REASONS = {
    "kid": ("is not a platform key",),
    "signature": ("signature or claims",),
    "issuer": ("issuer",),
    "kind": ("kind",),
    "plugin": ("signed for plugin",),
    "files": ("asset path", "listed twice", "no files", "sha256", "files"),
}


async def test_manifests_verify_or_are_refused() -> None:
    """§9.2: each manifest verifies against its JWKS for its plugin (with the vector's
    claims) or is refused for the vector's reason."""
    for case in load("asset_manifests.json")["cases"]:
        keys = {k["kid"]: PyJWK(k, algorithm="EdDSA") for k in case["jwks"]["keys"]}

        async def key_for(kid: str, keys: dict[str, PyJWK] = keys) -> PyJWK:
            if kid not in keys:
                raise TesseraError("unauthenticated", "no such key [kid]")
            return keys[kid]

        expect = case["expect"]
        if expect["verifies"]:
            got = await verify_manifest(case["jws"], case["plugin_id"], key_for)
            claims = expect["claims"]
            assert (got.plugin_id, got.version, got.iat) == (
                claims["plugin_id"],
                claims["version"],
                claims["iat"],
            ), case["name"]
            assert [dataclasses.asdict(f) for f in got.files] == claims["files"], case["name"]
        else:
            with pytest.raises(BadManifest) as refused:
                await verify_manifest(case["jws"], case["plugin_id"], key_for)
            hints = MANIFEST_REASONS[expect["reason"]]
            assert any(h in refused.value.message for h in hints), (
                case["name"],
                refused.value.message,
            )


def test_error_replies() -> None:
    """§2: what a reply means, and what this package sends for an error it raises."""
    for case in load("error_replies.json")["cases"]:
        reply, expect = case["reply"], case["expect"]["error"]
        got = from_reply(reply["headers"], bytes.fromhex(reply["body_hex"]))
        if expect is None:
            assert got is None, case["name"]
            continue
        assert got is not None, case["name"]
        assert (got.code, got.message, got.retryable, got.retry_after_ms, got.status) == (
            expect["code"],
            expect["message"],
            expect["retryable"],
            expect.get("retry_after_ms"),
            expect["status"],
        ), case["name"]
        if case["kind"] == "sent":
            err = TesseraError(
                expect["code"], expect["message"], retry_after_ms=expect.get("retry_after_ms")
            )
            assert err.headers() == reply["headers"], case["name"]
            assert err.body().hex() == reply["body_hex"], case["name"]
