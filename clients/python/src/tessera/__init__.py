"""Tessera for Python: client apps and plugin servers on the bus (docs/protocol.md)."""

from .bus import client_inbox, client_password, new_inbox_key
from .cache import BundleReport
from .client import Client, Login, PluginToken, Reply
from .data import ClientApp, Verification
from .errors import BadManifest, CorruptedAsset, SealError, TesseraError
from .manifest import AssetFile, Manifest
from .plugin_server import PluginServer, Request, Response

__all__ = [
    "AssetFile",
    "BadManifest",
    "BundleReport",
    "Client",
    "ClientApp",
    "CorruptedAsset",
    "Login",
    "Manifest",
    "PluginServer",
    "PluginToken",
    "Reply",
    "Request",
    "Response",
    "SealError",
    "TesseraError",
    "Verification",
    "client_inbox",
    "client_password",
    "new_inbox_key",
]
