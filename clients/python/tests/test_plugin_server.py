"""A Python plugin server: distributions reach it, it serves a Rust client's call (the
`tessera` CLI), and a revocation made with the CLI reaches it."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from tessera import Client, PluginServer, Request, TesseraError

from .conftest import PASSWORD


async def test_python_plugin_server_serves_rust_calls_and_honours_revocation(stack, ann) -> None:  # type: ignore[no-untyped-def]
    url = stack.tessera("plugin-servers", "add", "pyps")
    stack.tessera("routes", "set", "pyweather", "pyps")
    ps = PluginServer(url)
    assert ps.server_id == "pyps"

    @ps.operation("hello", plugins=["pyweather"], schema="svc.hello/1")
    async def hello(req: Request) -> dict[str, str]:
        return {"greeting": f"hello {req.account_id} {req.body.decode()}"}

    @ps.operation("fail")
    async def fail(req: Request) -> bytes:
        raise TesseraError("not_found", "nothing here")

    await ps.start()
    try:
        async with await Client.connect(stack.env["NATS_URL"]) as client:
            login = await client.login(ann, PASSWORD)
            tok = await client.request_token(login.account_token, "pyweather")
            # token.request answers after the distribution is stored, not after it is
            # applied here: wait for it.
            await ps.wait_for(lambda: ps.tokens.has_id(tok.token_id))

            # A Rust client (the CLI) calls the Python server; in a thread, so this event
            # loop goes on serving meanwhile.
            out = await asyncio.to_thread(
                stack.tessera, "call", "pyps", "hello", "--token", tok.token, "--data", "rust"
            )
            assert json.loads(out) == {"greeting": f"hello {login.account_id} rust"}

            # Typed errors: the handler's, an unknown operation, a token of another plugin.
            with pytest.raises(TesseraError) as failed:
                await client.call("pyps", "fail", tok.token)
            assert (failed.value.code, failed.value.message) == ("not_found", "nothing here")
            with pytest.raises(TesseraError) as unknown:
                await client.call("pyps", "nope", tok.token)
            assert unknown.value.code == "not_found"
            stack.tessera("routes", "set", "other", "pyps")
            other = await client.request_token(login.account_token, "other")
            with pytest.raises(TesseraError) as forbidden:
                await client.call("pyps", "hello", other.token)
            assert forbidden.value.code == "forbidden"

            # Revocation with the CLI reaches the Python server.
            started = time.monotonic()
            revoked = json.loads(
                await asyncio.to_thread(stack.tessera, "token", "revoke", "--token-id", tok.token_id)
            )
            assert revoked["revoked"] == 1
            await ps.wait_for(lambda: ps.tokens.is_revoked(tok.token_id))
            print(f"revocation applied {time.monotonic() - started:.3f}s after the CLI started")
            with pytest.raises(TesseraError) as refused:
                await client.call("pyps", "hello", tok.token)
            assert refused.value.code == "unauthenticated"
    finally:
        await ps.stop()
