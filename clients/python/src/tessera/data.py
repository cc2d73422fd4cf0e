"""Signed data-access packets (docs/protocol.md §8.1)."""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from dataclasses import dataclass
from typing import Any

from .bus import b64url, b64url_decode
from .errors import TesseraError

SIGNING_TAG = "tessera-data/1"
VERSION = 1


@dataclass(frozen=True)
class Verification:
    """What the plugin server is told about the caller; signed with the packet."""

    plugin_id: str
    user_ip: str
    device_id: str


@dataclass(frozen=True)
class ClientApp:
    """A registered client app: its id and the secret `tessera client-apps add` printed."""

    app_id: str
    secret: bytes

    @staticmethod
    def from_printed(app_id: str, secret: str) -> "ClientApp":
        raw = b64url_decode(secret.strip())
        if len(raw) != 32:
            raise TesseraError("bad_request", "a client-app secret is 32 bytes, base64url")
        return ClientApp(app_id, raw)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def signing_string(
    app_id: str,
    plugin_token: str,
    timestamp_ms: int,
    nonce: str,
    verification: Verification,
    operation: str,
    query: str,
    body: bytes,
    version: int = VERSION,
) -> str:
    """The canonical signing string: ten lines joined by `\\n`, no trailing newline."""
    op_digest = sha256_hex(operation.encode() + b"\n" + query.encode() + b"\n" + body)
    return "\n".join(
        [
            SIGNING_TAG,
            app_id,
            sha256_hex(plugin_token.encode()),
            str(timestamp_ms),
            str(version),
            nonce,
            verification.plugin_id,
            verification.user_ip,
            verification.device_id,
            op_digest,
        ]
    )


def sign(secret: bytes, text: str) -> str:
    """base64url_nopad(HMAC-SHA256(secret, text))."""
    return b64url(hmac.new(secret, text.encode(), hashlib.sha256).digest())


def packet(
    app: ClientApp,
    plugin_token: str,
    operation: str,
    body: bytes,
    verification: Verification,
    query: str = "",
    timestamp_ms: int | None = None,
    nonce: str | None = None,
) -> dict[str, Any]:
    """A signed `data.request/1` body, with a fresh nonce and the current time unless given."""
    ts = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    nonce = b64url(os.urandom(16)) if nonce is None else nonce
    text = signing_string(
        app.app_id, plugin_token, ts, nonce, verification, operation, query, body
    )
    return {
        "version": VERSION,
        "app_id": app.app_id,
        "plugin_token": plugin_token,
        "timestamp": ts,
        "nonce": nonce,
        "operation": operation,
        "query": query,
        "body": bytes(body),
        "verification": {
            "plugin_id": verification.plugin_id,
            "user_ip": verification.user_ip,
            "device_id": verification.device_id,
        },
        "signature": sign(app.secret, text),
    }
