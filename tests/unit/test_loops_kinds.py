"""Each kind of loop is stopped within the configured repetitions, in both formats."""

from __future__ import annotations

import pytest
from loops_sessions import FORMATS, distinct_file, first_stop, replay, say, tool

from tokenbrake.config import LoopConfig
from tokenbrake.core import Format

PREAMBLE = [tool("read_file", {"path": f"src/mod_{i}.py"}, distinct_file(i)) for i in range(6)]


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_same_call_with_the_same_result_is_stopped_at_the_configured_repetition(fmt: Format) -> None:
    loop = [tool("search_code", {"query": "def parse_header"}, "No matches found.") for _ in range(10)]
    verdicts = replay(PREAMBLE + loop, fmt)
    stop = first_stop(verdicts)
    # Call 7 carries the first search, call 10 its fourth occurrence.
    assert stop == len(PREAMBLE) + 4
    assert verdicts[stop].kind == "repeated_tool_call"
    assert verdicts[stop].repetitions == 4
    # the evidence names the tool and its arguments' names, not what was searched for
    assert verdicts[stop].evidence.startswith("search_code(query=…) called 4 times in a row")
    assert "parse_header" not in verdicts[stop].evidence


def test_the_evidence_quotes_arguments_and_texts_only_when_the_config_allows() -> None:
    loop = [tool("search_code", {"query": "def parse_header"}, "No matches found.") for _ in range(10)]
    verdicts = replay(PREAMBLE + loop, Format.OPENAI, LoopConfig(evidence_text=True))
    assert 'search_code({"query":"def parse_header"})' in verdicts[first_stop(verdicts)].evidence


def test_the_number_of_repetitions_is_configurable() -> None:
    loop = [tool("search_code", {"query": "def parse_header"}, "No matches found.") for _ in range(10)]
    verdicts = replay(PREAMBLE + loop, Format.OPENAI, LoopConfig(repetitions=6))
    assert first_stop(verdicts) == len(PREAMBLE) + 6
    assert verdicts[len(PREAMBLE) + 5].repetitions == 5 and not verdicts[len(PREAMBLE) + 5].looping


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("vary", ["timestamp", "uuid", "whitespace_and_key_order", "counter"])
def test_trivially_varying_arguments_are_the_same_call(fmt: Format, vary: str) -> None:
    def args(i: int) -> dict:
        if vary == "timestamp":
            return {"service": "billing", "since": f"2025-03-0{1 + i % 9}T10:{i:02d}:00Z"}
        if vary == "uuid":
            return {"service": "billing", "request_id": f"3f2a{i:04x}-1b2c-4d5e-8f90-a1b2c3d4e5f6"}
        if vary == "whitespace_and_key_order":
            return {"service": "billing" + " " * (i % 3), "limit": 5} if i % 2 else {"limit": 5, "service": " billing"}
        return {"service": "billing", "attempt": i + 1}

    loop = [tool("get_metrics", args(i), f"No datapoints (query at 2025-03-01T10:{i:02d}:13.120Z, took {i + 3}ms)")
            for i in range(10)]
    verdicts = replay(PREAMBLE + loop, fmt)
    assert first_stop(verdicts) == len(PREAMBLE) + 4
    assert verdicts[len(PREAMBLE) + 4].kind == "repeated_tool_call"


@pytest.mark.parametrize("period", [2, 3, 4])
def test_a_cycle_of_a_few_steps_is_stopped(period: int) -> None:
    states = [tool("read_file", {"path": "src/app.py"}, distinct_file(90)),
              tool("run_tests", {}, "1 failed, 41 passed"),
              tool("open_url", {"url": "https://wiki/setup"}, distinct_file(91)),
              tool("go_back", {}, "Returned.")][:period]
    loop = [tool(s.calls[0][0], s.calls[0][1], s.results[0]) for _ in range(6) for s in states]
    verdicts = replay(PREAMBLE + loop, Format.ANTHROPIC)
    stop = first_stop(verdicts)
    assert stop == len(PREAMBLE) + period * 4  # the fourth time round
    assert verdicts[stop].kind == "cycle"
    assert f"a cycle of {period} steps repeated 4 times" in verdicts[stop].evidence


