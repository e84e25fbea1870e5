"""Everything a running gateway holds, built once at start-up and passed explicitly."""

from __future__ import annotations

from dataclasses import dataclass

from tokenbrake.config import Config
from tokenbrake.dispatch import Dispatcher
from tokenbrake.metrics import Metrics
from tokenbrake.pipeline import Pipeline, build_stages
from tokenbrake.pricing import PriceBook
from tokenbrake.providers import Provider, build_providers
from tokenbrake.upstream_call import UpstreamCall


@dataclass
class AppState:
    config: Config
    prices: PriceBook
    metrics: Metrics
    providers: dict[str, Provider]
    pipeline: Pipeline | None = None

    @classmethod
    def build(cls, config: Config) -> AppState:
        """Validates prices (a ConfigError for a model with none) and opens connection pools."""
        prices = PriceBook(config)
        state = cls(config=config, prices=prices, metrics=Metrics(), providers=build_providers(config))
        dispatcher = Dispatcher(state.providers, config.retry_for)
        state.pipeline = Pipeline(build_stages(state), UpstreamCall(dispatcher))
        return state

    async def aclose(self) -> None:
        for provider in self.providers.values():
            await provider.client.aclose()
