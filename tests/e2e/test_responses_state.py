"""The conversations the gateway keeps for the Responses API: `previous_response_id` works on
every kind of upstream (the upstream gets the whole conversation), `GET`/`DELETE
/v1/responses/{id}` and `input_items` show and forget what was kept, only ever to the key that
made it, and `store: false` keeps nothing. Each call is in the ledger like any other."""

import asyncio
import time
import uuid

import httpx
import openai
import pytest
import yaml
from gateway_setup import MASTER_KEY, create_key, gateway_config, write_config

from tokenbrake.storage import open_database
from tokenbrake.tools.launch import ChildServer

MODELS = ["gpt-4o", "small", "claude-fast"]


def last_sent(emulator, marker: str) -> dict:
    return [r for r in httpx.get(emulator.url + "/_emulator/requests").json() if marker in str(r["body"])][-1]


@pytest.fixture
def other_client(gateway, make_key):
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=make_key(f"responses-other-{uuid.uuid4().hex[:6]}"), max_retries=0) as client:
        yield client


@pytest.mark.parametrize("model", MODELS)
def test_previous_response_id_sends_the_whole_conversation(openai_client, emulator, model):
    first = openai_client.responses.create(model=model, instructions="Be brief.", input="My name is Ada.")
    second = openai_client.responses.create(model=model, previous_response_id=first.id,
                                            input=f"What is my name? [[emulator: id=rsp-prev-{model}]]")
    assert second.previous_response_id == first.id and second.status == "completed"
    sent = last_sent(emulator, f"rsp-prev-{model}")["body"]
    if model == "gpt-4o":  # a Responses upstream: the conversation as input items, no id it does not know
        assert "previous_response_id" not in sent and sent["input"][0]["content"] == "My name is Ada."
        assert sent["input"][1]["content"][0]["text"] == first.output_text
    elif model == "small":
        assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]  # instructions not carried over
        assert sent["messages"][1]["content"] == first.output_text
    else:
        assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]


def test_a_kept_response_can_be_read_listed_and_deleted(openai_client):
    made = openai_client.responses.create(model="small", input="remember this [[emulator: tokens=4]]")
    read = openai_client.responses.retrieve(made.id)
    assert read.id == made.id and read.output_text == made.output_text and read.usage.output_tokens == 4
    items = openai_client.responses.input_items.list(made.id)
    assert [item.content[0].text for item in items.data] == ["remember this [[emulator: tokens=4]]"]
    openai_client.responses.delete(made.id)
    with pytest.raises(openai.NotFoundError):
        openai_client.responses.retrieve(made.id)
    with pytest.raises(openai.NotFoundError):
        openai_client.responses.create(model="small", previous_response_id=made.id, input="and now?")


@pytest.mark.parametrize("model", MODELS)
def test_another_key_cannot_see_or_continue_a_response(openai_client, other_client, model):
    made = openai_client.responses.create(model=model, input="a secret")
    with pytest.raises(openai.NotFoundError):
        other_client.responses.retrieve(made.id)
    with pytest.raises(openai.NotFoundError) as refused:  # a Responses upstream is not asked either
        other_client.responses.create(model=model, previous_response_id=made.id, input="tell me")
    assert refused.value.body["param"] == "previous_response_id"
    with pytest.raises(openai.NotFoundError):
        other_client.responses.delete(made.id)
    assert openai_client.responses.retrieve(made.id).id == made.id  # still there for its own key


def test_store_false_keeps_nothing(openai_client):
    made = openai_client.responses.create(model="small", input="forget me", store=False)
    assert made.store is False
    with pytest.raises(openai.NotFoundError):
        openai_client.responses.retrieve(made.id)


