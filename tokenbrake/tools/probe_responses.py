"""`tokenbrake probe`'s checks of the Responses front door (`client.responses`), per model: a
reply with usage, a stream whose events come in OpenAI's order and numbered, a forced function
call (whole and streamed), structured output valid for its schema, and a second turn through
`previous_response_id`. As the other checks, each looks at the shape, not the wording."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import TYPE_CHECKING

import openai

from tokenbrake.tools.probe_expect import _expect, _expect_weather

if TYPE_CHECKING:
    from openai.types.responses import FunctionToolParam, ResponseTextConfigParam, ToolChoiceFunctionParam

MAX_OUTPUT_TOKENS = 1024  # generous, as the chat checks' cap: a reasoning model thinks first
HELLO = "Say hello in five words."
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
           "additionalProperties": False}
TOOL: FunctionToolParam = {"type": "function", "name": "get_weather", "description": "The weather in a city.",
                           "parameters": WEATHER, "strict": True}
FORCE: ToolChoiceFunctionParam = {"type": "function", "name": "get_weather"}
CITY_FORMAT: ResponseTextConfigParam = {"format": {"type": "json_schema", "name": "city", "schema": WEATHER,
                                                   "strict": True}}
OPENING = ["response.created", "response.in_progress"]
ENDINGS = ("response.completed", "response.incomplete")


def responses_checks(oa: openai.OpenAI, model: str) -> Iterator[tuple[str, Callable[[], None]]]:
    checks = {"reply": _reply, "stream": _stream, "function call": _tool, "function call, streamed": _tool_streamed,
              "structured output": _structured, "previous_response_id": _second_turn}
    for name, check in checks.items():
        yield f"responses {name}", partial(check, oa, model)


def _reply(oa: openai.OpenAI, model: str) -> None:
    response = oa.responses.create(model=model, input=HELLO, max_output_tokens=MAX_OUTPUT_TOKENS)
    _expect(response.status in ("completed", "incomplete"), f"status {response.status!r}")
    _expect(bool(response.output_text), "no text in the response")
    _expect(response.usage is not None and response.usage.output_tokens > 0, "no output tokens in usage")


def _stream(oa: openai.OpenAI, model: str) -> None:
    with oa.responses.stream(model=model, input=HELLO, max_output_tokens=MAX_OUTPUT_TOKENS) as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [event.type for event in events]
    _expect(kinds[:2] == OPENING and kinds[-1] in ENDINGS, f"events {kinds[:2]}…{kinds[-1:]}")
    numbers = [event.sequence_number for event in events]
    _expect(numbers == sorted(numbers) and len(set(numbers)) == len(numbers), "sequence numbers out of order")
    _expect(bool(final.output_text) and final.usage is not None, "no text or no usage in the final response")


def _tool(oa: openai.OpenAI, model: str) -> None:
    response = oa.responses.create(model=model, input="What is the weather in Paris?", tools=[TOOL],
                                   tool_choice=FORCE, max_output_tokens=MAX_OUTPUT_TOKENS)
    calls = [item for item in response.output if item.type == "function_call"]
    _expect(bool(calls), f"no function call (status {response.status!r})")
    _expect_weather(calls[0].name, calls[0].arguments)


def _tool_streamed(oa: openai.OpenAI, model: str) -> None:
    with oa.responses.stream(model=model, input="What is the weather in Paris?", tools=[TOOL], tool_choice=FORCE,
                             max_output_tokens=MAX_OUTPUT_TOKENS) as stream:
        done = [event for event in stream if event.type == "response.function_call_arguments.done"]
        final = stream.get_final_response()
    calls = [item for item in final.output if item.type == "function_call"]
    _expect(bool(done) and bool(calls), "no function_call_arguments.done event or no function call")
    _expect_weather(calls[0].name, done[0].arguments)


def _structured(oa: openai.OpenAI, model: str) -> None:
    response = oa.responses.create(model=model, input="Name a city in France.", text=CITY_FORMAT,
                                   max_output_tokens=MAX_OUTPUT_TOKENS)
    _expect_weather("get_weather", response.output_text)  # the same shape: an object with a city


def _second_turn(oa: openai.OpenAI, model: str) -> None:
    first = oa.responses.create(model=model, input="Remember the word: tangerine.", max_output_tokens=MAX_OUTPUT_TOKENS)
    second = oa.responses.create(model=model, input="Which word?", previous_response_id=first.id,
                                 max_output_tokens=MAX_OUTPUT_TOKENS)
    _expect(bool(second.output_text) and second.previous_response_id == first.id,
            "no text, or previous_response_id not echoed")
