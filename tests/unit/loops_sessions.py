"""Helpers for the loop detector's tests: conversations written as steps, replayed as request
bodies in either format, one call at a time, the trace round-tripped through JSON as the
sessions stage stores it."""

from __future__ import annotations

import itertools
from typing import Any

import orjson

from tokenbrake.config import LoopConfig
from tokenbrake.core import Format
from tokenbrake.evaluation.loop_sessions.script import Conversation, Say, Step, Tools, render
from tokenbrake.loops import LoopDetector, LoopVerdict

FORMATS = [Format.OPENAI, Format.ANTHROPIC]
_ids = itertools.count()


def tool(name: str, args: dict[str, Any], result: str, thought: str = "") -> Tools:
    step = Tools([(name, args)], [result], thought=thought)
    step.ids = [f"call_{next(_ids)}"]
    return step


def say(text: str, reply: str) -> Say:
    return Say(text, reply)


def replay(steps: list[Step], fmt: Format, settings: LoopConfig | None = None, window: int | None = None,
           system: str = "You are an agent.") -> list[LoopVerdict]:
    """The verdict on each call: call k carries the first k steps."""
    detector = LoopDetector(settings or LoopConfig())
    conversation = Conversation(system, "Do the task.", steps, window)
    trace, verdicts = None, []
    for k in range(len(steps) + 1):
        trace, verdict = detector.observe(trace, fmt, render(fmt, conversation, k, "gpt-4o"))
        trace = orjson.loads(orjson.dumps(trace))
        verdicts.append(verdict)
    return verdicts


def first_stop(verdicts: list[LoopVerdict]) -> int | None:
    return next((index for index, verdict in enumerate(verdicts) if verdict.looping), None)


def distinct_file(index: int) -> str:
    """A file's content that shares little with another index's."""
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
             "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango"]
    picked = [f"{words[(index * 7 + j * 3) % 20]}{index}_{j}" for j in range(40)]
    return "def main():\n    " + "\n    ".join(f"{name} = load('{name}')" for name in picked)
