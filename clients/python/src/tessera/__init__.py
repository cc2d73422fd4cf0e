"""Tessera for Python: client apps and plugin servers on the bus (docs/protocol.md)."""

from .bus import client_inbox, client_password, new_inbox_key
from .client import Client, Login, PluginToken, Reply
from .data import ClientApp, Verification
from .errors import TesseraError
from .plugin_server import PluginServer, Request, Response

__all__ = [
    "Client",
    "ClientApp",
    "Login",
    "PluginServer",
    "PluginToken",
    "Reply",
    "Request",
    "Response",
    "TesseraError",
    "Verification",
    "client_inbox",
    "client_password",
    "new_inbox_key",
]
