import pytest

from tokenbrake.auth import presented_key
from tokenbrake.core import GatewayError
from tokenbrake.stages.identify import body_user, parse_tags


def test_tags_header_parses_into_pairs():
    assert parse_tags(" feature=search , env=prod") == {"feature": "search", "env": "prod"}


@pytest.mark.parametrize("header", ["feature", "=x", "feature=", "a=b,,c=d"])
def test_malformed_tags_are_refused_naming_the_header(header):
    with pytest.raises(GatewayError, match="X-Tokenbrake-Tags"):
        parse_tags(header)


def test_too_many_tags_are_refused():
    with pytest.raises(GatewayError, match="at most 20 tags"):
        parse_tags(",".join(f"t{i}=v" for i in range(21)))


def test_end_user_comes_from_either_formats_field():
    assert body_user({"user": "alice"}) == "alice"
    assert body_user({"metadata": {"user_id": "bob"}}) == "bob"
    assert body_user({"messages": []}) is None


@pytest.mark.parametrize(("headers", "key"), [
    ({"authorization": "Bearer tb-abc"}, "tb-abc"),
    ({"authorization": "bearer tb-abc"}, "tb-abc"),
    ({"x-api-key": "tb-xyz"}, "tb-xyz"),
    ({"authorization": "Basic Zm9v"}, None),
    ({}, None),
])
def test_key_is_read_as_either_sdk_sends_it(headers, key):
    assert presented_key(headers) == key
