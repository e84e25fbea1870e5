"""The prompt-caching autopilot: breakpoints at the stable prefix of an Anthropic body (tools,
system, the previous and last user messages) once it reaches the model's minimum, never more
than 4, never when the client set its own, the client's body and tool pairs untouched; and
`prompt_cache_key` only for OpenAI-format upstreams that read it."""

from __future__ import annotations

import copy

from tokenbrake.config import UpstreamConfig
from tokenbrake.core import Endpoint, Format, RequestContext
from tokenbrake.upstream.prompt_caching import cache_key, client_marked, for_upstream, with_breakpoints
from tokenbrake.wire.prompt_cache_rules import MAX_BREAKPOINTS, anthropic_minimum

LONG = " ".join(f"rule {i}: answer plainly." for i in range(400))  # about 2,400 tokens
TOOLS = [{"name": "read_file", "description": LONG, "input_schema": {"type": "object"}},
         {"name": "write_file", "input_schema": {"type": "object"}}]


def marks(body: dict) -> list[str]:
    """Where the breakpoints are, as 'tools[i]', 'system[j]', 'messages[i][j]'."""
    found = [f"tools[{i}]" for i, t in enumerate(body.get("tools") or []) if "cache_control" in t]
    system = body.get("system")
    if isinstance(system, list):
        found += [f"system[{j}]" for j, b in enumerate(system) if "cache_control" in b]
    for i, message in enumerate(body["messages"]):
        if isinstance(message["content"], list):
            found += [f"messages[{i}][{j}]" for j, b in enumerate(message["content"]) if "cache_control" in b]
    return found


