"""The distribution consumer of a plugin server (docs/protocol.md §3.8): ask the broker for
a pull consumer of one's own, pull it by name, apply the events in order, and open a new
one after the last applied stream sequence on a gap, an error, a reconnect or a silence."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Awaitable, Callable

import msgpack
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from . import bus

log = logging.getLogger("tessera.distribution")

BATCH = 256
#: How long one pull waits on the server; the consumer is removed after 30 s without one.
PULL_EXPIRES = 5.0
HEARTBEAT = 1.0
#: No message, heartbeat or status for this long: the consumer is presumed lost.
SILENCE = PULL_EXPIRES + 3 * HEARTBEAT

Apply = Callable[[Msg], Awaitable[None]]


def ack_sequences(reply: str) -> tuple[int, int] | None:
    """(stream sequence, consumer sequence) of a delivery, from its `$JS.ACK...` subject
    (with or without the domain and account-hash tokens of newer servers)."""
    t = reply.split(".")
    if len(t) < 9 or t[0] != "$JS" or t[1] != "ACK":
        return None
    try:
        if len(t) == 9:
            return int(t[5]), int(t[6])
        return int(t[7]), int(t[8])
    except ValueError:
        return None


class Distribution:
    def __init__(self, nc: NATS, prefix: str, server_id: str, apply: Apply) -> None:
        self.nc = nc
        self.prefix = prefix
        self.server_id = server_id
        self.apply = apply
        #: The stream sequence of the last applied event: a new consumer starts after it.
        self.last_stream_seq = 0
        #: The stream that sequence counts in (the broker's answer names it: with the
        #: distribution in shards, the stream of this server's shard).
        self.stream = ""
        #: The name of the consumer being pulled (a new one after each reopening).
        self.consumer: str | None = None
        self.opened = asyncio.Event()
        self._reopen = asyncio.Event()

    def reconnected(self) -> None:
        """Deliveries during a disconnect are not redelivered: start again after the last
        applied one."""
        self._reopen.set()

    async def open(self) -> str:
        body = {
            "start_seq": self.last_stream_seq + 1 if self.last_stream_seq else 0,
            "stream": self.stream,
        }
        msg = await bus.request(
            self.nc,
            f"{self.prefix}.distribution.open.{self.server_id}",
            msgpack.packb(body),
            {"Tessera-Schema": "distribution.open/1"},
        )
        info = json.loads(msg.data)
        stream: str = info["stream_name"]
        if stream != self.stream:
            # Another stream (the first open, or the number of shards changed): the broker
            # starts it from its first event, and sequences count from there.
            self.stream = stream
            self.last_stream_seq = 0
        name: str = info["name"]
        return name

    async def run(self) -> None:
        backoff = 0.1
        while True:
            try:
                name = await self.open()
                self.consumer = name
                self.opened.set()
                backoff = 0.1
                await self._pull(name)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("distribution consumer: %s; opening a new one", e)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    async def _pull(self, name: str) -> None:
        """Pulls from consumer `name` until it must be replaced; returns then."""
        queue: asyncio.Queue[Msg] = asyncio.Queue()
        inbox = self.nc.new_inbox()

        async def deliver(msg: Msg) -> None:
            await queue.put(msg)

        sub = await self.nc.subscribe(inbox, cb=deliver)
        subject = f"{self.prefix}.js.CONSUMER.MSG.NEXT.{self.stream}.{name}"
        request = json.dumps(
            {
                "batch": BATCH,
                "expires": int(PULL_EXPIRES * 1e9),
                "idle_heartbeat": int(HEARTBEAT * 1e9),
            }
        ).encode()
        self._reopen.clear()
        last_consumer_seq = 0
        try:
            await self.nc.publish(subject, request, reply=inbox)
            outstanding = BATCH
            while not self._reopen.is_set():
                try:
                    msg = await asyncio.wait_for(queue.get(), timeout=SILENCE)
                except asyncio.TimeoutError:
                    log.info("distribution consumer silent for %ss; opening a new one", SILENCE)
                    return
                status = (msg.headers or {}).get("Status")
                if status is not None:
                    if status == "100":
                        continue
                    # 404/408: this pull ended; 409: the consumer went away or a limit.
                    if status == "409" and "Consumer Deleted" in str(msg.headers):
                        return
                    await self.nc.publish(subject, request, reply=inbox)
                    outstanding = BATCH
                    continue
                seqs = ack_sequences(msg.reply or "")
                if seqs is None:
                    continue
                stream_seq, consumer_seq = seqs
                if consumer_seq != last_consumer_seq + 1:
                    log.info("distribution gap after consumer sequence %s", last_consumer_seq)
                    return
                last_consumer_seq = consumer_seq
                await self.apply(msg)
                self.last_stream_seq = stream_seq
                outstanding -= 1
                if outstanding == 0:
                    await self.nc.publish(subject, request, reply=inbox)
                    outstanding = BATCH
        finally:
            try:
                await sub.unsubscribe()
            except Exception:
                pass
