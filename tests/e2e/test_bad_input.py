"""Bad input is refused at the door, through the official SDKs, with an input cap and a budget
in force (whose counting once turned wrong-typed content into a 500): a 400 `BadRequestError`
naming the field's path, and no call in the emulator's journal, so nothing is retried either.
Images count against the input cap by their size; and a fuzz of both front doors gets no 500."""

import copy
import random
import uuid

import anthropic
import httpx
import openai
import pytest
from gateway_setup import MASTER_KEY, UPSTREAM_KEYS, create_key, gateway_config, write_config
from malformed_bodies import ANTHROPIC_BODY, OPENAI_BODY, mutations

from tokenbrake.tools.launch import ChildServer

INPUT_CAP = 1000  # above a few lines of text, below an image of unknown size (1,445 / 1,600)


@pytest.fixture(scope="module")
def guarded(emulator, tmp_path_factory):
    """A gateway with an input cap and a hard budget over everything, and a key for it."""
    folder = tmp_path_factory.mktemp("bad-input")
    config = gateway_config(emulator.url, f"sqlite:///{folder / 'ledger.db'}")
    config["limits"] = [{"scope": "global", "max_input_tokens": INPUT_CAP}]
    config["budgets"] = [{"scope": "global", "amount_usd": 100, "period": "month", "mode": "hard"}]
    path = write_config(folder, config)
    server = ChildServer(["serve", "--config", str(path)], quiet=True, env={**UPSTREAM_KEYS, "TOKENBRAKE_MASTER_KEY": MASTER_KEY})
    yield server, create_key(path, "bad-input")
    server.stop()


@pytest.fixture
def clients(guarded):
    server, key = guarded
    with openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0) as oa, \
         anthropic.Anthropic(base_url=server.url, api_key=key, max_retries=0) as an:
        yield oa, an


def marker() -> str:
    return f"bad-{uuid.uuid4().hex[:10]}"


def seen_upstream(emulator, mark: str) -> int:
    return sum(mark in str(record["body"]) for record in httpx.get(emulator.url + "/_emulator/requests").json())


def refused_unsent(emulator, call, error_type, mark: str, param: str) -> str:
    """Runs `call`, which must raise the SDK's BadRequestError naming `param`, with no request
    carrying `mark` reaching the upstream (though a 5xx asked of it would be retried)."""
    with pytest.raises(error_type) as raised:
        call()
    assert raised.value.status_code == 400 and f"'{param}'" in raised.value.message
    assert seen_upstream(emulator, mark) == 0
    return raised.value.message


def said(text: str, *parts: dict) -> list[dict]:
    return [{"role": "user", "content": [{"type": "text", "text": text}, *parts]}]


def test_a_wrong_typed_image_url_is_a_400_naming_its_path(clients, emulator):
    oa, _ = clients
    mark = marker()
    message = refused_unsent(emulator, lambda: oa.chat.completions.create(
        model="gpt-4o", messages=said(f"{mark} [[emulator: status=503]]", {"type": "image_url", "image_url": {"url": 5}}),
    ), openai.BadRequestError, mark, "messages[0].content[1].image_url.url")
    assert "expected a string, got number" in message


def test_a_good_request_does_reach_the_journal(clients, emulator):
    oa, _ = clients
    mark = marker()
    oa.chat.completions.create(model="gpt-4o", max_tokens=5, messages=said(mark))
    assert seen_upstream(emulator, mark) == 1


@pytest.mark.parametrize(("fields", "param", "problem"), [
    ({"temperature": "hot"}, "temperature", "expected a number"),
    ({"tools": [1]}, "tools[0]", "a tool of type function or custom"),
    ({"logit_bias": {"50256": "ban"}}, "logit_bias.50256", "an integer"),
    ({"response_format": {"type": "yaml"}}, "response_format", "text, json_object or json_schema"),
])
def test_openai_sampling_and_tool_fields_of_the_wrong_type_are_refused(clients, emulator, fields, param, problem):
    oa, _ = clients
    mark = marker()
    message = refused_unsent(emulator, lambda: oa.chat.completions.create(
        model="gpt-4o", messages=said(f"{mark} [[emulator: status=503]]"), **fields), openai.BadRequestError, mark, param)
    assert problem in message


def test_openai_wrong_typed_content_and_tool_calls_are_400s_not_500s(clients, emulator):
    oa, _ = clients
    mark = marker()
    refused_unsent(emulator, lambda: oa.chat.completions.create(
        model="gpt-4o", messages=[{"role": "system", "content": mark}, {"role": "user", "content": 5}],
    ), openai.BadRequestError, mark, "messages[1].content")
    refused_unsent(emulator, lambda: oa.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": mark}, {"role": "assistant", "tool_calls": "f"}],
    ), openai.BadRequestError, mark, "messages[1].tool_calls")


