"""Typed errors: the error reply of docs/protocol.md §2, as an exception."""

from __future__ import annotations

from typing import Any, Mapping

import msgpack

#: code -> (status, retryable), the closed set of §2.
CODES: dict[str, tuple[int, bool]] = {
    "bad_request": (400, False),
    "unsupported_version": (400, False),
    "payload_too_large": (413, False),
    "unauthenticated": (401, False),
    "forbidden": (403, False),
    "not_found": (404, False),
    "conflict": (409, False),
    "rate_limited": (429, True),
    "unavailable": (503, True),
    "internal": (500, False),
    "package_mismatch": (503, True),
    "package_failed": (502, False),
    "package_rejected": (422, False),
    "bad_signature": (401, False),
    "stale_timestamp": (401, False),
    "replayed_nonce": (401, False),
    "wrong_plugin": (403, False),
    "unknown_operation": (404, False),
}

# What a client that reads only the status makes of it (§2).
_BY_STATUS = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    413: "payload_too_large",
    422: "bad_request",
    429: "rate_limited",
    502: "internal",
    503: "unavailable",
}

CODE_HEADER = "Nats-Service-Error-Code"
MESSAGE_HEADER = "Nats-Service-Error"


class TesseraError(Exception):
    """A typed error: `code` from the closed set of §2, a human `message`, and whether a
    retry (with the same idempotency key, for tokens) may succeed."""

    def __init__(
        self,
        code: str,
        message: str,
        retryable: bool | None = None,
        retry_after_ms: int | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retryable = CODES.get(code, (500, False))[1] if retryable is None else retryable
        self.retry_after_ms = retry_after_ms

    @property
    def status(self) -> int:
        return CODES.get(self.code, (500, False))[0]

    def body(self) -> bytes:
        """The MessagePack body of this error's reply."""
        fields: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "retryable": self.retryable,
        }
        if self.retry_after_ms is not None:
            fields["retry_after_ms"] = self.retry_after_ms
        body: bytes = msgpack.packb(fields)
        return body

    def headers(self) -> dict[str, str]:
        """The headers of this error's reply (control characters replaced by spaces)."""
        message = "".join(" " if _is_control(c) else c for c in self.message)
        return {CODE_HEADER: str(self.status), MESSAGE_HEADER: message}


def _is_control(c: str) -> bool:
    """Unicode category Cc (U+0000-U+001F, U+007F-U+009F), what Rust's `char::is_control`
    and so the workers replace."""
    return ord(c) < 32 or 127 <= ord(c) <= 159


def unavailable(message: str) -> TesseraError:
    return TesseraError("unavailable", message, True)


def from_reply(headers: Mapping[str, str], data: bytes) -> TesseraError | None:
    """The error a reply carries, or None if it is not an error (§2: a reply is an error if
    and only if it has `Nats-Service-Error-Code`)."""
    status_text = headers.get(CODE_HEADER)
    if status_text is None:
        return None
    try:
        status = int(status_text)
    except ValueError:
        status = 500
    body = _error_body(data)
    if body is None:
        code = _BY_STATUS.get(status, "internal")
        return TesseraError(code, headers.get(MESSAGE_HEADER, ""))
    return TesseraError(*body)


def _error_body(data: bytes) -> tuple[str, str, bool, int | None] | None:
    """The fields of an error body, or None if it is not one: a MessagePack map with a
    `code` of the closed set, a `message` str, a `retryable` bool and, optionally, a
    `retry_after_ms` uint (unknown fields ignored)."""
    try:
        body = msgpack.unpackb(data, raw=False)
    except Exception:
        return None
    if not isinstance(body, dict):
        return None
    code, message = body.get("code"), body.get("message")
    retryable, after = body.get("retryable"), body.get("retry_after_ms")
    if code not in CODES or not isinstance(message, str) or not isinstance(retryable, bool):
        return None
    if after is not None and (isinstance(after, bool) or not isinstance(after, int) or after < 0):
        return None
    return code, message, retryable, after


class BadManifest(TesseraError):
    """An asset manifest that is not the platform's for this plugin (docs/protocol.md §9.2
    "Verifying", steps 2-3): an unknown key, a bad signature, another issuer, kind or
    plugin, or a file list that breaks the rules. Never retried: the same bytes fail again.
    Not sent on the wire; the nearest code is `package_rejected`, as in the Rust SDK."""

    def __init__(self, plugin_id: str, message: str) -> None:
        super().__init__("package_rejected", f"manifest of {plugin_id!r} refused: {message}", False)
        self.plugin_id = plugin_id


class CorruptedAsset(TesseraError):
    """A blob whose bytes are not what the signed manifest says (§9.2 step 4); `path` names
    the file. The cache was not changed."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__("package_rejected", f"asset {path!r} is corrupted: {message}", False)
        self.path = path


class SealError(TesseraError):
    """Sealed data (§9.5) that cannot be made or opened: `reason` is `bad_key` (not a
    32-byte X25519 key in base64url, or a key of another suite), `bad_box` (a box of another
    suite, or one that does not decode) or `cannot_open` (wrong key, wrong plugin id or a
    tampered box: deliberately one reason, which of the three is nobody's business)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__("bad_request", message, False)
        self.reason = reason
