"""The plugin-server face (docs/protocol.md §3.8-§3.10): two connections with the id's own
credentials, the distribution consumer, the token store, and operations served with the
checks of §3.9.

    ps = PluginServer.from_url(os.environ["TESSERA_PLUGIN_SERVER_URL"])

    @ps.operation("hello")
    async def hello(req: Request) -> bytes:
        return b"hello " + req.account_id.encode()

    await ps.run()
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Iterable, Union

import msgpack
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from . import bus
from .distribution import Distribution
from .errors import TesseraError, unavailable
from .keys import Keys, unverified_claims
from .tokens import StoredToken, TokenStore

log = logging.getLogger("tessera.plugin_server")

SERVING_USER = "plugin-server."
DISTRIBUTION_USER = "plugin-server-dist."
BEARER = "Bearer "
SWEEP_EVERY = 60.0


@dataclass(frozen=True)
class Request:
    """One operation request, from a caller whose plugin token checked out."""

    operation: str
    body: bytes
    headers: dict[str, str]
    token: StoredToken

    @property
    def account_id(self) -> str:
        return self.token.account_id

    @property
    def plugin_id(self) -> str:
        return self.token.plugin_id

    @property
    def data_app(self) -> str | None:
        """Through the gateway (§8.1 step 8): the client app, user IP, device and query."""
        return self.headers.get("Tessera-Data-App")

    @property
    def data_user_ip(self) -> str | None:
        return self.headers.get("Tessera-Data-User-Ip")

    @property
    def data_device(self) -> str | None:
        return self.headers.get("Tessera-Data-Device")

    @property
    def data_query(self) -> str:
        return self.headers.get("Tessera-Data-Query", "")


@dataclass(frozen=True)
class Response:
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


#: A handler returns bytes, a map (sent as MessagePack) or a Response.
Result = Union[bytes, dict[str, Any], Response]
Handler = Callable[[Request], Awaitable[Result]]


@dataclass(frozen=True)
class Operation:
    handler: Handler
    plugins: frozenset[str] | None
    schema: str | None


class PluginServer:
    def __init__(
        self,
        url: str,
        server_id: str | None = None,
        prefix: str | None = None,
        clock_leeway: float = 5.0,
    ) -> None:
        """`url` is what `tessera plugin-servers add ID` printed,
        `nats://plugin-server.<id>:<secret>@host:port`."""
        parsed = bus.BusUrl.parse(url)
        user = parsed.user or ""
        if server_id is None:
            if not user.startswith(SERVING_USER):
                raise TesseraError("bad_request", "the URL's user is not plugin-server.<id>")
            server_id = user[len(SERVING_USER) :]
        self.url = url
        self.server_id = server_id
        self.prefix = prefix or os.environ.get("TESSERA_PREFIX") or "tessera"
        self.leeway = clock_leeway
        self.tokens = TokenStore(server_id, clock_leeway)
        self._operations: dict[str, Operation] = {}
        self._serving: NATS | None = None
        self._dist_nc: NATS | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._changed = asyncio.Condition()
        self.keys = Keys(self._fetch_keys)
        self.distribution: Distribution | None = None

    @staticmethod
    def from_url(url: str, **kwargs: Any) -> "PluginServer":
        return PluginServer(url, **kwargs)

    def operation(
        self, name: str, *, plugins: Iterable[str] | None = None, schema: str | None = None
    ) -> Callable[[Handler], Handler]:
        """Serves operation `name` with the decorated coroutine. `plugins`: the plugin ids
        whose tokens it serves (default: any plugin routed here; another is `forbidden`).
        `schema`: the `Tessera-Schema` of its replies. Raise TesseraError for a typed error."""

        def register(handler: Handler) -> Handler:
            self._operations[name] = Operation(
                handler, frozenset(plugins) if plugins is not None else None, schema
            )
            return handler

        return register

    @property
    def inbox_prefix(self) -> str:
        return f"_PS_INBOX.{self.prefix}.{self.server_id}"

    async def start(self) -> None:
        """Connects both connections, opens the distribution consumer and serves. Returns
        once requests can be served."""
        name = f"tessera-python-plugin-server-{self.server_id}"
        self._serving = await bus.connect(
            self.url, name, user=SERVING_USER + self.server_id, inbox_prefix=self.inbox_prefix
        )

        async def reconnected() -> None:
            if self.distribution is not None:
                self.distribution.reconnected()

        self._dist_nc = await bus.connect(
            self.url,
            name + "-dist",
            user=DISTRIBUTION_USER + self.server_id,
            inbox_prefix=self.inbox_prefix,
            reconnected_cb=reconnected,
        )
        self.distribution = Distribution(self._dist_nc, self.prefix, self.server_id, self._apply)
        await self.keys.refresh()
        self._tasks.append(asyncio.create_task(self.distribution.run()))
        self._tasks.append(asyncio.create_task(self._sweep()))
        await self.distribution.opened.wait()
        await self._serving.subscribe(
            f"{self.prefix}.svc.{self.server_id}.*",
            queue=f"{self.prefix}-svc-{self.server_id}",
            cb=self._serve,
        )
        await self._serving.flush()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        for nc in (self._serving, self._dist_nc):
            if nc is not None and not nc.is_closed:
                await nc.drain()

    async def run(self) -> None:
        """start(), then serve until cancelled."""
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Waits until `predicate` holds after an applied distribution event (e.g.
        `lambda: ps.tokens.has_id(tid)`)."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(predicate), timeout)

    # -- distribution ---------------------------------------------------------------

    async def _fetch_keys(self) -> bytes:
        assert self._serving is not None
        msg = await bus.request(self._serving, f"{self.prefix}.keys", b"")
        return msg.data

    async def _apply(self, msg: Msg) -> None:
        schema = (msg.headers or {}).get("Tessera-Schema", "dist.event/1")
        if schema not in ("dist.event/1", "dist.event"):
            return
        try:
            event = msgpack.unpackb(msg.data, raw=False)
            kind = event["kind"]
        except Exception:
            return
        if kind == "token" and isinstance(event.get("token"), str):
            self._store(event["token"])
        elif kind == "tokens" and isinstance(event.get("tokens"), list):
            # What brokers publish: the tokens issued while the previous event was acked.
            for token in event["tokens"]:
                if isinstance(token, str):
                    self._store(token)
        elif kind == "revoke" and isinstance(event.get("token_ids"), list):
            self.tokens.revoke([str(t) for t in event["token_ids"]])
        async with self._changed:
            self._changed.notify_all()

    def _store(self, token: str) -> None:
        """A distributed token, stored unverified (its signature is checked on first use)."""
        try:
            claims = unverified_claims(token)
            self.tokens.check_claims(claims)
            self.tokens.put(token, claims, verified=False)
        except TesseraError as e:
            log.info("skipping a distributed token: %s", e.message)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_EVERY)
            self.tokens.sweep()

    # -- serving (§3.9) -------------------------------------------------------------

    async def _authenticate(self, token: str, op: Operation) -> StoredToken:
        stored = self.tokens.get(token)
        if stored is None:
            stored = await self._first_sight(token)
        elif not stored.verified:
            try:
                await self.keys.verify(token, self.leeway)
            except TesseraError as e:
                if e.code == "unauthenticated":
                    self.tokens.drop(token)
                raise
            stored.verified = True
        if stored.expires_at + self.leeway <= time.time():
            raise TesseraError("unauthenticated", "token expired [expired]")
        if op.plugins is not None and stored.plugin_id not in op.plugins:
            raise TesseraError(
                "forbidden", f"this operation does not serve plugin {stored.plugin_id}"
            )
        return stored

    async def _first_sight(self, token: str) -> StoredToken:
        """A token the distribution has not brought yet: verify, then ask the broker."""
        claims = await self.keys.verify(token, self.leeway)
        self.tokens.check_claims(claims)
        if self.tokens.is_revoked(str(claims.get("jti"))):
            raise TesseraError("unauthenticated", "token revoked [revoked]")
        assert self._serving is not None
        try:
            reply = await bus.call(
                self._serving,
                f"{self.prefix}.token.introspect",
                "token.introspect",
                {"token": token},
            )
        except TesseraError as e:
            raise unavailable(f"introspection failed: {e.message}") from e
        if not reply.get("active"):
            raise TesseraError("unauthenticated", "token revoked [revoked]")
        stored = self.tokens.put(token, claims, verified=True)
        if stored is None:
            raise TesseraError("unauthenticated", "token revoked [revoked]")
        return stored

    async def _serve(self, msg: Msg) -> None:
        if not msg.reply:
            return
        headers = bus.headers_of(msg)
        reply_headers = {"Tessera-Request-Id": headers.get("Tessera-Request-Id", "")}
        try:
            if len(msg.data) > bus.MAX_BODY:
                raise TesseraError("payload_too_large", "the body is over 64 KiB")
            operation = msg.subject.rsplit(".", 1)[-1]
            op = self._operations.get(operation)
            if op is None:
                raise TesseraError("not_found", f"no operation {operation}")
            auth = headers.get("Authorization", "")
            token = auth[len(BEARER) :] if auth.startswith(BEARER) else ""
            if not token or len(token) > bus.MAX_BODY:
                raise TesseraError("unauthenticated", "no bearer token [malformed]")
            stored = await self._authenticate(token, op)
            result = await op.handler(Request(operation, msg.data, headers, stored))
            if isinstance(result, Response):
                body, extra = result.body, result.headers
            elif isinstance(result, dict):
                body, extra = msgpack.packb(result), {}
            else:
                body, extra = bytes(result), {}
            if op.schema is not None:
                reply_headers["Tessera-Schema"] = op.schema
            reply_headers.update(extra)
        except TesseraError as e:
            body = e.body()
            reply_headers.update(e.headers())
        except Exception as e:
            log.exception("operation failed")
            err = TesseraError("internal", f"the operation failed: {type(e).__name__}")
            body = err.body()
            reply_headers.update(err.headers())
        assert self._serving is not None
        await self._serving.publish(msg.reply, body, headers=reply_headers)
