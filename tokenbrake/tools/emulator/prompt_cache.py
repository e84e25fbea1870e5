"""The providers' prompt caches, emulated: which input tokens a request reads from the cache
and which it writes, counted as the emulator counts its input.

Anthropic: a prefix is cached at each `cache_control` breakpoint whose prefix reaches the
model's minimum, for its TTL (refreshed on each hit); a breakpoint reads the longest entry at
or up to 20 blocks before it; more than 4 breakpoints is a 400, as from the API. The prefix is
tools, then system, then the messages, block by block; `cache_control` itself is not part of it.
OpenAI: automatic from 1,024 prompt tokens; the longest prefix seen before, at message (or
Responses input item) granularity, is reported in 128-token steps. `prompt_cache_key` stands
for OpenAI's routing: requests with different keys do not share entries.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from tokenbrake.tools.emulator.errors import invalid
from tokenbrake.wire.prompt_cache_rules import (
    DEFAULT_TTL,
    LOOKBACK_BLOCKS,
    MAX_BREAKPOINTS,
    OPENAI_MINIMUM,
    TTL_S,
    anthropic_minimum,
    openai_cached,
)
from tokenbrake.wire.tokens import count_anthropic_messages, count_openai_messages

OPENAI_TTL_S = 300.0


@dataclass(slots=True)
class Position:
    """One block of an Anthropic prompt: the block, the digest of the prefix ending with it,
    and where it sits (section, index, block index within a message)."""

    block: Any
    digest: bytes
    at: tuple[str, int, int]

    @property
    def marked(self) -> bool:
        return isinstance(self.block, dict) and isinstance(self.block.get("cache_control"), dict)


class PromptCache:
    """The entries both providers' caches hold, by prefix digest, each with its expiry."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, size: int = 100_000) -> None:
        self.clock = clock
        self.size = size
        self._entries: OrderedDict[bytes, tuple[float, float]] = OrderedDict()  # digest -> (expires, ttl)

    def reset(self) -> None:
        self._entries.clear()

    def anthropic(self, body: dict[str, Any], total: int) -> tuple[int, int]:
        """(read, written) input tokens of a Messages request whose input counts `total`."""
        positions = anthropic_positions(body)
        marks = [i for i, p in enumerate(positions) if p.marked]
        if len(marks) > MAX_BREAKPOINTS:
            raise invalid(f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. "
                          f"Found {len(marks)}.")
        if not marks:
            return 0, 0
        now = self.clock()
        hit = self._lookback(positions, marks, now)
        read = prefix_tokens(body, positions[hit].at) if hit is not None else 0
        minimum = anthropic_minimum(str(body.get("model")))
        cacheable = 0
        for mark in reversed(marks):  # prefixes grow with position: the last long enough is the longest
            tokens = prefix_tokens(body, positions[mark].at)
            if tokens < minimum:
                break
            self._put(positions[mark].digest, now, _ttl(positions[mark].block))
            cacheable = max(cacheable, tokens)
        read = min(read, total)
        return read, min(max(cacheable - read, 0), total - read)

    def openai_chat(self, body: dict[str, Any], total: int) -> int:
        messages = body.get("messages") or []
        head = [body.get("tools"), body.get("response_format")]
        return self._openai(body, head, messages, lambda n: count_openai_messages(messages[:n], body.get("tools")), total)

    def responses(self, body: dict[str, Any], total: int, count: Callable[[dict[str, Any]], int]) -> int:
        given = body.get("input")
        items = given if isinstance(given, list) else [given]
        head = [body.get("instructions"), body.get("tools"), body.get("text")]

        def prefix(n: int) -> int:
            return count({**body, "input": items[:n] if isinstance(given, list) else given})

        return self._openai(body, head, items, prefix, total)

    def _openai(self, body: dict[str, Any], head: list, items: list, prefix: Callable[[int], int], total: int) -> int:
        if total < OPENAI_MINIMUM:
            return 0
        running = hashlib.sha256(orjson.dumps([body.get("model"), body.get("prompt_cache_key"), head]))
        digests = []
        for item in items:
            running.update(orjson.dumps(item, option=orjson.OPT_SORT_KEYS))
            digests.append(running.copy().digest())
        now = self.clock()
        matched = next((n for n in range(len(digests), 0, -1) if self._alive(digests[n - 1], now)), 0)
        for digest in digests:
            self._put(digest, now, OPENAI_TTL_S)
        return openai_cached(prefix(matched), total) if matched else 0

    def _lookback(self, positions: list[Position], marks: list[int], now: float) -> int | None:
        """The last position with a live entry, searched back from each breakpoint, latest first."""
        for mark in reversed(marks):
            for at in range(mark, max(mark - LOOKBACK_BLOCKS, -1), -1):
                if self._alive(positions[at].digest, now):
                    self._put(positions[at].digest, now, self._entries[positions[at].digest][1])  # a hit refreshes the entry
                    return at
        return None

    def _alive(self, digest: bytes, now: float) -> bool:
        entry = self._entries.get(digest)
        return entry is not None and entry[0] > now

    def _put(self, digest: bytes, now: float, ttl: float) -> None:
        self._entries[digest] = (now + ttl, ttl)
        self._entries.move_to_end(digest)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)


def _ttl(block: dict[str, Any]) -> float:
    return TTL_S.get(block["cache_control"].get("ttl") or DEFAULT_TTL, TTL_S[DEFAULT_TTL])


def _blocks(content: Any) -> list[Any]:
    if isinstance(content, list):
        return content
    return [] if content is None or content == "" else [content]


def _unmarked(block: Any) -> Any:
    """The block as the cache sees it: a string is the text block it stands for."""
    if isinstance(block, str):
        return {"type": "text", "text": block}
    return {k: v for k, v in block.items() if k != "cache_control"} if isinstance(block, dict) else block


def anthropic_positions(body: dict[str, Any]) -> list[Position]:
    """Every block of the prompt in cache order (tools, system, messages), with its prefix digest."""
    running = hashlib.sha256(orjson.dumps(body.get("model")))
    positions: list[Position] = []

    def add(block: Any, at: tuple[str, int, int], role: Any = None) -> None:
        running.update(orjson.dumps([at[0], role, _unmarked(block)], option=orjson.OPT_SORT_KEYS))
        positions.append(Position(block, running.copy().digest(), at))

    for i, tool in enumerate(body.get("tools") or []):
        add(tool, ("tools", i, 0))
    for j, block in enumerate(_blocks(body.get("system"))):
        add(block, ("system", j, 0))
    for i, message in enumerate(body.get("messages") or []):
        if isinstance(message, dict):
            for j, block in enumerate(_blocks(message.get("content"))):
                add(block, ("messages", i, j), message.get("role") if j == 0 else None)
    return positions


def prefix_tokens(body: dict[str, Any], at: tuple[str, int, int]) -> int:
    """The counted input of the prompt cut just after the block at `at`."""
    section, index, block = at
    tools = [_unmarked(t) for t in body.get("tools") or []]
    if section == "tools":
        return count_anthropic_messages([], None, tools[: index + 1])
    system = body.get("system")
    if section == "system":
        return count_anthropic_messages([], system if isinstance(system, str) else _blocks(system)[: index + 1], tools)
    messages = body.get("messages") or []
    last = messages[index]
    content = last.get("content")
    cut = {**last, "content": content if isinstance(content, str) else _blocks(content)[: block + 1]}
    return count_anthropic_messages([*messages[:index], cut], system, tools)
