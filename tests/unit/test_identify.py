import pytest
from storage_backends import Place, sqlite_place  # noqa: F401

from tokenbrake.admission.auth import KeyCache, presented_key
from tokenbrake.core import Endpoint, Format, GatewayError, RequestContext
from tokenbrake.stages.identify import Identify, body_user, parse_tags
from tokenbrake.wire.errors import error_body


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


@pytest.fixture
async def strict_key(sqlite_place: Place):
    """(Identify on a database, a key created with require_user)."""
    db = await sqlite_place.open()
    plaintext, _ = await db.keys.create("strict", team="search", require_user=True)
    keys = KeyCache(db)
    await keys.reload()
    yield Identify(keys), plaintext
    await db.close()


def request(key: str, fmt: Format = Format.OPENAI, endpoint: Endpoint = Endpoint.CHAT, headers: dict | None = None,
            **body) -> RequestContext:
    return RequestContext(format=fmt, endpoint=endpoint, body={"model": "m", **body},
                          headers={"authorization": f"Bearer {key}", **(headers or {})})


@pytest.mark.parametrize(("fmt", "field"), [(Format.OPENAI, "`user`"), (Format.ANTHROPIC, "`metadata.user_id`")])
async def test_a_key_that_requires_an_end_user_refuses_a_request_naming_none_saying_how(strict_key, fmt, field):
    identify, key = strict_key
    with pytest.raises(GatewayError) as refused:
        await identify.before(request(key, fmt))
    error = refused.value
    assert error.status == 400 and error.code == "end_user_required"
    assert "API key 'strict' requires an end user" in error.message
    assert f"in the request's {field} field or in the X-Tokenbrake-User header" in error.message
    assert error_body(fmt, error)["error"]["type"] == "invalid_request_error"  # both SDKs: BadRequestError


async def test_a_key_that_requires_an_end_user_takes_one_from_the_body_or_the_header(strict_key):
    identify, key = strict_key
    for ctx in (request(key, user="alice"), request(key, Format.ANTHROPIC, metadata={"user_id": "alice"}),
                request(key, headers={"x-tokenbrake-user": "alice"})):
        await identify.before(ctx)
        assert ctx.who.user == "alice" and ctx.who.require_user


async def test_counting_tokens_needs_no_end_user_since_it_costs_nothing(strict_key):
    identify, key = strict_key
    ctx = request(key, Format.ANTHROPIC, Endpoint.COUNT_TOKENS)
    await identify.before(ctx)
    assert ctx.who.key_name == "strict" and ctx.who.user is None
