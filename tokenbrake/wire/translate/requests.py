"""Request bodies between the formats: the top-level fields; `messages` does the history.

Design decisions worth knowing:
- `response_format` (json_object / json_schema) has no field on every Anthropic model, so it
  becomes an instruction appended to the system prompt (`JSON_INSTRUCTION`, plus the schema).
  The other way, Anthropic `output_config.format` becomes a `json_schema` response_format.
- OpenAI `temperature` runs 0..2, Anthropic's 0..1: values above 1 are clamped to 1.
- OpenAI fields that only tune sampling or serving (penalties, seed, service_tier, store,
  reasoning_effort, prompt caching hints, ...) are dropped; fields whose absence would change
  what the client gets back (`n` > 1, logprobs, logit_bias, audio, web search, legacy
  functions) raise INVALID_REQUEST naming the field.
- Anthropic `thinking`, `top_k`, `cache_control` and `output_config.effort` are dropped for
  OpenAI-compatible upstreams; server tools (web search, code execution, MCP) raise.
- Anthropic requires `max_tokens`: the caller's default is used when the client gave none.
  Towards OpenAI-compatible upstreams it stays `max_tokens`; the provider then sends it in the
  field its server reads (`providers/openai.py`).
"""

from __future__ import annotations

from typing import Any

from tokenbrake.wire.translate.messages import dump_json, invalid, to_anthropic_messages, to_openai_messages

JSON_INSTRUCTION = "Respond with a single valid JSON object only, with no text before or after it."
EMPTY_SCHEMA = {"type": "object", "properties": {}}
_REFUSED = {
    "logit_bias": "logit_bias",
    "web_search_options": "web search",
    "functions": "legacy functions (use tools)",
    "function_call": "legacy function_call (use tool_choice)",
}


def openai_to_anthropic_request(body: dict[str, Any], upstream_model: str, default_max_tokens: int = 4096) -> dict[str, Any]:
    _refuse_untranslatable(body)
    system, messages = to_anthropic_messages(body.get("messages"))
    if instruction := _json_instruction(body.get("response_format")):
        system.append(instruction)
    out: dict[str, Any] = {"model": upstream_model, "max_tokens": _max_tokens(body, default_max_tokens), "messages": messages}
    if system:
        out["system"] = "\n\n".join(system)
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if body.get("temperature") is not None:
        out["temperature"] = min(max(_number(body["temperature"], "temperature"), 0.0), 1.0)
    if body.get("top_p") is not None:
        out["top_p"] = _number(body["top_p"], "top_p")
    if user := body.get("user") or body.get("safety_identifier"):
        out["metadata"] = {"user_id": str(user)}
    if body.get("stream"):
        out["stream"] = True
    if body.get("tools"):
        out["tools"] = [_anthropic_tool(tool, f"tools[{i}]") for i, tool in enumerate(body["tools"])]
        out["tool_choice"] = _anthropic_tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
    return out


def anthropic_to_openai_request(body: dict[str, Any], upstream_model: str) -> dict[str, Any]:
    if body.get("mcp_servers"):
        raise invalid("mcp_servers cannot be used with an OpenAI-compatible model", "mcp_servers")
    out: dict[str, Any] = {"model": upstream_model, "messages": to_openai_messages(body.get("system"), body.get("messages"))}
    if body.get("max_tokens") is not None:
        out["max_tokens"] = body["max_tokens"]
    if body.get("stop_sequences"):
        out["stop"] = list(body["stop_sequences"])
    for field in ("temperature", "top_p"):
        if body.get(field) is not None:
            out[field] = body[field]
    user = (body.get("metadata") or {}).get("user_id")
    if user:
        out["user"] = user
    if body.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    if body.get("tools"):
        out["tools"] = [_openai_tool(tool, f"tools[{i}]") for i, tool in enumerate(body["tools"])]
        _set_openai_tool_choice(out, body.get("tool_choice"))
    output_format = (body.get("output_config") or {}).get("format")
    if isinstance(output_format, dict) and output_format.get("type") == "json_schema":
        schema = {"name": "response", "schema": output_format.get("schema") or {}}
        out["response_format"] = {"type": "json_schema", "json_schema": schema}
    return out