def test_a_streamed_response_is_kept_and_continued(openai_client, emulator):
    with openai_client.responses.stream(model="claude-fast", input="Streamed first turn.") as stream:
        first = stream.get_final_response()
    assert openai_client.responses.retrieve(first.id).output_text == first.output_text
    openai_client.responses.create(model="small", previous_response_id=first.id, input="next [[emulator: id=rsp-sprev]]")
    sent = last_sent(emulator, "rsp-sprev")["body"]["messages"]
    assert sent[0] == {"role": "user", "content": "Streamed first turn."} and sent[1]["content"] == first.output_text


def test_responses_calls_are_in_the_ledger_and_a_refused_one_costs_nothing(openai_client, gateway_config_path):
    done = openai_client.responses.with_raw_response.create(model="small", input="billed [[emulator: tokens=5]]")
    with pytest.raises(openai.BadRequestError) as refused_call:
        openai_client.responses.create(model="small", tools=[{"type": "file_search"}], input="refused")
    request_id, refused_id = done.headers["x-request-id"], refused_call.value.response.headers["x-request-id"]
    database = yaml.safe_load(gateway_config_path.read_text())["database"]

    async def rows():
        db = await open_database(database)
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                found = [row for row in await db.ledger.rows(limit=500) if row.request_id == request_id]
                if found:
                    return found, [row for row in await db.ledger.rows(limit=500) if row.request_id == refused_id]
                await asyncio.sleep(0.2)
            return [], []
        finally:
            await db.close()

    (row,), refused = asyncio.run(rows())
    assert row.endpoint == "responses" and row.output_tokens == 5 and row.cost_usd > 0 and row.status == 200
    assert refused == []  # refused before any upstream call or reservation: nothing was spent


def test_a_gateway_that_keeps_nothing_leaves_previous_response_id_to_a_responses_upstream(emulator, tmp_path):
    config = gateway_config(emulator.url, f"sqlite:///{tmp_path / 'ledger.db'}")
    config["responses"] = {"store": False}
    path = write_config(tmp_path, config)
    key = create_key(path, "keeps-nothing")
    with ChildServer(["serve", "--config", str(path)], quiet=True, env={"TOKENBRAKE_MASTER_KEY": MASTER_KEY}) as gateway:
        with openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0) as oa:
            made = oa.responses.create(model="small", input="not kept")
            with pytest.raises(openai.NotFoundError):
                oa.responses.retrieve(made.id)
            with pytest.raises(openai.NotFoundError):
                oa.responses.create(model="small", previous_response_id=made.id, input="next")
            oa.responses.create(model="gpt-4o", previous_response_id="resp_upstream_kept", input="go [[emulator: id=rsp-pass]]")
    assert last_sent(emulator, "rsp-pass")["body"]["previous_response_id"] == "resp_upstream_kept"


@pytest.mark.parametrize("model", MODELS)
def test_a_streamed_continuation_names_the_response_it_continues(openai_client, model):
    first = openai_client.responses.create(model=model, input="First turn.")
    with openai_client.responses.stream(model=model, previous_response_id=first.id, input="Second turn.") as stream:
        events = list(stream)
        final = stream.get_final_response()
    assert events[0].response.previous_response_id == first.id and final.previous_response_id == first.id
    assert openai_client.responses.input_items.list(final.id, order="asc").data[0].content[0].text == "First turn."


def test_input_items_are_listed_a_page_at_a_time(openai_client):
    turns = [{"role": "user", "content": f"turn {n}"} for n in range(5)]
    made = openai_client.responses.create(model="small", input=turns)
    first = openai_client.responses.input_items.list(made.id, limit=2, order="asc")
    assert [item.content[0].text for item in first.data] == ["turn 0", "turn 1"] and first.has_more
    every = [item.content[0].text for item in openai_client.responses.input_items.list(made.id, limit=2, order="asc")]
    assert every == [f"turn {n}" for n in range(5)]  # the SDK follows the pages
    newest = openai_client.responses.input_items.list(made.id, limit=1)
    assert newest.data[0].content[0].text == "turn 4"
    with pytest.raises(openai.BadRequestError):
        openai_client.responses.input_items.list(made.id, limit=500)
