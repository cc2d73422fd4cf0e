"""Checking a signed asset manifest (docs/protocol.md §9.2, "Verifying" steps 2 and 3): the
JWS with a key from `P.keys`, then the claims and the file list. No I/O: the caller hands
in the key for the header's `kid`."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import jwt
from jwt import PyJWK

from .errors import BadManifest, TesseraError

ISSUER = "tessera-broker"
KIND = "asset-manifest/1"
MAX_FILES = 256
MAX_PATH = 255
MAX_CONTENT_TYPE = 127
#: Content types (before any `;`, case-insensitive) kept in the local bundle cache.
BUNDLE_TYPES = frozenset(
    {"text/html", "text/css", "text/javascript", "application/javascript"}
)
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class AssetFile:
    path: str
    sha256: str
    size: int
    content_type: str

    @property
    def is_bundle_file(self) -> bool:
        """HTML, CSS and JavaScript are cached with the bundle; the rest on demand."""
        return self.content_type.split(";", 1)[0].strip().lower() in BUNDLE_TYPES


@dataclass(frozen=True)
class Manifest:
    """A manifest whose signature, issuer, kind, plugin and file list were checked."""

    plugin_id: str
    version: int
    iat: int
    files: list[AssetFile]
    #: The compact JWS as the broker signed it.
    jws: str

    def file(self, path: str) -> AssetFile | None:
        return next((f for f in self.files if f.path == path), None)


def check_path(path: str) -> str | None:
    """Why `path` is not a safe asset path, or None: 1-255 bytes, `/`-separated, no segment
    empty, `.` or `..`, no backslash or control character. Such a path joined under a
    directory never leaves it."""
    if not path or len(path.encode()) > MAX_PATH:
        return "must be 1-255 bytes"
    if any(c == "\\" or unicodedata.category(c) == "Cc" for c in path):
        return "control characters and backslashes are not allowed"
    if any(seg in ("", ".", "..") for seg in path.split("/")):
        return "empty, `.` and `..` segments are not allowed"
    return None


def _file(entry: Any) -> AssetFile:
    if not isinstance(entry, dict):
        raise ValueError("a file entry is not a map")
    path, sha, size, ctype = (entry.get(k) for k in ("path", "sha256", "size", "content_type"))
    if not isinstance(path, str):
        raise ValueError("a file entry without a path")
    why = check_path(path)
    if why is not None:
        raise ValueError(f"asset path {path!r}: {why}")
    if not isinstance(sha, str) or len(sha) != 64 or not set(sha) <= _HEX:
        raise ValueError(f"{path!r}: sha256 must be 64 lowercase hex digits")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ValueError(f"{path!r}: size must be a non-negative integer")
    if (
        not isinstance(ctype, str)
        or not 1 <= len(ctype) <= MAX_CONTENT_TYPE
        or not all(0x20 <= ord(c) < 0x7F for c in ctype)
    ):
        raise ValueError(
            f"{path!r}: content_type must be 1-{MAX_CONTENT_TYPE} printable ASCII characters"
        )
    return AssetFile(path, sha, size, ctype)


def check_files(entries: Any) -> list[AssetFile]:
    """The file list, if it follows §9.2: 1-256 valid entries with distinct paths."""
    if not isinstance(entries, list) or not entries:
        raise ValueError("no files: a bundle needs at least one")
    if len(entries) > MAX_FILES:
        raise ValueError(f"{len(entries)} files: a bundle holds at most {MAX_FILES}")
    files = [_file(e) for e in entries]
    seen: set[str] = set()
    for f in files:
        if f.path in seen:
            raise ValueError(f"{f.path!r} is listed twice")
        seen.add(f.path)
    return files


async def verify(
    jws: str, plugin_id: str, key_for: Callable[[str], Awaitable[PyJWK]]
) -> Manifest:
    """§9.2 steps 2 and 3, in order. `key_for(kid)` gives the published key of that id (and
    raises TesseraError if there is none). Any failure is BadManifest."""
    # Step 2: a key of the JWKS, EdDSA, a signature that holds.
    try:
        header = jwt.get_unverified_header(jws)
    except jwt.PyJWTError as e:
        raise BadManifest(plugin_id, f"header: {e}") from e
    if header.get("alg") != "EdDSA":
        raise BadManifest(plugin_id, f"alg {header.get('alg')!r}, not 'EdDSA'")
    kid = header.get("kid")
    if not isinstance(kid, str):
        raise BadManifest(plugin_id, "no kid")
    try:
        key = await key_for(kid)
    except TesseraError as e:
        if e.code == "unavailable":
            raise
        raise BadManifest(plugin_id, f"kid {kid!r} is not a platform key") from e
    try:
        claims = jwt.decode(
            jws,
            key=key.key,
            algorithms=["EdDSA"],
            # A manifest does not expire (a newer version replaces it), and its `iat` is
            # the broker's clock, not a validity bound.
            options={
                "require": [],
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
                "verify_aud": False,
                "verify_iss": False,
            },
        )
    except jwt.PyJWTError as e:
        raise BadManifest(plugin_id, f"signature or claims: {e}") from e
    # Step 3: issuer, kind, plugin, file list.
    if claims.get("iss") != ISSUER:
        raise BadManifest(plugin_id, f"issuer {claims.get('iss')!r}, not {ISSUER!r}")
    if claims.get("kind") != KIND:
        raise BadManifest(plugin_id, f"kind {claims.get('kind')!r}, not {KIND!r}")
    if claims.get("plugin_id") != plugin_id:
        raise BadManifest(plugin_id, f"signed for plugin {claims.get('plugin_id')!r}")
    version, iat = claims.get("version"), claims.get("iat")
    for name, value in (("version", version), ("iat", iat)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise BadManifest(plugin_id, f"{name} is not an unsigned integer")
    try:
        files = check_files(claims.get("files"))
    except ValueError as e:
        raise BadManifest(plugin_id, str(e)) from e
    assert isinstance(version, int) and isinstance(iat, int)
    return Manifest(plugin_id, version, iat, files, jws)
