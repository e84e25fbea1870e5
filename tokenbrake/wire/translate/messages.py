"""Conversation histories between the formats: OpenAI `messages` <-> Anthropic `system` + `messages`.

The shapes differ more than the meaning. OpenAI keeps system prompts, tool results (`role:
tool`) and assistant tool calls as messages of their own; Anthropic puts the system prompt in a
top-level field, tool results as `tool_result` blocks at the start of a user turn, and tool calls
as `tool_use` blocks, and wants user and assistant turns to alternate with non-empty content.
Anthropic-only blocks that change nothing the model is asked (thinking, `cache_control`) are
dropped on the way to OpenAI; anything that carries meaning the other side cannot hold raises.
Anthropic accepts tool-call ids made of letters, digits, `_` and `-` only; other clients' ids
(`functions.get_weather:0`) are rewritten, the same id always to the same one, so a call and
its result still match.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import orjson

from tokenbrake.core import ErrorKind, GatewayError

ANTHROPIC_TOOL_ID = re.compile(r"[a-zA-Z0-9_-]+")
NOT_IN_ANTHROPIC_ID = re.compile(r"[^a-zA-Z0-9_-]")


def anthropic_tool_id(call_id: str) -> str:
    """`call_id` as Anthropic accepts it: unchanged when it can be, else its characters that
    Anthropic refuses as `_` and a digest of the original, so two ids never become one."""
    if ANTHROPIC_TOOL_ID.fullmatch(call_id):
        return call_id
    return NOT_IN_ANTHROPIC_ID.sub("_", call_id) + "_" + hashlib.sha256(call_id.encode()).hexdigest()[:12]


def invalid(message: str, param: str) -> GatewayError:
    return GatewayError(ErrorKind.INVALID_REQUEST, message, param=param)


def parse_arguments(raw: Any, param: str, kind: ErrorKind = ErrorKind.INVALID_REQUEST) -> dict[str, Any]:
    """OpenAI's tool arguments (a JSON string) as Anthropic's tool input (an object).

    An empty string means no arguments. Anything else that is not a JSON object cannot be an
    Anthropic `input`, and guessing one would hand the tool arguments the model never chose.
    """
    if isinstance(raw, dict):
        return raw
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}
    try:
        value = orjson.loads(raw)
    except (orjson.JSONDecodeError, TypeError):
        value = None
    if not isinstance(value, dict):
        raise GatewayError(kind, f"{param} must be a JSON object to be sent as Anthropic tool input", param=param)
    return value


def dump_json(value: Any) -> str:
    return orjson.dumps(value).decode()


# --- OpenAI -> Anthropic -------------------------------------------------------------------


def to_anthropic_messages(messages: Any) -> tuple[list[str], list[dict[str, Any]]]:
    """The system texts (in order) and the alternating Anthropic turns of an OpenAI history."""
    if not isinstance(messages, list) or not messages:
        raise invalid("messages must be a non-empty array", "messages")
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        role = message.get("role") if isinstance(message, dict) else None
        if role in ("system", "developer"):
            if text := _plain_text(message.get("content"), f"{where}.content"):
                system.append(text)
            continue
        if role == "user":
            blocks, role = _user_blocks(message.get("content"), f"{where}.content"), "user"
        elif role == "assistant":
            blocks = _assistant_blocks(message, where)
        elif role == "tool":
            blocks, role = [_tool_result(message, where)], "user"
        else:
            raise invalid(f"{where}.role {role!r} cannot be sent to an Anthropic model", f"{where}.role")
        if not blocks:
            continue  # Anthropic rejects empty turns; an empty OpenAI message says nothing
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    if not turns:
        raise invalid("messages must contain at least one user or assistant message", "messages")
    _strip_final_assistant(turns)
    for turn in turns:
        turn["content"] = _compact(turn["content"])
    return system, turns


def _plain_text(content: Any, param: str) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    if not isinstance(content, list):
        raise invalid(f"{param} must be a string or an array of text parts", param)
    texts = []
    for j, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") != "text":
            raise invalid(f"{param}[{j}] must be a text part", f"{param}[{j}]")
        texts.append(part.get("text") or "")
    return "\n".join(t for t in texts if t)


def _user_blocks(content: Any, param: str) -> list[dict[str, Any]]:
    if content is None or isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise invalid(f"{param} must be a string or an array of content parts", param)
    blocks = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if part.get("text"):
                blocks.append({"type": "text", "text": part["text"]})
        elif kind == "image_url":
            blocks.append(_image_block(part.get("image_url"), f"{param}[{j}].image_url"))
        elif kind == "file":
            blocks.append(_document_block(part.get("file"), f"{param}[{j}].file"))
        else:
            raise invalid(f"{param}[{j}]: content parts of type {kind!r} cannot be sent to an Anthropic model", f"{param}[{j}]")
    return blocks


def _image_block(image: Any, param: str) -> dict[str, Any]:
    url = image.get("url") if isinstance(image, dict) else image
    if isinstance(url, str) and url.startswith("data:"):
        media_type, data = _data_url(url, param)
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
    if isinstance(url, str) and url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise invalid(f"{param}.url must be an http(s) URL or a base64 data: URL", f"{param}.url")


def _data_url(url: str, param: str) -> tuple[str, str]:
    header, _, data = url[len("data:") :].partition(",")
    if not header.endswith(";base64") or not data:
        raise invalid(f"{param}: only base64 data: URLs can be sent to an Anthropic model", param)
    return header[: -len(";base64")], data


def _document_block(file: Any, param: str) -> dict[str, Any]:
    data = file.get("file_data") if isinstance(file, dict) else None
    if not isinstance(data, str) or not data:
        raise invalid(f"{param}: only inline file_data (not file_id) can be sent to an Anthropic model", param)
    media_type, data = _data_url(data, param) if data.startswith("data:") else ("application/pdf", data)
    if media_type != "application/pdf":
        raise invalid(f"{param}: only PDF files can be sent to an Anthropic model, not {media_type}", param)
    block: dict[str, Any] = {"type": "document", "source": {"type": "base64", "media_type": media_type, "data": data}}
    if file.get("filename"):
        block["title"] = file["filename"]
    return block


def _assistant_blocks(message: dict[str, Any], where: str) -> list[dict[str, Any]]:
    if message.get("function_call") or message.get("audio"):
        field = "function_call" if message.get("function_call") else "audio"
        raise invalid(f"{where}.{field} cannot be sent to an Anthropic model", f"{where}.{field}")
    content = message.get("content")
    blocks: list[dict[str, Any]] = []
    if isinstance(content, str):
        if content:
            blocks.append({"type": "text", "text": content})
    elif isinstance(content, list):
        for part in content:  # text and refusal parts; a refusal is what the model said
            text = part.get("text") or part.get("refusal") if isinstance(part, dict) else None
            if text:
                blocks.append({"type": "text", "text": text})
    elif content is not None:
        raise invalid(f"{where}.content must be a string, an array of parts or null", f"{where}.content")
    for k, call in enumerate(message.get("tool_calls") or ()):
        blocks.append(_tool_use(call, f"{where}.tool_calls[{k}]"))
    return blocks


def _tool_use(call: Any, param: str) -> dict[str, Any]:
    if not isinstance(call, dict) or call.get("type", "function") != "function":
        raise invalid(f"{param}: only function tool calls can be sent to an Anthropic model", param)
    function = call.get("function") or {}
    if not call.get("id") or not function.get("name"):
        raise invalid(f"{param} needs an id and a function name", param)
    arguments = parse_arguments(function.get("arguments"), f"{param}.function.arguments")
    return {"type": "tool_use", "id": anthropic_tool_id(str(call["id"])), "name": function["name"], "input": arguments}


def _tool_result(message: dict[str, Any], where: str) -> dict[str, Any]:
    if not message.get("tool_call_id"):
        raise invalid(f"{where}.tool_call_id is required", f"{where}.tool_call_id")
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": anthropic_tool_id(str(message["tool_call_id"]))}
    if text := _plain_text(message.get("content"), f"{where}.content"):
        block["content"] = text
    return block


def _strip_final_assistant(turns: list[dict[str, Any]]) -> None:
    # Anthropic refuses a final assistant turn (a prefill) that ends in whitespace.
    last = turns[-1]
    if last["role"] != "assistant" or last["content"][-1]["type"] != "text":
        return
    last["content"][-1]["text"] = last["content"][-1]["text"].rstrip()
    if not last["content"][-1]["text"]:
        last["content"].pop()
        if not last["content"]:
            turns.pop()


def _compact(blocks: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    # Anthropic wants a user turn's tool results before anything else in it.
    results = [b for b in blocks if b["type"] == "tool_result"]
    if results and len(results) < len(blocks):
        blocks = results + [b for b in blocks if b["type"] != "tool_result"]
    if len(blocks) == 1 and blocks[0]["type"] == "text":
        return blocks[0]["text"]
    return blocks


# --- Anthropic -> OpenAI -------------------------------------------------------------------


def to_openai_messages(system: Any, messages: Any) -> list[dict[str, Any]]:
    if not isinstance(messages, list) or not messages:
        raise invalid("messages must be a non-empty array", "messages")
    out: list[dict[str, Any]] = []
    if text := _system_text(system, "system"):
        out.append({"role": "system", "content": text})
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        role = message.get("role") if isinstance(message, dict) else None
        if role == "system":
            if text := _system_text(message.get("content"), f"{where}.content"):
                out.append({"role": "system", "content": text})
        elif role == "user":
            out.extend(_from_user(message.get("content"), f"{where}.content"))
        elif role == "assistant":
            if converted := _from_assistant(message.get("content"), f"{where}.content"):
                out.append(converted)
        else:
            raise invalid(f"{where}.role {role!r} is not a valid role", f"{where}.role")
    return out


def _system_text(system: Any, param: str) -> str:
    if system is None or isinstance(system, str):
        return system or ""
    if not isinstance(system, list):
        raise invalid(f"{param} must be a string or an array of text blocks", param)
    for j, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise invalid(f"{param}[{j}] must be a text block", f"{param}[{j}]")
    return "\n".join(block.get("text") or "" for block in system)


def _from_user(content: Any, param: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    if not isinstance(content, list):
        raise invalid(f"{param} must be a string or an array of content blocks", param)
    results: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        kind = block.get("type") if isinstance(block, dict) else None
        where = f"{param}[{j}]"
        if kind == "tool_result":
            results.append(_from_tool_result(block, where, parts))
        elif kind in ("text", "image", "document"):
            parts.append(_from_block(block, where))
        else:
            raise invalid(f"{where}: content blocks of type {kind!r} cannot be sent to an OpenAI-compatible model", where)
    if parts:  # after the tool results: OpenAI wants those right behind the tool calls
        only_text = len(parts) == 1 and parts[0]["type"] == "text"
        results.append({"role": "user", "content": parts[0]["text"] if only_text else parts})
    return results


def _from_block(block: dict[str, Any], where: str) -> dict[str, Any]:
    kind, source = block.get("type"), block.get("source") or {}
    if kind == "text":
        return {"type": "text", "text": block.get("text") or ""}
    if kind == "image" and source.get("type") == "base64":
        return {"type": "image_url", "image_url": {"url": f"data:{source.get('media_type')};base64,{source.get('data')}"}}
    if kind == "image" and source.get("type") == "url":
        return {"type": "image_url", "image_url": {"url": source.get("url")}}
    if kind == "document" and source.get("type") == "base64" and source.get("media_type") == "application/pdf":
        data_url = f"data:application/pdf;base64,{source.get('data')}"
        return {"type": "file", "file": {"filename": block.get("title") or "document.pdf", "file_data": data_url}}
    if kind == "document" and source.get("type") == "text":
        return {"type": "text", "text": source.get("data") or ""}
    what = f"a {kind} block with a {source.get('type')!r} source" if kind in ("image", "document") else f"a {kind!r} block"
    raise invalid(f"{where}: {what} cannot be sent to an OpenAI-compatible model", where)


def _from_tool_result(block: dict[str, Any], where: str, parts: list[dict[str, Any]]) -> dict[str, Any]:
    """A tool message; images in the result go to `parts`, since OpenAI tool messages hold only text."""
    content = block.get("content")
    if isinstance(content, list):
        texts = []
        for k, inner in enumerate(content):
            if not isinstance(inner, dict):
                raise invalid(f"{where}.content[{k}] must be a content block", f"{where}.content[{k}]")
            converted = _from_block(inner, f"{where}.content[{k}]")
            if converted["type"] == "text":
                texts.append(converted["text"])
            else:
                parts.append(converted)
        content = "\n".join(texts)
    text = content if isinstance(content, str) else ""
    if block.get("is_error"):
        text = f"Error: {text}" if text else "Error"  # OpenAI has no error flag; say it in words
    return {"role": "tool", "tool_call_id": block.get("tool_use_id"), "content": text}


def _from_assistant(content: Any, param: str) -> dict[str, Any] | None:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    if not isinstance(content, list):
        raise invalid(f"{param} must be a string or an array of content blocks", param)
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(block.get("text") or "")
        elif kind == "tool_use":
            function = {"name": block.get("name"), "arguments": dump_json(block.get("input") or {})}
            calls.append({"id": block.get("id"), "type": "function", "function": function})
        elif kind not in ("thinking", "redacted_thinking"):  # reasoning traces only Anthropic can read back
            what = f"content blocks of type {kind!r}"
            raise invalid(f"{param}[{j}]: {what} cannot be sent to an OpenAI-compatible model", f"{param}[{j}]")
    text = "".join(texts)
    if not text and not calls:
        return None
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = calls
    return message
