"""Checking virtual keys without touching the database on the request path.

Each gateway holds every key's salted hash in memory (a `KeyRing`), reloaded when the change
channel says keys changed and every `auth.refresh_s` in any case (changes/); a key it does
not know triggers one immediate reload (at most one every `MIN_RELOAD_INTERVAL_S`), so a key
created a moment ago on another replica works at once. A reload that finds a key revoked
flips its `KeyStanding`, which ends the key's running streams.

The read side (the insight API, the dashboard) knows two callers (`Access`): the master key in
TOKENBRAKE_MASTER_KEY sees everything; a viewer key sees its team's spend, read-only, and is
refused on /v1 (it calls no models).
"""

from __future__ import annotations

import asyncio
import hmac
import os
import time
from dataclasses import dataclass

from tokenbrake.core import Attribution, ErrorKind, GatewayError, KeyStanding
from tokenbrake.storage import Database, KeyRing, VirtualKey
from tokenbrake.storage.keys import VIEWER

MASTER_KEY_ENV = "TOKENBRAKE_MASTER_KEY"
ADMIN = "admin"

# Unknown keys reload the ring at most this often; a burst of bad keys cannot hammer the
# database, and a key created a moment ago is found after at most this long.
MIN_RELOAD_INTERVAL_S = 0.1


class KeyCache:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.ring: KeyRing | None = None
        self._loaded_at = 0.0
        self._lock = asyncio.Lock()
        # One per key a request has used here (so bounded by the keys): shared by its requests.
        self._standings: dict[str, KeyStanding] = {}

    async def reload(self) -> None:
        async with self._lock:
            await self._load()

    async def _load(self) -> None:
        started = time.monotonic()  # the ring holds every key created before this moment
        self.ring = await self.db.keys.load_ring()
        self._loaded_at = started
        for name in self.ring.revoked():
            if (standing := self._standings.get(name)) is not None:
                standing.revoked = True

    def standing(self, key_name: str) -> KeyStanding:
        """The standing of a key that passed `authenticate` (so not revoked as of the ring)."""
        standing = self._standings.get(key_name)
        if standing is None:
            standing = self._standings[key_name] = KeyStanding()
        return standing

    async def verify(self, presented: str) -> VirtualKey | None:
        key = self.ring.verify(presented) if self.ring else None
        if key is not None:
            return key
        requested = time.monotonic()
        async with self._lock:
            if self._loaded_at <= requested:  # no reload began after we looked
                await asyncio.sleep(max(0.0, self._loaded_at + MIN_RELOAD_INTERVAL_S - time.monotonic()))
                await self._load()
        assert self.ring is not None, "loaded above, or by the reload that began after we looked"
        return self.ring.verify(presented)


def presented_key(headers: dict[str, str]) -> str | None:
    """The key as either SDK sends it: `Authorization: Bearer …` or Anthropic's `x-api-key`."""
    authorization = headers.get("authorization", "")
    if authorization[:7].lower() == "bearer ":
        return authorization[7:].strip() or None
    return headers.get("x-api-key") or None


async def authenticate(headers: dict[str, str], keys: KeyCache) -> Attribution:
    presented = presented_key(headers)
    if presented is None:
        raise GatewayError(
            ErrorKind.AUTHENTICATION,
            "No API key: send your tokenbrake key as 'Authorization: Bearer tb-…' or 'x-api-key'.",
            code="missing_api_key",
        )
    key = await keys.verify(presented)
    if key is None:
        raise GatewayError(ErrorKind.AUTHENTICATION, "Invalid API key: this gateway does not know it.",
                           code="invalid_api_key")
    if key.revoked:
        raise GatewayError(ErrorKind.AUTHENTICATION, f"API key '{key.name}' has been revoked.", code="revoked_api_key")
    if key.role == VIEWER:
        raise GatewayError(ErrorKind.PERMISSION, f"API key '{key.name}' is a viewer key: it reads team {key.team}'s "
                           "spend on the dashboard and the insight API, and calls no models. Use an application key.",
                           code="viewer_key")
    return Attribution(key_name=key.name, team=key.team, allowed_models=key.models, require_user=key.require_user)


@dataclass(frozen=True, slots=True)
class Access:
    """Who reads the spend: the master key (`admin`, every team) or a viewer key (`viewer`,
    only `team`'s, read-only). `key_name`: the viewer key's."""

    role: str
    team: str | None = None
    key_name: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN


async def key_access(presented: str | None, keys: KeyCache | None, db: Database) -> Access:
    """The access a presented key gives; GatewayError (401, or 403 when the admin API is off)
    for anything but the master key or a viewer key. Without `keys` (keys not required), the
    key is looked up in the database."""
    master = os.environ.get(MASTER_KEY_ENV)
    if master and presented and hmac.compare_digest(presented.encode(), master.encode()):
        return Access(ADMIN)
    key = await (keys or KeyCache(db)).verify(presented) if presented else None
    if key is not None and key.role == VIEWER and not key.revoked:
        return Access(VIEWER, team=key.team, key_name=key.name)
    if not master:
        raise GatewayError(ErrorKind.PERMISSION, f"the admin API is off: set {MASTER_KEY_ENV} where the gateway runs")
    raise GatewayError(ErrorKind.AUTHENTICATION, "admin API: wrong or missing master key")
