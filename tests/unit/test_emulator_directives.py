"""Parsing per-request emulator directives from the header and the last user message."""

from __future__ import annotations

import pytest

from tokenbrake.tools.emulator.directives import NONE, Directives, from_request, last_user_texts, parse
from tokenbrake.tools.emulator.errors import EmulatorError


def parsed(text: str) -> Directives:
    found = Directives()
    parse(text, found)
    return found


def test_bare_values_are_cast_to_their_types():
    found = parsed("tokens=12 ttft_ms=2.5 status=429 id=abc")
    assert (found.tokens, found.ttft_ms, found.status, found.id) == (12, 2.5, 429, "abc")


def test_quoted_values_keep_spaces_and_unescape():
    assert parsed(r'text="say \"hi\"\nthen go"').text == 'say "hi"\nthen go'


def test_unknown_key_is_rejected_by_name():
    with pytest.raises(EmulatorError, match="'colour'"):
        parsed("colour=red")


def test_non_numeric_value_is_rejected():
    with pytest.raises(EmulatorError, match="tokens"):
        parsed("tokens=many")


def test_negative_value_is_rejected():
    with pytest.raises(EmulatorError, match="negative"):
        parsed("cut=-1")


def test_text_without_key_value_shape_is_rejected():
    with pytest.raises(EmulatorError, match="Malformed"):
        parsed("tokens=3 oops")


def test_requests_without_directives_share_the_empty_value():
    assert from_request(None, ["plain question"]) is NONE


def test_block_in_text_is_found_among_other_words():
    found = from_request(None, ["Please answer. [[emulator: tokens=4 cut=2]] Thanks"])
    assert (found.tokens, found.cut) == (4, 2)


def test_quoted_text_may_contain_closing_brackets():
    assert from_request(None, ['[[emulator: text="a ]] b"]]']).text == "a ]] b"


def test_message_directives_override_the_header():
    found = from_request("tokens=5 status=500", ["[[emulator: tokens=7]]"])
    assert (found.tokens, found.status) == (7, 500)


def test_last_user_texts_reads_text_parts_of_the_last_user_message():
    messages = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "reply"},
        {"role": "user", "content": [{"type": "text", "text": "second"}, {"type": "image_url"}]},
        {"role": "tool", "content": "result"},
    ]
    assert last_user_texts(messages) == ["second"]
