from tokenbrake.core import Usage
from tokenbrake.wire.translate.usage import anthropic_usage, openai_usage, usage_from_anthropic, usage_from_openai


def test_openai_cached_tokens_are_taken_out_of_input_tokens():
    usage = usage_from_openai(
        {
            "prompt_tokens": 1000,
            "completion_tokens": 50,
            "total_tokens": 1050,
            "prompt_tokens_details": {"cached_tokens": 800},
            "completion_tokens_details": {"reasoning_tokens": 20},
        }
    )
    assert usage == Usage(input_tokens=200, output_tokens=50, cached_input_tokens=800, reasoning_tokens=20)
    assert usage.total_tokens == 1050


def test_openai_cache_writes_are_taken_out_of_input_tokens():
    usage = usage_from_openai({"prompt_tokens": 100, "completion_tokens": 1, "prompt_tokens_details": {"cached_tokens": 10, "cache_write_tokens": 60}})
    assert (usage.input_tokens, usage.cached_input_tokens, usage.cache_write_tokens) == (30, 10, 60)


def test_anthropic_cache_reads_and_writes_map_to_their_own_fields():
    usage = usage_from_anthropic(
        {"input_tokens": 12, "output_tokens": 7, "cache_read_input_tokens": 500, "cache_creation_input_tokens": 90, "output_tokens_details": {"thinking_tokens": 3}}
    )
    assert usage == Usage(input_tokens=12, output_tokens=7, cached_input_tokens=500, cache_write_tokens=90, reasoning_tokens=3)


def test_missing_or_null_usage_counts_as_zero():
    assert usage_from_openai(None) == Usage()
    assert usage_from_anthropic({"input_tokens": None, "output_tokens": 4}) == Usage(output_tokens=4)


def test_openai_usage_reports_the_whole_prompt_with_cached_tokens_inside_it():
    out = openai_usage(Usage(input_tokens=12, output_tokens=7, cached_input_tokens=500, cache_write_tokens=90))
    assert out["prompt_tokens"] == 602
    assert out["total_tokens"] == 609
    assert out["prompt_tokens_details"] == {"cached_tokens": 500, "cache_write_tokens": 90}


def test_usage_survives_a_round_trip_through_either_format():
    usage = Usage(input_tokens=12, output_tokens=7, cached_input_tokens=500, cache_write_tokens=90, reasoning_tokens=3)
    assert usage_from_openai(openai_usage(usage)) == usage
    assert usage_from_anthropic(anthropic_usage(usage)) == usage