def agent(turns: int = 3, **extra) -> dict:
    """An agent loop: a question, then tool calls and their results, `turns` of them."""
    messages: list[dict] = [{"role": "user", "content": "Fix the failing test."}]
    for n in range(turns):
        messages.append({"role": "assistant", "content": [
            {"type": "text", "text": f"Reading file {n}."},
            {"type": "tool_use", "id": f"toolu_{n}", "name": "read_file", "input": {"path": f"f{n}.py"}}]})
        messages.append({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": f"toolu_{n}", "content": f"contents of f{n}"}]})
    return {"model": "claude-sonnet-4-5", "max_tokens": 1000, "system": LONG, "tools": TOOLS,
            "messages": messages, **extra}


def test_marks_tools_system_previous_and_last_user_message():
    body = with_breakpoints(agent())
    assert marks(body) == ["tools[1]", "system[0]", "messages[4][0]", "messages[6][0]"]
    assert body["system"][0] == {"type": "text", "text": LONG, "cache_control": {"type": "ephemeral"}}


def test_never_more_than_the_providers_limit():
    for turns in range(0, 6):
        assert len(marks(with_breakpoints(agent(turns)))) <= MAX_BREAKPOINTS


def test_short_prompt_gets_no_breakpoints():
    body = {"model": "claude-sonnet-4-5", "max_tokens": 10, "system": "Be brief.",
            "messages": [{"role": "user", "content": "hi"}]}
    assert with_breakpoints(body) is body


def test_breakpoints_start_where_the_prefix_reaches_the_minimum():
    """Short tools and system, then a long first message: only the messages are marked."""
    body = {"model": "claude-sonnet-4-5", "max_tokens": 10, "system": "Be brief.",
            "tools": [{"name": "t", "input_schema": {"type": "object"}}],
            "messages": [{"role": "user", "content": LONG}, {"role": "assistant", "content": "ok"},
                         {"role": "user", "content": "and then?"}]}
    assert marks(with_breakpoints(body)) == ["messages[0][0]", "messages[2][0]"]


def test_haiku_needs_a_longer_prefix_than_sonnet():
    body = agent()
    body["system"] = " ".join(["word"] * 1200)
    body["tools"] = []
    sonnet = marks(with_breakpoints(body))
    haiku = marks(with_breakpoints({**body, "model": "claude-3-5-haiku-latest"}))
    assert "system[0]" in sonnet and "system[0]" not in haiku
    assert anthropic_minimum("claude-3-5-haiku-latest") == 2048 and anthropic_minimum("claude-sonnet-4-5") == 1024


def test_client_breakpoints_are_kept_as_they_are():
    body = agent()
    body["system"] = [{"type": "text", "text": LONG, "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
    assert client_marked(body)
    assert with_breakpoints(body) is body


def test_breakpoint_in_a_tool_result_counts_as_the_clients():
    body = agent()
    body["messages"][2]["content"][0]["content"] = [{"type": "text", "text": "x", "cache_control": {"type": "ephemeral"}}]
    assert with_breakpoints(body) is body


def test_client_body_and_tool_pairs_are_untouched():
    body = agent()
    before = copy.deepcopy(body)
    marked = with_breakpoints(body)
    assert body == before
    for sent, given in zip(marked["messages"], before["messages"], strict=True):
        strip = [{k: v for k, v in b.items() if k != "cache_control"} for b in sent["content"]] \
            if isinstance(sent["content"], list) else sent["content"]
        assert (sent["role"], strip) == (given["role"], given["content"])


def test_assistant_prefill_is_not_marked():
    body = agent()
    body["messages"].append({"role": "assistant", "content": "The fix is"})
    assert marks(with_breakpoints(body))[-1] == "messages[6][0]"


def test_empty_text_block_is_not_marked():
    body = agent(1)
    body["messages"][-1] = {"role": "user", "content": [{"type": "text", "text": ""}]}
    assert all(not m.startswith("messages[2]") for m in marks(with_breakpoints(body)))


def ctx(team: str | None = "search", session: str | None = "s1", endpoint: Endpoint = Endpoint.CHAT) -> RequestContext:
    c = RequestContext(format=Format.OPENAI, endpoint=endpoint, body={}, headers={})
    c.who.team, c.who.key_name, c.who.session = team, "k1", session
    return c


def upstream(**fields) -> UpstreamConfig:
    return UpstreamConfig(**{"kind": "openai", "base_url": "https://api.openai.com/v1", **fields})


def test_openai_upstream_gets_a_cache_key_per_tenant_and_session():
    body = {"model": "gpt-4o", "messages": []}
    sent = for_upstream(ctx(), upstream(), body)
    assert sent["prompt_cache_key"] == cache_key(ctx()) and "prompt_cache_key" not in body
    assert cache_key(ctx(session="s2")) != sent["prompt_cache_key"]
    assert cache_key(ctx(team="other")) != sent["prompt_cache_key"]
    assert "search" not in sent["prompt_cache_key"]


def test_clients_own_cache_key_is_kept():
    body = {"model": "gpt-4o", "messages": [], "prompt_cache_key": "mine"}
    assert for_upstream(ctx(), upstream(), body)["prompt_cache_key"] == "mine"


def test_local_openai_compatible_server_gets_no_key_unless_configured():
    body = {"model": "llama", "messages": []}
    local = {"base_url": "http://127.0.0.1:8000/v1"}
    assert "prompt_cache_key" not in for_upstream(ctx(), upstream(**local), body)
    assert "prompt_cache_key" in for_upstream(ctx(), upstream(**local, prompt_cache_key=True), body)


def test_off_sends_bodies_as_built():
    assert for_upstream(ctx(), upstream(prompt_caching="off"), {"model": "gpt-4o"}) == {"model": "gpt-4o"}
    anthropic = UpstreamConfig(kind="anthropic", base_url="https://api.anthropic.com", prompt_caching="off")
    body = agent()
    assert for_upstream(ctx(), anthropic, body) is body


def test_embeddings_are_left_alone():
    assert for_upstream(ctx(endpoint=Endpoint.EMBEDDINGS), upstream(), {"input": "x"}) == {"input": "x"}
