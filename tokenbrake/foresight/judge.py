"""Whether a scope's last minutes depart from its usual, and as which kind of anomaly.

Each test compares the window (the last `window_minutes` closed minutes, `W`) with the usual
for this hour of the week (usual.py) scaled to the window, and passes only when all three
hold: the factor (window against usual) reaches the kind's factor, the excess over the usual
reaches the absolute floor (`floor_usd_per_hour`, as a rate), and the excess is `min_z`
standard deviations of the usual's own noise (its requests' count, Poisson, times a request's
mean squared cost, plus a third of the usual for the usual's own error): a
scope of a few dear calls an hour does not page on three of them in five minutes.

A team is tested for, in order, an error-cost surge (its 4xx, 5xx and unanswered calls' cost),
a model mix shift (its cost per request against what its requests would cost at last week's
mix of models, each at its cost per request now), an input-size surge (tokens per request
against last week's), and a spend spike: the first that passes names the incident, so a
surge of pasted documents is not also called a spike. A key or user seen spending in at most
`rare_hours` hours of the last four weeks that spends `heavy_usd_per_hour` is a new heavy
spender; a session calling without pause, as fast, and `runaway_factor` times the cost an hour
of its team's busiest session (on average over the last day) is a runaway session. The whole deployment (global)
is tested for a spike only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tokenbrake.config import AnomaliesConfig
from tokenbrake.foresight.usual import COST, REQUESTS, TOKENS, Usual

Sums = list[float]  # requests, tokens, cost over the window
MIN_REQUESTS = 3  # in the window: one or two dear calls are not a trend
MIN_MIX_REQUESTS = 5  # a mix is told by its calls' models: too few, and any draw looks shifted
RUNAWAY_CALLS_PER_MINUTE = 4.0  # an agent looping; a person pasting documents calls about once a minute
RUNAWAY_MINUTES = 3  # calling in each of them: a burst is not a loop
MARGIN = 1.3  # the usual's counts, raised for its own error and for days busier than the median


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str
    factor: float | None
    rate: float  # USD per hour, of what departed (the error cost for an error surge)
    usual_rate: float  # USD per hour usual for it
    detail: str
    measured: tuple[str, str, str]  # the rollup key whose cost the incident is counted in


def poisson_tail(k: float, mean: float) -> float:
    """P(N >= k) for N Poisson with `mean`."""
    k = math.ceil(k)
    if k <= 0:
        return 1.0
    if mean <= 0:
        return 0.0
    term = math.exp(-mean)  # P(N = 0), then each next
    below = 0.0
    for n in range(k):
        below += term
        term *= mean / (n + 1)
    return max(1.0 - below, 0.0) if below < 0.999 else _upper(k, mean, term)


def _upper(k: int, mean: float, term: float) -> float:
    """P(N >= k) summed from k up (exact where 1 - P(N < k) would round to 0); `term`: P(N = k)."""
    total, n = 0.0, k
    while term > 1e-300 and (n < k + 10 or term > total * 1e-12):
        total += term
        n += 1
        term *= mean / n
    return total


def binomial_tail(k: float, n: float, p: float) -> float:
    """P(X >= k) for X binomial(n, p)."""
    k, n = math.ceil(k), round(n)
    if k <= 0:
        return 1.0
    if p <= 0 or k > n:
        return 0.0
    if p >= 1:
        return 1.0
    return sum(math.comb(n, i) * p ** i * (1 - p) ** (n - i) for i in range(k, n + 1))


def rare(c: AnomaliesConfig, tail: float) -> bool:
    """As rare under the usual as `min_z` standard deviations of a normal's upper tail."""
    return tail <= 0.5 * math.erfc(c.min_z / math.sqrt(2))


def _z(excess: float, usual: float, requests: float, squared: float) -> float:
    """`squared`: a request's mean squared cost. The noise of a compound Poisson sum, a third
    of the usual for its own error, and one request more."""
    spread = math.sqrt(requests * squared + (usual / 3) ** 2 + squared)
    return excess / spread if spread > 0 else math.inf


