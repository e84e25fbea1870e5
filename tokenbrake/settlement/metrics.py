"""Prometheus metrics: counted in plain dicts on the request path, turned into Prometheus
families only when /metrics is scraped, in a registry of the application's own (no
process-global state).

prometheus_client's metric objects take a lock and walk several layers on every update; at
six or seven updates a request that was about 9 µs of the event loop per request, more
than the ledger row. Every update happens on the event loop's thread, and so does the
scrape, so plain dicts need no lock.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping
from decimal import Decimal

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from tokenbrake.core import RequestContext, Usage

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_BUCKET_BOUNDS = [floatToGoString(bound) for bound in LATENCY_BUCKETS] + ["+Inf"]


class Latencies:
    """One histogram's observations per label values: a count per bucket (not cumulative:
    an observation adds to one bucket) and the sum."""

    def __init__(self) -> None:
        self.buckets: dict[tuple[str, ...], list[int]] = {}
        self.sums: defaultdict[tuple[str, ...], float] = defaultdict(float)

    def observe(self, labels: tuple[str, ...], seconds: float) -> None:
        counts = self.buckets.get(labels)
        if counts is None:
            counts = self.buckets[labels] = [0] * len(_BUCKET_BOUNDS)
        counts[bisect_left(LATENCY_BUCKETS, seconds)] += 1  # `le`: the first bound not below it
        self.sums[labels] += seconds

    def family(self, name: str, documentation: str, label_names: list[str]) -> HistogramMetricFamily:
        family = HistogramMetricFamily(name, documentation, labels=label_names)
        for labels, counts in self.buckets.items():
            cumulative, buckets = 0, []
            for bound, count in zip(_BUCKET_BOUNDS, counts):
                cumulative += count
                buckets.append((bound, cumulative))
            family.add_metric(list(labels), buckets, self.sums[labels])
        return family


class Metrics:
    def __init__(self) -> None:
        self.requests: Counter[tuple[str, ...]] = Counter()  # model, front door, endpoint, status
        self.errors: Counter[tuple[str, ...]] = Counter()  # model, kind
        self.latency = Latencies()  # model, stream
        self.tokens: Counter[tuple[str, ...]] = Counter()  # model, type
        self.cost: defaultdict[tuple[str, ...], float] = defaultdict(float)  # model
        self.attempts: Counter[tuple[str, ...]] = Counter()  # upstream, outcome
        self.saved: defaultdict[tuple[str, ...], float] = defaultdict(float)  # model asked for, by (routing)
        self.loops: Counter[tuple[str, ...]] = Counter()  # kind
        self.sessions_stopped: Counter[tuple[str, ...]] = Counter()  # reason
        self.registry = CollectorRegistry()
        self.registry.register(self)

    def spent(self, model: str, usage: Usage, cost: Decimal | None) -> None:
        tokens = self.tokens
        if usage.input_tokens:
            tokens[(model, "input")] += usage.input_tokens
        if usage.cached_input_tokens:
            tokens[(model, "cached_input")] += usage.cached_input_tokens
        if usage.cache_write_tokens:
            tokens[(model, "cache_write")] += usage.cache_write_tokens
        if usage.output_tokens:
            tokens[(model, "output")] += usage.output_tokens
        if cost:
            self.cost[(model,)] += float(cost)

    def collect(self) -> Iterator[Metric]:
        """The registry's view, at scrape time."""
        yield _counter("tokenbrake_requests", "Requests answered.", ["model", "front_door", "endpoint", "status"],
                       self.requests)
        yield _counter("tokenbrake_errors", "Requests that ended in an error.", ["model", "kind"], self.errors)
        yield self.latency.family("tokenbrake_request_duration_seconds",
                                  "Time from request to the last byte of the response.", ["model", "stream"])
        yield _counter("tokenbrake_tokens", "Tokens consumed upstream.", ["model", "type"], self.tokens)
        yield _counter("tokenbrake_cost_usd", "Cost of upstream calls in USD.", ["model"], self.cost)
        yield _counter("tokenbrake_upstream_attempts", "Upstream calls made, by outcome.", ["upstream", "outcome"],
                       self.attempts)
        # A gauge: a cascade that escalates costs more than the model asked for, a negative saving.
        yield _counter("tokenbrake_saved_usd", "USD saved against the model asked for, net, by what saved it.",
                       ["model", "by"], self.saved, GaugeMetricFamily)
        yield _counter("tokenbrake_loops_suspected", "Calls the loop detector found repeating, by loop kind.",
                       ["kind"], self.loops)
        yield _counter("tokenbrake_sessions_stopped", "Agent sessions stopped by the gateway, by reason.", ["reason"],
                       self.sessions_stopped)

    def render(self, extra: list[Metric] | None = None) -> bytes:
        """The registry's families, then `extra` (those gathered at scrape time: budgets)."""
        return generate_latest(self.registry) + (generate_latest(_Families(extra)) if extra else b"")


