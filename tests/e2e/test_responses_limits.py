"""Rate limits, per-request caps, session limits and loop detection hold for Responses requests
as for any other: refused with the SDK's own errors naming the limit, or clamped, whichever
kind of upstream serves the model."""

import json
import uuid

import httpx
import openai
import pytest
from gateway_setup import MASTER_KEY, create_key, gateway_config, write_config

from tokenbrake.tools.launch import ChildServer

SEARCH = {"type": "function", "name": "search_files", "description": "Search the files.",
          "parameters": {"type": "object", "properties": {"query": {"type": "string"}}}}


@pytest.fixture(scope="module")
def limited(emulator, tmp_path_factory):
    folder = tmp_path_factory.mktemp("responses-limits")
    config = gateway_config(emulator.url, f"sqlite:///{folder / 'ledger.db'}")
    config["limits"] = [{"scope": "key:limited", "requests_per_minute": 2},
                        {"scope": "key:capped", "max_input_tokens": 60, "max_output_tokens": 20}]
    config["sessions"] = {"rules": [{"scope": "key:agent", "max_calls": 2}, {"scope": "key:watched", "on_loop": "stop"}]}
    path = write_config(folder, config)
    keys = {name: create_key(path, name) for name in ("limited", "capped", "agent", "watched")}
    with ChildServer(["serve", "--config", str(path)], quiet=True, env={"TOKENBRAKE_MASTER_KEY": MASTER_KEY}) as gateway:
        yield gateway, keys


def client(limited, key: str, session: str | None = None) -> openai.OpenAI:
    gateway, keys = limited
    headers = {"X-Tokenbrake-Session": session} if session else None
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=keys[key], max_retries=0, default_headers=headers)


def test_requests_per_minute_hold_for_responses_requests(limited):
    with client(limited, "limited") as oa:
        oa.responses.create(model="small", input="one")
        oa.responses.create(model="gpt-4o", input="two")
        with pytest.raises(openai.RateLimitError) as refused:
            oa.responses.create(model="small", input="three")
    assert "requests_per_minute" in refused.value.message


@pytest.mark.parametrize(("model", "cap_field"), [("gpt-4o", "max_output_tokens"), ("small", "max_tokens")])
def test_the_output_cap_is_clamped_and_long_input_refused(limited, emulator, model, cap_field):
    marker = uuid.uuid4().hex[:8]
    with client(limited, "capped") as oa:
        response = oa.responses.create(model=model, max_output_tokens=500, input=f"[[emulator: id={marker} tokens=50]]")
        with pytest.raises(openai.BadRequestError) as refused:
            oa.responses.create(model=model, input="word " * 200)
    [seen] = [r for r in httpx.get(emulator.url + "/_emulator/requests").json() if marker in json.dumps(r["body"])]
    assert seen["body"][cap_field] == 20 and response.usage.output_tokens == 20 and response.status == "incomplete"
    assert refused.value.code == "context_length_exceeded"


def test_a_session_over_its_call_limit_is_refused(limited):
    with client(limited, "agent", f"run-{uuid.uuid4().hex[:8]}") as oa:
        first = oa.responses.create(model="small", input="step one")
        oa.responses.create(model="small", input="step two", previous_response_id=first.id)
        with pytest.raises(openai.RateLimitError) as refused:
            oa.responses.create(model="small", input="step three")
    assert refused.value.code == "session_limit_exceeded"


@pytest.mark.parametrize("model", ["small", "gpt-4o", "claude-fast"])
def test_a_looping_agent_is_stopped(limited, model):
    """The same fruitless search again and again, the whole history sent each turn as input items
    (function_call and function_call_output), as the Agents SDK does without stored responses."""
    history: list[dict] = [{"role": "user", "content": "Find the midnight rollover bug."}]
    with client(limited, "watched", f"loop-{uuid.uuid4().hex[:8]}") as oa:
        for turn in range(12):
            try:
                oa.responses.create(model=model, tools=[SEARCH], input=history, store=False)
            except openai.RateLimitError as stopped:
                assert stopped.code == "session_stopped" and 3 <= turn <= 6
                return
            call_id = f"call_{turn}"
            history += [{"type": "function_call", "call_id": call_id, "name": "search_files",
                         "arguments": json.dumps({"query": "midnight rollover"})},
                        {"type": "function_call_output", "call_id": call_id, "output": "No files matched 'midnight rollover'."}]
    pytest.fail("the looping agent was not stopped")
