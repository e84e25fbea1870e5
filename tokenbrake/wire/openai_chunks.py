"""The fields of an OpenAI stream chunk that the relay reads, decoded without the rest.

A chunk carries an id, the model, a fingerprint, log probabilities and more that the relay
passes on as it came and never reads. Decoding it into a dict builds all of those as Python
objects, for every event of every stream; msgspec decodes into these few typed fields and
only checks the syntax of the others, about three times faster. It still refuses JSON that
is malformed; it does not check the UTF-8 of the strings it skips (`decode_chunks` does).

When one event of a read is of a shape these types do not allow (a field of another type),
or is not JSON, the relay reads that read's events as dicts, as it reads any event, and so
finds which one it is.
"""

from __future__ import annotations

from typing import Any

import msgspec


class FunctionDelta(msgspec.Struct):
    arguments: str | None = None


class ToolCallDelta(msgspec.Struct):
    function: FunctionDelta | None = None


class Delta(msgspec.Struct):
    content: str | None = None
    tool_calls: list[ToolCallDelta] | None = None


class Choice(msgspec.Struct):
    delta: Delta | None = None


class Chunk(msgspec.Struct):
    choices: list[Choice] | None = None
    usage: dict[str, Any] | None = None
    error: Any = None


_decoder = msgspec.json.Decoder(Chunk)


def decode_chunks(payloads: list[bytes]) -> list[Chunk] | None:
    """All the payloads' chunks, in one pass without a Python step per payload; None when
    any is not a chunk (another shape, not JSON, not UTF-8): then read them as dicts."""
    try:
        chunks = list(map(_decoder.decode, payloads))
        if not all(map(bytes.isascii, payloads)):
            b"\n".join(payloads).decode()  # an ASCII separator: no character spans two payloads
    except (msgspec.DecodeError, UnicodeDecodeError):  # ValidationError (another shape) is one too
        return None
    return chunks
