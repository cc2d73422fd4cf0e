"""The client-app face: log in, get plugin tokens, call plugin servers, send data packets."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from dataclasses import dataclass, field
from typing import Any, Mapping

import msgpack
from nats.aio.client import Client as NATS

from . import bus, data
from .errors import TesseraError

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
        msg = await bus.request(self.nc, self._subject("keys"), b"")
        jwks: dict[str, Any] = json.loads(msg.data)
        return jwks

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
