"""`tokenbrake demo`: the gateway in front of the emulator, driven by the official SDKs.

No API keys and no network: an emulated upstream plays a frontier API (priced like gpt-4o
and Claude Haiku) and a small local model, the gateway runs in front of it, and an
application's worth of traffic goes through both front doors.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import anthropic
import click
import httpx
import openai
import yaml

from tokenbrake.config import parse_config
from tokenbrake.core import Usage
from tokenbrake.launch import ChildServer
from tokenbrake.pricing import PriceBook
from tokenbrake.translate.usage import usage_from_anthropic, usage_from_openai


def demo_config(emulator_url: str) -> dict:
    return {
        "upstreams": {
            "frontier-api": {"kind": "openai", "base_url": emulator_url + "/v1", "provider": "openai"},
            "anthropic-api": {"kind": "anthropic", "base_url": emulator_url, "provider": "anthropic"},
            "local-gpu": {"kind": "openai", "base_url": emulator_url + "/v1"},
        },
        "models": {
            "frontier": {"upstream": "frontier-api", "model": "gpt-4o"},
            "claude-fast": {"upstream": "anthropic-api", "model": "claude-3-5-haiku-latest"},
            "local": {"upstream": "local-gpu", "model": "qwen2.5-3b-instruct",
                      "price": {"input_per_mtok": 0.02, "output_per_mtok": 0.06}},
            "text-embedding-3-small": {"upstream": "frontier-api"},
        },
    }


class Scene:
    def __init__(self, prices: PriceBook) -> None:
        self.prices = prices
        self.total = Decimal(0)

    def row(self, label: str, model: str, usage: Usage | None, note: str) -> None:
        if usage is None:
            cost = "-"
        else:
            value = self.prices.cost(model, usage)
            self.total += value
            cost = f"${value:.6f}"
        tokens = f"{usage.input_tokens + usage.cached_input_tokens:>5} in {usage.output_tokens:>4} out" if usage else " " * 16
        click.echo(f"  {label:<38} {model:<12} {tokens}  {cost:>10}  {note}")

    def attempt(self, label: str, model: str, call: Callable[[], tuple[Usage | None, str]]) -> None:
        try:
            usage, note = call()
        except (openai.APIError, anthropic.APIError) as exc:
            usage, note = None, f"{type(exc).__name__}: {_short(str(exc))}"
        self.row(label, model, usage, note)


def _short(text: str, width: int = 70) -> str:
    text = re.sub(r"\s+", " ", text)
    return text if len(text) <= width else text[: width - 1] + "…"


def run_demo() -> None:
    with ChildServer(["emulate", "--output-tokens", "40"], quiet=True) as emulator, tempfile.TemporaryDirectory() as tmp:
        config_path = Path(tmp) / "tokenbrake.yaml"
        raw = demo_config(emulator.url)
        config_path.write_text(yaml.safe_dump(raw))
        with ChildServer(["serve", "--config", str(config_path)], quiet=True) as gateway:
            click.echo(f"emulated upstream on {emulator.url}, gateway on {gateway.url}\n")
            scene = Scene(PriceBook(parse_config(raw, {})))
            oa = openai.OpenAI(base_url=gateway.url + "/v1", api_key="demo", max_retries=0)
            an = anthropic.Anthropic(base_url=gateway.url, api_key="demo", max_retries=0)
            play(scene, oa, an)
            click.echo(f"\n  {'total':<38} {'':<12} {'':<16}  ${scene.total:.6f}")
            click.echo("\nGateway metrics (cost by model, from /metrics):")
            for line in httpx.get(gateway.url + "/metrics").text.splitlines():
                if line.startswith("tokenbrake_cost_usd_total"):
                    click.echo("  " + line)


def play(scene: Scene, oa: openai.OpenAI, an: anthropic.Anthropic) -> None:
    ask = [{"role": "user", "content": "Summarise our refund policy in two sentences."}]

    def chat(model: str) -> Callable[[], tuple[Usage, str]]:
        def call() -> tuple[Usage, str]:
            reply = oa.chat.completions.create(model=model, messages=ask)
            return usage_from_openai(reply.usage.model_dump()), _short(reply.choices[0].message.content or "")
        return call

    def stream(model: str) -> tuple[Usage, str]:
        chunks = oa.chat.completions.create(model=model, messages=ask, stream=True, stream_options={"include_usage": True})
        text, usage = "", None
        for chunk in chunks:
            if chunk.choices and chunk.choices[0].delta.content:
                text += chunk.choices[0].delta.content
            if chunk.usage:
                usage = usage_from_openai(chunk.usage.model_dump())
        return usage, _short(text)

    def anthropic_to(model: str) -> Callable[[], tuple[Usage, str]]:
        def call() -> tuple[Usage, str]:
            message = an.messages.create(model=model, max_tokens=200, system="You are terse.", messages=ask)
            return usage_from_anthropic(message.usage.model_dump()), _short(message.content[0].text)
        return call

    def tool_call() -> tuple[Usage, str]:
        tools = [{"type": "function", "function": {"name": "lookup_order", "parameters": {
            "type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}}}]
        reply = oa.chat.completions.create(model="frontier", messages=[{"role": "user", "content": "Where is order 42?"}], tools=tools)
        call = reply.choices[0].message.tool_calls[0]
        return usage_from_openai(reply.usage.model_dump()), f"tool call {call.function.name}({call.function.arguments})"

    def cancelled() -> tuple[None, str]:
        long_ask = [{"role": "user", "content": "Write a long essay. [[emulator: tokens=400 tps=200]]"}]
        with oa.chat.completions.create(model="frontier", messages=long_ask, stream=True) as chunks:
            received = sum(1 for _, _ in zip(range(5), chunks))
        return None, f"client closed the stream after {received} chunks; the gateway charges what was produced"

    def embed() -> tuple[Usage, str]:
        result = oa.embeddings.create(model="text-embedding-3-small", input=["refund policy", "shipping times"])
        return usage_from_openai(result.usage.model_dump()), f"{len(result.data)} vectors of {len(result.data[0].embedding)} dims"

    def unknown_model() -> tuple[None, str]:
        oa.chat.completions.create(model="gpt-17", messages=ask)
        return None, "unexpectedly served"

    click.echo(f"  {'request':<38} {'model':<12} {'tokens':<16}  {'cost':>10}  result")
    scene.attempt("OpenAI SDK chat", "frontier", chat("frontier"))
    scene.attempt("OpenAI SDK chat", "local", chat("local"))
    scene.attempt("OpenAI SDK stream", "local", lambda: stream("local"))
    scene.attempt("Anthropic SDK → local OpenAI-style model", "local", anthropic_to("local"))
    scene.attempt("Anthropic SDK → Claude", "claude-fast", anthropic_to("claude-fast"))
    scene.attempt("OpenAI SDK → Claude (translated)", "claude-fast", chat("claude-fast"))
    scene.attempt("OpenAI SDK tool call", "frontier", tool_call)
    scene.attempt("OpenAI SDK embeddings", "text-embedding-3-small", embed)
    scene.attempt("OpenAI SDK stream, cancelled", "frontier", cancelled)
    scene.attempt("OpenAI SDK, unknown model", "gpt-17", unknown_model)
