"""Broker keys and plugin-token verification (docs/protocol.md §3.7, §4)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from typing import Any, Awaitable, Callable

import jwt
from jwt import PyJWK

from .bus import b64url
from .errors import TesseraError, unavailable

ISSUER = "tessera-broker"
#: Refetch the keys at most this often, so made-up `kid`s cannot flood the broker.
REFETCH_EVERY = 1.0


def kid_of(x: str) -> str:
    """The RFC 7638 thumbprint of an Ed25519 public key (`x`, base64url)."""
    canonical = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": x}, separators=(",", ":"))
    return b64url(hashlib.sha256(canonical.encode()).digest())


def token_hash(token: str) -> str:
    """How plugin servers index tokens: SHA-256 of the token string."""
    return hashlib.sha256(token.encode()).hexdigest()


def unverified_claims(token: str) -> dict[str, Any]:
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as e:
        raise TesseraError("unauthenticated", f"not a token [malformed]") from e
    if not isinstance(claims, dict):
        raise TesseraError("unauthenticated", "not a token [malformed]")
    return claims


class Keys:
    """A cache of the JWKS from `P.keys`: refetched on an unknown or lapsed `kid`, at most
    once a second, and replaced whole so retired keys leave it."""

    def __init__(self, fetch: Callable[[], Awaitable[bytes]]) -> None:
        self._fetch = fetch
        self._keys: dict[str, tuple[PyJWK, int | None]] = {}
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    async def refresh(self) -> None:
        async with self._lock:
            if time.monotonic() - self._fetched_at < REFETCH_EVERY and self._keys:
                return
            raw = await self._fetch()
            self._fetched_at = time.monotonic()
            try:
                jwks = json.loads(raw)
                keys = {}
                for k in jwks["keys"]:
                    keys[k["kid"]] = (PyJWK(k, algorithm="EdDSA"), k.get("exp"))
            except Exception as e:
                raise unavailable("the keys reply is not a JWKS") from e
            self._keys = keys

    def _usable(self, kid: str) -> PyJWK | None:
        entry = self._keys.get(kid)
        if entry is None:
            return None
        key, exp = entry
        return key if exp is None or exp > time.time() else None

    async def key(self, kid: str) -> PyJWK:
        key = self._usable(kid)
        if key is None:
            await self.refresh()
            key = self._usable(kid)
        if key is None:
            raise TesseraError("unauthenticated", "no such key [kid]")
        return key

    async def verify(self, token: str, leeway: float) -> dict[str, Any]:
        """The claims of a plugin token signed by a published broker key, issued by the
        broker, within its validity (± leeway). The audience is the caller's to check."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as e:
            raise TesseraError("unauthenticated", "not a token [malformed]") from e
        if header.get("alg") != "EdDSA":
            raise TesseraError("unauthenticated", "wrong algorithm [alg]")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise TesseraError("unauthenticated", "no key id [kid]")
        key = await self.key(kid)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=["EdDSA"],
                issuer=ISSUER,
                leeway=leeway,
                options={"verify_aud": False, "require": ["exp", "iat", "jti"]},
            )
        except jwt.ExpiredSignatureError as e:
            raise TesseraError("unauthenticated", "token expired [expired]") from e
        except jwt.ImmatureSignatureError as e:
            raise TesseraError("unauthenticated", "token not yet valid [not_yet_valid]") from e
        except jwt.InvalidIssuerError as e:
            raise TesseraError("unauthenticated", "wrong issuer [issuer]") from e
        except jwt.InvalidSignatureError as e:
            raise TesseraError("unauthenticated", "bad signature [signature]") from e
        except jwt.PyJWTError as e:
            raise TesseraError("unauthenticated", f"invalid token [malformed]") from e
        return claims
