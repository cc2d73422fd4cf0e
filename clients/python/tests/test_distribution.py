"""The distribution consumer of docs/protocol.md §3.8 against a real stack: when its
consumer is lost it opens a new one after the last applied stream sequence, so it applies
no event twice and misses none."""

from __future__ import annotations

import asyncio

import msgpack
import nats
from nats.aio.msg import Msg

from tessera import Client, bus
from tessera.distribution import Distribution, ack_sequences
from tessera.keys import unverified_claims

from .conftest import PASSWORD

SERVER = "pyresume"
PLUGIN = "pyresume-plugin"


async def test_a_lost_consumer_is_replaced_after_the_last_applied_event(stack, ann) -> None:  # type: ignore[no-untyped-def]
    url = stack.tessera("plugin-servers", "add", SERVER)
    stack.tessera("routes", "set", PLUGIN, SERVER)
    applied: list[tuple[int, str]] = []  # (stream sequence, token id), in applied order
    changed = asyncio.Condition()

    async def apply(msg: Msg) -> None:
        seqs = ack_sequences(msg.reply or "")
        event = msgpack.unpackb(msg.data, raw=False)
        assert seqs is not None and event["kind"] in ("token", "tokens")
        for token in event["tokens"] if event["kind"] == "tokens" else [event["token"]]:
            applied.append((seqs[0], unverified_claims(token)["jti"]))
        async with changed:
            changed.notify_all()

    async def applied_all(ids: set[str]) -> None:
        async with changed:
            await asyncio.wait_for(
                changed.wait_for(lambda: ids <= {t for _, t in applied}), timeout=20
            )

    nc = await bus.connect(
        url, "test-distribution", user=f"plugin-server-dist.{SERVER}",
        inbox_prefix=f"_PS_INBOX.tessera.{SERVER}",
    )
    dist = Distribution(nc, "tessera", SERVER, apply)
    task = asyncio.create_task(dist.run())
    admin_url = bus.BusUrl.parse(stack.env["TESSERA_ADMIN_URL"])
    admin = await nats.connect(
        servers=admin_url.servers, user=admin_url.user, password=admin_url.password
    )
    try:
        async with await Client.connect(stack.env["NATS_URL"]) as client:
            login = await client.login(ann, PASSWORD)

            async def tokens(n: int) -> set[str]:
                return {
                    (await client.request_token(login.account_token, PLUGIN)).token_id
                    for _ in range(n)
                }

            before = await tokens(3)
            await applied_all(before)
            lost = dist.consumer
            assert lost is not None

            # The consumer goes away (an admin deletes it; a server restart loses it too):
            # tokens issued meanwhile must still arrive, and the earlier ones not again.
            await admin.jetstream().delete_consumer(dist.stream, lost)
            after = await tokens(3)
            await applied_all(before | after)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await nc.close()
        await admin.close()

    assert dist.consumer != lost, "a new consumer was opened"
    ids = [t for _, t in applied]
    assert sorted(ids) == sorted(before | after), "each token applied exactly once"
    seqs = [s for s, _ in applied]
    assert seqs == sorted(set(seqs)), "in stream order, none twice"
    assert dist.last_stream_seq == seqs[-1]