def _passes(c: AnomaliesConfig, window: float, usual: float, factor: float, noise: tuple[float, float]) -> bool:
    """The window's amount against the usual's (both over the window): factor, floor, noise."""
    excess = window - usual
    floor = c.floor_usd_per_hour * c.window_minutes / 60
    return window >= factor * usual and excess >= floor and _z(excess, usual, *noise) >= c.min_z


def spike(c: AnomaliesConfig, sums: Sums, u: Usual, scale: float, key: tuple[str, str, str]) -> Finding | None:
    """More calls than usual, costing more than usual (dearer calls are a size surge or a mix
    shift). `scale`: the window's length in hours."""
    usual, calls = u.cost * scale, u.requests * scale
    if sums[REQUESTS] < max(MIN_REQUESTS, c.spike_factor * calls) or not rare(c, poisson_tail(sums[REQUESTS], MARGIN * calls)):
        return None
    # The calls' count passed its noise test: the cost needs its factor and the floor only (a
    # test of its own noise would also ask the extra calls to outweigh one dear call more).
    if sums[COST] < c.spike_factor * usual or sums[COST] - usual < c.floor_usd_per_hour * scale:
        return None
    factor = sums[COST] / usual if usual > 0 else None
    return Finding("spend_spike", factor, sums[COST] / scale, u.cost, f"{sums[REQUESTS]:.0f} calls in "
                   f"{c.window_minutes} min against {calls:.1f} usual, spending ${sums[COST] / scale:.2f}/h against "
                   f"${u.cost:.2f}/h usual at this hour of the week", key)


def input_surge(c: AnomaliesConfig, sums: Sums, u: Usual, scale: float, key: tuple[str, str, str]) -> Finding | None:
    usual_tpr = u.tokens_per_request
    if sums[REQUESTS] < MIN_REQUESTS or usual_tpr <= 0:
        return None
    tpr = sums[TOKENS] / sums[REQUESTS]
    by_size = sums[COST] * (1 - usual_tpr / tpr) if tpr > 0 else 0.0  # what the extra tokens cost
    floor = c.floor_usd_per_hour * scale
    usual = u.cost * scale
    if tpr < c.size_factor * usual_tpr or by_size < floor or sums[COST] < 1.5 * usual:
        return None
    if _z(sums[COST] - usual, usual, u.requests * scale, u.cost_squared) < c.min_z:
        return None
    return Finding("input_size_surge", tpr / usual_tpr, sums[COST] / scale, u.cost,
                   f"{tpr:,.0f} tokens per request against {usual_tpr:,.0f} last week", key)


def mix_shift(c: AnomaliesConfig, sums: Sums, models: dict[str, Sums], usual_models: dict[str, tuple[float, float]],
              scale: float, key: tuple[str, str, str]) -> Finding | None:
    """The window's calls moved to dearer models: its mix of models, each at last week's cost
    per request, against last week's mix (multinomial noise). `models`: the window's sums per
    model; `usual_models`: last week's (requests, cost) per model."""
    total = sum(r for r, _ in usual_models.values())
    n = sum(s[REQUESTS] for s in models.values())
    if n < MIN_MIX_REQUESTS or total <= 0:
        return None
    # last week's price of each model; a model new this week, at its price in the window
    price = {m: s[COST] / s[REQUESTS] for m, s in models.items() if s[REQUESTS] > 0}
    price |= {m: cost / r for m, (r, cost) in usual_models.items()}
    expected = sum(r / total * price[m] for m, (r, _) in usual_models.items())
    spread = math.sqrt(max(sum(r / total * price[m] ** 2 for m, (r, _) in usual_models.items()) - expected ** 2, 0.0) / n)
    now = sum(s[REQUESTS] * price[m] for m, s in models.items() if s[REQUESTS] > 0) / n
    if expected <= 0 or now < c.mix_factor * expected or (now - expected) * n < c.floor_usd_per_hour * scale:
        return None
    if spread > 0 and (now - expected) / spread < c.min_z:
        return None
    dear = [m for m in models if price[m] > 1.5 * expected]  # the calls on models dearer than the usual mix
    share = sum(usual_models[m][0] for m in dear if m in usual_models) / total
    if not rare(c, binomial_tail(sum(models[m][REQUESTS] for m in dear), n, min(1.0, MARGIN * max(share, 0.01)))):
        return None
    dearest = max(models, key=lambda m: models[m][COST])
    return Finding("model_mix_shift", now / expected, sums[COST] / scale, expected * sums[REQUESTS] / scale,
                   f"${now:.4f} a request at this mix against ${expected:.4f} at last week's; {dearest} now "
                   f"{models[dearest][REQUESTS] / sums[REQUESTS]:.0%} of requests", key)


