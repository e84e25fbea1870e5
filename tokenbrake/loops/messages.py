"""A request's conversation in one neutral shape, whichever front door it came through.

OpenAI: `system`/`developer` messages, `user` text or parts, `assistant` content with
`tool_calls` (arguments as a JSON string), `tool` messages answering a `tool_call_id`.
Anthropic: a `system` field, `user`/`assistant` messages whose content is a string or blocks:
`text`, `tool_use` (input as an object), `tool_result` (content a string or text blocks).
Only what says something is kept: cache_control marks, images' bytes and ids are not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tokenbrake.core import Format
from tokenbrake.loops.normalize import canonical_arguments, digest


@dataclass(slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # canonical JSON


@dataclass(slots=True)
class ToolResult:
    call_id: str
    text: str


@dataclass(slots=True)
class Message:
    role: str  # system, user, assistant or tool
    text: str = ""
    calls: list[ToolCall] = field(default_factory=list)
    results: list[ToolResult] = field(default_factory=list)

    def fingerprint(self) -> int:
        """What identifies this message when the conversation is sent again. Tool calls and
        results carry the call's id, unique per call, so an identical call made again (a loop)
        is still another message."""
        parts = [self.role, self.text]
        parts += [f"{call.id}{call.name}{call.arguments}" for call in self.calls]
        parts += [f"{result.call_id}{result.text}" for result in self.results]
        return digest("\x1f".join(parts))


def raw_messages(body: dict[str, Any]) -> list[Any]:
    messages = body.get("messages")
    return messages if isinstance(messages, list) else []


def system_text(fmt: Format, body: dict[str, Any]) -> str:
    """Anthropic's `system` field, or the text of OpenAI's leading system/developer messages."""
    if fmt is Format.ANTHROPIC:
        return _text(body.get("system"))
    texts = []
    for raw in raw_messages(body):
        if not isinstance(raw, dict) or raw.get("role") not in ("system", "developer"):
            break
        texts.append(_text(raw.get("content")))
    return "\n".join(texts)


def read_message(fmt: Format, raw: Any) -> Message:
    if not isinstance(raw, dict):
        return Message(role="user", text=str(raw))
    return _read_anthropic(raw) if fmt is Format.ANTHROPIC else _read_openai(raw)


def _read_openai(raw: dict[str, Any]) -> Message:
    role = str(raw.get("role", "user"))
    if role in ("tool", "function"):
        call_id = str(raw.get("tool_call_id") or raw.get("name") or "")
        return Message(role="tool", results=[ToolResult(call_id, _text(raw.get("content")))])
    if role == "developer":
        role = "system"
    message = Message(role=role, text=_text(raw.get("content")))
    for call in raw.get("tool_calls") or []:
        if not isinstance(call, dict):
            continue
        function = call.get("function") or {}
        message.calls.append(ToolCall(str(call.get("id", "")), str(function.get("name", "")),
                                      canonical_arguments(function.get("arguments", ""))))
    legacy = raw.get("function_call")
    if isinstance(legacy, dict):
        message.calls.append(ToolCall(str(legacy.get("name", "")), str(legacy.get("name", "")),
                                      canonical_arguments(legacy.get("arguments", ""))))
    return message


def _read_anthropic(raw: dict[str, Any]) -> Message:
    message = Message(role=str(raw.get("role", "user")))
    content = raw.get("content")
    if not isinstance(content, list):
        message.text = _text(content)
        return message
    texts = []
    for block in content:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            texts.append(str(block.get("text", "")))
        elif kind == "tool_use":
            message.calls.append(ToolCall(str(block.get("id", "")), str(block.get("name", "")),
                                          canonical_arguments(block.get("input", {}))))
        elif kind == "tool_result":
            text = _text(block.get("content"))
            if block.get("is_error"):
                text = "error: " + text
            message.results.append(ToolResult(str(block.get("tool_use_id", "")), text))
    message.text = "\n".join(texts)
    return message


def _text(content: Any) -> str:
    """A string, or the text parts/blocks of a list; other parts (images) count as a mark."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict):
                parts.append(str(part["text"]) if "text" in part else f"[{part.get('type', 'part')}]")
            else:
                parts.append(str(part))
        return "\n".join(parts)
    return str(content)
