"""Fingerprints that ignore what changes without meaning anything.

Two calls of a tool are the same call when they differ only in key order, whitespace,
timestamps, UUIDs, request ids or durations ("volatile" values, masked before hashing). A
counter in the arguments (page=2, attempt=3) is masked only in the *loose* form of an action:
whether a changed counter is progress (the next page) or not (a retry number) is decided by the
tool's results, which keep their numbers.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import orjson

# Longest text read whole; beyond it the middle is hashed raw (a big file read or log dump).
MAX_MASKED_CHARS = 16_000

_VOLATILE = re.compile(
    r"""
    \b(?=[0-9a-f-]*\d)  # fails fast where no digit starts: 4 times quicker on typical text
    (?:\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?  # ISO timestamp
    | \d{4}-\d{2}-\d{2}                                                           # date
    | \b\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?\b                                         # time of day
    | \b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b             # UUID
    | \b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{12,}\b                          # hex id, digest
    | \b\d{10,}\b                                                                 # epoch, nonce
    | \b\d+(?:\.\d+)?\s?(?:ms|µs|us|ns|s|sec|secs|seconds?|mins?|minutes?)\b      # duration
    )""",
    re.VERBOSE | re.IGNORECASE,
)
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_COUNTER_ARGUMENT = re.compile(r'"(?:attempts?|retry|retries|try|tries|iteration|round)[^"]*":\s*"?(\d+)', re.IGNORECASE)
_SPACE = re.compile(r"\s+")


def digest(text: str) -> int:
    """A stable 48-bit hash (fits a JSON number anywhere; Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=6).digest(), "big")


def mask_volatile(text: str) -> str:
    if len(text) > MAX_MASKED_CHARS:
        half = MAX_MASKED_CHARS // 2
        middle = hashlib.blake2b(text[half:-half].encode(), digest_size=8).hexdigest()
        text = f"{text[:half]} {len(text)}:{middle} {text[-half:]}"
    return _SPACE.sub(" ", _VOLATILE.sub("~", text)).strip().lower()


def mask_numbers(text: str) -> str:
    return _NUMBER.sub("#", text)


def mask_echoes(result: str, arguments: str) -> str:
    """A result without the retry counters its call sent: "attempt 3 failed" is the same
    answer as "attempt 2 failed". Only arguments named like a counter (attempt, retry, try,
    iteration, round) count: an id echoed back ("host 7: healthy") is what tells one answer
    from the next."""
    sent = set(_COUNTER_ARGUMENT.findall(arguments))
    if not sent:
        return result
    # The number alone, not a part of another ("1.4.2" stays whatever the attempt).
    return re.sub(r"(?<![\d.])(?:" + "|".join(sent) + r")(?!\.?\d)", "#", result)


def canonical_arguments(arguments: Any) -> str:
    """Arguments as compact JSON with sorted keys and collapsed whitespace in strings.

    OpenAI sends arguments as a JSON string, Anthropic as an object; both end up the same."""
    if isinstance(arguments, str):
        try:
            arguments = orjson.loads(arguments)
        except orjson.JSONDecodeError:
            return _SPACE.sub(" ", arguments).strip()
    return orjson.dumps(_collapse(arguments), option=orjson.OPT_SORT_KEYS).decode()


def _collapse(value: Any) -> Any:
    if isinstance(value, str):
        return _SPACE.sub(" ", value).strip()
    if isinstance(value, dict):
        return {str(key): _collapse(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_collapse(item) for item in value]
    return value


def shorten(text: str, limit: int = 60) -> str:
    text = _SPACE.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"
