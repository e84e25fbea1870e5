from datetime import UTC, datetime, timedelta

import pytest

from tokenbrake.storage import parse_since

NOW = datetime(2026, 11, 15, 10, 30, tzinfo=UTC)


@pytest.mark.parametrize(("text", "back"), [
    ("7d", timedelta(days=7)), ("24h", timedelta(hours=24)), ("30m", timedelta(minutes=30)),
    (" 1d ", timedelta(days=1)),
])
def test_relative_times_count_back_from_now(text, back):
    assert parse_since(text, NOW) == NOW - back


def test_date_means_utc_midnight():
    assert parse_since("2026-11-01", NOW) == datetime(2026, 11, 1, tzinfo=UTC)


@pytest.mark.parametrize("text", ["", "7", "7w", "yesterday", "-3d", "2026-13-01", "2026/11/01", "11-01-2026"])
def test_anything_else_is_a_clear_value_error(text):
    with pytest.raises(ValueError, match=repr(text.strip()).replace("(", r"\(")):
        parse_since(text, NOW)
