"""An evaluation session as a script (steps of one or more conversations) and the request
bodies it becomes in the OpenAI chat or Anthropic messages format."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from tokenbrake.core import Format


@dataclass(slots=True)
class Tools:
    """The assistant calls tools (with an optional thought), and the tools answer."""

    calls: list[tuple[str, dict[str, Any]]]
    results: list[str]
    thought: str = ""
    ids: list[str] = field(default_factory=list)  # filled when the session is rendered


@dataclass(slots=True)
class Say:
    """The assistant answers in text, and the user (or the other agent) replies."""

    text: str
    reply: str


Step = Tools | Say


@dataclass(slots=True)
class Conversation:
    system: str
    task: str
    steps: list[Step] = field(default_factory=list)
    window: int | None = None  # the agent keeps only its last `window` messages after the task


@dataclass(slots=True)
class Session:
    name: str
    format: Format
    family: str  # what the agent does, e.g. "coding", "paginate", or the loop kind
    loop_kind: str | None  # None: a progressing session
    # The first call whose request carries a repetition: a detector could not know sooner.
    loop_start: int | None
    conversations: list[Conversation]
    schedule: list[tuple[int, int]]  # per call: (conversation, how many of its steps it carries)
    model: str = "gpt-4o"

    @property
    def calls(self) -> int:
        return len(self.schedule)

    def requests(self) -> Iterator[dict[str, Any]]:
        """Each call's body. A conversation's calls carry ever more steps: each step is
        rendered once, and each body takes the messages rendered so far."""
        rendered: dict[int, tuple[int, list[dict[str, Any]]]] = {}
        for index, steps in self.schedule:
            conversation = self.conversations[index]
            done, messages = rendered.get(index, (0, []))
            for step in conversation.steps[done:steps]:
                messages += _render_step(self.format, step)
            rendered[index] = (max(done, steps), messages)
            if steps < done:  # not in this package's schedules, but correct all the same
                yield render(self.format, conversation, steps, self.model)
            else:
                yield _body(self.format, conversation, messages, self.model)


def solo(name: str, fmt: Format, family: str, conversation: Conversation, loop_start: int | None = None,
         loop_kind: str | None = None) -> Session:
    """A one-agent session: call k carries the first k steps."""
    schedule = [(0, k) for k in range(len(conversation.steps) + 1)]
    return Session(name, fmt, family, loop_kind, loop_start, [conversation], schedule)


def render(fmt: Format, conversation: Conversation, steps: int, model: str) -> dict[str, Any]:
    """The body of the call that carries the conversation's first `steps` steps."""
    messages: list[dict[str, Any]] = []
    for step in conversation.steps[:steps]:
        messages += _render_step(fmt, step)
    return _body(fmt, conversation, messages, model)


def _body(fmt: Format, conversation: Conversation, messages: list[dict[str, Any]], model: str) -> dict[str, Any]:
    if conversation.window is not None and len(messages) > conversation.window:
        messages = messages[-conversation.window:]
        while messages and messages[0]["role"] != "assistant":  # never start inside a step
            messages.pop(0)
    task = {"role": "user", "content": conversation.task}
    tools = sorted({name for step in conversation.steps if isinstance(step, Tools) for name, _ in step.calls})
    if fmt is Format.ANTHROPIC:
        body: dict[str, Any] = {"model": model, "max_tokens": 1024, "system": conversation.system,
                                "messages": [task, *messages]}
        if tools:
            body["tools"] = [{"name": name, "description": f"The {name} tool.", "input_schema": {"type": "object"}}
                             for name in tools]
        return body
    body = {"model": model, "messages": [{"role": "system", "content": conversation.system}, task, *messages]}
    if tools:
        body["tools"] = [{"type": "function", "function": {"name": name, "description": f"The {name} tool.",
                                                           "parameters": {"type": "object"}}} for name in tools]
    return body


def _render_step(fmt: Format, step: Step) -> list[dict[str, Any]]:
    if isinstance(step, Say):
        return [{"role": "assistant", "content": step.text}, {"role": "user", "content": step.reply}]
    if fmt is Format.ANTHROPIC:
        blocks: list[dict[str, Any]] = [{"type": "text", "text": step.thought}] if step.thought else []
        blocks += [{"type": "tool_use", "id": id_, "name": name, "input": args}
                   for id_, (name, args) in zip(step.ids, step.calls)]
        results = [{"type": "tool_result", "tool_use_id": id_, "content": result}
                   for id_, result in zip(step.ids, step.results)]
        return [{"role": "assistant", "content": blocks}, {"role": "user", "content": results}]
    calls = [{"id": id_, "type": "function", "function": {"name": name, "arguments": orjson.dumps(args).decode()}}
             for id_, (name, args) in zip(step.ids, step.calls)]
    return ([{"role": "assistant", "content": step.thought or None, "tool_calls": calls}]
            + [{"role": "tool", "tool_call_id": id_, "content": result} for id_, result in zip(step.ids, step.results)])
