"""Last before the call: what the request is and what it reserved, appended to the journal
before any money can be spent, so a gateway killed mid-call leaves a record of it."""

from __future__ import annotations

import time

from tokenbrake.core import RequestContext
from tokenbrake.journal import Journal
from tokenbrake.journal.records import start_of


class JournalStart:
    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    async def before(self, ctx: RequestContext) -> None:
        self.journal.started(start_of(ctx, time.time()))
