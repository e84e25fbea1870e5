"""The Responses API conversations the gateway keeps, for upstreams that keep none themselves.

A response is kept only when its request did not say `store: false` and the config keeps
them (`responses.store`), under the key that made it: another key's lookup finds nothing, as
if it did not exist. Each row holds the request's whole input (the conversation it continued,
then its own items) and the Response object, so that `previous_response_id` can stand for
both. Rows past their `expires_at` are never returned, and deleted as new ones are written.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from tokenbrake.storage.backend import Backend

PURGE_EVERY_S = 60.0  # expired rows are deleted at most this often, by the next write
NO_KEY = ""  # the key name of responses made where keys are not required


@dataclass(slots=True)
class KeptResponse:
    response_id: str
    input_items: list[dict[str, Any]]
    response: dict[str, Any]


class ResponseStore:
    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._purged_at = 0.0

    async def keep(self, key_name: str | None, kept: KeptResponse, retention_s: float) -> None:
        now = time.time()
        async with self._backend.transaction() as tx:
            if now - self._purged_at >= PURGE_EVERY_S:
                self._purged_at = now
                await tx.execute("DELETE FROM responses WHERE expires_at <= ?", (now,))
            await tx.execute(
                "INSERT INTO responses (response_id, key_name, created_at, expires_at, input_items, response)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (response_id) DO NOTHING",
                (kept.response_id, key_name or NO_KEY, now, now + retention_s, json.dumps(kept.input_items),
                 json.dumps(kept.response)),
            )

    async def find(self, key_name: str | None, response_id: str) -> KeptResponse | None:
        rows = await self._backend.fetch(
            "SELECT input_items, response FROM responses WHERE response_id = ? AND key_name = ? AND expires_at > ?",
            (response_id, key_name or NO_KEY, time.time()),
        )
        if not rows:
            return None
        input_items, response = rows[0]
        return KeptResponse(response_id, json.loads(input_items), json.loads(response))

    async def forget(self, key_name: str | None, response_id: str) -> bool:
        """False when the key kept no such response."""
        async with self._backend.transaction() as tx:
            removed = await tx.execute("DELETE FROM responses WHERE response_id = ? AND key_name = ?",
                                       (response_id, key_name or NO_KEY))
        return removed > 0
