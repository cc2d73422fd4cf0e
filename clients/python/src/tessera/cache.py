"""The local bundle cache (docs/protocol.md §9.2, "The SDK's cache"):
`<cache_dir>/<plugin_id>/manifest.jws` (the signed manifest of the cached version) and
`<cache_dir>/<plugin_id>/files/<path>` (its HTML, CSS and JS), the layout the Rust SDK and
`tessera assets fetch` use, so either can update a cache the other made.

An update reuses every cached file whose bytes already have the manifest's digest, stages
the others in `.staging-<uuid>/` and verifies each; only when all are good does it drop
files the new version no longer lists, move the staged ones into place and replace
`manifest.jws` (temp file + rename). A failed update leaves the cache as it was.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable

from .assets import OnBytes
from .manifest import AssetFile, Manifest

MANIFEST_FILE = "manifest.jws"
FILES_DIR = "files"
STAGING_PREFIX = ".staging-"

@dataclass(frozen=True)
class BundleReport:
    """What `Client.download_bundle` did."""

    #: The manifest version now cached.
    version: int
    #: Bundle files fetched from the store.
    fetched: int
    #: Bundle files already cached with the right digest.
    reused: int
    #: Cached files the new version no longer lists, removed.
    removed: int
    #: Bytes fetched.
    bytes: int


def bundle_dir(cache_dir: Path | str, plugin_id: str) -> Path:
    """Where the bundle of `plugin_id` is cached under `cache_dir`."""
    return Path(cache_dir) / plugin_id


def file_digest(path: Path) -> str | None:
    """SHA-256 (hex) of a cached file, or None if it is missing or unreadable."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(64 * 1024), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def cached_paths(root: Path) -> list[str]:
    """Every regular file under `root`, as `/`-separated relative paths."""
    if not root.is_dir():
        return []
    return [p.relative_to(root).as_posix() for p in root.rglob("*") if not p.is_dir()]


async def update(
    manifest: Manifest,
    cache_dir: Path | str,
    read_blob: Callable[[AssetFile, Path, OnBytes | None], Awaitable[None]],
    on_bytes: OnBytes | None = None,
) -> BundleReport:
    """Brings the cached bundle of `manifest.plugin_id` up to `manifest` (verified by the
    caller), fetching with `read_blob(file, dest, on_bytes)` only files whose cached bytes
    differ. On any error the cache is left as it was."""
    root = bundle_dir(cache_dir, manifest.plugin_id)
    files_dir = root / FILES_DIR
    files_dir.mkdir(parents=True, exist_ok=True)
    bundle = [f for f in manifest.files if f.is_bundle_file]
    # The bytes on disk decide, not the cached manifest: a cache edited or damaged by hand
    # is repaired.
    wanted = [f for f in bundle if file_digest(files_dir / f.path) != f.sha256]
    staging = root / f"{STAGING_PREFIX}{uuid.uuid4().hex}"
    try:
        if wanted:
            staging.mkdir()
        for i, f in enumerate(wanted):
            await read_blob(f, staging / str(i), on_bytes)
        removed = _commit(manifest, bundle, wanted, staging, root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return BundleReport(
        version=manifest.version,
        fetched=len(wanted),
        reused=len(bundle) - len(wanted),
        removed=removed,
        bytes=sum(f.size for f in wanted),
    )


def _commit(
    manifest: Manifest,
    bundle: list[AssetFile],
    wanted: list[AssetFile],
    staging: Path,
    root: Path,
) -> int:
    """Drops what the new version no longer lists, moves the verified files into place,
    then replaces the cached manifest. Returns how many files were removed."""
    files_dir = root / FILES_DIR
    keep = {f.path for f in bundle}
    removed = 0
    # Stale files first, so a new `a/b` can replace an old file `a`.
    for rel in cached_paths(files_dir):
        if rel not in keep:
            (files_dir / rel).unlink()
            removed += 1
    for i, f in enumerate(wanted):
        to = files_dir / f.path
        to.parent.mkdir(parents=True, exist_ok=True)
        # A directory left where the file goes (an old `a/` when `a` is now a file).
        if to.is_dir():
            shutil.rmtree(to)
        os.replace(staging / str(i), to)
    tmp = root / f"{MANIFEST_FILE}.tmp"
    tmp.write_text(manifest.jws)
    os.replace(tmp, root / MANIFEST_FILE)
    return removed
