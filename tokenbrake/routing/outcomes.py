"""Cascade outcomes as labelled examples, for `tokenbrake router train --from-ledger`.

Each cascade decides, for one real prompt, whether its cheapest tier's answer was good
enough (kept) or not (escalated): exactly the label the router learns. Keeping an example
means keeping the prompt's text, which tokenbrake never does unless told: only routes with
`keep_examples: true` write them, to the `routing_examples` table (not the ledger, whose
`prompt` column follows `ledger.store_prompts`). Calls that failed with an error teach
nothing about quality and are not kept.

Examples are written in the background, a batch per write, never on the request path.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from tokenbrake.storage import Database

log = logging.getLogger(__name__)
MAX_PENDING = 10_000  # beyond this (the database is down), new examples are dropped


@dataclass(frozen=True, slots=True)
class Outcome:
    route: str
    tier_model: str  # the cheaper tier whose answer was judged
    key_name: str | None
    team: str | None
    prompt: str
    good_enough: bool
    ts: datetime


class OutcomeRecorder:
    def __init__(self, database: Database) -> None:
        self.backend = database.backend
        self.pending: list[Outcome] = []
        self.task: asyncio.Task | None = None

    def add(self, example: Outcome) -> None:
        if len(self.pending) >= MAX_PENDING:
            return
        self.pending.append(example)
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._write())

    async def _write(self) -> None:
        while self.pending:
            batch, self.pending = self.pending, []
            try:
                async with self.backend.transaction() as tx:
                    for e in batch:
                        await tx.execute(
                            "INSERT INTO routing_examples (ts, route, tier_model, key_name, team, prompt, good_enough)"
                            " VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (e.ts, e.route, e.tier_model, e.key_name, e.team, e.prompt, e.good_enough))
            except Exception:
                log.exception("could not keep %d routing examples; they are dropped", len(batch))

    async def close(self) -> None:
        """Writes what is pending (at shutdown)."""
        if self.task is not None:
            await self.task


def example(route: str, tier_model: str, key_name: str | None, team: str | None, prompt: str, good: bool) -> Outcome:
    return Outcome(route, tier_model, key_name, team, prompt, good, datetime.now(UTC))


async def labelled_examples(database: Database) -> list[tuple[str, bool]]:
    """Every kept (prompt, good_enough) pair, oldest first."""
    rows = await database.backend.fetch("SELECT prompt, good_enough FROM routing_examples ORDER BY id")
    return [(prompt, bool(good)) for prompt, good in rows]
