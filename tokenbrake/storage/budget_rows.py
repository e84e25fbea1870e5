"""Budgets set at run time (`tokenbrake budgets set`, `POST /admin/budgets`).

One row per (scope, period), holding a `BudgetConfig`; setting a budget again replaces it.
Gateways read them all when told they changed (changes/), and every `budgeting.refresh_s`
in any case, and lay them over the config's own (tokenbrake/admission/budget_rules.py), so a change takes
effect everywhere without a restart.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from tokenbrake.config import BudgetConfig
from tokenbrake.storage.backend import Backend, to_decimal

_COLUMNS = ("scope, period, rolling_s, amount_usd, mode, downgrade_to, downgrade_below_usd, alert_at,"
            " across_tenants")


def _budget(row: tuple) -> BudgetConfig:
    scope, period, rolling_s, amount, mode, downgrade_to, downgrade_below, alert_at, across_tenants = row
    return BudgetConfig(scope=scope, period=period, rolling_s=rolling_s, amount_usd=to_decimal(amount), mode=mode,
                        downgrade_to=downgrade_to,
                        downgrade_below_usd=None if downgrade_below is None else to_decimal(downgrade_below),
                        alert_at=json.loads(alert_at), across_tenants=bool(across_tenants))


class BudgetStore:
    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    async def set(self, budget: BudgetConfig) -> BudgetConfig:
        """Creates the budget, or replaces the one with the same scope and period."""
        values = (budget.scope, budget.period, budget.rolling_s, budget.amount_usd, budget.mode, budget.downgrade_to,
                  budget.downgrade_below_usd, json.dumps(budget.alert_at), budget.across_tenants, datetime.now(UTC))
        async with self._backend.transaction() as tx:
            await tx.execute(
                f"INSERT INTO budgets ({_COLUMNS}, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (scope, period) DO UPDATE SET rolling_s = excluded.rolling_s,"
                " amount_usd = excluded.amount_usd, mode = excluded.mode, downgrade_to = excluded.downgrade_to,"
                " downgrade_below_usd = excluded.downgrade_below_usd, alert_at = excluded.alert_at,"
                " across_tenants = excluded.across_tenants, updated_at = excluded.updated_at",
                values,
            )
        return budget

    async def list(self) -> list[BudgetConfig]:
        rows = await self._backend.fetch(f"SELECT {_COLUMNS} FROM budgets ORDER BY scope, period")
        return [_budget(row) for row in rows]

    async def delete(self, scope: str, period: str) -> bool:
        """False if there was no such budget."""
        async with self._backend.transaction() as tx:
            removed = await tx.execute("DELETE FROM budgets WHERE scope = ? AND period = ?", (scope, period))
        return removed > 0
