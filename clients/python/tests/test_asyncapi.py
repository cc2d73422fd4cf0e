"""This package's models and the bodies it builds follow docs/asyncapi.json (the bus API
that a Rust test keeps equal to the Rust definitions). No stack needed."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import msgpack

from tessera.client import Login, PluginToken
from tessera.data import ClientApp, Verification, packet
from tessera.errors import CODES, TesseraError
from tessera.manifest import AssetFile
from tessera.sealed import generate_key, public_key, seal

ROOT = Path(__file__).resolve().parents[3]
DOC: dict[str, Any] = json.loads((ROOT / "docs" / "asyncapi.json").read_text(encoding="utf-8"))
SOURCE = ROOT / "clients" / "python" / "src" / "tessera"


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = DOC
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def payload(message_id: str) -> dict[str, Any]:
    return resolve(resolve(DOC["components"]["messages"][message_id])["payload"])


def fields(message_id: str) -> tuple[set[str], set[str]]:
    """(every field, the required ones) of a message's payload."""
    p = payload(message_id)
    return set(p["properties"]), set(p.get("required", []))


def test_reply_models_have_the_documented_fields() -> None:
    for model, message in ((Login, "authLoginReply"), (PluginToken, "tokenReply")):
        names = {f.name for f in dataclasses.fields(model)}
        every, required = fields(message)
        assert names == every, model.__name__
        assert required <= names, model.__name__


def test_the_data_packet_has_the_documented_fields_and_types() -> None:
    app = ClientApp("demo-app", bytes(32))
    p = packet(app, "t.o.k", "now", b"hi", Verification("weather", "192.0.2.1", "d"), "q=1")
    every, required = fields("dataRequest")
    assert set(p) == every and required <= set(p)
    schema = payload("dataRequest")["properties"]
    raw = msgpack.unpackb(msgpack.packb(p), raw=True)
    for name, value in raw.items():
        prop = resolve(schema[name.decode()])
        if prop.get("format") == "binary":
            assert isinstance(value, bytes), name
        elif prop["type"] == "string":
            # A str on the wire: msgpack with raw=True reads str as bytes too, so check the
            # Python value was a str (packed as str, never bin).
            assert isinstance(p[name.decode()], str), name
        elif prop["type"] == "integer":
            assert isinstance(value, int), name
        elif prop["type"] == "object":
            inner = resolve(prop)
            assert {k.decode() for k in value} == set(inner["properties"]), name


def test_errors_follow_the_documented_error_message() -> None:
    every, required = fields("error")
    documented_codes = set(payload("error")["properties"]["code"]["enum"])
    assert set(CODES) == documented_codes
    body = msgpack.unpackb(TesseraError("rate_limited", "m", retry_after_ms=5).body())
    assert set(body) == every and required <= set(body)
    headers = resolve(DOC["components"]["messages"]["error"])["headers"]
    assert set(TesseraError("internal", "m").headers()) == set(headers["required"])


def test_every_subject_the_package_uses_is_a_channel() -> None:
    """Each `<prefix>.<subject>` the package builds (`_subject("...")` and the
    f-strings of the plugin server and distribution code) is a channel address; a `*`
    subscription stands for a parameter. `js.` subjects are the JetStream API the accounts
    import (docs/protocol.md §1), not channels of Tessera's own."""
    addresses = {
        c["address"].removeprefix("{prefix}.")
        for c in DOC["channels"].values()
        if c["address"] is not None
    }
    used: set[str] = set()
    for path in SOURCE.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        used |= set(re.findall(r'_subject\(\s*f?"([^"]+)"', text))
        for template in re.findall(r'f"\{self\.prefix\}\.([^"]+)"', text):
            # `_subject` itself (`{self.prefix}.{rest}`) names no subject.
            if template != "{rest}":
                used.add(template)
    assert used, "the scan found no subjects"
    normalised = {re.sub(r"\{[^}]*\}", "{}", a) for a in addresses}
    for subject in used - {u for u in used if u.startswith("js.")}:
        generic = re.sub(r"\{[^}]*\}", "{}", subject).replace("*", "{}")
        assert subject in addresses or generic in normalised, subject


def test_asset_files_and_sealed_boxes_have_the_documented_fields() -> None:
    """The manifest's file entries (§9.2) and the sealed box this package writes (§9.5)."""
    every, required = fields("assetsPublishRequest")
    assert "files" in required
    entry = resolve(payload("assetsPublishRequest")["properties"]["files"]["items"])
    assert {f.name for f in dataclasses.fields(AssetFile)} == set(entry["properties"])
    box = msgpack.unpackb(seal(public_key(generate_key()), "weather", b"x"), raw=True)
    schema = payload("sealedBox")
    assert {k.decode() for k in box} == set(schema["properties"]) == set(schema["required"])
    # raw=True reads str as bytes too; the suite is the one str field, enc and ct are bin.
    assert msgpack.unpackb(seal(public_key(generate_key()), "weather", b"x"))["suite"] == (
        schema["properties"]["suite"]["const"]
    )
