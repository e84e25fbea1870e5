"""The detector inside a running gateway: a background task, like compaction, that reads the
shared database's rollups once `anomalies.every_s` and raises what the detector finds.

Nothing is added to the request path: the ledger writer keeps the rollups anyway, and the
task reads them. Every replica reads the same shared rollups (each replica sees only its own
requests; the database sees them all), so each computes the same alerts, with the same ids;
the table (storage/alert_rows.py) keeps each once, and only the replica whose insert won
logs it and posts it to `alerts.webhook_url` (the same webhook as budget alerts, JSON with
Slack's `text`). Likewise for the end of an incident.

On its first tick the task reads the history the detector's usuals need: the hours of the
last five weeks from `rollup_hour`, and the last day (or everything since the fold mark, if
further back) minute by minute from `rollup_minute`, the sessions' too. Then each tick reads
the minutes closed since its last, each one `settle_s` after its end (a batch still being
written, a call still settling), evaluating each.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from tokenbrake.config import Config
from tokenbrake.foresight.alert import Alert, End, moment
from tokenbrake.foresight.detector import SESSION, WATCHED, Detector, Row
from tokenbrake.foresight.usual import HOURS_KEPT
from tokenbrake.settlement.alerts import Alerts
from tokenbrake.storage import Database
from tokenbrake.storage.compaction import folded_until

log = logging.getLogger(__name__)
MINUTES_AT_START = timedelta(hours=24)  # read minute by minute at start: the sessions' usual needs a day
MAX_CATCH_UP = 180  # minutes read in one tick; after a longer pause, the older ones are skipped


class AnomalyWatch:
    def __init__(self, config: Config, db: Database, alerts: Alerts | None,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config.anomalies
        self.db = db
        self.alerts = alerts
        self.clock = clock
        self.detector = Detector(self.config)
        self._fed: int | None = None  # the last minute fed
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        if self._task is None and self.config.enabled:
            self._task = asyncio.create_task(self._run(), name="tokenbrake-anomalies")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception as exc:  # the database is down: the next tick reads what it missed
                log.error("anomaly detection failed: %s; trying again in %g s", exc, self.config.every_s)
            await asyncio.sleep(self._until_next())

    def _until_next(self) -> float:
        """To the next tick: `settle_s` past a multiple of `every_s` (each minute's end, at 60 s), so
        a minute is evaluated as soon as it has settled, when replay says it would be."""
        return self.config.every_s - (self.clock() - self.config.settle_s) % self.config.every_s + 0.05

    def _closed(self) -> int:
        """The last minute closed `settle_s` ago."""
        return int((self.clock() - self.config.settle_s) // 60) - 1

    async def tick(self) -> list[Alert | End]:
        """Reads the minutes closed since the last tick, evaluates each, records and sends what
        is raised and ended; returns it."""
        closed = self._closed()
        if self._fed is None:
            await self._start(closed)
            return []
        first = max(self._fed + 1, closed - MAX_CATCH_UP + 1)
        if first > closed:
            return []
        minutes = await self._minutes(first, closed + 1, WATCHED)
        events: list[Alert | End] = []
        for minute in range(first, closed + 1):
            self.detector.feed_minute(minute, minutes.get(minute, []))
            events += self.detector.evaluate(minute)
        self._fed = closed
        for event in events:
            await self._record(event)
        return events

    async def _start(self, closed: int) -> None:
        now = moment(closed + 1)
        split = min(await folded_until(self.db.backend), now - MINUTES_AT_START).replace(minute=0, second=0)
        since = split - timedelta(hours=HOURS_KEPT)
        hours: dict[int, list[Row]] = {}
        for bucket, *row in await self.db.insight.rows("hour", [d for d in WATCHED if d != SESSION], since, split):
            hours.setdefault(int(bucket.timestamp() // 3600), []).append(tuple(row))  # type: ignore[arg-type]
        minutes = await self._minutes(int(split.timestamp() // 60), closed + 1, WATCHED)

        def feed() -> None:  # hours of rows: off the event loop
            for hour in sorted(hours):
                self.detector.feed_hour(hour, hours[hour])
            for minute in range(int(split.timestamp() // 60), closed + 1):
                self.detector.feed_minute(minute, minutes.get(minute, []))

        await asyncio.to_thread(feed)
        self._fed = closed
        log.info("anomaly detection started on %d hours and %d minutes of history", len(hours), len(minutes))

    async def _minutes(self, first: int, end: int, dims: tuple[str, ...]) -> dict[int, list[Row]]:
        found: dict[int, list[Row]] = {}
        for bucket, *row in await self.db.insight.rows("minute", dims, moment(first), moment(end)):
            found.setdefault(int(bucket.timestamp() // 60), []).append(tuple(row))  # type: ignore[arg-type]
        return found

    async def _record(self, event: Alert | End) -> None:
        if isinstance(event, End):
            if await self.db.alerts.end(event.id, moment(event.ended_at)):
                self._send(event.text(), {"type": "anomaly_end", **event.view(), "text": event.text()})
            return
        view = event.view()
        raised = await self.db.alerts.raise_once(view, moment(event.since), moment(event.at))
        if raised.won:
            self._send(event.text(), {"type": "anomaly", **view, "text": event.text()})
        elif raised.id != event.id:  # another replica raised it, a minute off: follow its id
            event.id = raised.id

    def _send(self, text: str, payload: dict[str, Any]) -> None:
        if self.alerts is not None:
            self.alerts.post(text, payload)
        else:
            log.warning("%s", text)

