"""The client-app face: log in, get plugin tokens, call plugin servers, send data packets."""

from __future__ import annotations

import asyncio
import io
import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import msgpack
from jwt import PyJWK
from nats.aio.client import Client as NATS

from . import assets, bus, cache, data, direct, manifest, sealed
from .errors import SealError, TesseraError
from .keys import Keys

DEFAULT_PREFIX = "tessera"


@dataclass(frozen=True)
class Login:
    account_token: str
    account_id: str
    expires_at: int


@dataclass(frozen=True)
class PluginToken:
    token: str
    token_id: str
    plugin_id: str
    account_id: str
    expires_at: int
    servers: list[str]


@dataclass(frozen=True)
class Reply:
    """A plugin server's answer: its body and headers (e.g. `Tessera-Schema`)."""

    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    def decode(self) -> Any:
        """The body as MessagePack."""
        return msgpack.unpackb(self.body, raw=False)


class Client:
    """A client app's connection (user `client`, an inbox of its own, §3.11)."""

    def __init__(self, nc: NATS, prefix: str = DEFAULT_PREFIX) -> None:
        self.nc = nc
        self.prefix = prefix
        self._keys = Keys(self._fetch_keys)
        # nats-py's stock JetStream context, on the API prefix the client account imports
        # (§9.1): only its direct gets are used, the one JetStream call a client may make.
        self._js = direct.jetstream(nc, prefix, bus.DEFAULT_TIMEOUT)

    @staticmethod
    async def connect(
        url: str | None = None, prefix: str | None = None, name: str = "tessera-python-client"
    ) -> "Client":
        """Connects with `url` (default `$NATS_URL`), e.g.
        `nats://client:<client password>@127.0.0.1:4222`."""
        url = url or os.environ.get("NATS_URL")
        if not url:
            raise TesseraError("bad_request", "no URL and no NATS_URL")
        prefix = prefix or os.environ.get("TESSERA_PREFIX") or DEFAULT_PREFIX
        return Client(await bus.connect(url, name), prefix)

    async def close(self) -> None:
        await self.nc.drain()

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _subject(self, rest: str) -> str:
        return f"{self.prefix}.{rest}"

    async def login(self, username: str, password: str) -> Login:
        """A local login (§3.1)."""
        reply = await bus.call(
            self.nc,
            self._subject("auth.login"),
            "auth.login",
            {"username": username, "password": password},
        )
        return Login(reply["account_token"], reply["account_id"], reply["expires_at"])

    async def login_with_app(self, app_id: str, params: Mapping[str, str]) -> Login:
        """A third-party login through an app's auth package (§3.1)."""
        reply = await bus.call(
            self.nc,
            self._subject("auth.login"),
            "auth.login",
            {"app_id": app_id, "params": dict(params)},
        )
        return Login(reply["account_token"], reply["account_id"], reply["expires_at"])

    async def request_token(
        self,
        account_token: str,
        plugin_id: str,
        *,
        device_id: str | None = None,
        user_ip: str | None = None,
        idempotency_key: str | None = None,
        attempts: int = 3,
    ) -> PluginToken:
        """A plugin token (§3.4). Retryable failures are retried with the same idempotency
        key, so a retry never mints a second token for a request that succeeded."""
        fields: dict[str, Any] = {
            "account_token": account_token,
            "plugin_id": plugin_id,
            "idempotency_key": idempotency_key or str(uuid.uuid4()),
        }
        if device_id is not None:
            fields["device_id"] = device_id
        if user_ip is not None:
            fields["user_ip"] = user_ip
        for attempt in range(1, attempts + 1):
            try:
                r = await bus.call(
                    self.nc, self._subject("token.request"), "token.request", fields
                )
                return PluginToken(
                    r["token"],
                    r["token_id"],
                    r["plugin_id"],
                    r["account_id"],
                    r["expires_at"],
                    list(r["servers"]),
                )
            except TesseraError as e:
                if not e.retryable or attempt == attempts:
                    raise
                wait_ms = e.retry_after_ms if e.retry_after_ms is not None else 100 * attempt
                await asyncio.sleep(wait_ms / 1000)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def call(
        self, server_id: str, operation: str, token: str, body: bytes = b"", timeout: float = 5.0
    ) -> Reply:
        """Calls operation `operation` of plugin server `server_id` with a plugin token (§3.9)."""
        msg = await bus.request(
            self.nc,
            self._subject(f"svc.{server_id}.{operation}"),
            body,
            {"Authorization": f"Bearer {token}"},
            timeout,
        )
        return Reply(msg.data, bus.headers_of(msg))

    async def keys(self) -> dict[str, Any]:
        """The broker's public keys, a JWKS (§3.7)."""
        jwks: dict[str, Any] = json.loads(await self._fetch_keys())
        return jwks

    async def _fetch_keys(self) -> bytes:
        msg = await bus.request(self.nc, self._subject("keys"), b"")
        return msg.data

    # -- plugin assets (§9.1, §9.2) ---------------------------------------------------

    async def asset_manifest(self, plugin_id: str) -> manifest.Manifest:
        """The latest manifest of `plugin_id`, verified as §9.2 says (the KV entry, the JWS
        with a key from `P.keys`, the claims and file list). `not_found` if nothing is
        published; BadManifest if it is not the platform's manifest of this plugin."""
        # The id becomes a KV key and, in download_bundle, a directory name.
        bus.check_id("plugin_id", plugin_id)

        async def key_for(kid: str) -> PyJWK:
            return await self._keys.key(kid)

        async def verify(jws: str) -> manifest.Manifest:
            return await manifest.verify(jws, plugin_id, key_for)

        return await assets.latest_manifest(self._js, self.prefix, plugin_id, verify)

    async def fetch_asset(self, plugin_id: str, path: str) -> bytes:
        """One file of the latest version (an image, anything not in the bundle cache),
        verified against the signed manifest: CorruptedAsset naming `path` otherwise."""
        return await self.fetch_asset_of(await self.asset_manifest(plugin_id), path)

    async def fetch_asset_of(
        self, verified: manifest.Manifest, path: str, on_bytes: assets.OnBytes | None = None
    ) -> bytes:
        """One file of a manifest already verified (saves the manifest round trips)."""
        file = verified.file(path)
        if file is None:
            raise TesseraError(
                "not_found",
                f"{path!r} is not in version {verified.version} of {verified.plugin_id!r}",
            )
        out = io.BytesIO()
        await assets.read_blob(self._js, self.prefix, file, out, on_bytes)
        return out.getvalue()

    async def download_bundle(
        self,
        plugin_id: str,
        cache_dir: str | Path,
        on_bytes: assets.OnBytes | None = None,
    ) -> cache.BundleReport:
        """Brings the cached HTML/CSS/JS of `plugin_id` under `cache_dir`
        (`<cache_dir>/<plugin_id>/files/...`) up to the latest signed version, fetching
        only files whose cached bytes differ and verifying every one. On any error the
        cache is left as it was."""
        verified = await self.asset_manifest(plugin_id)

        async def read_to(
            file: manifest.AssetFile, dest: Path, progress: assets.OnBytes | None
        ) -> None:
            with open(dest, "wb") as out:
                await assets.read_blob(self._js, self.prefix, file, out, progress)
                out.flush()
                os.fsync(out.fileno())

        return await cache.update(verified, cache_dir, read_to, on_bytes)

    # -- sealed data (§9.4, §9.5) -----------------------------------------------------

    async def plugin_key(self, plugin_id: str) -> dict[str, Any]:
        """`plugin_id`'s registered public key: `{plugin_id, public_key, suite,
        created_at}` (§9.4); `not_found` if none is registered."""
        return await bus.call(
            self.nc, self._subject("plugins.key"), "plugins.key", {"plugin_id": plugin_id}
        )

    async def seal(self, plugin_id: str, plaintext: bytes) -> bytes:
        """`plaintext` sealed to `plugin_id`'s registered key (the MessagePack box of
        §9.5): only the holder of the plugin's private key opens it."""
        bus.check_id("plugin_id", plugin_id)
        key = await self.plugin_key(plugin_id)
        if key.get("suite") != sealed.SUITE or not isinstance(key.get("public_key"), str):
            raise SealError(
                "bad_key", f"plugin {plugin_id!r} has a key of suite {key.get('suite')!r}"
            )
        return sealed.seal(key["public_key"], plugin_id, plaintext)

    async def data(
        self,
        app: data.ClientApp,
        plugin_token: str,
        operation: str,
        body: bytes,
        verification: data.Verification,
        query: str = "",
    ) -> Reply:
        """Sends a signed data-access packet through the gateway (§8.1). A retry must be a
        new packet (a new nonce), so none is made here."""
        fields = data.packet(app, plugin_token, operation, body, verification, query)
        msg = await bus.request(
            self.nc,
            self._subject(f"data.{verification.plugin_id}"),
            msgpack.packb(fields),
            {"Tessera-Schema": "data.request/1"},
        )
        return Reply(msg.data, bus.headers_of(msg))
