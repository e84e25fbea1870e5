"""Token counts between the wire formats and `core.Usage`.

OpenAI's `prompt_tokens` counts the whole prompt, cached tokens (and cache writes, where a
provider reports them) included; Anthropic's `input_tokens` counts only the uncached rest, with
`cache_read_input_tokens` and `cache_creation_input_tokens` beside it. `Usage` follows
Anthropic: `input_tokens` excludes both. Reasoning tokens are part of the output count in both.
"""

from __future__ import annotations

from typing import Any

from tokenbrake.core import Usage


def _count(value: Any) -> int:
    # Upstreams are not always tidy: null, floats and missing keys all occur in the wild.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0
    return max(int(value), 0)


def _details(usage: dict[str, Any], key: str) -> dict[str, Any]:
    details = usage.get(key)
    return details if isinstance(details, dict) else {}


def usage_from_openai(usage: dict[str, Any] | None) -> Usage:
    if not isinstance(usage, dict):
        return Usage()
    prompt = _details(usage, "prompt_tokens_details")
    cached = _count(prompt.get("cached_tokens"))
    written = _count(prompt.get("cache_write_tokens"))
    return Usage(
        input_tokens=max(_count(usage.get("prompt_tokens")) - cached - written, 0),
        output_tokens=_count(usage.get("completion_tokens")),
        cached_input_tokens=cached,
        cache_write_tokens=written,
        reasoning_tokens=_count(_details(usage, "completion_tokens_details").get("reasoning_tokens")),
    )


def usage_from_anthropic(usage: dict[str, Any] | None) -> Usage:
    if not isinstance(usage, dict):
        return Usage()
    return Usage(
        input_tokens=_count(usage.get("input_tokens")),
        output_tokens=_count(usage.get("output_tokens")),
        cached_input_tokens=_count(usage.get("cache_read_input_tokens")),
        cache_write_tokens=_count(usage.get("cache_creation_input_tokens")),
        reasoning_tokens=_count(_details(usage, "output_tokens_details").get("thinking_tokens")),
    )


def openai_usage(u: Usage) -> dict[str, Any]:
    prompt_details: dict[str, int] = {"cached_tokens": u.cached_input_tokens}
    if u.cache_write_tokens:
        prompt_details["cache_write_tokens"] = u.cache_write_tokens
    prompt = u.input_tokens + u.cached_input_tokens + u.cache_write_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": u.output_tokens,
        "total_tokens": prompt + u.output_tokens,
        "prompt_tokens_details": prompt_details,
        "completion_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
    }


def anthropic_usage(u: Usage) -> dict[str, Any]:
    out: dict[str, Any] = {
        "input_tokens": u.input_tokens,
        "output_tokens": u.output_tokens,
        "cache_creation_input_tokens": u.cache_write_tokens,
        "cache_read_input_tokens": u.cached_input_tokens,
    }
    if u.reasoning_tokens:
        out["output_tokens_details"] = {"thinking_tokens": u.reasoning_tokens}
    return out
