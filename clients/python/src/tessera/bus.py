"""Connecting to the bus and sending requests (docs/protocol.md §1, §3.10, §3.11)."""

from __future__ import annotations

import base64
import hashlib
import os
import uuid
from dataclasses import dataclass
from typing import Any, Mapping
from urllib.parse import unquote, urlsplit

import msgpack
import nats
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.errors import NoRespondersError, TimeoutError as NatsTimeout

from .errors import TesseraError, from_reply, unavailable

#: The bus user of every client app (§3.11).
CLIENT_USER = "client"
#: The first token of every client inbox.
CLIENT_INBOX_ROOT = "_C_INBOX"
#: Between the client password and the inbox key in a client connection's password.
KEY_SEPARATOR = ":"
#: Request bodies over this are refused (§1).
MAX_BODY = 64 * 1024
DEFAULT_TIMEOUT = 5.0
MAX_ID_LEN = 64
ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def b64url(data: bytes) -> str:
    """base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def check_id(what: str, value: str) -> None:
    """Ids that become subject tokens, KV keys or directory names (§6):
    `[A-Za-z0-9_-]{1,64}`; anything else is `bad_request` before any round trip."""
    if not (1 <= len(value) <= MAX_ID_LEN and all(c in ID_CHARS for c in value)):
        raise TesseraError(
            "bad_request",
            f"{what} {value[:80]!r} is invalid: use 1-64 characters from A-Z a-z 0-9 _ -",
        )


def new_inbox_key() -> str:
    """A fresh inbox key: 32 random bytes, base64url (43 characters)."""
    return b64url(os.urandom(32))


def client_inbox(key: str) -> str:
    """The inbox prefix an inbox key opens: `_C_INBOX.` + the first 32 hex digits of
    SHA-256(key)."""
    return f"{CLIENT_INBOX_ROOT}.{hashlib.sha256(key.encode()).hexdigest()[:32]}"


def client_password(password: str, key: str) -> str:
    """A client connection's CONNECT password: `<client password>:<inbox key>`."""
    return f"{password}{KEY_SEPARATOR}{key}"


@dataclass(frozen=True)
class BusUrl:
    """A NATS URL split into servers and credentials (credentials go in the options, so a
    password may hold characters a URL would need escaped)."""

    servers: list[str]
    user: str | None
    password: str | None

    @staticmethod
    def parse(url: str) -> "BusUrl":
        servers: list[str] = []
        user = password = None
        for part in (p.strip() for p in url.split(",")):
            if not part:
                continue
            u = urlsplit(part if "://" in part else f"nats://{part}")
            if u.username is not None and user is None:
                user = unquote(u.username)
                password = unquote(u.password or "")
            host = u.hostname or "127.0.0.1"
            servers.append(f"{u.scheme}://{host}:{u.port or 4222}")
        if not servers:
            raise TesseraError("bad_request", "no NATS server in the URL")
        return BusUrl(servers, user, password)


async def connect(
    url: str,
    name: str,
    *,
    user: str | None = None,
    inbox_prefix: str | None = None,
    **options: Any,
) -> NATS:
    """Connects with the credentials of `url` (`user` overrides its user name). User
    `client` gets an inbox key of its own, in its password, and the inbox it opens (§3.11)."""
    bus = BusUrl.parse(url)
    user = user or bus.user
    password = bus.password
    if user == CLIENT_USER:
        key = new_inbox_key()
        password = client_password(password or "", key)
        inbox_prefix = client_inbox(key)
    kwargs: dict[str, Any] = {"servers": bus.servers, "name": name, **options}
    if user is not None:
        kwargs["user"] = user
        kwargs["password"] = password or ""
    if inbox_prefix is not None:
        kwargs["inbox_prefix"] = inbox_prefix
    try:
        return await nats.connect(**kwargs)
    except Exception as e:  # nats-py raises several kinds; the caller needs one.
        raise unavailable(f"cannot connect to NATS: {type(e).__name__}: {e}") from e


def headers_of(msg: Msg) -> dict[str, str]:
    return dict(msg.headers or {})


async def request(
    nc: NATS,
    subject: str,
    body: bytes,
    headers: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Msg:
    """A request whose error reply is raised as TesseraError; no responders and timeouts
    are `unavailable` (§2, "Not typed errors")."""
    hdrs = {"Tessera-Request-Id": uuid.uuid4().hex, **(headers or {})}
    try:
        msg = await nc.request(subject, body, timeout=timeout, headers=hdrs)
    except NoRespondersError as e:
        raise unavailable(f"nobody serves {subject}") from e
    except NatsTimeout as e:
        raise unavailable(f"no reply from {subject} within {timeout}s") from e
    error = from_reply(headers_of(msg), msg.data)
    if error is not None:
        raise error
    return msg


async def call(
    nc: NATS,
    subject: str,
    schema: str,
    fields: Mapping[str, Any],
    timeout: float = DEFAULT_TIMEOUT,
) -> dict[str, Any]:
    """A MessagePack request with schema `schema` (e.g. `token.request`, version 1) and a
    MessagePack map reply."""
    msg = await request(
        nc, subject, msgpack.packb(dict(fields)), {"Tessera-Schema": f"{schema}/1"}, timeout
    )
    reply = msgpack.unpackb(msg.data, raw=False)
    if not isinstance(reply, dict):
        raise TesseraError("internal", f"the reply of {subject} is not a map")
    return reply
