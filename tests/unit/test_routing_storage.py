"""Routing's part of the database, on SQLite and PostgreSQL: the saved cost on ledger rows and
in usage reports, and cascade outcomes kept as training examples."""

import asyncio
from decimal import Decimal

from storage_backends import db, ledger_row, place  # noqa: F401

from tokenbrake.routing.outcomes import OutcomeRecorder, example, labelled_examples


async def test_saved_cost_is_stored_and_added_up_by_model(db):
    await db.ledger.write([
        ledger_row(1, requested_model="auto", served_model="small", cost_usd=Decimal("0.0001"),
                   saved_usd=Decimal("0.0049")),
        ledger_row(2, requested_model="auto", served_model="small", cost_usd=Decimal("0.0001"),
                   saved_usd=Decimal("-0.0001")),  # a cascade's rejected answer
        ledger_row(3, served_model="gpt-4o"),  # not routed: nothing saved, nothing lost
    ])
    rows = {row.request_id: row for row in await db.ledger.rows()}
    assert rows["req-1"].saved_usd == Decimal("0.0049") and rows["req-3"].saved_usd is None
    groups = {g.group: g for g in await db.ledger.usage("model")}
    assert groups["small"].saved_usd == Decimal("0.0048") and groups["gpt-4o"].saved_usd == 0
    assert (await db.ledger.totals()).saved_usd == Decimal("0.0048")


async def test_kept_examples_come_back_as_labelled_pairs_in_order(db):
    recorder = OutcomeRecorder(db)
    recorder.add(example("auto", "small", "k", "t", "easy one", True))
    recorder.add(example("auto", "small", "k", None, "hard one", False))
    await asyncio.sleep(0)  # the write runs in the background…
    recorder.add(example("auto", "small", None, None, "another", True))
    await recorder.close()  # …and close waits for it
    assert await labelled_examples(db) == [("easy one", True), ("hard one", False), ("another", True)]


async def test_no_examples_before_any_cascade(db):
    assert await labelled_examples(db) == []
