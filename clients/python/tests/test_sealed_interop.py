"""Sealed data across languages, against a real stack: a key made in Python and registered
with the Rust CLI; a box Python seals (key fetched with `P.plugins.key`) opens with
`tessera plugins open`, and one `tessera plugins seal` makes opens in Python."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tessera import Client, SealError, TesseraError
from tessera.bus import b64url, b64url_decode
from tessera.sealed import generate_key, open_box, private_key_text, public_key

DEADLINE = 10.0


async def seal_once_registered(client: Client, plugin_id: str, plaintext: bytes) -> bytes:
    """The broker serves a registered key once its watch has seen it: until then the key
    is `not_found`."""
    deadline = time.monotonic() + DEADLINE
    while True:
        try:
            return await client.seal(plugin_id, plaintext)
        except TesseraError as e:
            if e.code != "not_found" or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


async def test_boxes_sealed_in_python_open_in_rust_and_the_reverse(
    stack, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    key = generate_key()
    key_file = tmp_path / "pyseal.key"
    key_file.write_text(private_key_text(key) + "\n")
    stack.tessera("plugins", "register", "pyseal", "--public-key", public_key(key))

    async with await Client.connect(stack.env["NATS_URL"]) as client:
        box = await seal_once_registered(client, "pyseal", b"account 42")
        opened = await asyncio.to_thread(
            stack.tessera, "plugins", "open", "pyseal", "--key-file", str(key_file),
            stdin=b64url(box),
        )
        assert opened == "account 42"
        # Rust refuses it as another plugin's box, as Python does.
        with pytest.raises(AssertionError, match="does not open"):
            await asyncio.to_thread(
                stack.tessera, "plugins", "open", "pyother", "--key-file", str(key_file),
                stdin=b64url(box),
            )

        with pytest.raises(TesseraError) as no_key:
            await client.seal("pynokey", b"x")
        assert no_key.value.code == "not_found"

    from_rust = await asyncio.to_thread(
        stack.tessera, "plugins", "seal", "pyseal", stdin="from rust"
    )
    rust_box = b64url_decode(from_rust)
    assert open_box(key, "pyseal", rust_box) == b"from rust"
    for k, plugin in [(key, "pyother"), (generate_key(), "pyseal")]:
        with pytest.raises(SealError) as refused:
            open_box(k, plugin, rust_box)
        assert refused.value.reason == "cannot_open"
