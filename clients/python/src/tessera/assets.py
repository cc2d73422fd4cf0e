"""Plugin static assets, the client side (docs/protocol.md §9.1, §9.2): the latest signed
manifest, verified with the broker's JWKS, and blobs checked against it.

1. the latest manifest: a direct get of `<PREFIX>_ASSET_VERSIONS` / `<plugin_id>`
   (`Client.asset_manifest`); nothing there is `not_found`;
2. its JWS verified with a key from `P.keys`, 3. its claims and file list checked
   (`manifest.verify`: BadManifest otherwise);
4. each fetched file read from object `blob/<sha256>` and accepted only with exactly
   `size` bytes of that SHA-256 (`read_blob`: CorruptedAsset naming the path otherwise).

The bundle cache (HTML/CSS/JS kept on disk) is `cache.py`.
"""

from __future__ import annotations

import hashlib
from typing import Awaitable, Callable, Protocol

from nats.js import JetStreamContext

from . import direct
from .errors import BadManifest, CorruptedAsset, TesseraError
from .manifest import AssetFile, Manifest

#: How a download reports its bytes as they arrive (e.g. for a progress bar).
OnBytes = Callable[[int], None]


class Sink(Protocol):
    def write(self, data: bytes, /) -> object: ...


def assets_bucket(prefix: str) -> str:
    """`<PREFIX>_ASSETS`: the object store of blobs (and manifest history)."""
    return _js_name(prefix, "ASSETS")


def versions_bucket(prefix: str) -> str:
    """`<PREFIX>_ASSET_VERSIONS`: plugin id -> the latest signed manifest."""
    return _js_name(prefix, "ASSET_VERSIONS")


def _js_name(prefix: str, name: str) -> str:
    return f"{prefix.replace('.', '_').upper()}_{name}"


def blob_name(sha256_hex: str) -> str:
    return f"blob/{sha256_hex}"


async def latest_manifest(
    js: JetStreamContext,
    prefix: str,
    plugin_id: str,
    verify: Callable[[str], Awaitable[Manifest]],
) -> Manifest:
    """§9.2 step 1 (the KV entry; none or a delete marker is `not_found`), then `verify`."""
    raw = await direct.kv_get(js, versions_bucket(prefix), plugin_id)
    if raw is None:
        raise TesseraError("not_found", f"no assets published for plugin {plugin_id!r}")
    try:
        jws = raw.decode()
    except UnicodeDecodeError as e:
        raise BadManifest(plugin_id, "not UTF-8") from e
    return await verify(jws)


async def read_blob(
    js: JetStreamContext,
    prefix: str,
    file: AssetFile,
    out: Sink,
    on_bytes: OnBytes | None = None,
) -> None:
    """§9.2 step 4: writes `file`'s blob to `out`, taking never more than `size` bytes, and
    raises CorruptedAsset unless it is exactly `size` bytes with SHA-256 `sha256`. On an
    error `out` holds bytes that must not be used."""
    bucket = assets_bucket(prefix)
    info = await direct.object_info(js, bucket, blob_name(file.sha256))
    if info is None:
        raise CorruptedAsset(file.path, "its blob is missing from the store")
    if info.size != file.size:
        raise CorruptedAsset(
            file.path, f"the store holds {info.size} bytes, the manifest says {file.size}"
        )
    digest = hashlib.sha256()
    total = 0
    async for chunk in direct.chunks(js, bucket, info):
        total += len(chunk)
        if total > file.size:
            raise CorruptedAsset(file.path, f"more than the {file.size} bytes the manifest says")
        digest.update(chunk)
        out.write(chunk)
        if on_bytes is not None:
            on_bytes(len(chunk))
    actual = digest.hexdigest()
    if total != file.size or actual != file.sha256:
        raise CorruptedAsset(
            file.path,
            f"expected {file.size} bytes with sha256 {file.sha256}, "
            f"got {total} bytes with sha256 {actual}",
        )
