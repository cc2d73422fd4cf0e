"""Verifying an asset manifest (docs/protocol.md §9.2 steps 2-3) without a stack."""

from __future__ import annotations

import copy
import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt import PyJWK

from tessera import BadManifest, TesseraError
from tessera.manifest import check_path, verify

KEY = Ed25519PrivateKey.generate()
KID = "platform-key"
CLAIMS: dict[str, Any] = {
    "iss": "tessera-broker",
    "kind": "asset-manifest/1",
    "plugin_id": "weather",
    "version": 3,
    "iat": 1764000000,
    "files": [
        {"path": "index.html", "sha256": "a" * 64, "size": 1, "content_type": "text/html"},
        {"path": "img/logo.png", "sha256": "b" * 64, "size": 2, "content_type": "image/png"},
    ],
}


def sign(claims: dict[str, Any], key: Ed25519PrivateKey = KEY, kid: str = KID) -> str:
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": kid, "typ": "JWT"})


async def key_for(kid: str) -> PyJWK:
    if kid != KID:
        raise TesseraError("unauthenticated", "no such key [kid]")
    jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(KEY.public_key()))
    return PyJWK(jwk, algorithm="EdDSA")


async def test_a_platform_manifest_verifies_as_what_it_is() -> None:
    m = await verify(sign(CLAIMS), "weather", key_for)
    assert (m.plugin_id, m.version, [f.path for f in m.files]) == (
        "weather",
        3,
        ["index.html", "img/logo.png"],
    )
    assert [f.is_bundle_file for f in m.files] == [True, False]


def changed(**fields: Any) -> dict[str, Any]:
    c = copy.deepcopy(CLAIMS)
    c.update(fields)
    return c


def with_file(**fields: Any) -> dict[str, Any]:
    c = copy.deepcopy(CLAIMS)
    c["files"][0].update(fields)
    return c


@pytest.mark.parametrize(
    "jws, why",
    [
        (sign(CLAIMS), "another plugin's"),
        (sign(CLAIMS, key=Ed25519PrivateKey.generate()), "another key under the platform kid"),
        (sign(CLAIMS, kid="unknown"), "an unknown kid"),
        (sign(changed(kind="something-else")), "another kind"),
        (sign(changed(iss="tessera-auth")), "another issuer"),
        (sign({k: v for k, v in CLAIMS.items() if k != "kind"}), "a plugin token has no kind"),
        (sign(with_file(path="../../etc/x")), "a path out of the cache"),
        (sign(with_file(path="/etc/x")), "an absolute path"),
        (sign(with_file(path="a\\b")), "a backslash"),
        (sign(with_file(sha256="A" * 64)), "an uppercase digest"),
        (sign(with_file(size=-1)), "a negative size"),
        (sign(with_file(content_type="")), "no content type"),
        (sign(changed(files=[])), "no files"),
        (sign(changed(files=CLAIMS["files"] * 2)), "a path listed twice"),
        (jwt.encode(CLAIMS, "s" * 32, algorithm="HS256", headers={"kid": KID}), "HS256"),
        ("not a jws", "garbage"),
    ],
)
async def test_anything_else_is_refused(jws: str, why: str) -> None:
    plugin = "other" if why == "another plugin's" else "weather"
    with pytest.raises(BadManifest) as refused:
        await verify(jws, plugin, key_for)
    assert refused.value.plugin_id == plugin, why
    assert (refused.value.code, refused.value.retryable) == ("package_rejected", False)


def test_paths_stay_inside_the_cache() -> None:
    for ok in ["a", "a/b.css", "ü/x", "a" * 255]:
        assert check_path(ok) is None, ok
    for bad in ["", "a" * 256, "/a", "a/", "a//b", "./a", "a/../b", "a\x00", "a\x85b", "a\\b"]:
        assert check_path(bad) is not None, bad
