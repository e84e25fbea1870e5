"""Budget counters' settled spend rebuilt from the charges written with ledger rows, on both
databases: summed per counter, a rolling window's charges in time order, the ones past their
keeping left out, and a charge written twice counted once."""

from __future__ import annotations

from storage_backends import db, ledger_row, place  # noqa: F401

from tokenbrake.storage.ledger import Charge
from tokenbrake.storage.spend import forget_spent, settled_spend

NOW = 1_764_000_000.0
MONTH = "budget:team:search:2026-11-01T00:00+00:00"
ROLLING = "budget:user:ana:rolling:60s"


def charged(n: int, *charges: Charge):
    row = ledger_row(n)
    row.charges = charges
    return row


async def test_a_counters_spend_is_the_sum_of_its_live_charges(db):
    await db.ledger.write([
        charged(1, Charge(MONTH, 1000, NOW - 50, NOW + 100), Charge("budget:global:total", 1000, NOW - 50, None)),
        charged(2, Charge(MONTH, 2500, NOW - 10, NOW + 100), Charge(ROLLING, 2500, NOW - 10, NOW + 3650)),
        charged(3, Charge(ROLLING, 700, NOW - 30, NOW + 3630)),
        charged(4, Charge("budget:team:search:2026-10-01T00:00+00:00", 9999, NOW - 9000, NOW - 1)),  # kept no longer
    ])
    spend = await settled_spend(db.backend, NOW)
    assert set(spend) == {MONTH, "budget:global:total", ROLLING}
    assert (spend[MONTH].nanos, spend[MONTH].keep_until) == (3500, NOW + 100)
    assert (spend["budget:global:total"].nanos, spend["budget:global:total"].keep_until) == (1000, None)
    assert spend[ROLLING].nanos == 3200 and spend[ROLLING].log == [(NOW - 30, 700), (NOW - 10, 2500)]


async def test_a_batch_written_again_charges_nothing_twice(db):
    rows = [charged(1, Charge(MONTH, 1000, NOW, NOW + 100))]
    await db.ledger.write(rows)
    await db.ledger.write(rows)  # a retry after a lost acknowledgement
    assert (await settled_spend(db.backend, NOW))[MONTH].nanos == 1000


async def test_charges_past_their_keeping_are_forgotten(db):
    await db.ledger.write([charged(1, Charge(MONTH, 1, NOW, NOW - 1)), charged(2, Charge(MONTH, 2, NOW, NOW + 1)),
                           charged(3, Charge("budget:global:total", 3, NOW, None))])
    assert await forget_spent(db.backend, NOW) == 1
    assert await db.backend.fetch("SELECT SUM(nanos) FROM budget_charges") == [(5,)]