class _Families:
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


def budget_families(rows: list[dict]) -> list[Metric]:
    """Gauges of each budget counter in force (budgets.report's rows): spent, reserved, limit."""
    labels = ["scope", "period", "mode", "source", "counter"]
    spent = GaugeMetricFamily("tokenbrake_budget_spent_usd", "Settled spend this period, per budget counter.",
                              labels=labels)
    reserved = GaugeMetricFamily("tokenbrake_budget_reserved_usd", "Held by requests in flight, per budget counter.",
                                 labels=labels)
    limit = GaugeMetricFamily("tokenbrake_budget_limit_usd", "The budget's amount per period.", labels=labels)
    for row in rows:
        for counter in row["counters"]:
            values = [row["scope"], row["period"], row["mode"], row["source"], counter["counter"]]
            spent.add_metric(values, float(counter["spent_usd"]))
            reserved.add_metric(values, float(counter["reserved_usd"]))
            limit.add_metric(values, float(row["amount_usd"]))
    return [spent, reserved, limit]


def _counter(name: str, documentation: str, label_names: list[str], counts: Mapping[tuple[str, ...], float],
             kind: type[CounterMetricFamily | GaugeMetricFamily] = CounterMetricFamily) -> Metric:
    family = kind(name, documentation, labels=label_names)
    for labels, value in counts.items():
        family.add_metric(list(labels), value)
    return family


class RecordMetrics:
    """First in, last out: sees every request, refusals included."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    async def after(self, ctx: RequestContext) -> None:
        # Only configured names become label values, so clients cannot blow up cardinality.
        metrics = self.metrics
        model = ctx.served.name if ctx.served else (ctx.requested_model if ctx.targets else "unknown")
        metrics.requests[(model, ctx.format.value, ctx.endpoint_name, str(ctx.status))] += 1
        metrics.latency.observe((model, "true" if ctx.stream else "false"), ctx.elapsed_s)
        if ctx.error is not None:
            metrics.errors[(model, ctx.error.kind.value)] += 1
        for attempt in ctx.attempts:
            metrics.attempts[(attempt.target.upstream, str(attempt.status) if attempt.status else "no_answer")] += 1
        if ctx.usage is not None:
            metrics.spent(model, ctx.usage, ctx.cost)
        for prior in ctx.prior_calls:  # a cascade's earlier calls (rejected answers, graders) cost money too
            metrics.spent(prior.target.name, prior.usage, prior.cost)  # (their attempts are in ctx.attempts)
        if ctx.saved:
            metrics.saved[(ctx.requested_model if ctx.targets or ctx.route else "unknown", "routing")] += float(ctx.saved)
        if ctx.loop_suspected is not None:
            metrics.loops[(ctx.loop_suspected,)] += 1
            if ctx.error is not None and ctx.error.code == "session_stopped":  # this call's loop stopped it
                metrics.sessions_stopped[("loop",)] += 1
