"""The fingerprints and sketches the detector compares: what they ignore, what they keep."""

from __future__ import annotations

import json
import random

from tokenbrake.evaluation.shared_data import shared_data
from tokenbrake.loops.normalize import (
    canonical_arguments,
    mask_echoes,
    mask_numbers,
    mask_volatile,
)
from tokenbrake.loops.sketch import coverage, pack, similarity, sketch, unpack

PARAPHRASES = shared_data("semcache", "paraphrase_pairs.json")


def test_timestamps_ids_and_durations_are_masked_but_other_numbers_kept() -> None:
    a = mask_volatile("GET /v2/jobs 500 at 2025-03-01T10:00:00.123Z id=3f2a0001-1b2c-4d5e-8f90-a1b2c3d4e5f6 took 12ms, 3 rows")
    b = mask_volatile("GET /v2/jobs 500 at 2025-03-02T11:30:07Z  id=9e8d0002-1b2c-4d5e-8f90-a1b2c3d4e5f6 took 340 ms, 3 rows")
    assert a == b
    assert mask_volatile("3 rows") != mask_volatile("4 rows")
    assert mask_volatile("trace deadbeef00112233 at 1700000000") == mask_volatile("trace 0123456789abcdef at 1700000123")


def test_arguments_are_the_same_whatever_their_key_order_and_whitespace() -> None:
    assert canonical_arguments('{"b": 1, "a": "x  y"}') == canonical_arguments({"a": " x y ", "b": 1})
    assert canonical_arguments("not json  at all") == "not json at all"
    assert mask_numbers(canonical_arguments({"page": 2})) == mask_numbers(canonical_arguments({"page": 3}))


def test_only_counters_the_call_sent_are_masked_in_its_result() -> None:
    assert mask_echoes("attempt 3 failed after 2 tries", '{"attempt":3}') == "attempt # failed after 2 tries"
    assert mask_echoes("host 7: healthy", '{"host":7}') == "host 7: healthy"


def test_sketches_survive_packing_for_the_trace() -> None:
    values = sketch(mask_volatile("The quick brown fox jumps over the lazy dog near the river bank today"))
    assert unpack(pack(values)) == values


def test_paraphrases_are_close_and_unrelated_texts_are_not() -> None:
    """On GPTCache's 999 real paraphrase pairs, and the same texts paired at random."""
    pairs = json.loads(PARAPHRASES.read_text())
    close = [similarity(sketch(mask_volatile(p["origin"])), sketch(mask_volatile(p["similar"]))) for p in pairs]
    rng = random.Random(5)
    others = [similarity(sketch(mask_volatile(p["origin"])), sketch(mask_volatile(rng.choice(pairs)["similar"])))
              for p in pairs]
    assert sum(score >= 0.4 for score in close) / len(close) > 0.75
    assert sum(score >= 0.4 for score in others) / len(others) < 0.01


def test_a_text_made_of_earlier_texts_words_adds_nothing() -> None:
    earlier = [sketch(mask_volatile(text)) for text in ["Sorry, I cannot locate the config file in the repo.",
                                                          "I apologize, the configuration file is not in the project."]]
    mixed = sketch(mask_volatile("I apologize, I cannot locate the configuration file in the project."))
    fresh = sketch(mask_volatile("The migration ran; restart the worker so it reads the new schema."))
    assert coverage(mixed, earlier) == 1.0
    assert coverage(fresh, earlier) < 0.2


def test_a_counter_is_masked_only_where_it_stands_alone() -> None:
    assert mask_echoes("deploy of 1.4.2 failed (attempt 2), 12 pods", '{"attempt":2}') == "deploy of 1.4.2 failed (attempt #), 12 pods"
