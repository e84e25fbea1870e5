"""A cascade may call each of its tiers: a budget reserves their sum, not the dearest alone."""

from decimal import Decimal

from tokenbrake.budgets import affordable_output, worst_case
from tokenbrake.config import parse_config
from tokenbrake.pricing import PriceBook

PRICES = PriceBook(parse_config({
    "upstreams": {"u": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
    "models": {"small": {"upstream": "u", "price": {"input_per_mtok": 1, "output_per_mtok": 2}},
               "big": {"upstream": "u", "price": {"input_per_mtok": 10, "output_per_mtok": 40}}},
}))


def test_fallbacks_cost_the_dearest_a_cascade_the_sum():
    # 1000 in, 100 out: small $0.0012, big $0.014
    assert worst_case(PRICES, ["small", "big"], 1000, 100) == Decimal("0.014")
    assert worst_case(PRICES, ["small", "big"], 1000, 100, every=True) == Decimal("0.0152")


def test_a_cascade_affords_fewer_output_tokens_from_the_same_amount():
    amount = Decimal("0.014")
    assert affordable_output(PRICES, ["small", "big"], 1000, amount, 500) == 100
    assert affordable_output(PRICES, ["small", "big"], 1000, amount, 500, every=True) == 71  # (0.014 - 0.011) / $42 per M
