"""What /metrics reports after requests: counts, the latency histogram, tokens and cost by
model, upstream attempts by outcome, parsed back from the Prometheus text."""

from decimal import Decimal

from prometheus_client.parser import text_string_to_metric_families

from tokenbrake.core import Attempt, Endpoint, ErrorKind, Format, GatewayError, PriorCall, RequestContext, Target, Usage
from tokenbrake.settlement.metrics import LATENCY_BUCKETS, Metrics, RecordMetrics

SMALL = Target(name="small", upstream="local", kind=Format.OPENAI, upstream_model="qwen")
BIG = Target(name="big", upstream="cloud", kind=Format.ANTHROPIC, upstream_model="claude")


def served(target: Target, usage: Usage, cost: str, elapsed_s: float, stream: bool = False) -> RequestContext:
    ctx = RequestContext(format=Format.OPENAI, endpoint=Endpoint.CHAT, body={}, headers={}, stream=stream)
    ctx.targets, ctx.served, ctx.usage, ctx.cost = [target], target, usage, Decimal(cost)
    ctx.attempts = [Attempt(target, status=200)]
    ctx.started -= elapsed_s
    return ctx


def samples(metrics: Metrics) -> dict[tuple, float]:
    """Every sample as (name, sorted labels) -> value."""
    text = metrics.render().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def counter(got: dict[tuple, float], name: str, **labels: str) -> float | None:
    """A counter's sample for these labels (None when it has none)."""
    return got.get((f"tokenbrake_{name}_total", tuple(sorted(labels.items()))))


async def record(metrics: Metrics, *contexts: RequestContext) -> None:
    stage = RecordMetrics(metrics)
    for ctx in contexts:
        await stage.after(ctx)


async def test_requests_tokens_and_cost_are_counted_by_model():
    metrics = Metrics()
    await record(metrics,
                 served(SMALL, Usage(input_tokens=10, output_tokens=5), "0.001", 0.02),
                 served(SMALL, Usage(input_tokens=7, output_tokens=3, cached_input_tokens=4), "0.002", 0.03),
                 served(BIG, Usage(input_tokens=100, output_tokens=50), "0.5", 0.2, stream=True))
    got = samples(metrics)
    ok = (("endpoint", "chat"), ("front_door", "openai"), ("model", "small"), ("status", "200"))
    assert got[("tokenbrake_requests_total", ok)] == 2
    assert counter(got, "tokens", model="small", type="input") == 17
    assert counter(got, "tokens", model="small", type="output") == 8
    assert counter(got, "tokens", model="small", type="cached_input") == 4
    assert counter(got, "tokens", model="small", type="cache_write") is None  # none counted
    assert abs(counter(got, "cost_usd", model="small") - 0.003) < 1e-12
    assert counter(got, "cost_usd", model="big") == 0.5
    assert counter(got, "upstream_attempts", outcome="200", upstream="local") == 2
    streamed = (("model", "big"), ("stream", "true"))
    assert got[("tokenbrake_request_duration_seconds_count", streamed)] == 1
    assert 0.2 <= got[("tokenbrake_request_duration_seconds_sum", streamed)] < 0.25


def test_latency_histogram_is_cumulative_with_inclusive_bounds():
    metrics = Metrics()
    for seconds in (0.001, 0.01, 0.3, 1000):  # 0.01 lies on a bound: Prometheus' `le` counts it there
        metrics.latency.observe(("small", "false"), seconds)
    got = samples(metrics)
    labels = (("model", "small"), ("stream", "false"))

    def bucket(le: str) -> float:
        return got[("tokenbrake_request_duration_seconds_bucket", tuple(sorted((*labels, ("le", le)))))]

    assert bucket("0.005") == 1
    assert bucket("0.01") == 2
    assert bucket("0.25") == 2
    assert bucket("0.5") == 3
    assert bucket("300.0") == 3
    assert bucket("+Inf") == 4
    assert got[("tokenbrake_request_duration_seconds_count", labels)] == 4
    assert 1000.3 < got[("tokenbrake_request_duration_seconds_sum", labels)] < 1000.4
    assert len(LATENCY_BUCKETS) + 1 == sum(1 for name, _ in got if name == "tokenbrake_request_duration_seconds_bucket")


async def test_errors_refusals_and_a_cascades_earlier_calls():
    metrics = Metrics()
    refused = RequestContext(format=Format.ANTHROPIC, endpoint=Endpoint.CHAT, body={}, headers={})
    refused.status, refused.error = 401, GatewayError(ErrorKind.AUTHENTICATION, "no key")
    failed = served(BIG, Usage(), "0", 0.1)
    failed.status, failed.error = 504, GatewayError(ErrorKind.TIMEOUT, "slow")
    failed.attempts = [Attempt(BIG, status=None), Attempt(BIG, status=503)]
    escalated = served(BIG, Usage(input_tokens=20, output_tokens=10), "0.03", 0.5)
    escalated.prior_calls = (PriorCall(SMALL, Usage(input_tokens=20, output_tokens=9), Decimal("0.0001"), 200, 0.1),)
    await record(metrics, refused, failed, escalated)
    got = samples(metrics)
    refused_labels = (("endpoint", "chat"), ("front_door", "anthropic"), ("model", "unknown"), ("status", "401"))
    assert got[("tokenbrake_requests_total", refused_labels)] == 1
    assert counter(got, "errors", kind="authentication", model="unknown") == 1
    assert counter(got, "errors", kind="timeout", model="big") == 1
    assert counter(got, "upstream_attempts", outcome="no_answer", upstream="cloud") == 1
    assert counter(got, "upstream_attempts", outcome="503", upstream="cloud") == 1
    assert counter(got, "tokens", model="small", type="output") == 9  # the rejected answer
    assert counter(got, "cost_usd", model="small") == 0.0001
    assert counter(got, "cost_usd", model="big") == 0.03


async def test_loops_and_the_sessions_they_stopped_are_counted():
    metrics = Metrics()
    warned = served(SMALL, Usage(input_tokens=5, output_tokens=5), "0.001", 0.01)
    warned.loop_suspected = "repeated_call"
    stopped = RequestContext(format=Format.OPENAI, endpoint=Endpoint.CHAT, body={}, headers={})
    stopped.loop_suspected = "repeated_call"
    stopped.error = GatewayError(ErrorKind.RATE_LIMIT, "stopped", code="session_stopped")
    await record(metrics, warned, stopped)
    got = samples(metrics)
    assert counter(got, "loops_suspected", kind="repeated_call") == 2
    assert counter(got, "sessions_stopped", reason="loop") == 1


async def test_routing_savings_are_a_net_gauge_by_the_model_asked_for():
    metrics = Metrics()
    saved, escalated = (served(SMALL, Usage(input_tokens=5, output_tokens=5), "0.001", 0.01) for _ in range(2))
    for ctx, amount in ((saved, "0.5"), (escalated, "-0.2")):
        ctx.requested_model, ctx.saved = "auto", Decimal(amount)
    await record(metrics, saved, escalated)
    assert samples(metrics)[("tokenbrake_saved_usd", (("by", "routing"), ("model", "auto")))] == 0.3
