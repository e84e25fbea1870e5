"""Which spend each forecast is of, read from the rollups, and the forecast as the CLI and the
insight API show it.

A `Target` is one forecast to make: a scope's spend over the calendar month (in
`budgeting.timezone`), or a budget's over its period against its amount. A scope is written
as budgets write theirs (`global`, `team:search`, `tag:feature=search`) and selects the
insight filters of the same name (`scope_filters`). A budget names one counter, or, for a
`*` scope or a user's or tag's counted per tenant, one per member that spent this period
(`budget_rules.spending_counters`, as `tokenbrake budgets list` shows them): each is a target
of its own, filtered to its tenant too.

Each target's series is its hourly cost over the last eight weeks (`HISTORY`), from the
rollups (`Insight.series`). A `total` budget has no period end: it is forecast over the next
`TOTAL_HORIZON`, from all it has spent. Minute and rolling budgets are left out: an hourly
series cannot see a minute, and a rolling window has no end to forecast to.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from tokenbrake.admission.budget_rules import merge, spending_counters, stored_budgets, window
from tokenbrake.config import BudgetConfig, Config
from tokenbrake.foresight.forecast import MAX_HISTORY_DAYS, Forecast, Interval, forecast_spend
from tokenbrake.limits import Window
from tokenbrake.limits.windows import period
from tokenbrake.scopes import check_scope, split_tenant
from tokenbrake.storage import Database
from tokenbrake.storage.insight_queries import TAG, Query, QueryError, iso, money
from tokenbrake.storage.rollups import floor

HISTORY = timedelta(days=MAX_HISTORY_DAYS + 1)  # whole days to the current hour, and the hour
TOTAL_HORIZON = timedelta(days=30)
UNFORECAST_PERIODS = ("minute", "rolling")


@dataclass(frozen=True, slots=True)
class Target:
    """One forecast to make: a scope's spend, or one budget counter's, over its period."""

    scope: str  # as budgets write it; a budget's own, `*` and all
    filters: Mapping[str, Sequence[str]]
    period: str = "month"
    budget: BudgetConfig | None = None
    counter: str | None = None  # the member a `*` or per-tenant budget counts (`user:ana`)
    tenant: str | None = None  # the tenant that member's counter is within (`team:search`)


def scope_filters(scope: str) -> dict[str, list[str]]:
    """The insight filters selecting a scope's spend: `global` none, `team:search` team=search,
    `tag:feature=search` tag.feature=search. ValueError for a scope that is not one, or
    names a member per counter (`user:*`)."""
    if check_scope(scope) == "global":
        return {}
    kind, _, name = scope.partition(":")
    if name == "*":
        raise ValueError(f"{scope} is a counter per member, not one spend: forecast one of them (e.g. {kind}:NAME), "
                         f"or the budget on {scope} if there is one")
    if kind == "tag":
        tag, _, value = name.partition("=")
        return {f"{TAG}{tag}": [value]}
    return {kind: [name]}


def _within(tenant: str | None) -> dict[str, list[str]]:
    """A tenant's filter: `team:a` is team=a, `key:bot` key=bot."""
    if tenant is None:
        return {}
    kind, _, name = tenant.partition(":")
    return {kind: [name]}


async def budget_targets(config: Config, db: Database, now: datetime,
                         budgets: list[BudgetConfig] | None = None) -> list[Target]:
    """A target per counter of each budget in force (or of `budgets`) that has a period to
    forecast to."""
    if budgets is None:
        budgets = merge(list(config.budgets), await stored_budgets(db, config))
    found = []
    for budget in budgets:
        if budget.period in UNFORECAST_PERIODS:
            continue
        win = window(budget, config.budgeting.timezone)
        for key in await spending_counters(budget, win, db, now.timestamp()):
            tenant, counter = split_tenant(budget.scope, key)
            found.append(Target(budget.scope, {**scope_filters(counter), **_within(tenant)}, budget.period, budget,
                                counter if counter != budget.scope else None, tenant))
    return found


