"""The hand-made features read what they claim to read from crafted prompts."""

import math

from tokenbrake.router.features import FEATURE_NAMES, extract


def test_every_feature_is_named_and_finite_even_for_an_empty_prompt():
    for text in ("", "hi", "€" * 50, "\n\n\n"):
        values = extract(text)
        assert tuple(values) == FEATURE_NAMES
        assert all(math.isfinite(v) for v in values.values())


def test_longer_prompts_have_larger_length_features():
    short, long = extract("Say hi."), extract("Say hi. " * 40)
    assert long["log_chars"] > short["log_chars"]
    assert long["log_words"] > short["log_words"]
    assert long["log_sentences"] > short["log_sentences"]


def test_code_is_recognized_by_fences_and_tokens():
    code = extract("Fix this:\n```python\ndef add(a, b):\n    return a - b\n```")
    prose = extract("Tell me about the history of Rome.")
    assert code["code_fence"] == 1.0 and prose["code_fence"] == 0.0
    assert code["code_tokens"] > prose["code_tokens"] == 0.0


def test_math_is_recognized_by_numbers_operators_latex_and_fractions():
    math_prompt = extract(r"Compute $\frac{3}{4} + 2.5 * 7 = x$ and then half of 1200, a 15% share.")
    prose = extract("Write a poem about the sea.")
    for name in ("log_numbers", "operators", "latex", "fractions", "percent_money", "decimal_numbers"):
        assert math_prompt[name] > prose[name], name
    assert prose["log_numbers"] == 0.0


def test_multi_step_instructions_are_counted():
    steps = extract("1. Read the table.\n2. Then sort it by date.\n3. Finally, summarize each row.")
    single = extract("Summarize the table.")
    assert steps["list_items"] > single["list_items"]
    assert steps["sequence_words"] > single["sequence_words"]


def test_question_words_constraints_and_open_ended_requests():
    asked = extract("Why does ice float, and what would happen if it did not?")
    constrained = extract("Answer in exactly 3 sentences, only in JSON, and do not use the letter e.")
    creative = extract("Write a short story and a poem for my blog.")
    assert asked["question_words"] > creative["question_words"]
    assert asked["question_marks"] > 0
    assert constrained["constraint_words"] > creative["constraint_words"]
    assert creative["open_ended_words"] > constrained["open_ended_words"]


def test_other_scripts_and_earlier_turns_show():
    assert extract("日本の首都はどこですか")["non_ascii_share"] > 0.9
    assert extract("Hello there")["non_ascii_share"] == 0.0
    assert extract("First turn.\n\nSecond turn.\n\nThird.")["turns"] > extract("One turn.")["turns"]


def test_huge_or_pathological_prompts_are_read_in_bounded_time():
    import time

    for text in ("x" * 200_000, "f(" * 100_000, "1+" * 100_000):
        start = time.perf_counter()
        values = extract(text)
        assert time.perf_counter() - start < 0.25  # was seconds with a backtracking pattern
        assert values["log_chars"] == math.log1p(len(text))  # the length still counts in full