# --- OpenAI -> Anthropic -------------------------------------------------------------------


def _refuse_untranslatable(body: dict[str, Any]) -> None:
    n = body.get("n")
    if isinstance(n, int) and n > 1:
        raise invalid("n > 1 (several choices) cannot be served by an Anthropic model", "n")
    if body.get("logprobs") or body.get("top_logprobs"):
        field = "logprobs" if body.get("logprobs") else "top_logprobs"
        raise invalid(f"{field} cannot be served by an Anthropic model", field)
    if body.get("audio") or "audio" in (body.get("modalities") or ()):
        field = "audio" if body.get("audio") else "modalities"
        raise invalid("audio output cannot be served by an Anthropic model", field)
    for field, what in _REFUSED.items():
        if body.get(field):
            raise invalid(f"{what} cannot be served by an Anthropic model", field)


def _max_tokens(body: dict[str, Any], default: int) -> int:
    for field in ("max_completion_tokens", "max_tokens"):
        if body.get(field) is not None:
            return body[field]
    return default


def _number(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise invalid(f"{field} must be a number", field)
    return float(value)


def _json_instruction(response_format: Any) -> str | None:
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "json_object":
        return JSON_INSTRUCTION
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        return f"{JSON_INSTRUCTION} It must conform to this JSON schema:\n{dump_json(spec.get('schema') or {})}"
    if kind not in (None, "text"):
        raise invalid(f"response_format type {kind!r} cannot be served by an Anthropic model", "response_format")
    return None


def _anthropic_tool(tool: Any, param: str) -> dict[str, Any]:
    if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(tool.get("function"), dict):
        raise invalid(f"{param}: only function tools can be served by an Anthropic model", param)
    function = tool["function"]
    out: dict[str, Any] = {"name": function.get("name"), "input_schema": function.get("parameters") or EMPTY_SCHEMA}
    if function.get("description"):
        out["description"] = function["description"]
    if function.get("strict") is not None:
        out["strict"] = function["strict"]
    return out


def _anthropic_tool_choice(choice: Any, parallel: Any) -> dict[str, Any]:
    if choice is None or choice == "auto":
        out: dict[str, Any] = {"type": "auto"}
    elif choice == "none":
        return {"type": "none"}  # takes no parallelism flag
    elif choice == "required":
        out = {"type": "any"}
    elif isinstance(choice, dict) and choice.get("type") == "function" and (choice.get("function") or {}).get("name"):
        out = {"type": "tool", "name": choice["function"]["name"]}
    else:
        raise invalid("tool_choice must be auto, none, required or a named function for an Anthropic model", "tool_choice")
    if parallel is False:
        out["disable_parallel_tool_use"] = True
    return out


# --- Anthropic -> OpenAI -------------------------------------------------------------------


def _openai_tool(tool: Any, param: str) -> dict[str, Any]:
    if not isinstance(tool, dict) or tool.get("type") not in (None, "custom") or not tool.get("name"):
        kind = tool.get("type") if isinstance(tool, dict) else None
        raise invalid(f"{param}: the server tool {kind!r} cannot be used with an OpenAI-compatible model", param)
    function: dict[str, Any] = {"name": tool["name"], "parameters": tool.get("input_schema") or EMPTY_SCHEMA}
    if tool.get("description"):
        function["description"] = tool["description"]
    if tool.get("strict") is not None:
        function["strict"] = tool["strict"]
    return {"type": "function", "function": function}


def _set_openai_tool_choice(out: dict[str, Any], choice: Any) -> None:
    if not isinstance(choice, dict):
        return
    kind = choice.get("type")
    if kind in ("auto", "none"):
        out["tool_choice"] = kind
    elif kind == "any":
        out["tool_choice"] = "required"
    elif kind == "tool" and choice.get("name"):
        out["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    else:
        raise invalid("tool_choice must be auto, any, none or a named tool", "tool_choice")
    if choice.get("disable_parallel_tool_use") and kind != "none":
        out["parallel_tool_calls"] = False
