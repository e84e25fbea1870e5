"""Provider prompt caching on autopilot: the upstream body marked so the provider's cache works.

Anthropic caches only at `cache_control` breakpoints. When the client set none, breakpoints go
at the stable prefix: the end of the tools, the end of the system prompt, the user message the
previous request ended with (which that request wrote, so this one reads it exactly), and the
last user message (written now, read by the next turn). Each only where the prefix up to it
reaches the model's minimum, as a shorter one is not cached and would waste one of the four.
A client that set its own breakpoints gets exactly those. Only blocks are added to, so the
prefix, and tool_use / tool_result pairs, stay as they were.

OpenAI caches every prompt's prefix by itself; `prompt_cache_key` routes requests with the
same prefix to the same cache. The gateway passes one per tenant and agent session where the
client gave none, to upstreams that read it (OpenAI's own API, or configured).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import orjson

from tokenbrake.config import UpstreamConfig
from tokenbrake.core import Endpoint, RequestContext
from tokenbrake.settlement.pricing import provider_id
from tokenbrake.wire.prompt_cache_rules import anthropic_minimum
from tokenbrake.wire.tokens import TOKENS_PER_REPLY_PRIMER, count_anthropic_messages, count_text

MARK = {"type": "ephemeral"}
UNMARKABLE = frozenset({"thinking", "redacted_thinking"})


def for_upstream(ctx: RequestContext, upstream: UpstreamConfig, body: dict[str, Any]) -> dict[str, Any]:
    """The chat (or Responses) body built for `upstream`, marked for its prompt cache."""
    if upstream.prompt_caching == "off" or ctx.endpoint is not Endpoint.CHAT:
        return body
    if upstream.kind == "anthropic":
        return with_breakpoints(body)
    return with_cache_key(ctx, body) if reads_cache_key(upstream) else body


def with_breakpoints(body: dict[str, Any]) -> dict[str, Any]:
    """An Anthropic Messages body with breakpoints at its stable prefix; as given when the
    client set its own or the prefix is too short. The client's body is not changed."""
    if client_marked(body):
        return body
    places = breakpoints(body, anthropic_minimum(str(body.get("model") or "")))
    if not places:
        return body
    out = dict(body)
    for section, index in places:
        if section == "tools":
            out["tools"] = [*body["tools"][:-1], {**body["tools"][-1], "cache_control": MARK}]
        elif section == "system":
            out["system"] = _marked_content(body["system"])
        else:
            messages = out["messages"] = list(out["messages"])
            messages[index] = {**messages[index], "content": _marked_content(messages[index]["content"])}
    return out


def breakpoints(body: dict[str, Any], minimum: int) -> list[tuple[str, int]]:
    """Where to mark, in prompt order: ("tools", -1), ("system", -1), ("messages", i); each
    only where the prompt up to it reaches `minimum`, and so every place after the first that does."""
    candidates: list[tuple[str, int]] = []
    if body.get("tools"):
        candidates.append(("tools", -1))
    if _markable(body.get("system")):
        candidates.append(("system", -1))
    messages = body.get("messages") or []
    users = [i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == "user"]
    candidates += [("messages", i) for i in users[-2:] if _markable(messages[i].get("content"))]
    if not candidates:
        return []
    reached = next((at for at, total in _prefix_totals(body) if total >= minimum), None)
    if reached is None:
        return []
    return [place for place in candidates if (SECTIONS[place[0]], max(place[1], 0)) >= reached]


SECTIONS = {"tools": 0, "system": 1, "messages": 2}  # in prompt order


def _prefix_totals(body: dict[str, Any]) -> Iterator[tuple[tuple[int, int], int]]:
    """The prompt's tokens up to and including each piece, in order: (0, 0) the tools, (1, 0)
    the system prompt, (2, i) message i; counted once each, and only as far as asked."""
    total = TOKENS_PER_REPLY_PRIMER
    if body.get("tools"):
        total += count_text(orjson.dumps(body["tools"]).decode())
    yield (0, 0), total
    if body.get("system"):
        total += count_anthropic_messages([], body["system"]) - TOKENS_PER_REPLY_PRIMER
    yield (1, 0), total
    for i, message in enumerate(body.get("messages") or []):
        total += count_anthropic_messages([message]) - TOKENS_PER_REPLY_PRIMER
        yield (2, i), total


def _markable(content: Any) -> bool:
    """A system prompt or message content whose last block can carry a breakpoint."""
    if isinstance(content, str):
        return bool(content)
    if not isinstance(content, list) or not content or not isinstance(content[-1], dict):
        return False
    last = content[-1]
    return last.get("type") not in UNMARKABLE and not (last.get("type") == "text" and not last.get("text"))


def _marked_content(content: str | list[Any]) -> list[Any]:
    if isinstance(content, str):
        return [{"type": "text", "text": content, "cache_control": MARK}]
    return [*content[:-1], {**content[-1], "cache_control": MARK}]


def client_marked(body: dict[str, Any]) -> bool:
    """Whether the client set any `cache_control` itself (top level, tools, system, messages)."""
    if "cache_control" in body:
        return True
    blocks = [*(body.get("tools") or []), *_listed(body.get("system"))]
    for message in body.get("messages") or []:
        if isinstance(message, dict):
            for block in _listed(message.get("content")):
                blocks.append(block)
                if isinstance(block, dict) and block.get("type") == "tool_result":
                    blocks += _listed(block.get("content"))
    return any(isinstance(block, dict) and "cache_control" in block for block in blocks)


def _listed(content: Any) -> list[Any]:
    return content if isinstance(content, list) else []


def reads_cache_key(upstream: UpstreamConfig) -> bool:
    """Whether an OpenAI-format upstream takes `prompt_cache_key`: OpenAI's own API, unless
    configured. Other servers may refuse a field they do not know, so only when configured."""
    if upstream.prompt_caching == "off":
        return False
    return upstream.prompt_cache_key if upstream.prompt_cache_key is not None else provider_id(upstream) == "openai"


def with_cache_key(ctx: RequestContext, body: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI chat or Responses body with a `prompt_cache_key` for the request's tenant
    and agent session, unless the client set its own."""
    if body.get("prompt_cache_key"):
        return body
    return {**body, "prompt_cache_key": cache_key(ctx)}


def cache_key(ctx: RequestContext) -> str:
    """The same for one tenant's session (or its traffic outside sessions); a digest, so it
    says nothing of the key, team or session to the provider."""
    who = ctx.who
    tenant = [who.team, None] if who.team is not None else [None, who.key_name]
    return "tb-" + hashlib.sha256(orjson.dumps([*tenant, who.session])).hexdigest()[:32]
