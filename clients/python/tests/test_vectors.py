"""The worked examples of docs/protocol.md, recomputed (no stack needed)."""

from __future__ import annotations

import msgpack

from tessera import client_inbox, client_password
from tessera.bus import b64url
from tessera.data import ClientApp, Verification, packet, signing_string
from tessera.errors import TesseraError, from_reply
from tessera.keys import kid_of

SECRET = bytes(range(32))
WHERE = Verification("weather", "192.0.2.10", "device-42")
TOKEN = "eyJhbGciOiJFZERTQSJ9.e30.c2ln"


def test_data_packet_worked_example() -> None:
    """docs/protocol.md §8.1, "Worked example"."""
    text = signing_string(
        "demo-app", TOKEN, 1764000000000, "bm9uY2Utbm9uY2Utbm9uY2U", WHERE, "forecast",
        "city=Oslo", b'{"days":3}',
    )
    assert text == "\n".join(
        [
            "tessera-data/1",
            "demo-app",
            "b8cc7dd5077a7f74fc0ab6a7289d7c4a1b60a09c605ddc290dea02911bb94bf5",
            "1764000000000",
            "1",
            "bm9uY2Utbm9uY2Utbm9uY2U",
            "weather",
            "192.0.2.10",
            "device-42",
            "26f0a1cfa41275a82dafc0ead30cfc4c876946317862ed77abeb0439f91b7b30",
        ]
    )
    app = ClientApp.from_printed("demo-app", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8")
    assert app.secret == SECRET
    p = packet(app, TOKEN, "forecast", b'{"days":3}', WHERE, "city=Oslo",
               timestamp_ms=1764000000000, nonce="bm9uY2Utbm9uY2Utbm9uY2U")
    assert p["signature"] == "wu6JCYjZNARHSZZAPkMtPk_QU9DEWUU301eEYfesOH4"
    # `body` must travel as bin, every other string as str (§1).
    raw = msgpack.unpackb(msgpack.packb(p), raw=True)
    assert isinstance(raw[b"body"], bytes) and isinstance(raw[b"app_id"], bytes)
    assert msgpack.packb(p)[:1] != b"\x90"  # a map, not an array


def test_client_inbox_and_password() -> None:
    """§3.11: the key `abc` (for the arithmetic only)."""
    assert client_inbox("abc") == "_C_INBOX.ba7816bf8f01cfea414140de5dae2223"
    assert client_password("pa:ss", "k" * 43) == "pa:ss:" + "k" * 43


def test_kid_is_the_rfc7638_thumbprint() -> None:
    """RFC 8037 appendix A.3: the thumbprint of its example Ed25519 key."""
    x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
    assert kid_of(x) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


def test_error_replies() -> None:
    """§2: an error iff the code header; the body's fields, or the status's code."""
    err = TesseraError("rate_limited", "slow\ndown", retry_after_ms=250)
    back = from_reply(err.headers(), err.body())
    assert back is not None
    assert (back.code, back.retryable, back.retry_after_ms) == ("rate_limited", True, 250)
    assert err.headers() == {"Nats-Service-Error-Code": "429", "Nats-Service-Error": "slow down"}
    assert from_reply({}, b"") is None
    bare = from_reply({"Nats-Service-Error-Code": "422"}, b"")
    assert bare is not None and (bare.code, bare.retryable) == ("bad_request", False)
    assert b64url(b"\xff") == "_w"
