"""Per-request behaviour and faults, so a test can aim at one request even through a gateway.

Directives come from the `X-Emulator` header, or from `[[emulator: ...]]` written anywhere in
the last user message (which survives a gateway that forwards only the body); the message's
directives win over the header's. Grammar, for both places:

    directives := pair (whitespace pair)*
    pair       := key "=" value
    value      := bare | '"' (char | '\\"' | '\\\\' | '\\n')* '"'

Keys: tokens, text, tools, ttft_ms, tps, status, retry_after, fail_first, id, hang, cut, garbage,
confidence, thinking, cached.
An unknown key or a bad value is answered with a 400, naming it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Any

from tokenbrake.tools.emulator.errors import invalid

MARK = "[[emulator:"
_BLOCK = re.compile(r'\[\[emulator:((?:"(?:[^"\\]|\\.)*"|[^"\]]|\](?!\]))*)\]\]', re.S)
_PAIR = re.compile(r'\s*([A-Za-z_]+)=("(?:[^"\\]|\\.)*"|[^\s"]+)\s*', re.S)
_ESCAPE = re.compile(r"\\(.)", re.S)


@dataclass(slots=True)
class Directives:
    tokens: int | None = None
    text: str | None = None
    tools: int | None = None
    ttft_ms: float | None = None
    tps: float | None = None
    status: int | None = None
    retry_after: float | None = None
    fail_first: int | None = None
    id: str = "default"
    hang: float | None = None
    cut: int | None = None
    garbage: int | None = None
    confidence: float | None = None
    thinking: int | None = None  # reason this many tokens before answering (counted in the output)
    cached: int | None = None  # report this many input tokens as read from the prompt cache

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


NONE = Directives()
_CASTS = {
    "tokens": int, "tools": int, "status": int, "thinking": int, "cached": int, "fail_first": int, "cut": int, "garbage": int,
    "ttft_ms": float, "tps": float, "retry_after": float, "hang": float, "confidence": float,
    "text": str, "id": str,
}  # fmt: skip


def parse(text: str, into: Directives) -> None:
    """Apply the `key=value ...` pairs in `text` onto `into`."""
    end = 0
    for match in _PAIR.finditer(text):
        if match.start() != end:
            break
        end = match.end()
        _set(into, match.group(1), match.group(2))
    if text[end:].strip():
        raise invalid(f"Malformed emulator directive near {text[end:].strip()[:40]!r}.")


def _set(into: Directives, key: str, raw: str) -> None:
    cast = _CASTS.get(key)
    if cast is None:
        raise invalid(f"Unknown emulator directive {key!r}; known: {', '.join(_CASTS)}.")
    if raw.startswith('"'):
        raw = _ESCAPE.sub(lambda m: "\n" if m.group(1) == "n" else m.group(1), raw[1:-1])
    try:
        value = cast(raw)
    except ValueError:
        raise invalid(f"Emulator directive {key}={raw!r} is not a valid {cast.__name__}.") from None
    if cast is not str and value < 0:
        raise invalid(f"Emulator directive {key}={raw!r} must not be negative.")
    setattr(into, key, value)


def from_request(header: str | None, texts: list[str]) -> Directives:
    """The directives of a request: its header, then blocks found in `texts`."""
    if not header and not any(MARK in text for text in texts):
        return NONE
    found = Directives()
    if header:
        parse(header, found)
    for text in texts:
        for block in _BLOCK.findall(text):
            parse(block, found)
    return found


def last_user_texts(messages: Any) -> list[str]:
    """The text parts of the last user message that has any (OpenAI or Anthropic shape): after
    a tool turn, Anthropic's last user message holds only tool results."""
    if not isinstance(messages, list):
        return []
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user" and (texts := _texts(message.get("content"))):
            return texts
    return []


def _texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    if not isinstance(content, list):
        return []
    return [p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
