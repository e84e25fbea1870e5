"""Everything a running gateway holds, opened once at start-up and passed explicitly."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tokenbrake.admission.auth import KeyCache
from tokenbrake.admission.budget_rules import BudgetCache
from tokenbrake.changes import BUDGETS, KEYS, Refresher, open_channel
from tokenbrake.config import Config
from tokenbrake.foresight.watch import AnomalyWatch
from tokenbrake.gateway.pipeline import Pipeline, build_stages
from tokenbrake.journal import Journal, recover_folder
from tokenbrake.journal.recover import lapsed_row
from tokenbrake.limits import LimitStore, open_limit_store
from tokenbrake.routing.cascade import CascadeCall
from tokenbrake.routing.outcomes import OutcomeRecorder
from tokenbrake.routing.targets import build_targets
from tokenbrake.settlement.alerts import Alerts
from tokenbrake.settlement.metrics import Metrics
from tokenbrake.settlement.pricing import PriceBook
from tokenbrake.storage import Database, LedgerWriter, open_database
from tokenbrake.storage.spend import forget_spent, settled_spend
from tokenbrake.upstream.call import UpstreamCall
from tokenbrake.upstream.dispatch import Dispatcher
from tokenbrake.upstream.providers import Provider, build_providers
from tokenbrake.wire.tokens import encoding

if TYPE_CHECKING:
    from tokenbrake.limits.redis_leases import Lapsed

log = logging.getLogger(__name__)


@dataclass
class AppState:
    config: Config
    prices: PriceBook
    metrics: Metrics
    providers: dict[str, Provider]
    database: Database
    writer: LedgerWriter
    journal: Journal  # calls in flight and rows not yet written, on local disk
    keys: KeyCache | None  # None when keys are not required
    limits: LimitStore  # budgets, rate limits, concurrency: in memory or Redis
    budgets: BudgetCache  # the config's budgets and those set at run time, reloaded
    alerts: Alerts  # budget thresholds, once per period, to the log and a webhook
    refresher: Refresher  # reloads keys and budgets when the change channel says they changed
    pipeline: Pipeline | None = None
    examples: OutcomeRecorder | None = None  # cascade outcomes kept for training the router
    anomalies: AnomalyWatch | None = None  # the anomaly detector's background task (foresight/watch.py)

    @classmethod
    async def open(cls, config: Config) -> AppState:
        """Prices every model (ConfigError for one with none), opens the database, writes what
        dead gateways' journals hold, rebuilds the budgets' spend from the ledger, loads keys,
        starts the ledger writer and opens upstream connection pools."""
        prices = PriceBook(config)
        encoding()  # the tokenizer loaded now, not by the first request
        database = await open_database(config.database)
        recovered = await recover_folder(config.journal_dir, database.ledger, time.time())
        await forget_spent(database.backend, time.time())  # charges whose period (and its grace) ended
        journal = Journal(config.journal_dir).open()
        writer = LedgerWriter(database.ledger, flush_interval_s=config.ledger.flush_interval_s,
                              batch_size=config.ledger.batch_size, on_written=journal.written,
                              write_timeout_s=config.ledger.write_timeout_s)
        await writer.start()
        keys = KeyCache(database) if config.auth.require_keys else None
        if keys is not None:
            await keys.reload()
        limits = await open_limit_store(config.state_url, settled=await settled_spend(database.backend, time.time()))

        def record_lapsed(lapsed: list[Lapsed]) -> None:  # shared state charged a dead gateway's reservations
            for each in lapsed:
                row = lapsed_row(each.request_id, each.nanos, each.note, each.counters, time.time())
                journal.recorded(row.request_id, [row])
                writer.add(row)

        for row in recovered.unseen:  # shared state still holds their reservations: charged now, once
            await limits.settle(row.request_id, row.cost_usd)
        await limits.keep_in_step(lambda: settled_spend(database.backend, time.time()), record_lapsed)
        budgets = BudgetCache(config, database)
        await budgets.reload()
        refresher = Refresher(open_channel(config, database))
        if keys is not None:
            refresher.follow(KEYS, keys.reload, config.auth.refresh_s)
        refresher.follow(BUDGETS, budgets.reload, config.budgeting.refresh_s)
        await refresher.start()
        state = cls(config=config, prices=prices, metrics=Metrics(), providers=build_providers(config),
                    database=database, writer=writer, journal=journal, keys=keys, limits=limits, budgets=budgets,
                    alerts=Alerts(config.alerts, limits), refresher=refresher)
        dispatcher = Dispatcher(state.providers, config.retry_for)
        state.examples = OutcomeRecorder(database)
        # The call: a cascade's tiers in turn for a request routed to one, else the plain call.
        call = CascadeCall(UpstreamCall(dispatcher, config.ledger.store_prompts), prices, build_targets(config),
                           state.examples)
        state.pipeline = Pipeline(build_stages(state), call)
        state.anomalies = AnomalyWatch(config, database, state.alerts)
        await state.anomalies.start()
        return state

    async def cut_upstreams(self) -> None:
        """Shutdown's last resort: every upstream call in flight cut, none started (each
        request records what it got and answers with an error)."""
        for provider in self.providers.values():
            provider.cut()

    async def aclose(self) -> None:
        """After the requests in flight have finished: flush the ledger, close everything."""
        await self.refresher.stop()
        if self.anomalies is not None:
            await self.anomalies.stop()
        await self.alerts.aclose()
        if self.examples is not None:
            await self.examples.close()
        try:
            # Rows not written in time stay in the journal, and the next start writes them.
            await self.writer.close(self.config.ledger.shutdown_write_s)
        finally:
            self.journal.close()
            if not self.journal.settled:
                log.warning("the journal %s keeps %s for the next start to write", self.config.journal_dir,
                            f"{self.writer.pending} ledger rows")
            await self.limits.close()
            await self.database.close()
            for provider in self.providers.values():
                await provider.aclose()
