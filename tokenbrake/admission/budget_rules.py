"""Budgets: which ones a request counts against, what it may cost, and the words of a refusal.

The budgets in force are the config's, overlaid by those set at run time in the database
(same scope and period: the database's wins). `BudgetCache` keeps them in memory, reloaded
when the change channel says budgets changed and every `budgeting.refresh_s` in any case
(changes/), so the request path never reads the database.

Each budget becomes a `BudgetCounter` (limits/) per request: its scope names the counter
(`user:*` one per user; a user's or tag's within the key's tenant, scopes.py), its period
the window, its mode whether it refuses (`hard`, `downgrade`) or only counts and alerts
(`soft`). The Budgets stage (stages/budgets.py) reserves on them.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from pydantic import ValidationError

from tokenbrake.config import BudgetConfig, Config, describe_validation_error
from tokenbrake.core import ErrorKind, GatewayError
from tokenbrake.limits import BudgetCounter, CounterStatus, LimitStore, Window
from tokenbrake.limits.windows import period
from tokenbrake.routing.checks import grader_tokens
from tokenbrake.scopes import (
    ByScopeValues,
    counter_keys,
    counts_per_tenant,
    describe_counter,
    in_scope,
    smallest,
    split_tenant,
)
from tokenbrake.settlement.pricing import PriceBook
from tokenbrake.storage import Database
from tokenbrake.storage.reports import plain, usd

DOWNGRADED_HEADER = "x-tokenbrake-downgraded"  # the budget whose threshold downgraded the request

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Applied:
    """A budget as it applies to one request: the budget and the counter it names."""

    budget: BudgetConfig
    counter: BudgetCounter


def window(budget: BudgetConfig, tz: str) -> Window:
    if budget.period == "rolling":
        assert budget.rolling_s is not None  # the config requires it with period: rolling
        return Window.rolling(budget.rolling_s)
    return Window(budget.period, tz=tz if budget.period != "total" else "UTC")


def applicable(budgets: list[BudgetConfig], values: dict[str, list[str]], tz: str) -> list[Applied]:
    """The budgets a request with these scope values counts against, one per counter and
    window: when two budgets name the same one (`tag:*` and `tag:feature=search`), the
    smaller amount wins (of equal ones, a hard budget)."""
    # One per counter and window (a budget's window is set by its period and rolling length).
    chosen = smallest(in_scope(budgets, values), _strictness,
                      per=lambda budget, key: (key, budget.period, budget.rolling_s))
    return [Applied(budget, BudgetCounter(key, budget.amount_usd, window(budget, tz), hard=budget.mode != "soft"))
            for budget, key in chosen]


def _strictness(budget: BudgetConfig) -> tuple[Decimal, bool]:
    return budget.amount_usd, budget.mode == "soft"


class ApplicableMemo:
    """`applicable` for the budgets in force, remembered by the request's scope values
    (`ByScopeValues`): working the budgets out again for each request (a counter per budget
    it names) cost more than reserving on them in memory.

    The memo is for one list of budgets; `BudgetCache` replaces its list whenever it reloads
    (never changing one in place), and a new list starts a new memo."""

    def __init__(self, tz: str, max_entries: int = 10_000) -> None:
        self.tz = tz
        self.max_entries = max_entries
        self._budgets: list[BudgetConfig] | None = None
        self._applied: ByScopeValues[list[Applied]] | None = None

    def __call__(self, budgets: list[BudgetConfig], values: dict[str, list[str]]) -> list[Applied]:
        if budgets is not self._budgets or self._applied is None:
            self._budgets = budgets
            self._applied = ByScopeValues(lambda scope_values: applicable(budgets, scope_values, self.tz),
                                          self.max_entries)
        return self._applied(values)


def merge(configured: list[BudgetConfig], stored: list[BudgetConfig]) -> list[BudgetConfig]:
    """The config's budgets with the stored ones laid over them by (scope, period)."""
    merged = {(b.scope, b.period): b for b in configured}
    merged.update({(b.scope, b.period): b for b in stored})
    return list(merged.values())


