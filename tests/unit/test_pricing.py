from decimal import Decimal

import pytest

from tokenbrake.config import ConfigError, parse_config
from tokenbrake.core import Usage
from tokenbrake.settlement.pricing import PriceBook


def config(models: dict, base_url: str = "https://api.openai.com/v1") -> dict:
    return {"upstreams": {"u": {"kind": "openai", "base_url": base_url}}, "models": models}


def test_configured_price_is_exact_decimal():
    book = PriceBook(parse_config(config({"m": {"upstream": "u", "price": {"input_per_mtok": "0.02", "output_per_mtok": "0.06"}}})))
    assert book.cost("m", Usage(input_tokens=1_000_000, output_tokens=500_000)) == Decimal("0.05")


def test_cached_input_defaults_to_the_input_price_when_unset():
    book = PriceBook(parse_config(config({"m": {"upstream": "u", "price": {"input_per_mtok": 1, "output_per_mtok": 2}}})))
    assert book.cost("m", Usage(cached_input_tokens=1_000_000)) == Decimal(1)


def test_catalog_prices_a_known_provider_model():
    book = PriceBook(parse_config(config({"gpt-4o": {"upstream": "u"}})))
    # gpt-4o lists at $2.50 in / $10 out per million tokens, cached input at half price.
    cost = book.cost("gpt-4o", Usage(input_tokens=1000, cached_input_tokens=1000, output_tokens=100))
    assert cost == Decimal("0.0025") + Decimal("0.00125") + Decimal("0.001")


def test_model_without_any_price_is_refused_at_start():
    cfg = parse_config(config({"mystery": {"upstream": "u", "model": "qwen2.5-3b-instruct"}}, "http://127.0.0.1:8000/v1"))
    with pytest.raises(ConfigError, match=r"models\.mystery: no price"):
        PriceBook(cfg)


def test_model_marked_free_costs_nothing():
    cfg = parse_config(config({"local": {"upstream": "u", "free": True}}, "http://127.0.0.1:8000/v1"))
    assert PriceBook(cfg).cost("local", Usage(input_tokens=10**6, output_tokens=10**6)) == 0


def test_gpu_priced_model_costs_its_gpu_time():
    gpu = {"cost_per_hour": 3.6, "output_tokens_per_s": 1000, "input_tokens_per_s": 10000}
    book = PriceBook(parse_config(config({"local": {"upstream": "u", "price": {"gpu": gpu}}}, "http://127.0.0.1:8000/v1")))
    # $3.6/h is $0.001/s: 1000 output tokens take 1 s, 10000 input tokens take 1 s.
    assert book.cost("local", Usage(input_tokens=10_000, output_tokens=1000)) == Decimal("0.002")


def test_price_needs_either_per_token_rates_or_a_gpu():
    with pytest.raises(ConfigError, match="either input_per_mtok and output_per_mtok, or gpu"):
        parse_config(config({"m": {"upstream": "u", "price": {"input_per_mtok": 1}}}))
