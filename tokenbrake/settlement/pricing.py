"""What a call cost: usage × price, in exact decimal arithmetic.

Each configured model gets its price once, at start-up: the config's own `price` wins; else
a model marked `free` costs nothing; else the maintained `genai-prices` catalog is asked for
the upstream's provider and model name. A model with none of these is refused at start-up,
so no call is ever silently priced at zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from urllib.parse import urlparse

import genai_prices

from tokenbrake.config import Config, ConfigError, GpuPriceConfig, ModelConfig, PriceConfig, UpstreamConfig
from tokenbrake.core import Usage

MILLION = Decimal(1_000_000)
ZERO = Decimal(0)

# Hosts whose provider the catalog knows under these ids.
KNOWN_HOSTS = {"api.openai.com": "openai", "api.anthropic.com": "anthropic"}


@dataclass(frozen=True, slots=True)
class FixedPrice:
    input: Decimal
    output: Decimal
    cached_input: Decimal
    cache_write: Decimal

    @classmethod
    def from_config(cls, price: PriceConfig) -> FixedPrice:
        if price.gpu is not None:
            return cls.from_gpu(price.gpu)
        # Without a GPU, the config requires both per-token prices.
        assert price.input_per_mtok is not None and price.output_per_mtok is not None
        return cls(
            input=price.input_per_mtok,
            output=price.output_per_mtok,
            cached_input=price.input_per_mtok if price.cached_input_per_mtok is None else price.cached_input_per_mtok,
            cache_write=price.input_per_mtok if price.cache_write_per_mtok is None else price.cache_write_per_mtok,
        )

    @classmethod
    def from_gpu(cls, gpu: GpuPriceConfig) -> FixedPrice:
        """A token costs the GPU's time to produce it: cost per second / tokens per second."""
        per_second = gpu.cost_per_hour / 3600
        output = per_second / gpu.output_tokens_per_s * MILLION
        input_rate = gpu.input_tokens_per_s or gpu.output_tokens_per_s * 10
        input_ = per_second / input_rate * MILLION
        return cls(input=input_, output=output, cached_input=input_, cache_write=input_)

    def cost(self, usage: Usage) -> Decimal:
        return (
            usage.input_tokens * self.input
            + usage.cached_input_tokens * self.cached_input
            + usage.cache_write_tokens * self.cache_write
            + usage.output_tokens * self.output
        ) / MILLION


@dataclass(frozen=True, slots=True)
class CatalogPrice:
    model_ref: str
    provider_id: str

    def cost(self, usage: Usage) -> Decimal:
        catalog_usage = genai_prices.Usage(
            # The catalog's input count includes cache reads and writes.
            input_tokens=usage.input_tokens + usage.cached_input_tokens + usage.cache_write_tokens,
            cache_read_tokens=usage.cached_input_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            output_tokens=usage.output_tokens,
        )
        return genai_prices.calc_price(catalog_usage, self.model_ref, provider_id=self.provider_id).total_price


FREE = FixedPrice(ZERO, ZERO, ZERO, ZERO)


class PriceBook:
    def __init__(self, config: Config) -> None:
        self.prices = {name: resolve_price(name, model, config.upstreams[model.upstream]) for name, model in config.models.items()}

    def cost(self, model: str, usage: Usage) -> Decimal:
        return self.prices[model].cost(usage)

    def worst_case(self, model: str, input_tokens: int, output_tokens: int) -> Decimal:
        """The most a call of this size can cost: every input token at the dearer of the
        input and cache-write prices (a cache write can cost more than plain input)."""
        price = self.prices[model]
        return max(price.cost(Usage(input_tokens=input_tokens, output_tokens=output_tokens)),
                   price.cost(Usage(cache_write_tokens=input_tokens, output_tokens=output_tokens)))


def provider_id(upstream: UpstreamConfig) -> str | None:
    return upstream.provider or KNOWN_HOSTS.get(urlparse(upstream.base_url).hostname or "")


def resolve_price(name: str, model: ModelConfig, upstream: UpstreamConfig) -> FixedPrice | CatalogPrice:
    if model.price is not None:
        return FixedPrice.from_config(model.price)
    if model.free:
        return FREE
    provider = provider_id(upstream)
    model_ref = model.model or name
    if provider is not None:
        try:
            genai_prices.calc_price(genai_prices.Usage(input_tokens=1), model_ref, provider_id=provider)
            return CatalogPrice(model_ref, provider)
        except LookupError:
            pass
    where = f"provider {provider!r}" if provider else "an upstream with no known provider (set upstreams.<name>.provider)"
    raise ConfigError(
        f"models.{name}: no price for {model_ref!r} on {where}; "
        "set models.{name}.price or mark it free: true".replace("{name}", name)
    )