@dataclass(frozen=True, slots=True)
class PossibleCall:
    """One upstream call a request may make, answered by any one of `models` (a model, then
    its fallbacks)."""

    models: tuple[str, ...]
    grader: bool = False  # a cascade's grader: sent the request and an answer, it answers in a word


def worst_case(prices: PriceBook, calls: list[PossibleCall], input_tokens: int, output_tokens: int) -> Decimal:
    """The most a request can cost: each call it may make at the dearest model that may answer
    it, summed (a plain request makes one call; a cascade one per tier, and its graders')."""
    return sum((_call_worst_case(prices, call, input_tokens, output_tokens) for call in calls), Decimal(0))


def _call_worst_case(prices: PriceBook, call: PossibleCall, input_tokens: int, output_tokens: int) -> Decimal:
    if call.grader:
        input_tokens, output_tokens = grader_tokens(input_tokens, output_tokens)
    return max(prices.worst_case(model, input_tokens, output_tokens) for model in call.models)


def affordable_output(prices: PriceBook, calls: list[PossibleCall], input_tokens: int, amount: Decimal,
                      cap: int) -> int:
    """The most output tokens (at most `cap`) whose worst case `amount` still pays for.

    A binary search over the exact price, so it holds for catalog prices with tiers too."""
    low, high = 0, cap
    while low < high:
        mid = (low + high + 1) // 2
        if worst_case(prices, calls, input_tokens, mid) <= amount:
            low = mid
        else:
            high = mid - 1
    return low


def describe(budget: BudgetConfig) -> str:
    period = f"rolling {budget.rolling_s:g}s" if budget.period == "rolling" else budget.period
    return f"{budget.scope} ({period})"


def seconds_until(moment: datetime | None, now: datetime) -> int | None:
    return None if moment is None else max(1, math.ceil((moment - now).total_seconds()))


def refusal(applied: Applied, status: CounterStatus, need: Decimal, now: datetime) -> GatewayError:
    """The 429 for a request the budget cannot pay for: which budget, spent, needed, reset."""
    wait = seconds_until(status.resets_at, now)
    resets = "it never resets (period: total)" if status.resets_at is None else \
        f"it resets at {status.resets_at.isoformat(timespec='seconds')} (in {wait}s)"
    held = f", {usd(status.reserved)} held by requests in flight" if status.reserved else ""
    counter = describe_counter(applied.budget.scope, status.key)
    message = (f"Budget {describe(applied.budget)} for {counter} cannot pay for this request: "
               f"spent {usd(status.spent)} of {usd(status.limit)}{held}; this request needs at least {usd(need)}; "
               f"{resets}.")
    headers = {"retry-after": str(wait)} if wait is not None else {}
    return GatewayError(ErrorKind.RATE_LIMIT, message, code="budget_exceeded", limit=f"budget:{applied.budget.scope}",
                        headers=headers)


class BudgetCache:
    """The budgets in force, in memory: the config's, overlaid by the database's (without a
    database, only the config's). A `Refresher` (changes/) calls `reload`."""

    def __init__(self, config: Config, db: Database | None = None) -> None:
        self.config = config
        self.db = db
        # Replaced on reload, never changed in place: the Budgets stage remembers what applies
        # to a request per list (ApplicableMemo).
        self.current: list[BudgetConfig] = list(config.budgets)

    async def reload(self) -> None:
        if self.db is None:
            return
        self.current = merge(list(self.config.budgets), await stored_budgets(self.db, self.config))


def parse_budget(data: dict, config: Config) -> BudgetConfig:
    """A budget from JSON or CLI options; ValueError naming the bad field."""
    try:
        budget = BudgetConfig.model_validate(data)
    except ValidationError as exc:
        raise ValueError(describe_validation_error(exc).removeprefix("invalid config: ")) from None
    if budget.downgrade_to is not None and budget.downgrade_to not in config.models:
        raise ValueError(f"downgrade_to: no model named {budget.downgrade_to!r}")
    return budget


