"""Budget alerts: each threshold (`alert_at`, shares of the amount) fires once per period.

The Budgets stage reports the spend it sees (`observe`, no I/O); a threshold the spend has
reached is then claimed in the shared limits state (`LimitStore.mark_once`, keyed by the
counter's period), so it fires once per period however many replicas see it, and is
logged and, with `alerts.webhook_url`, POSTed as JSON. All of that runs in the background:
the request never waits for an alert. Each process also remembers what it has claimed, so a
threshold costs one shared-state call per process and period, not one per request.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

import aiohttp

from tokenbrake.config import AlertsConfig, BudgetConfig
from tokenbrake.limits import BudgetCounter, Clock, CounterStatus, LimitStore, system_clock
from tokenbrake.limits.windows import Placements
from tokenbrake.scopes import describe_counter

log = logging.getLogger(__name__)
MAX_REMEMBERED = 100_000  # claimed marks kept per process before the memo is cleared


@dataclass(frozen=True, slots=True)
class Alert:
    budget: BudgetConfig
    counter: str  # the counter the budget names for these requests, e.g. user:alice
    threshold: float
    spent: Decimal
    period_key: str  # the counter's storage key for this period
    resets_at: datetime | None

    def as_json(self) -> dict[str, Any]:
        return {
            "type": "budget_threshold",
            "budget": self.budget.scope,
            "counter": self.counter,
            "period": self.budget.period,
            "mode": self.budget.mode,
            "threshold": self.threshold,
            "amount_usd": str(self.budget.amount_usd),
            "spent_usd": str(self.spent),
            "period_key": self.period_key,
            "resets_at": self.resets_at.isoformat() if self.resets_at else None,
            "at": datetime.now(UTC).isoformat(),
        }


@lru_cache(maxsize=256)
def _exact(share: float) -> Decimal:
    """A threshold share as the decimal it is written as (0.8, not 0.8000000000000000444)."""
    return Decimal(str(share))


class Alerts:
    def __init__(self, config: AlertsConfig, limits: LimitStore, clock: Clock = system_clock) -> None:
        self.config = config
        self.limits = limits
        self.clock = clock
        self._claimed: set[str] = set()
        self._placements = Placements()  # once past a threshold, every request places its counter
        self._tasks: set[asyncio.Task] = set()
        self._session: aiohttp.ClientSession | None = None

    def observe(self, budget: BudgetConfig, status: CounterStatus, spent: Decimal) -> None:
        """`spent` (at least) has been spent on the counter `status` describes: fire each
        threshold it reaches that has not fired this period."""
        spot = None
        for share in budget.alert_at:
            if spent < status.limit * _exact(share):
                continue  # as almost every call is: the counter is placed only past a threshold
            now = self.clock()
            if spot is None:
                spot = self._placements.place(BudgetCounter(status.key, status.limit, status.window, status.hard), now)
            # A rolling window has no periods: it alerts at most once per window length.
            period = f":{int(now // spot.rolling_s)}" if spot.rolling_s else ""
            mark = f"alert:{spot.key}{period}:{share:g}"
            if mark in self._claimed:
                continue
            alert = Alert(budget, status.key, share, spent, spot.key, status.resets_at)
            counter = describe_counter(budget.scope, status.key)
            message = (f"budget {budget.scope} ({budget.period}) for {counter} reached {share * 100:g}% of "
                       f"{budget.amount_usd}: spent {spent}")
            ttl = spot.rolling_s or spot.keep_s  # to the period's end (None: a total budget, never)
            self.notify(mark, ttl, message, alert.as_json())

    def _spawn(self, work) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def notify(self, mark: str, ttl_s: float | None, message: str, payload: dict[str, Any]) -> None:
        """Any other alert (a session's suspected loop): logged, and POSTed to the webhook,
        once per `mark` (for `ttl_s`; None: ever) across replicas, in the background."""
        if mark in self._claimed:
            return
        if len(self._claimed) >= MAX_REMEMBERED:
            self._claimed.clear()  # the shared mark still says it fired
        self._claimed.add(mark)
        self._spawn(self._notify(mark, ttl_s, message, payload))

    def post(self, message: str, payload: dict[str, Any]) -> None:
        """An alert already claimed elsewhere (an anomaly, raised once in the database): logged
        now, and POSTed to the webhook in the background, Slack's `text` in the payload."""
        log.warning("%s", message)
        if self.config.webhook_url:
            self._spawn(self._send(payload, message))

    async def _notify(self, mark: str, ttl_s: float | None, message: str, payload: dict[str, Any]) -> None:
        if not await self._claim(mark, ttl_s):
            return  # another replica (or this one, before a restart) fired it this period
        log.warning("%s", message)
        if self.config.webhook_url:
            await self._send(payload, message)

    async def _claim(self, mark: str, ttl_s: float | None) -> bool:
        try:
            return await self.limits.mark_once(mark, ttl_s)
        except Exception:
            log.exception("could not claim alert %s; sending it anyway", mark)
            return True

    async def _send(self, payload: dict[str, Any], what: str) -> None:
        assert self.config.webhook_url is not None, "sent only to a webhook that is set"
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.config.timeout_s))
        try:
            async with self._session.post(self.config.webhook_url, json=payload) as response:
                if response.status >= 300:
                    log.error("alert webhook answered %s for %s", response.status, what)
        except (TimeoutError, aiohttp.ClientError) as exc:
            log.error("alert webhook failed for %s: %r", what, exc)

    async def aclose(self) -> None:
        """Lets alerts in flight finish (each is bounded by the webhook timeout)."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self._session is not None:
            await self._session.close()
