"""Rich, valid request bodies of both formats, and those bodies with their fields swapped for
values of other types: the fuzz of the front doors (tests/unit/test_validate_fuzz.py,
tests/e2e/test_bad_input.py)."""

import contextlib
import copy
import random
from collections.abc import Iterator
from typing import Any

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
# What orjson decodes: integers up to 64 bits, floats beyond.
SUBSTITUTES = [None, True, 0, -1, 2.5, 2**64 - 1, 1e300, "", "x", [], [1], ["x"], {}, {"type": "x"}, {"type": "text"}]

OPENAI_BODY = {
    "model": "gpt-4o", "temperature": 0.5, "top_p": 1, "max_tokens": 50, "n": 1, "stop": ["END"], "stream": False,
    "stream_options": {"include_usage": True}, "logit_bias": {"1": 5}, "user": "u", "metadata": {"a": "b"},
    "response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": {"type": "object"}}},
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
    "tool_choice": {"type": "function", "function": {"name": "f"}},
    "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "high"}},
            {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
            {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0="}},
        ]},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "ok"},
    ],
}
ANTHROPIC_BODY = {
    "model": "claude", "max_tokens": 50, "temperature": 0.5, "top_k": 3, "stop_sequences": ["END"], "stream": False,
    "system": [{"type": "text", "text": "be brief"}], "metadata": {"user_id": "u"},
    "tools": [{"name": "f", "input_schema": {"type": "object"}}], "tool_choice": {"type": "tool", "name": "f"},
    "messages": [
        {"role": "user", "content": [
            {"type": "text", "text": "look"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}},
        ]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "ok"}]}]},
    ],
}


def paths(value: Any, at: tuple = ()) -> Iterator[tuple]:
    """Every place in a JSON value, deepest last."""
    yield at
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, inner in items:
        yield from paths(inner, (*at, key))


def substituted(body: dict[str, Any], path: tuple, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(body)
    place = out
    for key in path[:-1]:
        place = place[key]
    place[path[-1]] = copy.deepcopy(value)
    return out


def mutations(body: dict[str, Any], seed: int, extra: int) -> Iterator[dict[str, Any]]:
    """Each place swapped for each substitute, then `extra` bodies with two or three swaps at once."""
    places = [path for path in paths(body) if path]
    for path in places:
        for value in SUBSTITUTES:
            yield substituted(body, path, value)
    rng = random.Random(seed)
    for _ in range(extra):
        out = body
        for path in rng.sample(places, rng.randint(2, 3)):
            with contextlib.suppress(KeyError, IndexError, TypeError):  # an earlier swap removed the place
                out = substituted(out, path, rng.choice(SUBSTITUTES))
        yield out
