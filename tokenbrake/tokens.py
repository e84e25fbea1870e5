"""Token counting with an exact BPE tokenizer that ships its encodings (works offline).

Counts for non-OpenAI models are estimates with the same encoding; they are used where an
upstream reports no usage and for input-size checks, never in place of reported usage.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import bpe_openai
import orjson

# Chat formats wrap each message in a few special tokens; these are OpenAI's documented
# overheads for its chat models, which we also use as the estimate for other models.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_REPLY_PRIMER = 3
DEFAULT_ENCODING = "o200k_base"


@lru_cache(maxsize=8)
def encoding(name: str = DEFAULT_ENCODING) -> bpe_openai.Encoding:
    return bpe_openai.get_encoding(name)


def count_text(text: str, encoding_name: str = DEFAULT_ENCODING) -> int:
    if not text:
        return 0
    return len(encoding(encoding_name).encode_ordinary(text))


def _content_text(content: Any) -> str:
    """The text in an OpenAI or Anthropic message content (a string or a list of parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        content = [content]
    parts: list[str] = []
    for part in content:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "text":
            parts.append(str(part.get("text", "")))
        elif kind == "tool_use":
            parts.append(part.get("name", "") + _json_text(part.get("input")))
        elif kind == "tool_result":
            parts.append(_content_text(part.get("content")))
        elif kind in ("image", "image_url"):
            parts.append(" " * 85 * 4)  # a low-detail image costs about 85 tokens
    return "\n".join(parts)


def _json_text(value: Any) -> str:
    return "" if value is None else orjson.dumps(value).decode()


def count_openai_messages(messages: list[dict[str, Any]], tools: list | None = None) -> int:
    total = TOKENS_PER_REPLY_PRIMER
    for message in messages:
        total += TOKENS_PER_MESSAGE + count_text(str(message.get("role", "")))
        total += count_text(_content_text(message.get("content")))
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            total += count_text(str(function.get("name", "")) + str(function.get("arguments", "")))
    if tools:
        total += count_text(_json_text(tools))
    return total


def count_anthropic_messages(
    messages: list[dict[str, Any]], system: Any = None, tools: list | None = None
) -> int:
    total = TOKENS_PER_REPLY_PRIMER
    if system:
        total += TOKENS_PER_MESSAGE + count_text(_content_text(system))
    for message in messages:
        total += TOKENS_PER_MESSAGE + count_text(_content_text(message.get("content")))
    if tools:
        total += count_text(_json_text(tools))
    return total


def count_request_input(format_name: str, body: dict[str, Any]) -> int:
    """Estimated input tokens of a chat request body in the given wire format."""
    if format_name == "anthropic":
        return count_anthropic_messages(body.get("messages") or [], body.get("system"), body.get("tools"))
    return count_openai_messages(body.get("messages") or [], body.get("tools"))