async def targets(config: Config, db: Database, now: datetime, scope: str | None = None) -> list[Target]:
    """Without `scope`: the global month, then every budget's counters. With it: the counters
    of the budgets on that scope, or, with none, its month. ValueError for a scope that is not
    one."""
    if scope is None:
        return [Target("global", {}), *await budget_targets(config, db, now)]
    on_scope = [budget for budget in merge(list(config.budgets), await stored_budgets(db, config))
                if budget.scope == check_scope(scope) and budget.period not in UNFORECAST_PERIODS]
    if on_scope:
        return await budget_targets(config, db, now, on_scope)
    return [Target(scope, scope_filters(scope))]


def _period(target: Target, tz: str, now: datetime) -> tuple[datetime | None, datetime]:
    """The target's period: (start, end); a total budget's has no start and ends a horizon ahead."""
    win = window(target.budget, tz) if target.budget is not None else Window("month", tz=tz)
    if win.kind == "total":
        return None, now + TOTAL_HORIZON
    return period(win, now.timestamp())


async def _spent_before(db: Database, target: Target, since: datetime, now: datetime) -> Decimal:
    """A total budget's spend before its series begins."""
    first = await db.insight.earliest()
    if first is None or first >= since:
        return Decimal(0)
    return (await db.insight.total(Query(first, since, target.filters), now))[2].cost_usd


async def forecast(db: Database, target: Target, now: datetime, tz: str) -> dict[str, Any]:
    """The target's forecast, as the API and `tokenbrake forecast --json` show it."""
    start, end = _period(target, tz, now)
    since = floor(now - HISTORY, "hour")
    head = _head(target, start, end)
    try:
        found = await db.insight.series(Query(since, now, target.filters), "hour", now=now, fields=["cost_usd"])
        earlier = await _spent_before(db, target, since, now) if start is None else Decimal(0)
    except QueryError as exc:
        return {**head, "status": "not_rolled_up", "enough_history": None,
                "reason": f"{_describe(target)}: its spend is not rolled up ({str(exc).split(': ', 1)[1]})"}
    hourly = [(t, m.cost_usd) for t, m in zip(found.times, found.series[0][1], strict=True)]
    amount = target.budget.amount_usd if target.budget is not None else None
    result = forecast_spend(hourly, now, end, start, amount, earlier)
    if not isinstance(result, Forecast):
        return {**head, "status": "not_enough_history", "enough_history": False, "reason": result.reason,
                "history_hours": result.history_hours, "needed_hours": result.needed_hours}
    return {**head, "status": "ok", "enough_history": True, "history_hours": result.history_hours,
            "spent_usd": _money(result.spent_usd), "forecast_usd": _money(result.forecast_usd),
            "intervals": _intervals(result.intervals), "runs_out_at": _iso(result.runs_out_at),
            "path": [{"t": iso(p.at), "forecast_usd": _money(p.forecast_usd), "intervals": _intervals(p.intervals)}
                     for p in result.path],
            "over_budget": amount is not None and result.forecast_usd > amount}  # the forecast passes the budget


def _intervals(intervals: Sequence[Interval]) -> list[dict[str, Any]]:
    return [{"level": i.level, "low_usd": _money(i.low_usd), "high_usd": _money(i.high_usd)} for i in intervals]


def _head(target: Target, start: datetime | None, end: datetime) -> dict[str, Any]:
    budget = target.budget
    return {"scope": target.scope, "counter": target.counter, "tenant": target.tenant,
            "filters": {name: list(values) for name, values in target.filters.items()}, "period": target.period,
            "period_start": _iso(start), "period_end": _iso(end),
            "budget_usd": None if budget is None else money(budget.amount_usd),
            "budget_mode": None if budget is None else budget.mode}


def _describe(target: Target) -> str:
    if target.counter is None:
        return target.scope
    return target.counter + (f" in {target.tenant}" if target.tenant else "")


def _money(amount: float) -> str:
    """USD to a hundredth of a cent: a forecast is no more exact than that."""
    return money(Decimal(f"{amount:.4f}"))


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else iso(moment)


async def outlook(config: Config, db: Database, now: datetime, scope: str | None = None) -> list[dict[str, Any]]:
    """The forecasts of `targets`, in order."""
    return [await forecast(db, target, now, config.budgeting.timezone) for target in await targets(config, db, now, scope)]
