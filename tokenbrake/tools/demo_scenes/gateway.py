"""Demo scene: an application's worth of traffic through both front doors.

Two teams' keys; chat, a stream, a tool call, embeddings, a stream the client abandons, an
upstream that keeps failing, calls translated between the OpenAI and Anthropic formats, and
a model the key may not use. The emulator plays a frontier API (priced like gpt-4o and
Claude Haiku from the price catalog) and a small model on a local GPU (priced from what the
GPU costs per hour and how fast it serves).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from tokenbrake.tools.demo_scenes import OUTCOME_WIDTH, DemoRun, say, short
from tokenbrake.tools.demo_scenes import line as scene

if TYPE_CHECKING:
    from anthropic.types import MessageParam
    from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam

TITLE = "The gateway: two front doors, two teams, one ledger"
KEYS = [
    {"name": "search-app", "team": "search", "models": None},
    {"name": "support-bot", "team": "support", "models": ["local", "claude-fast"]},
]


def configure(raw: dict, emulator_url: str) -> None:
    raw["upstreams"].update({
        "frontier-api": {"kind": "openai", "base_url": emulator_url + "/v1", "provider": "openai"},
        "anthropic-api": {"kind": "anthropic", "base_url": emulator_url, "provider": "anthropic"},
        "local-gpu": {"kind": "openai", "base_url": emulator_url + "/v1"},
    })
    raw["models"].update({
        "frontier": {"upstream": "frontier-api", "model": "gpt-4o"},
        "claude-fast": {"upstream": "anthropic-api", "model": "claude-3-5-haiku-latest"},
        "local": {"upstream": "local-gpu", "model": "qwen2.5-3b-instruct",
                  "price": {"gpu": {"cost_per_hour": 0.90, "output_tokens_per_s": 150}}},
        "text-embedding-3-small": {"upstream": "frontier-api"},
    })


def _reply(text: str) -> str:
    return short(text, OUTCOME_WIDTH)


def play(run: DemoRun) -> None:
    url, keys = run.url, run.keys
    import anthropic  # here, not at the top: see demo_scenes/__init__.py
    import openai

    tags = {"X-Tokenbrake-Tags": "feature=search,env=demo"}
    search = openai.OpenAI(base_url=url + "/v1", api_key=keys["search-app"], max_retries=0, default_headers=tags)
    support_oa = openai.OpenAI(base_url=url + "/v1", api_key=keys["support-bot"], max_retries=0)
    support_an = anthropic.Anthropic(base_url=url, api_key=keys["support-bot"], max_retries=0,
                                     default_headers={"X-Tokenbrake-Session": "ticket-981"})
    question = "Summarise our refund policy in two sentences."
    ask: list[ChatCompletionMessageParam] = [{"role": "user", "content": question}]
    ask_anthropic: list[MessageParam] = [{"role": "user", "content": question}]
    say("models: frontier (an emulated OpenAI API, priced as gpt-4o), claude-fast (an emulated Anthropic API, "
        "priced as claude-3-5-haiku), local (a 3B model on a GPU at $0.90 an hour), text-embedding-3-small")

    def chat(client: openai.OpenAI, model: str, user: str) -> Callable[[], str]:
        return lambda: _reply(client.chat.completions.create(model=model, messages=ask, user=user).choices[0].message.content or "")

    def stream() -> str:
        chunks = search.chat.completions.create(model="local", messages=ask, stream=True, user="ana")
        return _reply("".join(c.choices[0].delta.content or "" for c in chunks if c.choices))

    def anthropic_to(model: str) -> Callable[[], str]:
        def call() -> str:
            message = support_an.messages.create(model=model, max_tokens=200, system="You are terse.", messages=ask_anthropic,
                                                 metadata={"user_id": "ben"})
            block = message.content[0]
            return _reply(block.text if block.type == "text" else f"a {block.type} block")
        return call

    def tool_call() -> str:
        tools: list[ChatCompletionToolParam] = [{"type": "function", "function": {"name": "lookup_order", "parameters": {
            "type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}}}]
        reply = search.chat.completions.create(model="frontier", messages=[{"role": "user", "content": "Where is order 42?"}],
                                               tools=tools, user="ana")
        call = (reply.choices[0].message.tool_calls or [])[0]
        if call.type != "function":
            return f"a {call.type} tool call"
        return f"tool call {call.function.name}({call.function.arguments})"

    def cancelled() -> str:
        long_ask: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Write a long essay. [[emulator: tokens=400 tps=200]]"}]
        with search.chat.completions.create(model="frontier", messages=long_ask, stream=True, user="carl") as chunks:
            received = sum(1 for _, _ in zip(range(5), chunks))
        return f"closed after {received} chunks; billed for what was sent"

    def embed() -> str:
        result = search.embeddings.create(model="text-embedding-3-small", input=["refund policy", "shipping times"])
        return f"{len(result.data)} vectors of {len(result.data[0].embedding)} dims"

    def not_allowed() -> str:
        support_oa.chat.completions.create(model="frontier", messages=ask)
        return "unexpectedly served"

    def upstream_down() -> str:
        search.chat.completions.create(model="frontier", messages=[{"role": "user", "content": "[[emulator: status=503]]"}])
        return "unexpectedly served"

    scene("search-app, OpenAI SDK → frontier", chat(search, "frontier", "ana"))
    scene("search-app, OpenAI SDK → local", chat(search, "local", "dev"))
    scene("search-app, OpenAI SDK stream → local", stream)
    scene("search-app, tool call → frontier", tool_call)
    scene("search-app, embeddings", embed)
    scene("search-app, stream cancelled by the client", cancelled)
    scene("search-app, upstream keeps answering 503", upstream_down)
    scene("support-bot, Anthropic SDK → local (translated)", anthropic_to("local"))
    scene("support-bot, Anthropic SDK → claude-fast", anthropic_to("claude-fast"))
    scene("support-bot, OpenAI SDK → claude-fast (translated)", chat(support_oa, "claude-fast", "ben"))
    scene("support-bot, OpenAI SDK → frontier (forbidden)", not_allowed)
