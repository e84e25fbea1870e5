"""Budgets set at run time, stored the same on SQLite and PostgreSQL."""

from decimal import Decimal

from storage_backends import Place, db, place  # noqa: F401

from tokenbrake.config import BudgetConfig


async def test_a_budget_is_stored_and_read_back_whole(db):
    budget = BudgetConfig(scope="team:search", amount_usd=Decimal("50.25"), period="rolling", rolling_s=3600,
                          mode="downgrade", downgrade_to="small", downgrade_below_usd=Decimal("5"), alert_at=[0.9])
    await db.budgets.set(budget)
    assert await db.budgets.list() == [budget]


async def test_setting_the_same_scope_and_period_again_replaces_it(db):
    await db.budgets.set(BudgetConfig(scope="team:a", amount_usd=Decimal(1), period="day"))
    await db.budgets.set(BudgetConfig(scope="team:a", amount_usd=Decimal(2), period="day", mode="soft"))
    await db.budgets.set(BudgetConfig(scope="team:a", amount_usd=Decimal(3), period="month"))
    assert [(b.period, b.amount_usd, b.mode) for b in await db.budgets.list()] == [
        ("day", 2, "soft"), ("month", 3, "hard")]


async def test_a_budget_can_be_deleted(db):
    await db.budgets.set(BudgetConfig(scope="global", amount_usd=Decimal(1)))
    assert await db.budgets.delete("global", "month") is True
    assert await db.budgets.delete("global", "month") is False
    assert await db.budgets.list() == []


async def test_a_budget_across_tenants_is_stored_so_and_setting_it_again_replaces_that(db):
    await db.budgets.set(BudgetConfig(scope="user:*", amount_usd=Decimal(1), across_tenants=True))
    assert [b.across_tenants for b in await db.budgets.list()] == [True]
    await db.budgets.set(BudgetConfig(scope="user:*", amount_usd=Decimal(1)))
    assert [b.across_tenants for b in await db.budgets.list()] == [False]
