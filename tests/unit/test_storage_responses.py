"""The Responses conversations the gateway keeps, on SQLite and PostgreSQL alike: found only by
the key that kept them, gone once past their retention (and deleted by the next write), and
forgotten on request."""

import time

from storage_backends import Place, db, place  # noqa: F401

from tokenbrake.storage import responses
from tokenbrake.storage.responses import KeptResponse

ITEMS = [{"type": "message", "role": "user", "content": "My name is Ada."}]
RESPONSE = {"id": "resp_1", "object": "response", "status": "completed",
            "output": [{"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Hi Ada"}]}]}


async def test_a_kept_response_is_found_only_by_its_own_key(db):
    await db.responses.keep("app-a", KeptResponse("resp_1", ITEMS, RESPONSE), retention_s=60)
    kept = await db.responses.find("app-a", "resp_1")
    assert kept is not None and kept.input_items == ITEMS and kept.response == RESPONSE
    assert await db.responses.find("app-b", "resp_1") is None
    assert await db.responses.find(None, "resp_1") is None  # anonymous requests are a key of their own


async def test_a_response_past_its_retention_is_not_found_and_is_deleted_by_a_later_write(db, monkeypatch):
    await db.responses.keep(None, KeptResponse("resp_old", ITEMS, RESPONSE), retention_s=0.2)
    assert await db.responses.find(None, "resp_old") is not None
    time.sleep(0.3)
    assert await db.responses.find(None, "resp_old") is None
    monkeypatch.setattr(responses, "PURGE_EVERY_S", 0.0)
    await db.responses.keep(None, KeptResponse("resp_new", ITEMS, RESPONSE), retention_s=60)
    rows = await db.backend.fetch("SELECT response_id FROM responses")
    assert rows == [("resp_new",)]


async def test_forgetting_needs_the_key_that_kept_it(db):
    await db.responses.keep("app-a", KeptResponse("resp_1", ITEMS, RESPONSE), retention_s=60)
    assert await db.responses.forget("app-b", "resp_1") is False
    assert await db.responses.forget("app-a", "resp_1") is True
    assert await db.responses.find("app-a", "resp_1") is None


async def test_keeping_the_same_id_twice_keeps_the_first(db):
    for n in range(2):
        await db.responses.keep("k", KeptResponse("resp_1", ITEMS, {**RESPONSE, "n": n}), retention_s=60)
    kept = await db.responses.find("k", "resp_1")
    assert kept is not None and kept.response["n"] == 0