def error_surge(c: AnomaliesConfig, errors: Sums, u: Usual, scale: float, key: tuple[str, str, str]) -> Finding | None:
    hourly = max(u.cost, u.week[COST] / 168)  # errors are sparse: an hour's median is mostly 0
    requests = max(u.requests, u.week[REQUESTS] / 168)
    usual = hourly * scale
    if errors[REQUESTS] < MIN_REQUESTS or not rare(c, poisson_tail(errors[REQUESTS], MARGIN * requests * scale)):
        return None
    if errors[COST] < c.error_factor * usual or errors[COST] - usual < c.floor_usd_per_hour * scale:
        return None  # (the count passed its noise test, as a spike's)
    return Finding("error_cost_surge", errors[COST] / usual if usual > 0 else None, errors[COST] / scale, hourly,
                   f"${errors[COST] / scale:.2f}/h on failed calls ({errors[REQUESTS]:.0f} in "
                   f"{c.window_minutes} min) against ${hourly:.2f}/h usual", key)


def heavy(c: AnomaliesConfig, sums: Sums, scale: float) -> bool:
    """A member spending fast: `heavy_usd_per_hour`, and never under the floor."""
    return sums[REQUESTS] >= MIN_REQUESTS and sums[COST] / scale >= max(c.heavy_usd_per_hour, c.floor_usd_per_hour)


def new_spender(c: AnomaliesConfig, sums: Sums, hours_spent: int, u: Usual | None, scale: float,
                key: tuple[str, str, str]) -> Finding | None:
    usual = u.cost if u is not None else 0.0
    if hours_spent > c.rare_hours or not heavy(c, sums, scale) or sums[COST] < c.spike_factor * usual * scale:
        return None  # (a batch job's key, seen at this hour last month's end, is usual)
    seen = "never seen spending" if hours_spent == 0 else f"seen spending in {hours_spent} hours of 4 weeks"
    return Finding("new_heavy_spender", sums[COST] / scale / usual if usual > 0 else None, sums[COST] / scale, usual,
                   f"a {key[0].split('|')[-1]} {seen}, spending fast", key)


def runaway(c: AnomaliesConfig, sums: Sums, active_minutes: int, peer_rate: float, scale: float,
            key: tuple[str, str, str]) -> Finding | None:
    """A session calling without pause (`RUNAWAY_CALLS_PER_MINUTE` in each of its active minutes,
    at least `RUNAWAY_MINUTES` of them), heavy, and far faster than its team's busiest sessions.
    `peer_rate`: the team's costliest session's cost in an hour, on average over the last day's
    hours (0: none seen)."""
    rate = sums[COST] / scale
    if active_minutes < min(RUNAWAY_MINUTES, c.window_minutes) or sums[REQUESTS] < RUNAWAY_CALLS_PER_MINUTE * active_minutes:
        return None
    if not heavy(c, sums, scale) or rate < c.runaway_factor * peer_rate:
        return None
    return Finding("runaway_session", rate / peer_rate if peer_rate > 0 else None, rate, peer_rate,
                   f"{sums[REQUESTS]:.0f} calls in {c.window_minutes} min, spending ${rate:.2f}/h against "
                   f"${peer_rate:.2f}/h for its team's busiest session", key)
