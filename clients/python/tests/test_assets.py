"""Plugin assets against a real stack: bundles published with the Rust CLI
(`tessera assets publish`) are read in Python with nats-py's stock direct gets, verified,
cached; a corrupted blob and manifests that are not the platform's for the plugin are
refused and leave the cache as it was."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import nats
import pytest

from tessera import BadManifest, Client, CorruptedAsset, TesseraError
from tessera import client_inbox, new_inbox_key
from tessera.bus import BusUrl

LOGO = bytes(range(256)) * 4
APP_JS_V1 = b"console.log('v1');"
APP_JS_V2 = b"console.log('v2');"


def write(root: Path, rel: str, data: bytes) -> None:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_bytes(data)


def site(root: Path) -> Path:
    write(root, "index.html", b"<!doctype html><p>hello</p>")
    write(root, "css/app.css", b"body { color: teal }")
    write(root, "js/app.js", APP_JS_V1)
    write(root, "img/logo.png", LOGO)
    return root


def cached(cache: Path, plugin_id: str) -> dict[str, bytes]:
    files = cache / plugin_id / "files"
    return {
        p.relative_to(files).as_posix(): p.read_bytes() for p in files.rglob("*") if p.is_file()
    }


async def publish(stack, plugin_id: str, src: Path) -> None:  # type: ignore[no-untyped-def]
    # In a thread: the CLI's publish must not stall this event loop's connections.
    await asyncio.to_thread(stack.tessera, "assets", "publish", plugin_id, str(src))


async def role_connection(stack, env_key: str) -> nats.aio.client.Client:  # type: ignore[no-untyped-def]
    url = BusUrl.parse(stack.env[env_key])
    return await nats.connect(servers=url.servers, user=url.user, password=url.password)


async def test_a_rust_published_bundle_is_cached_and_updated_moving_only_what_changed(
    stack, tmp_path  # type: ignore[no-untyped-def]
) -> None:
    stack.tessera("routes", "set", "pysite", "demo")
    src = site(tmp_path / "site")
    cache = tmp_path / "cache"
    await publish(stack, "pysite", src)
    async with await Client.connect(stack.env["NATS_URL"]) as client:
        m = await client.asset_manifest("pysite")
        assert (m.plugin_id, m.version) == ("pysite", 1)
        paths = [f.path for f in m.files]
        assert paths == ["css/app.css", "img/logo.png", "index.html", "js/app.js"]

        first = await client.download_bundle("pysite", cache)
        assert (first.version, first.fetched, first.reused, first.removed) == (1, 3, 0, 0)
        assert cached(cache, "pysite") == {
            "index.html": (src / "index.html").read_bytes(),
            "css/app.css": (src / "css/app.css").read_bytes(),
            "js/app.js": APP_JS_V1,
        }
        assert (cache / "pysite" / "manifest.jws").read_text() == m.jws
        # Images are fetched on demand, verified, and never cached.
        assert await client.fetch_asset("pysite", "img/logo.png") == LOGO

        # Version 2: one file changed, one removed, one added.
        write(src, "js/app.js", APP_JS_V2)
        (src / "css" / "app.css").unlink()
        write(src, "about.html", b"<p>about</p>")
        await publish(stack, "pysite", src)
        second = await client.download_bundle("pysite", cache)
        assert (second.version, second.fetched, second.reused, second.removed) == (2, 2, 1, 1)
        assert second.bytes == len(APP_JS_V2) + len(b"<p>about</p>")
        assert cached(cache, "pysite") == {
            "index.html": (src / "index.html").read_bytes(),
            "about.html": b"<p>about</p>",
            "js/app.js": APP_JS_V2,
        }
        latest = await client.asset_manifest("pysite")
        assert (cache / "pysite" / "manifest.jws").read_text() == latest.jws
        again = await client.download_bundle("pysite", cache)
        assert (again.fetched, again.reused, again.removed) == (0, 3, 0)

        with pytest.raises(TesseraError) as unknown:
            await client.asset_manifest("nothing-published")
        assert unknown.value.code == "not_found"
        for bad in ["../pysite", "a.b", "*", ""]:
            with pytest.raises(TesseraError) as bad_id:
                await client.download_bundle(bad, cache)
            assert bad_id.value.code == "bad_request"
        with pytest.raises(TesseraError) as unlisted:
            await client.fetch_asset("pysite", "css/app.css")
        assert unlisted.value.code == "not_found"


async def test_a_corrupted_blob_is_refused_naming_the_path_and_the_cache_keeps_its_copy(
    stack, tmp_path  # type: ignore[no-untyped-def]
) -> None:
    stack.tessera("routes", "set", "pycorrupt", "demo")
    src = site(tmp_path / "site")
    cache = tmp_path / "cache"
    await publish(stack, "pycorrupt", src)
    async with await Client.connect(stack.env["NATS_URL"]) as client:
        await client.download_bundle("pycorrupt", cache)
        manifest_v1 = (cache / "pycorrupt" / "manifest.jws").read_bytes()
        write(src, "js/app.js", APP_JS_V2)
        await publish(stack, "pycorrupt", src)

        # The admin may write any blob: overwrite the new one with other bytes of the same
        # size, so only the digest can tell.
        evil = b"console.log('ev');"
        assert len(evil) == len(APP_JS_V2)
        admin = await role_connection(stack, "TESSERA_ADMIN_URL")
        try:
            store = await admin.jetstream().object_store("TESSERA_ASSETS")
            await store.put(f"blob/{hashlib.sha256(APP_JS_V2).hexdigest()}", evil)
        finally:
            await admin.close()

        with pytest.raises(CorruptedAsset) as refused:
            await client.download_bundle("pycorrupt", cache)
        assert refused.value.path == "js/app.js"
        assert (refused.value.code, refused.value.retryable) == ("package_rejected", False)
        # Nothing half-written: the old file, the old manifest, no staging left behind.
        assert cached(cache, "pycorrupt")["js/app.js"] == APP_JS_V1
        assert (cache / "pycorrupt" / "manifest.jws").read_bytes() == manifest_v1
        assert sorted(p.name for p in (cache / "pycorrupt").iterdir()) == ["files", "manifest.jws"]
        with pytest.raises(CorruptedAsset):
            await client.fetch_asset("pycorrupt", "js/app.js")


async def test_a_manifest_not_the_platforms_for_this_plugin_is_refused(
    stack, tmp_path  # type: ignore[no-untyped-def]
) -> None:
    stack.tessera("routes", "set", "pygenuine", "demo")
    await publish(stack, "pygenuine", site(tmp_path / "site"))
    async with await Client.connect(stack.env["NATS_URL"]) as client:
        genuine = await client.asset_manifest("pygenuine")
        # Only the broker role may move a manifest pointer: put pygenuine's genuine,
        # platform-signed manifest under another plugin, and a made-up one under a third.
        broker = await role_connection(stack, "TESSERA_BROKER_URL")
        try:
            js = broker.jetstream()
            await js.publish("$KV.TESSERA_ASSET_VERSIONS.pyother", genuine.jws.encode())
            header, payload, _ = genuine.jws.split(".")
            forged = f"{header}.{payload}.{'A' * 86}"
            await js.publish("$KV.TESSERA_ASSET_VERSIONS.pyforged", forged.encode())
            # A delete marker (a KV delete) over a genuine manifest: nothing is published.
            await js.publish("$KV.TESSERA_ASSET_VERSIONS.pydeleted", genuine.jws.encode())
            await js.publish(
                "$KV.TESSERA_ASSET_VERSIONS.pydeleted", b"", headers={"KV-Operation": "DEL"}
            )
        finally:
            await broker.close()

        for plugin in ["pyother", "pyforged"]:
            with pytest.raises(BadManifest) as refused:
                await client.download_bundle(plugin, tmp_path / "cache")
            assert refused.value.plugin_id == plugin
            assert not (tmp_path / "cache" / plugin / "manifest.jws").exists()
        with pytest.raises(TesseraError) as deleted:
            await client.asset_manifest("pydeleted")
        assert deleted.value.code == "not_found"
        with pytest.raises(BadManifest) as other:
            await client.asset_manifest("pyother")
        assert "signed for plugin 'pygenuine'" in other.value.message


async def test_a_client_app_reads_assets_with_direct_gets_only(stack) -> None:  # type: ignore[no-untyped-def]
    """§9.6: nats-py's object-store API starts with a stream info request, which a client
    app may not send (nor create the consumer its `get` reads chunks with); the direct
    gets of §9.1 are what it has, and the SDK uses nothing else."""
    url = BusUrl.parse(stack.env["NATS_URL"])
    key = new_inbox_key()
    violations: list[str] = []
    refused = asyncio.Event()

    async def on_error(e: Exception) -> None:
        violations.append(str(e).lower())
        refused.set()

    nc = await nats.connect(
        servers=url.servers,
        user="client",
        password=f"{url.password}:{key}",
        inbox_prefix=client_inbox(key),
        error_cb=on_error,
    )
    try:
        # The refusal is an asynchronous -ERR; the request itself ends at its timeout.
        with pytest.raises(Exception):
            await nc.jetstream(prefix="tessera.js", timeout=1).object_store("TESSERA_ASSETS")
        await asyncio.wait_for(refused.wait(), timeout=5)
        assert violations == [
            'nats: permissions violation for publish to "tessera.js.stream.info.obj_tessera_assets"'
        ]
    finally:
        await nc.close()