PARAPHRASES = [
    "I apologize, but I cannot locate the configuration file you mentioned in the repository. Could you confirm the path?",
    "Sorry, I still can't find the config file you referred to in the repo. Can you double-check the file path?",
    "My apologies, however I am unable to locate the settings file you mentioned in the project. Would you verify the location?",
    "I apologize, but I still cannot find the configuration file you referred to in the repository. Could you confirm the path?",
    "Sorry, I can't locate the config file you mentioned in the repo. Could you verify the file path?",
    "My apologies, I am unable to find the settings file you mentioned in the repository. Can you confirm the location?",
]


@pytest.mark.parametrize("fmt", FORMATS)
def test_paraphrased_answers_are_repeated_output(fmt: Format) -> None:
    nudges = ["Please continue.", "Still wrong.", "Please continue.", "Try again.", "Please continue.", "Hmm."]
    verdicts = replay(PREAMBLE + [say(text, nudge) for text, nudge in zip(PARAPHRASES, nudges)], fmt)
    # The first three share almost no word (0.1 to 0.2): lexically, they are three answers.
    # The next three add no word to them: three repetitions, and the fourth occurrence.
    stop = first_stop(verdicts)
    assert stop == len(PREAMBLE) + 6
    assert verdicts[stop].kind == "repeated_output"


def test_the_same_long_result_for_different_calls_is_stale_context() -> None:
    page = distinct_file(77)
    loop = [tool("search_docs", {"query": q}, f"Top result (retrieved 2025-03-01T10:0{i}:00Z):\n{page}")
            for i, q in enumerate(["vacuum tuning", "autovacuum thresholds", "dead tuples bloat", "fillfactor",
                                   "xid wraparound", "visibility map"])]
    verdicts = replay(PREAMBLE + loop, Format.OPENAI)
    stop = first_stop(verdicts)
    assert stop == len(PREAMBLE) + 4
    assert verdicts[stop].kind == "stale_context"


def test_two_sides_echoing_each_other_is_ping_pong() -> None:
    steps = [say(text, f"Agreed, you said: {text}") for text in PARAPHRASES]
    verdicts = replay(PREAMBLE + steps, Format.ANTHROPIC)
    stop = first_stop(verdicts)
    assert stop is not None and stop <= len(PREAMBLE) + 6
    assert verdicts[stop].kind == "ping_pong"
    assert "went back and forth" in verdicts[stop].evidence


def test_two_agents_of_one_session_bouncing_the_same_drafts_are_stopped() -> None:
    import random

    from tokenbrake.evaluation.loop_sessions.duo import writer_and_reviewer
    from tokenbrake.evaluation.loop_sessions.world import World
    from tokenbrake.loops import LoopDetector

    session = writer_and_reviewer(World(random.Random(7)), "duo", Format.OPENAI, rounds=20, stuck_from=4)
    detector, trace = LoopDetector(LoopConfig()), None
    stops = []
    for index, body in enumerate(session.requests()):
        trace, verdict = detector.observe(trace, session.format, body)
        if verdict.looping:
            stops.append((index, verdict.kind))
    assert stops and session.loop_start <= stops[0][0] <= session.loop_start + 10
    assert stops[0][1] == "ping_pong"
    assert len(trace["threads"]) == 2  # the writer's and the reviewer's conversations


def test_a_retry_counter_echoed_in_the_result_is_still_the_same_answer() -> None:
    loop = [tool("deploy", {"service": "billing", "attempt": i}, f"Deploy billing (attempt {i}) failed: ImagePullBackOff")
            for i in range(1, 9)]
    verdicts = replay(PREAMBLE + loop, Format.OPENAI)
    assert first_stop(verdicts) == len(PREAMBLE) + 4
    assert verdicts[len(PREAMBLE) + 4].kind == "repeated_tool_call"