def test_anthropic_wrong_typed_system_is_a_400_naming_it(clients, emulator):
    _, an = clients
    mark = marker()
    message = refused_unsent(emulator, lambda: an.messages.create(
        model="claude-fast", max_tokens=5, system=5, messages=said(mark)), anthropic.BadRequestError, mark, "system")
    assert "a string or an array of text blocks" in message


def test_anthropic_wrong_typed_blocks_are_refused_by_path(clients, emulator):
    _, an = clients
    mark = marker()
    refused_unsent(emulator, lambda: an.messages.create(
        model="claude-fast", max_tokens=5,
        messages=[{"role": "user", "content": mark}, {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": "{}"}]}],
    ), anthropic.BadRequestError, mark, "messages[1].content[0].input")
    refused_unsent(emulator, lambda: an.messages.create(
        model="claude-fast", max_tokens=5, messages=said(mark, {"type": "image", "source": {"type": "base64", "media_type": "image/tiff", "data": "AA=="}}),
    ), anthropic.BadRequestError, mark, "messages[0].content[1].source.media_type")


def test_a_wrong_typed_body_sent_to_count_tokens_is_refused(clients, emulator):
    _, an = clients
    mark = marker()
    refused_unsent(emulator, lambda: an.messages.count_tokens(
        model="claude-fast", messages=[{"role": "user", "content": [{"type": "text", "text": [mark]}]}],
    ), anthropic.BadRequestError, mark, "messages[0].content[0].text")


def test_embeddings_input_of_mixed_types_is_refused_by_index(clients):
    oa, _ = clients
    with pytest.raises(openai.BadRequestError, match=r"'input\[1\]': expected a string, got number"):
        oa.embeddings.create(model="text-embedding-3-small", input=["fine", 5])  # type: ignore[list-item]
    assert oa.embeddings.create(model="text-embedding-3-small", input=["fine", "too"]).data


def test_an_image_of_unknown_size_counts_against_the_input_cap(clients, emulator):
    oa, an = clients
    image = {"type": "image_url", "image_url": {"url": "https://example.test/cat.jpg"}}
    with pytest.raises(openai.BadRequestError, match="max_input_tokens") as raised:
        oa.chat.completions.create(model="gpt-4o", max_tokens=5, messages=said("what is this?", image))
    assert raised.value.code == "context_length_exceeded"
    block = {"type": "image", "source": {"type": "url", "url": "https://example.test/cat.jpg"}}
    with pytest.raises(anthropic.BadRequestError, match="max_input_tokens"):
        an.messages.create(model="claude-fast", max_tokens=5, messages=said("what is this?", block))


def test_a_low_detail_image_fits_under_the_cap(clients, emulator):
    oa, _ = clients
    mark = marker()
    image = {"type": "image_url", "image_url": {"url": "https://example.test/cat.jpg", "detail": "low"}}
    oa.chat.completions.create(model="gpt-4o", max_tokens=5, messages=said(mark, image))
    assert seen_upstream(emulator, mark) == 1


def under_the_cap(body: dict, model: str) -> dict:
    """A fuzz body for this gateway: a model it serves, and no document, whose pages the cap refuses."""
    body = copy.deepcopy({**body, "model": model, "max_tokens": 5})
    first = body["messages"][1 if model == "gpt-4o" else 0]
    first["content"] = [part for part in first["content"] if part["type"] in ("text", "image_url", "image")]
    return body


@pytest.mark.parametrize(("path", "body", "headers"), [
    ("/v1/chat/completions", under_the_cap(OPENAI_BODY, "gpt-4o"), {}),
    ("/v1/messages", under_the_cap(ANTHROPIC_BODY, "claude-fast"), {"anthropic-version": "2023-06-01"}),
])
def test_a_fuzz_of_the_front_door_gets_no_500(guarded, path, body, headers):
    server, key = guarded
    bodies = list(mutations(body, seed=7, extra=100))
    sample = random.Random(7).sample(bodies, 300)
    statuses = []
    with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {key}", **headers}, timeout=30) as client:
        for mutated in sample:
            response = client.post(path, json=mutated)
            assert response.status_code != 500 and "internal gateway error" not in response.text, (mutated, response.text)
            if response.headers["content-type"].startswith("application/json"):  # a mutated `stream` may stream
                assert response.status_code == 200 or response.json()["error"]["message"]
            statuses.append(response.status_code)
    assert statuses.count(400) > 150 and statuses.count(200) > 20
