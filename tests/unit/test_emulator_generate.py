"""Deterministic reply text with exact token counts, stop sequences and tool arguments."""

from __future__ import annotations

from tokenbrake.tools.emulator.generate import cut_at_stop, truncate, words
from tokenbrake.tools.emulator.tools import arguments
from tokenbrake.wire.tokens import count_text


def test_generated_words_count_exactly_the_requested_tokens():
    assert all(count_text("".join(words(seed, n))) == n for seed in range(5) for n in range(0, 300, 7))


def test_each_generated_piece_is_one_token():
    assert all(count_text(piece) == 1 for piece in words(3, 100))


def test_same_seed_gives_the_same_words():
    assert words.__wrapped__(42, 50) == words.__wrapped__(42, 50)


def test_different_seeds_give_different_words():
    assert words(1, 50) != words(2, 50)


def test_truncate_keeps_the_first_tokens():
    assert count_text(truncate("one two three four five", 3)) == 3


def test_cut_at_stop_picks_the_earliest_match():
    assert cut_at_stop("alpha beta gamma", ["gamma", "beta"]) == ("alpha ", "beta")


def test_cut_at_stop_without_match_keeps_the_text():
    assert cut_at_stop("alpha", ["zeta", ""]) == ("alpha", None)


def test_arguments_fill_required_properties_only():
    schema = {"properties": {"a": {"type": "string"}, "b": {"type": "integer"}}, "required": ["a"]}
    assert list(arguments(schema)) == ["a"]


def test_arguments_fill_every_property_when_none_is_marked_required():
    schema = {"type": "object", "properties": {"a": {"type": "boolean"}, "b": {"type": "number"}}}
    assert arguments(schema) == {"a": True, "b": 2.5}


def test_arguments_use_the_first_enum_value():
    schema = {"properties": {"unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}}
    assert arguments(schema) == {"unit": "celsius"}


def test_arguments_respect_numeric_bounds():
    low, high = {"type": "integer", "minimum": 10}, {"type": "integer", "maximum": 1}
    schema = {"properties": {"low": low, "high": high}}
    assert arguments(schema) == {"low": 10, "high": 1}


def test_arguments_build_nested_arrays_and_objects():
    item = {"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"]}
    schema = {"properties": {"items": {"type": "array", "items": item, "minItems": 2}}}
    assert arguments(schema) == {"items": [{"id": 3}, {"id": 3}]}


def test_arguments_follow_refs_and_skip_null_alternatives():
    schema = {
        "$defs": {"When": {"type": "string", "format": "date"}},
        "properties": {
            "when": {"$ref": "#/$defs/When"},
            "n": {"anyOf": [{"type": "null"}, {"type": "integer"}]},
        },
        "required": ["when", "n"],
    }
    assert arguments(schema) == {"when": "2024-01-15", "n": 3}


def test_arguments_are_an_empty_object_for_a_missing_schema():
    assert arguments(None) == {}
