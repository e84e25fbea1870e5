import time
import uuid

from tokenbrake.core import new_request_id


def test_request_ids_are_uuid7_hex():
    request_id = new_request_id()
    parsed = uuid.UUID(request_id)
    assert request_id == parsed.hex
    assert (parsed.version, parsed.variant) == (7, uuid.RFC_4122)


def test_request_ids_made_later_sort_later():
    first = new_request_id()
    time.sleep(0.002)
    assert new_request_id() > first


def test_request_ids_do_not_repeat():
    assert len({new_request_id() for _ in range(10_000)}) == 10_000
