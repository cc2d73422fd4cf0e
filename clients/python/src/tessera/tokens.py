"""A plugin server's token store (docs/protocol.md §3.8, §3.9): tokens indexed by the
SHA-256 of the token string, each signature verified once, revoked ids remembered."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from .errors import TesseraError
from .keys import ISSUER, token_hash


@dataclass
class StoredToken:
    token_id: str
    account_id: str
    plugin_id: str
    expires_at: int
    servers: list[str]
    claims: dict[str, Any]
    #: False for a token from the distribution whose signature nobody checked yet: it is
    #: checked on first use (most tokens are never presented at every server).
    verified: bool

    @staticmethod
    def from_claims(claims: dict[str, Any], verified: bool) -> "StoredToken":
        aud = claims.get("aud")
        servers = [aud] if isinstance(aud, str) else list(aud or [])
        return StoredToken(
            token_id=str(claims.get("jti", "")),
            account_id=str(claims.get("sub", "")),
            plugin_id=str(claims.get("plugin_id", "")),
            expires_at=int(claims.get("exp", 0)),
            servers=servers,
            claims=claims,
            verified=verified,
        )


class TokenStore:
    def __init__(self, server_id: str, leeway: float) -> None:
        self.server_id = server_id
        self.leeway = leeway
        self._by_hash: dict[str, StoredToken] = {}
        self._hash_by_id: dict[str, str] = {}
        #: token id -> until when to remember it as revoked (Unix seconds).
        self._revoked: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._by_hash)

    def get(self, token: str) -> StoredToken | None:
        return self._by_hash.get(token_hash(token))

    def has_id(self, token_id: str) -> bool:
        return token_id in self._hash_by_id

    def is_revoked(self, token_id: str) -> bool:
        return token_id in self._revoked

    def check_claims(self, claims: dict[str, Any]) -> None:
        """The claims a distributed token must have before it is stored (§3.8 step 2)."""
        if claims.get("iss") != ISSUER:
            raise TesseraError("unauthenticated", "not issued by the broker [issuer]")
        st = StoredToken.from_claims(claims, verified=False)
        if self.server_id not in st.servers:
            raise TesseraError("unauthenticated", "not for this plugin server [server]")
        if st.expires_at + self.leeway <= time.time():
            raise TesseraError("unauthenticated", "token expired [expired]")

    def put(self, token: str, claims: dict[str, Any], verified: bool) -> StoredToken | None:
        """Stores a token unless its id is known as revoked."""
        st = StoredToken.from_claims(claims, verified)
        if st.token_id in self._revoked:
            return None
        h = token_hash(token)
        self._by_hash[h] = st
        self._hash_by_id[st.token_id] = h
        return st

    def drop(self, token: str) -> None:
        st = self._by_hash.pop(token_hash(token), None)
        if st is not None:
            self._hash_by_id.pop(st.token_id, None)

    def revoke(self, token_ids: list[str]) -> None:
        """Deletes these ids and remembers them as revoked until they would have expired,
        so a late introspection or a replay cannot bring one back."""
        # A revoked id nobody here holds: remember it for the longest a token can live.
        horizon = time.time() + 24 * 3600 + self.leeway
        for token_id in token_ids:
            h = self._hash_by_id.pop(token_id, None)
            st = self._by_hash.pop(h, None) if h else None
            self._revoked[token_id] = (st.expires_at + self.leeway) if st else horizon

    def sweep(self) -> None:
        """Forgets expired tokens, and revoked ids past their expiry."""
        now = time.time()
        for h, st in list(self._by_hash.items()):
            if st.expires_at + self.leeway <= now:
                self._by_hash.pop(h, None)
                self._hash_by_id.pop(st.token_id, None)
        for token_id, until in list(self._revoked.items()):
            if until <= now:
                del self._revoked[token_id]
