"""Agent conversations for session tests: the request an agent sends at each of its calls.

An agent resends its whole conversation each call: the task, then every tool call it made and
what the tool answered. `looping` repeats one search that finds nothing; `progressing` reads a
different file every call (a coding agent working through a repository).
"""

from __future__ import annotations

import json
from typing import Any

from tokenbrake.core import Format

Step = tuple[str, dict[str, Any], str]  # tool name, arguments, what it returned
SYSTEM = "You are a coding agent. Use the tools to find and fix the bug."
TASK = "The scheduler drops jobs at midnight. Find out why and fix it."


def looping(calls: int) -> list[Step]:
    return [("search_files", {"query": "midnight rollover"}, "No files matched 'midnight rollover'.")] * calls


def progressing(calls: int) -> list[Step]:
    return [("read_file", {"path": f"src/scheduler/part_{i}.py"},
             f"# part {i}\ndef step_{i}(job):\n    return job.shift({i} * 60)  # minutes past {i % 24}:00\n")
            for i in range(calls)]


def tools(fmt: Format, names: list[str]) -> list[dict[str, Any]]:
    if fmt is Format.ANTHROPIC:
        return [{"name": n, "description": f"The {n} tool.", "input_schema": {"type": "object"}} for n in names]
    return [{"type": "function", "function": {"name": n, "description": f"The {n} tool.",
                                               "parameters": {"type": "object"}}} for n in names]


def messages(fmt: Format, steps: list[Step]) -> list[dict[str, Any]]:
    """The conversation after `steps` (without the system prompt, which Anthropic takes apart)."""
    out: list[dict[str, Any]] = [{"role": "user", "content": TASK}]
    for i, (name, args, result) in enumerate(steps):
        if fmt is Format.ANTHROPIC:
            out += [{"role": "assistant", "content": [{"type": "tool_use", "id": f"toolu_{i}", "name": name, "input": args}]},
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"toolu_{i}", "content": result}]}]
        else:
            out += [{"role": "assistant", "content": None, "tool_calls": [
                        {"id": f"call_{i}", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}]},
                    {"role": "tool", "tool_call_id": f"call_{i}", "content": result}]
    return out


def body(fmt: Format, steps: list[Step], model: str = "gpt-4o") -> dict[str, Any]:
    """The request body of the call made after `steps`."""
    names = sorted({name for name, _, _ in steps} | {"read_file", "search_files"})
    if fmt is Format.ANTHROPIC:
        return {"model": model, "max_tokens": 64, "system": SYSTEM, "messages": messages(fmt, steps),
                "tools": tools(fmt, names)}
    return {"model": model, "messages": [{"role": "system", "content": SYSTEM}, *messages(fmt, steps)],
            "tools": tools(fmt, names)}