MAX_LISTED_MEMBERS = 100  # of a `*` budget, the biggest spenders this period


def missing_runtime_budget(config: Config, scope: str, period: str) -> str:
    """Why there is no run-time budget to delete: the one in force lives in the config, or none does."""
    if any(budget.scope == scope and budget.period == period for budget in config.budgets):
        return (f"budget {scope} ({period}) is in the config file, not set at run time: remove it from the "
                f"config's budgets: and restart serve")
    return f"no run-time budget {scope} ({period}): `tokenbrake budgets list` shows the budgets in force"


async def stored_budgets(db: Database, config: Config) -> list[BudgetConfig]:
    """The budgets set at run time that this gateway can enforce (one that downgrades to a
    model it does not configure is logged and ignored)."""
    usable = []
    for budget in await db.budgets.list():
        if budget.downgrade_to is not None and budget.downgrade_to not in config.models:
            log.error("budget %s downgrades to %r, which this gateway does not configure; ignored",
                      describe(budget), budget.downgrade_to)
        else:
            usable.append(budget)
    return usable


async def report(config: Config, db: Database, limits: LimitStore, now: float | None = None) -> list[dict]:
    """Each budget in force with its spend this period: spent, reserved, remaining, resets at.
    A `*` scope has one counter per member (`user:*`: per user), and a user or tag scope one
    per tenant too (unless across_tenants); those listed are the ones the ledger shows
    spending this period (the biggest first), each with its tenant."""
    stored = await stored_budgets(db, config)
    from_db = {(b.scope, b.period) for b in stored}
    now = time.time() if now is None else now
    rows = []
    for budget in merge(list(config.budgets), stored):
        win = window(budget, config.budgeting.timezone)
        counters = [BudgetCounter(name, budget.amount_usd, win, hard=budget.mode != "soft")
                    for name in await spending_counters(budget, win, db, now)]
        statuses = await limits.status(counters) if counters else []
        rows.append({
            **budget.model_dump(mode="json"),
            "source": "runtime" if (budget.scope, budget.period) in from_db else "config",
            "counters": [_counter_view(budget, s) for s in statuses],
        })
    return rows


def _counter_view(budget: BudgetConfig, status: CounterStatus) -> dict:
    tenant, counter = split_tenant(budget.scope, status.key)
    return {"counter": counter, "tenant": tenant, "spent_usd": plain(status.spent),
            "reserved_usd": plain(status.reserved), "remaining_usd": plain(status.remaining),
            "resets_at": status.resets_at.isoformat() if status.resets_at else None}


async def spending_counters(budget: BudgetConfig, win: Window, db: Database, now: float) -> list[str]:
    """The budget's counters that spent in the current period, from the ledger; a scope that
    names one counter for everyone, that one."""
    kind, _, name = budget.scope.partition(":")
    per_tenant = counts_per_tenant(budget.scope, budget.across_tenants)
    if name != "*" and not per_tenant:
        return [budget.scope]
    since = _period_start(win, now)
    if not per_tenant:
        groups = await db.ledger.usage(kind, since=since)
        return [f"{kind}:{g.group}" for g in groups if g.group and g.group != "(none)"][:MAX_LISTED_MEMBERS]
    spenders = await db.ledger.spenders_by_tenant(kind, since=since)
    return [key for tenant, member in spenders
            for key in counter_keys(budget.scope, {"tenant": [tenant] if tenant else [], kind: [member]})
            ][:MAX_LISTED_MEMBERS]


def _period_start(win: Window, now: float) -> datetime | None:
    if win.kind == "total":
        return None
    if win.kind == "rolling":
        assert win.seconds is not None  # a rolling window has its length
        return datetime.fromtimestamp(now - float(win.seconds), UTC)
    return period(win, now)[0]
