"""Demo scene: a runaway agent stopped at the gateway.

A coding agent on the frontier model searches for a file that does not exist, gets "no
files matched", and searches again, the same way, forever. Its key's session rule says
`on_loop: stop`: the loop detector sees the same tool call come back with the same result,
and after a few repetitions the gateway stops the session, refusing the call with the
evidence. The scene prints what the loop cost before it was stopped, and what it would have
cost had it run for six hours at the pace it kept (its calls per minute × 360 minutes × its
cost per call; a looping context also grows, so the real figure would be higher still). The
pace is the model's measured answer time plus the time the agent's tool takes, which is
counted rather than slept, so the scene takes well under a second.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import TYPE_CHECKING

import click

from tokenbrake.tools.demo_scenes import DemoRun, say, short

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam
    from openai.types.chat.chat_completion_message_function_tool_call_param import Function

TITLE = "Sessions: an agent stuck in a tool-call loop is stopped"
KEYS = [{"name": "coding-agent", "team": "platform", "models": None}]
TOOL_S = 1.0  # the agent's tool "runs" this long between its calls (the pace of a brisk agent)
SYSTEM = "You are a coding agent. Use the tools to find and fix the bug."
TASK = "The scheduler drops jobs at midnight. Find out why and fix it."
SEARCH: Function = {"name": "search_files", "arguments": '{"query": "midnight rollover"}'}
NOTHING = "No files matched 'midnight rollover'."
SIX_HOURS_MIN = 360


def configure(raw: dict, emulator_url: str) -> None:
    raw.setdefault("sessions", {}).setdefault("rules", []).append({"scope": "key:coding-agent", "on_loop": "stop"})


def conversation(searches: int) -> list[ChatCompletionMessageParam]:
    """The agent's request after `searches` identical searches that found nothing."""
    messages: list[ChatCompletionMessageParam] = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": TASK}]
    for i in range(searches):
        messages += [{"role": "assistant", "content": None,
                      "tool_calls": [{"id": f"call_{i}", "type": "function", "function": SEARCH}]},
                     {"role": "tool", "tool_call_id": f"call_{i}", "content": NOTHING}]
    return messages


def play(run: DemoRun) -> None:
    url, keys = run.url, run.keys
    import openai  # here, not at the top: see demo_scenes/__init__.py

    session = f"fix-midnight-{uuid.uuid4().hex[:6]}"
    client = openai.OpenAI(base_url=url + "/v1", api_key=keys["coding-agent"], max_retries=0,
                           default_headers={"X-Tokenbrake-Session": session})
    tools: list[ChatCompletionToolParam] = [{"type": "function", "function": {"name": "search_files", "description": "Search the repository.",
                                               "parameters": {"type": "object"}}}]
    say(f"session {session}: each call asks frontier what to do next; the agent always searches for "
        f"'midnight rollover' again, a search that takes its tool {TOOL_S:.0f} s")
    answering = 0.0
    for call in range(1, 31):
        started = time.monotonic()
        try:
            raw = client.chat.completions.with_raw_response.create(
                model="frontier", messages=conversation(call - 1), tools=tools, max_tokens=64)
        except openai.RateLimitError as refused:
            say(f"call {call}: refused ({type(refused).__name__} {refused.status_code}): {short(refused.message, 500)}")
            summarise(refused.message, answering + (call - 1) * TOOL_S)
            return
        answering += time.monotonic() - started
        flag = raw.headers.get("x-tokenbrake-loop")
        click.echo(f"  call {call}: search_files → nothing{'   [' + flag + ']' if flag else ''}")
    click.echo("  the loop was never stopped")


def summarise(message: str, seconds: float) -> None:
    made = re.search(r"made (\d+) calls costing \$(\d+(?:\.\d+)?)", message)
    if made is None:
        return
    calls, cost = int(made.group(1)), float(made.group(2))
    if calls == 0 or cost == 0:  # a free model: nothing to compare
        return
    per_minute = calls / (seconds / 60)
    six_hours = per_minute * SIX_HOURS_MIN * (cost / calls)
    say(f"Stopped after {calls} calls in {seconds:.1f} s of the agent's time (the model's answers and "
        f"{TOOL_S:.0f} s of tool a call), costing ${cost:.6f}. At that pace ({per_minute:.0f} calls a minute, "
        f"${cost / calls:.6f} a call) six hours of it would have cost ${six_hours:,.2f}: "
        f"{six_hours / cost:,.0f} times as much.")
