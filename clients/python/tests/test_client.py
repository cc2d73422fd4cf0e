"""The client-app face against a real stack: connect with stock options, log in, tokens
with idempotent retries, calls, typed errors, signed data packets."""

from __future__ import annotations

import uuid

import nats
import pytest
from nats.errors import Error as NatsError

from tessera import Client, ClientApp, TesseraError, Verification, client_inbox, new_inbox_key
from tessera.bus import BusUrl

from .conftest import PASSWORD


async def test_a_stock_nats_client_connects_with_its_ordinary_options(stack) -> None:  # type: ignore[no-untyped-def]
    url = BusUrl.parse(stack.env["NATS_URL"])
    key = new_inbox_key()
    nc = await nats.connect(
        servers=url.servers,
        user="client",
        password=f"{url.password}:{key}",
        inbox_prefix=client_inbox(key),
    )
    try:
        reply = await nc.request("tessera.keys", b"", timeout=5)
        assert b'"keys"' in reply.data
    finally:
        await nc.close()

    # The bare client password (no key) is refused at once.
    with pytest.raises(NatsError):
        await nats.connect(
            servers=url.servers,
            user="client",
            password=url.password,
            allow_reconnect=False,
            max_reconnect_attempts=0,
            connect_timeout=5,
        )


async def test_login_token_and_call(stack, ann) -> None:  # type: ignore[no-untyped-def]
    async with await Client.connect(stack.env["NATS_URL"]) as client:
        login = await client.login(ann, PASSWORD)
        assert login.account_id

        key = str(uuid.uuid4())
        tok = await client.request_token(login.account_token, "weather", idempotency_key=key)
        again = await client.request_token(login.account_token, "weather", idempotency_key=key)
        assert again.token_id == tok.token_id, "a retry under the same key is the same token"
        assert tok.servers == ["demo"]

        reply = await client.call("demo", "echo", tok.token, b"hello")
        assert reply.headers.get("Tessera-Schema") == "svc.echo/1"
        echo = reply.decode()
        assert echo["body"] == b"hello"
        assert echo["account_id"] == login.account_id
        assert echo["plugin_id"] == "weather"


async def test_errors_carry_the_wire_code(stack, ann) -> None:  # type: ignore[no-untyped-def]
    async with await Client.connect(stack.env["NATS_URL"]) as client:
        with pytest.raises(TesseraError) as wrong:
            await client.login(ann, "not the password")
        assert (wrong.value.code, wrong.value.retryable, wrong.value.status) == (
            "unauthenticated",
            False,
            401,
        )
        login = await client.login(ann, PASSWORD)
        with pytest.raises(TesseraError) as no_route:
            await client.request_token(login.account_token, "no-such-plugin")
        assert no_route.value.code == "not_found"
        with pytest.raises(TesseraError) as bad_token:
            await client.call("demo", "echo", "not.a.token", b"x")
        assert bad_token.value.code == "unauthenticated"


async def test_signed_data_packets(stack, ann) -> None:  # type: ignore[no-untyped-def]
    secret = stack.tessera("client-apps", "add", "py-app")
    stack.tessera("data-routes", "set", "weather", "now", "demo", "echo")
    app = ClientApp.from_printed("py-app", secret)
    where = Verification("weather", "192.0.2.10", "device-42")
    async with await Client.connect(stack.env["NATS_URL"]) as client:
        login = await client.login(ann, PASSWORD)
        tok = await client.request_token(login.account_token, "weather")
        reply = await client.data(app, tok.token, "now", b"hello", where)
        assert reply.decode()["body"] == b"hello"

        forged = ClientApp("py-app", bytes(32))
        with pytest.raises(TesseraError) as refused:
            await client.data(forged, tok.token, "now", b"hello", where)
        assert refused.value.code == "bad_signature"
        with pytest.raises(TesseraError) as unrouted:
            await client.data(app, tok.token, "later", b"hello", where)
        assert unrouted.value.code == "unknown_operation"
