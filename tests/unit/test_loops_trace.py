"""The trace: bounded whatever the session's length, JSON all the way, and robust to context
that is resent, truncated, summarised or retried."""

from __future__ import annotations

import orjson
import pytest
from loops_sessions import FORMATS, distinct_file, first_stop, replay, tool

from tokenbrake.config import LoopConfig
from tokenbrake.core import Format
from tokenbrake.evaluation.loop_sessions.script import Conversation, render
from tokenbrake.loops import LoopDetector


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_trace_stays_a_few_kb_after_1000_calls(fmt: Format) -> None:
    detector, trace, sizes = LoopDetector(LoopConfig()), None, []
    steps = [tool("read_file", {"path": f"src/m{i}.py"}, distinct_file(i)) for i in range(1000)]
    conversation = Conversation("system", "task", steps, window=40)  # the agent trims its context
    for k in range(1001):
        trace, verdict = detector.observe(trace, fmt, render(fmt, conversation, k, "m"))
        assert not verdict.looping
        sizes.append(len(orjson.dumps(trace)))
    assert trace["calls"] == 1001
    assert max(sizes) < 8_000
    assert sizes[-1] <= max(sizes[100:200]) + 200  # it stopped growing long ago


def test_the_trace_survives_a_json_round_trip_unchanged() -> None:
    detector = LoopDetector(LoopConfig())
    steps = [tool("search", {"q": "x"}, distinct_file(1)), tool("search", {"q": "y"}, "nothing")]
    trace, _ = detector.observe(None, Format.OPENAI, render(Format.OPENAI, Conversation("s", "t", steps), 2, "m"))
    assert orjson.loads(orjson.dumps(trace)) == trace
    again, verdict = detector.observe(orjson.loads(orjson.dumps(trace)), Format.OPENAI,
                                      render(Format.OPENAI, Conversation("s", "t", steps), 2, "m"))
    assert again["calls"] == 2 and not verdict.looping


def test_a_resent_identical_request_counts_nothing_twice() -> None:
    """A client retrying the same request (a timeout, a 5xx) is not the agent repeating itself."""
    detector, trace = LoopDetector(LoopConfig()), None
    steps = [tool("search_code", {"query": "x"}, "No matches found.") for _ in range(3)]
    body = render(Format.OPENAI, Conversation("s", "t", steps), 3, "m")
    for _ in range(10):
        trace, verdict = detector.observe(trace, Format.OPENAI, body)
    assert not verdict.looping and verdict.repetitions == 3


@pytest.mark.parametrize("window", [6, 20])
def test_a_loop_is_caught_when_the_agent_trims_its_context(window: int) -> None:
    progress = [tool("read_file", {"path": f"src/m{i}.py"}, distinct_file(i)) for i in range(30)]
    loop = [tool("search_code", {"query": "def parse"}, "No matches found.") for _ in range(8)]
    assert first_stop(replay(progress + loop, Format.ANTHROPIC, window=window)) == 34
    assert first_stop(replay(progress, Format.ANTHROPIC, window=window)) is None


def test_a_summarised_context_is_read_from_its_newest_step_on() -> None:
    """The agent replaced its history with a summary: what it had read is not read again (it
    would look repeated), and a loop after the summary is still caught."""
    detector, trace = LoopDetector(LoopConfig()), None
    progress = [tool("read_file", {"path": f"src/m{i}.py"}, distinct_file(i)) for i in range(12)]
    for k in range(13):
        trace, verdict = detector.observe(trace, Format.OPENAI, render(Format.OPENAI, Conversation("s", "t", progress), k, "m"))
    summary = {"role": "user", "content": "Summary of the work so far: read twelve modules, the parser is suspect."}
    loop = [tool("search_code", {"query": "def parse"}, "No matches found.") for _ in range(6)]
    stops = []
    for k in range(1, 7):
        body = render(Format.OPENAI, Conversation("s", "t", progress[-2:] + loop), k + 2, "m")
        body["messages"] = body["messages"][:2] + [summary] + body["messages"][2:]
        trace, verdict = detector.observe(trace, Format.OPENAI, body)
        stops.append(verdict.looping)
    assert stops == [False, False, False, True, True, True]


def test_forgiving_a_session_takes_a_whole_new_loop_to_stop_it_again() -> None:
    detector, trace = LoopDetector(LoopConfig()), None
    steps = [tool("search_code", {"query": "x"}, "No matches found.") for _ in range(12)]
    conversation = Conversation("s", "t", steps)
    for k in range(5):
        trace, verdict = detector.observe(trace, Format.OPENAI, render(Format.OPENAI, conversation, k, "m"))
    assert verdict.looping
    trace = detector.forgive(trace)
    looping = []
    for k in range(5, 10):
        trace, verdict = detector.observe(trace, Format.OPENAI, render(Format.OPENAI, conversation, k, "m"))
        looping.append(verdict.looping)
    assert looping == [False, False, True, True, True]


def test_a_body_without_messages_is_no_loop() -> None:
    trace, verdict = LoopDetector(LoopConfig()).observe(None, Format.OPENAI, {"model": "m"})
    assert not verdict.looping and trace["calls"] == 1


def test_a_session_of_many_agents_keeps_three_conversations_of_a_few_kb() -> None:
    detector, trace, largest = LoopDetector(LoopConfig()), None, 0
    agents = [Conversation(f"You are agent {a}.", "task",
                           [tool("read_file", {"path": f"src/a{a}/m{i}.py"}, distinct_file(i * 5 + a)) for i in range(80)])
              for a in range(4)]
    for k in range(81):
        for agent in agents:
            trace, verdict = detector.observe(trace, Format.ANTHROPIC, render(Format.ANTHROPIC, agent, k, "m"))
            assert not verdict.looping
            largest = max(largest, len(orjson.dumps(trace)))
    assert len(trace["threads"]) == 3
    assert largest < 16_000


@pytest.mark.parametrize("fmt", FORMATS)
def test_odd_bodies_are_read_without_error(fmt: Format) -> None:
    detector, trace = LoopDetector(LoopConfig()), None
    odd = [
        {"messages": "not a list"},
        {"messages": [None, 3, "text", {"role": "user"}]},
        {"system": [{"type": "text", "text": "sys", "cache_control": {"type": "ephemeral"}}],
         "messages": [{"role": "assistant", "content": [{"type": "tool_use"}, {"type": "image"}, "x"],
                       "tool_calls": [None, {"function": None}, {"id": 1, "function": {"name": "f", "arguments": None}}]},
                      {"role": "tool", "content": [{"type": "text", "text": "r"}]},
                      {"role": "user", "content": [{"type": "tool_result", "content": [{"type": "image"}], "is_error": True}]}]},
    ]
    for body in odd:
        trace, verdict = detector.observe(trace, fmt, body)
        assert not verdict.looping
        assert orjson.loads(orjson.dumps(trace)) == trace
