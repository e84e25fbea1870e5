"""The OpenAI Agents SDK through the gateway, as a new user would run it: its default model and
settings (the Responses API, reasoning effort and verbosity set), pointed at the gateway with
the SDK's own environment variables, an agent with a function tool that it calls and whose
output it sends back, against every kind of upstream."""

import openai
import pytest
from agents import Agent, Runner, function_tool, set_default_openai_client, set_tracing_disabled
from agents.models.default_models import get_default_model

CALLS: list[str] = []


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    CALLS.append(city)
    return f"sunny in {city}"


@pytest.fixture
async def agents_env(gateway, api_key, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", gateway.url + "/v1")
    monkeypatch.setenv("OPENAI_API_KEY", api_key)
    set_tracing_disabled(True)  # the SDK would send its traces to OpenAI
    CALLS.clear()
    # The client the SDK would make from those variables, made afresh in each test's event loop
    # (the SDK keeps the one it makes, bound to the loop of the first run).
    async with openai.AsyncOpenAI() as client:
        set_default_openai_client(client)
        yield


async def test_the_default_model_is_served_by_the_gateway(agents_env):
    assert get_default_model() == "gpt-5.6-luna"  # configured in tests/gateway_setup.py
    result = await Runner.run(Agent(name="helper", instructions="Be brief."), "hello [[emulator: tokens=5]]")
    assert isinstance(result.final_output, str) and result.final_output
    usage = result.context_wrapper.usage
    assert usage.requests == 1 and usage.output_tokens == 5 and usage.input_tokens > 0


@pytest.mark.parametrize("model", [None, "gpt-4o", "small", "claude-fast"])
async def test_an_agent_calls_its_tool_and_answers_with_its_output(agents_env, model):
    agent = Agent(name="weather", instructions="Use the tool.", tools=[get_weather],
                  **({"model": model} if model else {}))
    result = await Runner.run(agent, "What is the weather in Paris?")
    assert CALLS and isinstance(result.final_output, str) and result.final_output
    kinds = [item.type for item in result.new_items]
    assert kinds[:2] == ["tool_call_item", "tool_call_output_item"] and kinds[-1] == "message_output_item"
    assert result.context_wrapper.usage.requests == 2


@pytest.mark.parametrize("model", ["gpt-5.6-luna", "gpt-4o", "claude-fast"])
async def test_an_agent_streams_its_run(agents_env, model):
    agent = Agent(name="streamer", instructions="Be brief.", tools=[get_weather], model=model)
    result = Runner.run_streamed(agent, "What is the weather in Oslo?")
    kinds = [event.type async for event in result.stream_events()]
    assert "raw_response_event" in kinds and "run_item_stream_event" in kinds
    assert CALLS and isinstance(result.final_output, str) and result.final_output
