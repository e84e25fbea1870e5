"""A cascade's acceptance checks on a cheaper tier's answer.

A check sees the answer's text and the upstream's own answer (for its logprobs) and says
whether the answer will do. Checks that need no model (JSON schema, regex, logprobs) are
plain functions of the answer; the grader is a call to another configured model, made by
cascade.py, whose verdict `grader_verdict` reads.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

import jsonschema
import orjson

from tokenbrake.config import CheckConfig
from tokenbrake.wire.tokens import count_openai_messages

_FENCE = re.compile(r"^\s*```[A-Za-z]*\s*\n(.*?)\n\s*```\s*$", re.S)
_VERDICT = re.compile(r"[a-z]+")

GRADER_INSTRUCTIONS = (
    "You check another assistant's answer. Reply with one word: yes if the answer fully and "
    "correctly answers the request, no otherwise."
)
GRADER_MAX_TOKENS = 5  # its verdict is one word


@dataclass(frozen=True, slots=True)
class CheckResult:
    passed: bool
    reason: str  # which check, and why it failed


def json_schema_check(schema: dict[str, Any], text: str) -> CheckResult:
    """The answer (a ```json fence around it allowed) parses as JSON valid against `schema`."""
    fenced = _FENCE.match(text)
    try:
        value = orjson.loads(fenced.group(1) if fenced else text)
    except orjson.JSONDecodeError:
        return CheckResult(False, "json_schema: the answer is not JSON")
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(value))
    if error is not None:
        return CheckResult(False, f"json_schema: {error.message}")
    return CheckResult(True, "json_schema")


def regex_check(pattern: str, text: str) -> CheckResult:
    if re.search(pattern, text):
        return CheckResult(True, "regex")
    return CheckResult(False, f"regex: no match for {pattern!r}")


def mean_logprob(upstream_answer: dict[str, Any]) -> float | None:
    """The mean token log-probability of an OpenAI-style answer's first choice, or None when
    the upstream sent none (Anthropic upstreams never do)."""
    choices = upstream_answer.get("choices") or []
    logprobs = (choices[0].get("logprobs") or {}) if choices and isinstance(choices[0], dict) else {}
    values = [token["logprob"] for token in logprobs.get("content") or []
              if isinstance(token, dict) and isinstance(token.get("logprob"), (int, float))]
    return math.fsum(values) / len(values) if values else None


def logprob_check(minimum: float, upstream_answer: dict[str, Any]) -> CheckResult:
    mean = mean_logprob(upstream_answer)
    if mean is None:
        return CheckResult(False, "min_mean_logprob: the upstream returned no logprobs")
    if mean < minimum:
        return CheckResult(False, f"min_mean_logprob: mean {mean:.3f} < {minimum}")
    return CheckResult(True, f"min_mean_logprob: mean {mean:.3f}")


def local_check(check: CheckConfig, text: str, upstream_answer: dict[str, Any]) -> CheckResult:
    """A check that needs no model call (not the grader)."""
    if check.json_schema is not None:
        return json_schema_check(check.json_schema, text)
    if check.regex is not None:
        return regex_check(check.regex, text)
    assert check.min_mean_logprob is not None
    return logprob_check(check.min_mean_logprob, upstream_answer)


def grader_request(prompt: str, answer: str) -> list[dict[str, str]]:
    """The messages a grader model is asked (OpenAI shape; translated for an Anthropic one)."""
    return [
        {"role": "system", "content": GRADER_INSTRUCTIONS},
        {"role": "user", "content": f"Request:\n{prompt}\n\nAnswer:\n{answer}\n\nWill this answer do? yes or no."},
    ]


def grader_tokens(input_tokens: int, answer_tokens: int) -> tuple[int, int]:
    """The most a grader is sent and answers, in tokens, for a request whose counted input is
    `input_tokens` and an answer of up to `answer_tokens`: the user turns it is sent are part of
    that input, and the instructions around them and the answer are added."""
    return input_tokens + answer_tokens + _grader_framing_tokens(), GRADER_MAX_TOKENS


@cache
def _grader_framing_tokens() -> int:
    return count_openai_messages(grader_request("", ""))


def grader_verdict(grader: str, reply_text: str) -> CheckResult:
    """Accepts when the grader's first word is yes."""
    first = _VERDICT.search(reply_text.lower())
    if first is not None and first.group(0) == "yes":
        return CheckResult(True, f"grader {grader}: yes")
    return CheckResult(False, f"grader {grader}: {reply_text.strip()[:40]!r}")
