"""Dashboard logins: a random token in an HttpOnly, SameSite=Strict cookie names a login kept
in this process, with the access it gives and its CSRF token.

Only a hash of each token is kept, so the table of logins is no list of valid cookies. A login
lasts `ttl_s` from when it was made; one made with a viewer key ends as soon as the gateway
learns the key was revoked (its `KeyStanding` flips). Actions (logout, stopping a session) need
the login's CSRF token besides the cookie, so another site cannot make the browser act.
Logins live in the process that made them: behind a load balancer, pin the dashboard's users
to one replica, or run `tokenbrake dashboard` once beside the replicas.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from tokenbrake.admission.auth import Access
from tokenbrake.core import KeyStanding

COOKIE = "tb_dashboard"
CSRF_HEADER = "x-csrf-token"
TTL_S = 12 * 3600
MAX_LOGINS = 10_000  # past this many, the oldest is dropped: logins need a valid key, so this is generous


@dataclass(frozen=True, slots=True)
class Login:
    access: Access
    csrf: str
    expires_at: float
    standing: KeyStanding | None = None  # a viewer key's, flipped when it is revoked

    def allows(self, csrf: str | None) -> bool:
        """Whether `csrf` is this login's token (in constant time)."""
        return csrf is not None and hmac.compare_digest(csrf.encode(), self.csrf.encode())


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Logins:
    """The logins this process made, by the hash of their cookie's token."""

    def __init__(self, ttl_s: float = TTL_S, max_logins: int = MAX_LOGINS, clock=time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.max_logins = max_logins
        self.clock = clock
        self._logins: dict[str, Login] = {}

    def __len__(self) -> int:
        return len(self._logins)

    def open(self, access: Access, standing: KeyStanding | None = None) -> tuple[str, Login]:
        """A new login: (the cookie's token, the login). The token is in the return value only."""
        self._forget_expired()
        while len(self._logins) >= self.max_logins:
            del self._logins[next(iter(self._logins))]  # dicts keep insertion order: the oldest
        token = secrets.token_urlsafe(32)
        login = Login(access, secrets.token_urlsafe(32), self.clock() + self.ttl_s, standing)
        self._logins[_hash(token)] = login
        return token, login

    def find(self, token: str | None) -> Login | None:
        """The live login the token names, or None (none, expired, or its key revoked)."""
        if not token:
            return None
        digest = _hash(token)
        login = self._logins.get(digest)
        if login is None:
            return None
        if login.expires_at <= self.clock() or (login.standing is not None and login.standing.revoked):
            del self._logins[digest]
            return None
        return login

    def close(self, token: str | None) -> None:
        if token:
            self._logins.pop(_hash(token), None)

    def _forget_expired(self) -> None:
        now = self.clock()
        for digest in [d for d, login in self._logins.items() if login.expires_at <= now]:
            del self._logins[digest]
