"""Anomaly alerts in the shared database, raised once however many replicas see them.

One row per incident: its id (a hash of scope, kind and start: foresight/alert.py), kind,
scope, team, when it began, was raised and ended, and the alert as JSON. `raise_once` inserts
it with `ON CONFLICT DO NOTHING` on two keys, the id, and (scope, kind) among the incidents
not yet ended (a partial unique index): so a replica whose reading of the rollups put the
start a minute off still finds the incident raised, and adopts its id. Only the insert that
won sends the alert anywhere; likewise only the update that ended the row sends the end.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tokenbrake.storage.backend import Backend, to_datetime

_COLUMNS = "id, kind, scope, team, since, raised_at, ended_at, body"


@dataclass(frozen=True, slots=True)
class Raised:
    won: bool  # this call inserted it: send it
    id: str  # its id, or the open incident's that was there first


class AlertStore:
    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    async def raise_once(self, alert: dict[str, Any], since: datetime, raised_at: datetime) -> Raised:
        """`alert`: its view, with id, kind, scope and team."""
        async with self._backend.transaction() as tx:
            won = await tx.execute(
                f"INSERT INTO anomaly_alerts ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, NULL, ?) ON CONFLICT DO NOTHING",
                (alert["id"], alert["kind"], alert["scope"], alert["team"], since, raised_at, json.dumps(alert)))
            if won:
                return Raised(True, alert["id"])
            found = await tx.fetch("SELECT id FROM anomaly_alerts WHERE id = ? OR (scope = ? AND kind = ? AND "
                                   "ended_at IS NULL) ORDER BY since LIMIT 1", (alert["id"], alert["scope"], alert["kind"]))
        return Raised(False, found[0][0] if found else alert["id"])

    async def end(self, alert_id: str, ended_at: datetime) -> bool:
        """Whether this call ended it (False: already over, or unknown)."""
        async with self._backend.transaction() as tx:
            return await tx.execute("UPDATE anomaly_alerts SET ended_at = ? WHERE id = ? AND ended_at IS NULL",
                                    (ended_at, alert_id)) > 0

    async def open_ids(self) -> dict[tuple[str, str], str]:
        """The incidents not yet over: (scope, kind) -> id."""
        rows = await self._backend.fetch("SELECT scope, kind, id FROM anomaly_alerts WHERE ended_at IS NULL")
        return {(scope, kind): alert_id for scope, kind, alert_id in rows}

    async def since(self, since: datetime, team: str | None = None, limit: int = 500) -> list[dict[str, Any]]:
        """The alerts raised from `since` on (or still open), newest first; with `team`, its own
        only. Each is the alert as raised, with `ended_at` (None: still on)."""
        where = "(raised_at >= ? OR ended_at IS NULL)"
        params: list[Any] = [since]
        if team is not None:
            where += " AND team = ?"
            params.append(team)
        rows = await self._backend.fetch(f"SELECT body, ended_at FROM anomaly_alerts WHERE {where} "
                                         f"ORDER BY raised_at DESC, id LIMIT ?", [*params, limit])
        return [{**json.loads(body), "ended_at": _iso(ended_at)} for body, ended_at in rows]


def _iso(value: Any) -> str | None:
    moment = to_datetime(value)
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")
