"""Everything a running gateway holds, opened once at start-up and passed explicitly."""

from __future__ import annotations

from dataclasses import dataclass

from tokenbrake.alerts import Alerts
from tokenbrake.auth import KeyCache
from tokenbrake.budgets import BudgetCache
from tokenbrake.changes import BUDGETS, KEYS, Refresher, open_channel
from tokenbrake.config import Config
from tokenbrake.dispatch import Dispatcher
from tokenbrake.limits import LimitStore, open_state
from tokenbrake.metrics import Metrics
from tokenbrake.pipeline import Pipeline, build_stages
from tokenbrake.pricing import PriceBook
from tokenbrake.providers import Provider, build_providers
from tokenbrake.routing.cascade import CascadeCall
from tokenbrake.routing.outcomes import ExampleRecorder
from tokenbrake.stages.resolve_model import build_targets
from tokenbrake.storage import Database, LedgerWriter, open_database
from tokenbrake.upstream_call import UpstreamCall


@dataclass
class AppState:
    config: Config
    prices: PriceBook
    metrics: Metrics
    providers: dict[str, Provider]
    database: Database
    writer: LedgerWriter
    keys: KeyCache | None  # None when keys are not required
    limits: LimitStore  # budgets, rate limits, concurrency: in memory or Redis
    budgets: BudgetCache  # the config's budgets and those set at run time, reloaded
    alerts: Alerts  # budget thresholds, once per period, to the log and a webhook
    refresher: Refresher  # reloads keys and budgets when the change channel says they changed
    pipeline: Pipeline | None = None
    examples: ExampleRecorder | None = None  # cascade outcomes kept for training the router

    @classmethod
    async def open(cls, config: Config) -> AppState:
        """Prices every model (ConfigError for one with none), opens the database, loads
        keys, starts the ledger writer and opens upstream connection pools."""
        prices = PriceBook(config)
        database = await open_database(config.database)
        writer = LedgerWriter(database.ledger, flush_interval_s=config.ledger.flush_interval_s,
                              batch_size=config.ledger.batch_size)
        await writer.start()
        keys = KeyCache(database) if config.auth.require_keys else None
        if keys is not None:
            await keys.reload()
        limits = await open_state(config.state_url)
        budgets = BudgetCache(config, database)
        await budgets.reload()
        refresher = Refresher(open_channel(config, database))
        if keys is not None:
            refresher.follow(KEYS, keys.reload, config.auth.refresh_s)
        refresher.follow(BUDGETS, budgets.reload, config.budgeting.refresh_s)
        await refresher.start()
        state = cls(config=config, prices=prices, metrics=Metrics(), providers=build_providers(config),
                    database=database, writer=writer, keys=keys, limits=limits, budgets=budgets,
                    alerts=Alerts(config.alerts, limits), refresher=refresher)
        dispatcher = Dispatcher(state.providers, config.retry_for)
        state.examples = ExampleRecorder(database)
        # The call: a cascade's tiers in turn for a request routed to one, else the plain call.
        call = CascadeCall(UpstreamCall(dispatcher, config.ledger.store_prompts), prices, build_targets(config),
                           state.examples)
        state.pipeline = Pipeline(build_stages(state), call)
        return state

    async def aclose(self) -> None:
        """After the requests in flight have finished: flush the ledger, close everything."""
        await self.refresher.stop()
        await self.alerts.aclose()
        if self.examples is not None:
            await self.examples.close()
        try:
            await self.writer.close()  # raises (and logs CRITICAL) if the last rows cannot be written
        finally:
            await self.limits.close()
            await self.database.close()
            for provider in self.providers.values():
                await provider.aclose()
