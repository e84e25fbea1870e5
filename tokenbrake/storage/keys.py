"""Virtual API keys: created once, shown once, stored only as a salted hash.

A key reads `tb-<id><secret>`: `id` is 8 public characters that find the key's row (it is
also the prefix shown in listings), `secret` is 32 random bytes, URL-safe base64. The row
holds a per-key random salt and HMAC-SHA256(salt, secret). The secret carries 256 bits of
entropy, so a fast hash is enough: nobody brute-forces it, and checking stays cheap on the
request path.

Checking happens in memory against a `KeyRing` loaded from the database, without I/O. A
key whose id is unknown (or that is malformed) is hashed and compared against a decoy, so
it costs the same time as a wrong secret and timing reveals nothing about which ids exist.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import string
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tokenbrake.storage.backend import Backend, to_datetime

KEY_PREFIX = "tb-"
ID_LENGTH = 8
ID_ALPHABET = string.ascii_letters + string.digits
SECRET_BYTES = 32
SALT_BYTES = 16
# What a key may do: an application key calls models; a viewer key reads its team's spend
# (the dashboard and the insight API) and nothing else.
APP, VIEWER = "app", "viewer"
ROLES = (APP, VIEWER)


@dataclass(frozen=True, slots=True)
class VirtualKey:
    name: str
    team: str | None
    models: list[str] | None  # None: every model
    created_at: datetime
    revoked_at: datetime | None
    key_prefix: str  # public, for listings: "tb-<id>…"
    require_user: bool = False  # every request must name its end user
    role: str = APP

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


def _digest(salt: bytes, secret: str) -> bytes:
    return hmac.new(salt, secret.encode(), hashlib.sha256).digest()


@dataclass(frozen=True, slots=True)
class _Entry:
    key: VirtualKey
    salt: bytes
    digest: bytes


# Keys this ring has already matched, by the presented string, up to this many (then it starts
# over). An application sends the same key on every call, and its HMAC was a third of what
# identifying a request cost. Only matches are kept: an unknown or wrong key is hashed
# every time, in the same time as before, and cannot fill the memo.
VERIFIED_MEMO_SIZE = 10_000


class KeyRing:
    """Every key (active and revoked) with its hash, for checking keys without I/O."""

    def __init__(self, entries: dict[str, _Entry]) -> None:
        self._entries = entries
        self._decoy = (secrets.token_bytes(SALT_BYTES), secrets.token_bytes(32))
        self._verified: dict[str, VirtualKey] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def verify(self, presented: str) -> VirtualKey | None:
        """The key `presented` is, revoked or not (as of this ring's loading); None if it is
        no key of ours."""
        key = self._verified.get(presented)
        if key is None and (key := self._match(presented)) is not None:
            if len(self._verified) >= VERIFIED_MEMO_SIZE:
                self._verified.clear()
            self._verified[presented] = key
        return key

    def revoked(self) -> set[str]:
        """The names of the revoked keys."""
        return {entry.key.name for entry in self._entries.values() if entry.key.revoked}

    def _match(self, presented: str) -> VirtualKey | None:
        key_id, secret = _split(presented)
        entry = self._entries.get(key_id)
        salt, digest = (entry.salt, entry.digest) if entry is not None else self._decoy
        matches = hmac.compare_digest(_digest(salt, secret), digest)
        return entry.key if entry is not None and matches else None


def _split(presented: str) -> tuple[str, str]:
    if not presented.startswith(KEY_PREFIX):
        return "", presented
    body = presented[len(KEY_PREFIX):]
    return body[:ID_LENGTH], body[ID_LENGTH:]


def _new_key() -> tuple[str, str]:
    key_id = "".join(secrets.choice(ID_ALPHABET) for _ in range(ID_LENGTH))
    return key_id, secrets.token_urlsafe(SECRET_BYTES)


_COLUMNS = "name, team, models, created_at, revoked_at, key_prefix, require_user, role"


def _key(row: Sequence[Any]) -> VirtualKey:
    name, team, models, created_at, revoked_at, key_prefix, require_user, role = row
    return VirtualKey(name=name, team=team, models=json.loads(models) if models is not None else None,
                      created_at=to_datetime(created_at), revoked_at=to_datetime(revoked_at), key_prefix=key_prefix,
                      require_user=bool(require_user), role=role)


def check_role(role: str, team: str | None, models: list[str] | None) -> None:
    """ValueError for a role that is not one, or a viewer key that names no team (it would
    see nothing) or models (it calls none)."""
    if role not in ROLES:
        raise ValueError(f"role {role!r}: expected one of {', '.join(ROLES)}")
    if role == VIEWER and not team:
        raise ValueError("a viewer key sees one team's spend: give it the team (--team T)")
    if role == VIEWER and models is not None:
        raise ValueError("a viewer key calls no models: drop the models from it")


class KeyStore:
    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    async def create(self, name: str, team: str | None = None, models: list[str] | None = None,
                     require_user: bool = False, role: str = APP) -> tuple[str, VirtualKey]:
        """A new key: (plaintext, key). The plaintext exists only in the return value."""
        if not name:
            raise ValueError("a key needs a name")
        check_role(role, team, models)
        key_id, secret = _new_key()
        salt = secrets.token_bytes(SALT_BYTES)
        key = VirtualKey(name=name, team=team, models=list(models) if models is not None else None,
                         created_at=datetime.now(UTC), revoked_at=None, key_prefix=f"{KEY_PREFIX}{key_id}…",
                         require_user=require_user, role=role)
        try:
            async with self._backend.transaction() as tx:
                if await tx.fetch("SELECT 1 FROM virtual_keys WHERE name = ?", (name,)):
                    raise ValueError(f"a key named {name!r} already exists")
                await tx.execute(
                    "INSERT INTO virtual_keys (key_id, name, team, models, salt, key_hash, key_prefix, created_at,"
                    " require_user, role) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (key_id, name, team, json.dumps(key.models) if key.models is not None else None,
                     salt.hex(), _digest(salt, secret).hex(), key.key_prefix, key.created_at, require_user, role),
                )
        except ValueError:
            raise
        except Exception as exc:  # a concurrent create of the same name won the race
            if await self.get(name) is not None:
                raise ValueError(f"a key named {name!r} already exists") from exc
            raise
        return f"{KEY_PREFIX}{key_id}{secret}", key

    async def list(self) -> list[VirtualKey]:
        rows = await self._backend.fetch(f"SELECT {_COLUMNS} FROM virtual_keys ORDER BY name")
        return [_key(row) for row in rows]

    async def get(self, name: str) -> VirtualKey | None:
        rows = await self._backend.fetch(f"SELECT {_COLUMNS} FROM virtual_keys WHERE name = ?", (name,))
        return _key(rows[0]) if rows else None

    async def revoke(self, name: str) -> VirtualKey:
        """Revokes the key (a second revoke keeps the first time); KeyError if there is none."""
        async with self._backend.transaction() as tx:
            await tx.execute("UPDATE virtual_keys SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
                             (datetime.now(UTC), name))
            rows = await tx.fetch(f"SELECT {_COLUMNS} FROM virtual_keys WHERE name = ?", (name,))
        if not rows:
            raise KeyError(name)
        return _key(rows[0])

    async def load_ring(self) -> KeyRing:
        rows = await self._backend.fetch(f"SELECT key_id, salt, key_hash, {_COLUMNS} FROM virtual_keys")
        return KeyRing({key_id: _Entry(_key(rest), bytes.fromhex(salt), bytes.fromhex(key_hash))
                        for key_id, salt, key_hash, *rest in rows})
