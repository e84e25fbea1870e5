"""A fuzz of both front doors' checks: every known field of rich, valid bodies swapped for
values of other types. Each body is either refused by validate.py as INVALID_REQUEST naming a
field, or accepted; an accepted one goes through the gateway's own readers of a body (the
input count, translation to the other format, the router's prompt, the loop detector) without
any error other than a GatewayError, so none of them becomes a 500."""

import copy
from collections.abc import Callable
from typing import Any

import pytest
from malformed_bodies import ANTHROPIC_BODY, OPENAI_BODY, mutations

from tokenbrake.config import LoopConfig
from tokenbrake.core import ErrorKind, Format, GatewayError
from tokenbrake.loops.detector import LoopDetector
from tokenbrake.routing.prompt import prompt_text
from tokenbrake.wire import validate
from tokenbrake.wire.tokens import count_request_input
from tokenbrake.wire.translate.requests import anthropic_to_openai_request, openai_to_anthropic_request


def read_as_the_gateway_does(fmt: Format, body: dict[str, Any]) -> None:
    count_request_input(fmt.value, body)
    prompt_text(body)
    LoopDetector(LoopConfig()).observe(None, fmt, body)
    try:
        if fmt is Format.OPENAI:
            openai_to_anthropic_request(copy.deepcopy(body), "claude-up")
        else:
            anthropic_to_openai_request(copy.deepcopy(body), "local-up")
    except GatewayError as error:
        assert error.kind is ErrorKind.INVALID_REQUEST


@pytest.mark.parametrize(("fmt", "check", "body"), [
    (Format.OPENAI, validate.check_openai_chat, OPENAI_BODY),
    (Format.ANTHROPIC, validate.check_anthropic_messages, ANTHROPIC_BODY),
])
def test_malformed_bodies_are_refused_by_name_or_read_without_a_crash(fmt, check: Callable, body):
    check(body)
    refused = accepted = 0
    for mutated in mutations(body, seed=14, extra=2000):
        try:
            check(mutated)
        except GatewayError as error:
            assert error.kind is ErrorKind.INVALID_REQUEST and error.param, error.message
            assert error.message.startswith(f"'{error.param}': ")
            refused += 1
            continue
        read_as_the_gateway_does(fmt, mutated)
        accepted += 1
    assert refused > 500 and accepted > 20  # both sides of the check were exercised
