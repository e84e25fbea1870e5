"""Deterministic embeddings: a unit vector derived from a hash of each input.

Vectors are computed as float32, so the `float` and `base64` encodings of one input agree
exactly (base64 is the little-endian float32 bytes, which the OpenAI SDK asks for by default).
"""

from __future__ import annotations

import base64
import hashlib
import math
import sys
from array import array
from typing import Any

import orjson

from tokenbrake.tools.emulator.errors import invalid
from tokenbrake.wire.tokens import count_text

MAX_DIMENSIONS = 4096


def read_inputs(body: dict[str, Any]) -> tuple[str, list[str | list[int]]]:
    """Validate an embeddings request; return the model and its inputs as a list."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("you must provide a model parameter")
    given = body.get("input")
    if given is None:
        raise invalid("Missing required parameter: 'input'.", "input", "missing_required_parameter")
    single = isinstance(given, str) or (isinstance(given, list) and all(isinstance(t, int) for t in given))
    inputs: list[Any] = [given] if single else given if isinstance(given, list) else []
    if not inputs or not all(_valid_input(item) for item in inputs):
        message = "'$.input' is invalid: expected a non-empty string, array of strings or token arrays."
        raise invalid(message, "input")
    return model, inputs


def _valid_input(item: Any) -> bool:
    if isinstance(item, str):
        return bool(item)
    return isinstance(item, list) and bool(item) and all(isinstance(t, int) for t in item)


def input_texts(inputs: list[str | list[int]]) -> list[str]:
    return [item for item in inputs if isinstance(item, str)]


def dimensions(body: dict[str, Any], default: int) -> int:
    value = body.get("dimensions", default)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_DIMENSIONS:
        raise invalid(f"Invalid 'dimensions': expected an integer from 1 to {MAX_DIMENSIONS}.", "dimensions")
    return value


def vector(item: str | list[int], dims: int) -> array:
    seed = item.encode() if isinstance(item, str) else orjson.dumps(item)
    raw = hashlib.shake_256(seed).digest(2 * dims)
    values = [(raw[2 * i] | raw[2 * i + 1] << 8) / 32767.5 - 1.0 for i in range(dims)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return array("f", [v / norm for v in values])


def encoded(vec: array, encoding_format: str) -> list[float] | str:
    if encoding_format == "float":
        return vec.tolist()
    if sys.byteorder != "little":
        vec = array("f", vec)
        vec.byteswap()
    return base64.b64encode(vec.tobytes()).decode()


def response(body: dict[str, Any], model: str, inputs: list[Any], default_dims: int) -> dict[str, Any]:
    dims = dimensions(body, default_dims)
    encoding_format = body.get("encoding_format") or "float"
    if encoding_format not in ("float", "base64"):
        raise invalid("Invalid 'encoding_format': expected 'float' or 'base64'.", "encoding_format")
    data = [
        {"object": "embedding", "index": i, "embedding": encoded(vector(item, dims), encoding_format)}
        for i, item in enumerate(inputs)
    ]
    tokens = prompt_tokens(inputs)
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return {"object": "list", "data": data, "model": model, "usage": usage}


def prompt_tokens(inputs: list[str | list[int]]) -> int:
    return sum(count_text(item) if isinstance(item, str) else len(item) for item in inputs)
