"""Prometheus metrics in a registry of the application's own (no process-global state)."""

from __future__ import annotations

from decimal import Decimal

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from tokenbrake.core import RequestContext, Usage

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "tokenbrake_requests", "Requests answered.", ["model", "front_door", "endpoint", "status"], registry=r
        )
        self.errors = Counter("tokenbrake_errors", "Requests that ended in an error.", ["model", "kind"], registry=r)
        self.latency = Histogram(
            "tokenbrake_request_duration_seconds",
            "Time from request to the last byte of the response.",
            ["model", "stream"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tokens = Counter("tokenbrake_tokens", "Tokens consumed upstream.", ["model", "type"], registry=r)
        self.cost = Counter("tokenbrake_cost_usd", "Cost of upstream calls in USD.", ["model"], registry=r)
        self.attempts = Counter(
            "tokenbrake_upstream_attempts", "Upstream calls made, by outcome.", ["upstream", "outcome"], registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


class Children:
    """A metric's labelled children, looked up once per label values: prometheus_client's
    own `labels()` validates and takes a lock on every call, on the hot path."""

    def __init__(self, metric) -> None:
        self.metric = metric
        self.children: dict[tuple[str, ...], object] = {}

    def __call__(self, *values: str):
        child = self.children.get(values)
        if child is None:
            child = self.children[values] = self.metric.labels(*values)
        return child


class RecordMetrics:
    """First in, last out: sees every request, refusals included."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.requests = Children(metrics.requests)
        self.latency = Children(metrics.latency)
        self.errors = Children(metrics.errors)
        self.attempts = Children(metrics.attempts)
        self.tokens = Children(metrics.tokens)
        self.cost = Children(metrics.cost)

    async def before(self, ctx: RequestContext) -> None:
        pass

    async def after(self, ctx: RequestContext) -> None:
        # Only configured names become label values, so clients cannot blow up cardinality.
        model = ctx.served.name if ctx.served else (ctx.requested_model if ctx.targets else "unknown")
        self.requests(model, ctx.format.value, ctx.endpoint.value, str(ctx.status)).inc()
        self.latency(model, "true" if ctx.stream else "false").observe(ctx.elapsed_s)
        if ctx.error is not None:
            self.errors(model, ctx.error.kind.value).inc()
        for attempt in ctx.attempts:
            outcome = str(attempt.status) if attempt.status else "no_answer"
            self.attempts(attempt.target.upstream, outcome).inc()
        if ctx.usage is not None:
            self._spent(model, ctx.usage, ctx.cost)
        for prior in ctx.prior_calls:  # a cascade's earlier calls (rejected answers, graders) cost money too
            self._spent(prior.target.name, prior.usage, prior.cost)  # (their attempts are in ctx.attempts)

    def _spent(self, model: str, usage: Usage, cost: Decimal | None) -> None:
        for kind, count in (
            ("input", usage.input_tokens),
            ("cached_input", usage.cached_input_tokens),
            ("cache_write", usage.cache_write_tokens),
            ("output", usage.output_tokens),
        ):
            if count:
                self.tokens(model, kind).inc(count)
        if cost:
            self.cost(model).inc(float(cost))
