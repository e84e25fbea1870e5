"""Agents that repeat themselves in form but make progress are never flagged."""

from __future__ import annotations

import pytest
from loops_sessions import FORMATS, distinct_file, first_stop, replay, say, tool

from tokenbrake.config import LoopConfig
from tokenbrake.core import Format


@pytest.mark.parametrize("fmt", FORMATS)
def test_reading_150_different_files_is_progress(fmt: Format) -> None:
    steps = [tool("read_file", {"path": f"src/pkg/module_{i}.py"}, distinct_file(i)) for i in range(150)]
    assert first_stop(replay(steps, fmt)) is None


def test_many_different_searches_are_progress() -> None:
    steps = [tool("web_search", {"query": f"kafka consumer lag cause {i}"}, f"Results: {distinct_file(i)}") for i in range(80)]
    assert first_stop(replay(steps, Format.ANTHROPIC)) is None


def test_a_retry_after_an_error_that_then_succeeds_is_progress() -> None:
    steps = []
    for i in range(20):
        url = {"url": f"https://api/records/{i}"}
        steps += [tool("http_get", url, "HTTP 503 Service Unavailable"), tool("http_get", url, "HTTP 503 Service Unavailable"),
                  tool("http_get", url, f'HTTP 200 {{"id": {i}, "owner": "user{i}"}}')]
    assert first_stop(replay(steps, Format.OPENAI)) is None


def test_paginating_with_a_changing_page_number_is_progress() -> None:
    steps = [tool("list_issues", {"repo": "acme/app", "page": page}, distinct_file(page)) for page in range(1, 60)]
    assert first_stop(replay(steps, Format.OPENAI)) is None


def test_a_changing_counter_whose_result_does_not_change_is_a_loop() -> None:
    """The same calls as paginating, but the API ignores the page: nothing new comes back."""
    steps = [tool("list_issues", {"repo": "acme/app", "page": page}, distinct_file(1)) for page in range(1, 60)]
    assert first_stop(replay(steps, Format.OPENAI)) == 4


@pytest.mark.parametrize("fmt", FORMATS)
def test_polling_a_job_whose_status_changes_is_progress(fmt: Format) -> None:
    steps = [tool("describe_job", {"job_id": "job-7"}, f"job-7: running, {i}% done") for i in range(60)]
    assert first_stop(replay(steps, fmt)) is None


def test_polling_with_the_same_answer_is_allowed_up_to_the_polling_allowance() -> None:
    settings = LoopConfig(polling_allowance=10)
    job = [tool("get_job_status", {"job_id": "job-7"}, "job-7: running") for _ in range(9)]
    done = [tool("get_job_status", {"job_id": "job-7"}, "job-7: succeeded"), tool("read_file", {"path": "out.csv"}, distinct_file(3))]
    assert first_stop(replay(job + done, Format.OPENAI, settings)) is None
    stuck = [tool("get_job_status", {"job_id": "job-7"}, "job-7: running") for _ in range(12)]
    verdicts = replay(stuck, Format.OPENAI, settings)
    assert first_stop(verdicts) == 10
    assert "polled 10 times" in verdicts[10].evidence


def test_a_tool_not_named_like_a_poll_gets_no_polling_allowance() -> None:
    steps = [tool("fetch_report", {"id": 7}, "report 7: not ready") for _ in range(8)]
    assert first_stop(replay(steps, Format.OPENAI)) == 4


def test_editing_one_file_many_times_with_different_changes_is_progress() -> None:
    steps = []
    for i in range(30):
        steps += [tool("edit_file", {"path": "src/app.py", "old": f"v{i}", "new": f"v{i + 1}"}, "Edited src/app.py."),
                  tool("read_file", {"path": "src/app.py"}, distinct_file(i)),
                  tool("run_tests", {}, "FAILED tests/test_app.py::test_parse - 1 failed, 40 passed")]
    assert first_stop(replay(steps, Format.ANTHROPIC)) is None


def test_a_chat_about_different_things_is_progress() -> None:
    topics = ["postgres vacuum tuning", "kafka rebalances", "react hydration", "oauth pkce flows", "redis eviction",
              "sqlite wal checkpoints", "stripe webhook retries", "kubernetes evictions", "s3 multipart uploads"]
    steps = [say(f"About {topics[i % 9]}: {distinct_file(i)[:300]}", f"And what about {topics[(i + 1) % 9]}?") for i in range(60)]
    assert first_stop(replay(steps, Format.OPENAI)) is None


def test_a_short_acknowledgement_repeated_is_neither_progress_nor_loop() -> None:
    steps = [say(f"Here is section {i}: {distinct_file(i)[:200]}", "ok") for i in range(40)]
    assert first_stop(replay(steps, Format.ANTHROPIC)) is None


def test_detection_can_be_switched_off() -> None:
    steps = [tool("search_code", {"query": "x"}, "No matches found.") for _ in range(12)]
    verdicts = replay(steps, Format.OPENAI, LoopConfig(enabled=False))
    assert first_stop(verdicts) is None


def test_checking_many_hosts_whose_answers_differ_only_by_the_host_is_progress() -> None:
    steps = [tool("check_health", {"host": n}, f"host {n}: healthy, load 0.2") for n in range(1, 40)]
    assert first_stop(replay(steps, Format.ANTHROPIC)) is None
