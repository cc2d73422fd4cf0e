"""Reads of the assets store and the latest-manifest bucket as a client app's account
allows them (docs/protocol.md §9.1): JetStream *direct gets* through the workers' API as
imported under `<prefix>.js`, each one a call of nats-py's public
`JetStreamContext.get_msg(..., direct=True)`. No consumer, no stream info: a client app
can read, never write, and never make JetStream publish anywhere.

- a KV value: `get_msg("KV_<bucket>", subject="$KV.<bucket>.<key>", direct=True)`
  (`<prefix>.js.DIRECT.GET.KV_<bucket>.$KV.<bucket>.<key>`, empty body);
- an object's info: `get_msg("OBJ_<bucket>", subject="$O.<bucket>.M.<base64url(name)>",
  direct=True)` (JSON);
- its chunks, in order: `get_msg("OBJ_<bucket>", seq=n, subject="$O.<bucket>.C.<nuid>",
  direct=True, next=True)` (`<prefix>.js.DIRECT.GET.OBJ_<bucket>` with the body
  `{"seq": n, "next_by_subj": ...}`), each answer's sequence + 1 being the next `n`.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any, AsyncIterator

from nats.aio.client import Client as NATS
from nats.errors import NoRespondersError, TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import RawStreamMsg
from nats.js.errors import Error as JetStreamError, NotFoundError

from .errors import TesseraError, unavailable

#: A KV delete or purge marker's header.
KV_OPERATION = "KV-Operation"


def jetstream(nc: NATS, prefix: str, timeout: float) -> JetStreamContext:
    """nats-py's JetStream context on the API as the client account imports it."""
    return nc.jetstream(prefix=f"{prefix}.js", timeout=timeout)


async def _get(js: JetStreamContext, stream: str, **query: Any) -> RawStreamMsg | None:
    """One direct get; None when the stream has no such message (`Status: 404`)."""
    try:
        return await js.get_msg(stream, direct=True, **query)
    except NotFoundError:
        return None
    except NoRespondersError as e:
        raise unavailable(f"nobody answers direct gets of {stream}") from e
    except NatsTimeout as e:
        raise unavailable(f"no answer to a direct get of {stream}") from e
    except JetStreamError as e:
        raise unavailable(f"a direct get of {stream} failed: {e}") from e
    except (KeyError, AttributeError) as e:  # nats-py reading an answer without its headers
        raise unavailable(f"a direct get of {stream} answered without its headers") from e


async def kv_get(js: JetStreamContext, bucket: str, key: str) -> bytes | None:
    """The current value of `key` in KV bucket `bucket`; None if absent or deleted."""
    msg = await _get(js, f"KV_{bucket}", subject=f"$KV.{bucket}.{key}")
    if msg is None:
        return None
    if (msg.headers or {}).get(KV_OPERATION, "PUT") != "PUT":
        return None
    return msg.data or b""


@dataclass(frozen=True)
class ObjectInfo:
    """The fields of an object's info (ADR-20) a reader needs."""

    name: str
    nuid: str
    size: int
    chunks: int
    digest: str


async def object_info(js: JetStreamContext, bucket: str, name: str) -> ObjectInfo | None:
    """The info of object `name`; None if there is no such object (or it was deleted)."""
    meta = f"$O.{bucket}.M.{base64.urlsafe_b64encode(name.encode()).decode()}"
    msg = await _get(js, f"OBJ_{bucket}", subject=meta)
    if msg is None:
        return None
    try:
        info = json.loads(msg.data or b"")
        if info.get("deleted"):
            return None
        return ObjectInfo(
            str(info["name"]),
            str(info["nuid"]),
            int(info.get("size") or 0),
            int(info.get("chunks") or 0),
            str(info.get("digest") or ""),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise unavailable(f"unreadable info of object {name!r}") from e


async def chunks(js: JetStreamContext, bucket: str, info: ObjectInfo) -> AsyncIterator[bytes]:
    """The object's chunks in stream order, one direct get each."""
    subject = f"$O.{bucket}.C.{info.nuid}"
    seq = 1
    for _ in range(info.chunks):
        msg = await _get(js, f"OBJ_{bucket}", seq=seq, subject=subject, next=True)
        if msg is None:
            raise unavailable(f"a chunk of object {info.name!r} is missing")
        if msg.seq is None or msg.subject != subject:
            raise TesseraError("unavailable", "a direct get answer without its sequence")
        seq = msg.seq + 1
        yield msg.data or b""
