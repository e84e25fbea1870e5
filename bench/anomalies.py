"""How well the anomaly detector and the forecaster do on 90 days of synthetic traffic.

1. Generates 90 days of calls (from 2025-12-01) for `--teams` teams (the scopes, 100 by
   default), in the import format: each team's rate (lognormal, median $1.50, $0.30 to $25 an hour) follows
   a day (business hours about four times the night) and a week (weekends at 45%), grows or
   shrinks by its own monthly rate (-5% to +25%), wobbles by day (lognormal, sd 15%, carried
   over from day to day) and is Poisson by the minute; holidays (Dec 24-26, Dec 31, Jan 1)
   run at 35%. Each team has users (Zipf-weighted, some joining later), one to three keys,
   sessions of half an hour, and three models (small, mid, large) in its own mix.
2. Benign changes that must not alert: a feature launch in 10 teams that steps their traffic
   up by 70% and stays, the weekend dip, and in 5 teams a batch job on a key of its own on the
   last day of every month (01:00-03:00, $30/h).
3. Injected incidents, `--per-kind` of each kind (after the warm-up), each on a team and at a
   time of its own: a spend spike (the team's traffic x8, at least +$80/h, 60 min: at $0.50 a call, 13 calls
   more in 5 minutes, about what 1 false alert a week across 100 teams lets a count tell); a new heavy
   spender (a user never seen, $30/h, 90 min); an input-size surge (a known user pasting
   documents: tokens x12, a call a minute, 60 min); a runaway session (6 calls a minute, 120
   min); an error-cost surge (failing calls retried, 5xx, $25/h, 45 min); a model mix shift
   (all of a team's calls served by the large model, 180 min, in business hours, on the
   busiest twentieth of the teams: a shift is told by the calls' models, so it needs calls).
4. Replays the file (foresight/replay.py: the live detector on a simulated clock, and the
   month-end forecasts at the midnights of days 7, 14 and 21) and scores: per kind the share
   of incidents alerted as that kind and the time from the incident's start to the alert;
   alerts matching no incident (false) per week across all teams, after a warm-up of 31 days;
   the forecast's absolute error against the month's actual spend, January and February, per
   team (median) and for the whole deployment.

    .venv/bin/python bench/anomalies.py [--seed 2] [--teams 100] [--per-kind 8] [--json]

About 0.8 to 0.9 million calls (90k tokens a call typical, sized for that); the run takes two
to five minutes on two CPUs, most of it reading the file (the import format's checks, 30 to
60 us a call) and the detector's minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from tokenbrake.config import parse_config
from tokenbrake.foresight.replay import read_minutes, replay

START = datetime(2025, 12, 1, tzinfo=UTC)
DAYS = 90
WARMUP_DAYS = 31  # a month of history, as a team would import it (the first month-end is in it)
HOLIDAYS = {(12, 24), (12, 25), (12, 26), (12, 31), (1, 1)}
MODELS = {"small": 1e-6, "mid": 5e-6, "large": 25e-6}  # USD per token
KINDS = ("spend_spike", "new_heavy_spender", "input_size_surge", "runaway_session", "error_cost_surge",
         "model_mix_shift")
MATCH_AFTER = timedelta(minutes=30)  # an alert this long after an incident's end is still its


@dataclass
class Team:
    name: str
    rate: float  # USD per hour at the daily and weekly mean
    growth: float  # per 30 days
    tokens: float  # per call, typical
    mix: np.ndarray  # shares of small, mid, large
    users: list[tuple[str, float, int]]  # name, weight, the day they join
    keys: list[str]
    step_day: int | None = None  # a launch: x1.7 from that day on
    batch: bool = False
    large_from: float = 0.0  # a model mix shift: every call on the large model from, to (epoch s)
    large_to: float = 0.0


@dataclass
class Incident:
    kind: str
    team: str
    start: datetime
    end: datetime


def teams_of(rng: np.random.Generator, count: int) -> list[Team]:
    found = []
    for t in range(count):
        users = [(f"u{t}-{u}", 1 / (u + 1), 0 if rng.random() < 0.7 else int(rng.integers(1, DAYS)))
                 for u in range(int(rng.integers(3, 30)))]
        mix = rng.dirichlet([3, 6, 1])
        found.append(Team(f"t{t:03d}", float(np.clip(rng.lognormal(np.log(1.5), 0.8), 0.3, 25)),
                          float(rng.uniform(-0.05, 0.25)), float(rng.lognormal(np.log(90000), 0.4)), mix, users,
                          [f"k{t}-{k}" for k in range(int(rng.integers(1, 4)))]))
    for team in rng.choice(found, 10, replace=False):
        team.step_day = int(rng.integers(WARMUP_DAYS, DAYS - 10))
    for team in rng.choice([t for t in found if t.step_day is None], 5, replace=False):
        team.batch = True
    return found


def shape(hours: np.ndarray) -> np.ndarray:
    """The day's and the week's rhythm, mean about 1, per hour number from START."""
    moments = [START + timedelta(hours=int(h)) for h in hours]
    hod = np.array([m.hour for m in moments])
    day = 0.35 + 1.3 * np.exp(-((hod - 14) / 4.0) ** 2)
    weekend = np.array([0.45 if m.weekday() >= 5 else 1.15 for m in moments])
    holiday = np.array([0.35 if (m.month, m.day) in HOLIDAYS else 1.0 for m in moments])
    return day * weekend * holiday


class Writer:
    """Calls as import-format lines."""

    def __init__(self, out) -> None:
        self.out = out
        self.calls = 0
        self.cost = defaultdict(float)  # (team, year, month) -> USD

    def call(self, t: float, team: str, key: str, user: str, session: str, model: str, tokens: int,
             status: int = 200, cost_scale: float = 1.0) -> None:
        cost = tokens * MODELS[model] * cost_scale
        moment = datetime.fromtimestamp(t, UTC)
        self.cost[(team, moment.year, moment.month)] += cost
        self.out.write(f'{{"time": "{moment.strftime("%Y-%m-%dT%H:%M:%SZ")}", "team": "{team}", "key": "{key}", '
                       f'"user": "{user}", "session": "{session}", "model": "{model}", "input_tokens": {tokens}, '
                       f'"output_tokens": 0, "cost_usd": {cost:.8f}, "status": {status}}}\n')
        self.calls += 1


def normal_traffic(rng: np.random.Generator, team: Team, rhythm: np.ndarray, w: Writer) -> None:
    hours = np.arange(DAYS * 24)
    wobble = np.exp(np.convolve(rng.normal(0, 0.15, DAYS + 6), np.ones(3) / np.sqrt(3), "same")[3:DAYS + 3])
    level = team.rate * rhythm * wobble[hours // 24] * (1 + team.growth) ** (hours / 720)
    if team.step_day is not None:
        level = level * np.where(hours >= team.step_day * 24, 1.7, 1.0)
    per_call = team.tokens * float(team.mix @ np.array(list(MODELS.values())))
    counts = rng.poisson(level / per_call)
    hour_of = np.repeat(hours, counts)
    times = START.timestamp() + hour_of * 3600 + rng.random(len(hour_of)) * 3600
    weights = np.array([u[1] for u in team.users])
    joined = np.array([u[2] for u in team.users])
    # a user per call, by weight among those who had joined by its day (the first always has)
    picks = np.empty(len(hour_of), dtype=np.int64)
    for day in range(DAYS):
        at = np.flatnonzero(hour_of // 24 == day)
        p = np.where(joined <= day, weights, 0.0)
        p[0] = p[0] or weights[0]
        picks[at] = rng.choice(len(weights), len(at), p=p / p.sum())
    models = np.array(list(MODELS))[rng.choice(3, len(hour_of), p=team.mix)]
    tokens = (team.tokens * rng.lognormal(0, 0.5, len(hour_of))).astype(np.int64)
    for t, u, model, n in zip(times, picks, models, tokens):
        name = team.users[u][0]
        model = "large" if team.large_from <= t < team.large_to else str(model)
        w.call(float(t), team.name, team.keys[u % len(team.keys)], name, f"s-{name}-{int(t // 1800)}", model, int(n))
    if team.batch:
        for month_end in _month_ends():
            for minute in range(120):
                t = (month_end + timedelta(hours=1, minutes=minute)).timestamp()
                for _ in range(rng.poisson(1)):  # $30/h on mid, 100k tokens a call
                    w.call(t + rng.random() * 60, team.name, f"batch-{team.name}", "batch",
                           f"batch-{month_end:%m}", "mid", 100000)


def _month_ends() -> list[datetime]:
    found, day = [], START
    while day < START + timedelta(days=DAYS):
        if (day + timedelta(days=1)).month != day.month:
            found.append(day)
        day += timedelta(days=1)
    return found


def incidents(rng: np.random.Generator, teams: list[Team], per_kind: int, rhythm: np.ndarray, w: Writer) -> list[Incident]:
    found: list[Incident] = []
    taken: set[tuple[str, int]] = set()
    for kind in KINDS:
        for _ in range(per_kind):
            pool = teams if kind != "model_mix_shift" else sorted(teams, key=lambda t: t.rate)[-max(3, len(teams) // 20):]
            while True:
                team = pool[int(rng.integers(len(pool)))]
                hour = int(rng.integers(WARMUP_DAYS * 24, (DAYS - 1) * 24))
                if kind == "model_mix_shift":
                    hour = hour - hour % 24 + int(rng.integers(11, 16))  # business hours: enough calls to tell
                weekend = (START + timedelta(hours=hour)).weekday() >= 5
                if all((team.name, hour // 24 + d) not in taken for d in (-1, 0, 1)) and not (
                        kind == "model_mix_shift" and weekend):
                    break
            taken.add((team.name, hour // 24))
            start = START + timedelta(hours=hour, minutes=int(rng.integers(60)), seconds=int(rng.integers(60)))
            found.append(_inject(rng, kind, team, start, rhythm[hour], w))
    return found


def _inject(rng: np.random.Generator, kind: str, team: Team, start: datetime, rhythm: float, w: Writer) -> Incident:
    minutes = {"spend_spike": 60, "new_heavy_spender": 90, "input_size_surge": 60, "runaway_session": 120,
               "error_cost_surge": 45, "model_mix_shift": 180}[kind]
    per_call = team.tokens * float(team.mix @ np.array(list(MODELS.values())))
    user = team.users[0][0]
    for minute in range(minutes):
        t0 = start.timestamp() + minute * 60
        if kind == "spend_spike":  # more of the team's own traffic
            extra = max(7 * team.rate * rhythm, 80.0) / 60 / per_call
            for _ in range(rng.poisson(extra)):
                u = team.users[int(rng.integers(len(team.users)))][0]
                w.call(t0 + rng.random() * 60, team.name, team.keys[0], u, f"s-{u}-{int(t0 // 1800)}",
                       list(MODELS)[rng.choice(3, p=team.mix)], int(team.tokens * rng.lognormal(0, 0.5)))
        elif kind == "new_heavy_spender":
            for _ in range(rng.poisson(30 / 60 / (team.tokens * MODELS["mid"]))):
                w.call(t0 + rng.random() * 60, team.name, team.keys[-1], f"new-{team.name}-{start:%m%d}",
                       f"s-new-{start:%m%d%H}", "mid", int(team.tokens * rng.lognormal(0, 0.3)))
        elif kind == "input_size_surge":
            w.call(t0 + rng.random() * 60, team.name, team.keys[0], user, f"s-{user}-{int(t0 // 1800)}", "mid",
                   int(team.tokens * 12 * rng.lognormal(0, 0.3)))
        elif kind == "runaway_session":
            for _ in range(rng.poisson(6)):
                w.call(t0 + rng.random() * 60, team.name, team.keys[0], user, f"agent-{team.name}-{start:%m%d%H}",
                       "mid", int(team.tokens * rng.lognormal(0, 0.3)))
        elif kind == "error_cost_surge":
            for _ in range(rng.poisson(25 / 60 / per_call)):
                w.call(t0 + rng.random() * 60, team.name, team.keys[0], user, f"s-{user}-{int(t0 // 1800)}",
                       list(MODELS)[rng.choice(3, p=team.mix)], int(team.tokens * rng.lognormal(0, 0.5)), status=500)
        else:  # model_mix_shift: the team's own calls, on the large model (normal_traffic)
            team.large_from, team.large_to = start.timestamp(), start.timestamp() + minutes * 60
    return Incident(kind, team.name, start, start + timedelta(minutes=minutes))


def generate(seed: int, count: int, per_kind: int, path: str) -> tuple[list[Team], list[Incident], Writer]:
    rng = np.random.default_rng(seed)
    teams = teams_of(rng, count)
    rhythm = shape(np.arange(DAYS * 24))
    with open(path, "w") as out:
        w = Writer(out)
        found = incidents(rng, teams, per_kind, rhythm, w)  # the mix shifts are in the normal traffic
        for team in teams:
            normal_traffic(rng, team, rhythm, w)
    return teams, found, w


def score(events: list[dict], found: list[Incident], teams: list[Team], w: Writer) -> dict:
    scored_from = START + timedelta(days=WARMUP_DAYS)
    alerts = [e for e in events if e["type"] == "alert" and _t(e["at"]) >= scored_from]
    detected: dict[int, float] = {}
    other_kind, false = 0, []
    for alert in alerts:
        at = _t(alert["at"])
        # a team's alert is its incident's; the whole deployment's, any incident's then going on
        mine = [i for i, inc in enumerate(found) if alert["team"] in (inc.team, None)
                and inc.start <= at <= inc.end + MATCH_AFTER]
        if not mine:
            false.append(alert)
            continue
        same = [i for i in mine if found[i].kind == alert["kind"] and alert["team"] is not None]  # (global: not false)
        if not same and alert["team"] is not None:
            other_kind += 1
        for i in same:
            detected.setdefault(i, (at - found[i].start).total_seconds() / 60)
    per_kind = {}
    for kind in KINDS:
        mine = [i for i, inc in enumerate(found) if inc.kind == kind]
        times = [detected[i] for i in mine if i in detected]
        per_kind[kind] = {"incidents": len(mine), "detected": len(times),
                          "within_5_min": sum(t <= 5 for t in times),
                          "median_minutes": round(statistics.median(times), 2) if times else None,
                          "max_minutes": round(max(times), 2) if times else None}
    weeks = (DAYS - WARMUP_DAYS) / 7
    return {"per_kind": per_kind, "alerts_scored": len(alerts), "other_kind_on_incident": other_kind,
            "false_alerts": len(false), "false_per_week": round(len(false) / weeks, 3),
            "false_examples": [{k: a[k] for k in ("kind", "scope", "at", "factor", "detail")} for a in false[:8]],
            "forecast": forecast_errors(events, found, teams, w)}


def forecast_errors(events: list[dict], found: list[Incident], teams: list[Team], w: Writer) -> dict:
    """Absolute error of the month-end forecast against the month's actual spend, per day of
    the month it was made on: median over the teams (all; seasonal: no incident, launch or
    batch job in that month) and the deployment's."""
    troubled = {(i.team, i.start.month) for i in found} | {(t.name, m) for t in teams if t.batch for m in (1, 2)}
    troubled |= {(t.name, (START + timedelta(days=t.step_day)).month) for t in teams if t.step_day is not None}
    actual = dict(w.cost)
    for (_, year, month), cost in list(w.cost.items()):
        actual[("global", year, month)] = actual.get(("global", year, month), 0.0) + cost
    errors: dict[int | str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for e in events:
        if e["type"] != "forecast":
            continue
        at = _t(e["at"])
        if (at.year, at.month) not in ((2026, 1), (2026, 2)):
            continue
        name = e["scope"].split(":", 1)[-1]
        truth = actual.get((name, at.year, at.month), 0.0)
        if truth <= 0:
            continue
        error = abs(e["forecast_usd"] - truth) / truth
        group = "global" if name == "global" else "seasonal" if (name, at.month) not in troubled else "other"
        for day in (at.day, f"{at.day} {at:%b}"):
            errors[day][group].append(error)
            if group != "global":
                errors[day]["all"].append(error)
    return {str(day): {group: {"median": round(statistics.median(v), 4), "p90": round(float(np.quantile(v, 0.9)), 4),
                          "n": len(v)} for group, v in sorted(groups.items())} for day, groups in sorted(errors.items(), key=lambda d: str(d[0]).zfill(8))}


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--teams", type=int, default=100)
    parser.add_argument("--per-kind", type=int, default=8)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--config", default=None, help="A YAML file whose anomalies: section to use.")
    args = parser.parse_args()
    config = parse_config({"upstreams": {}, "models": {}, **_anomalies(args.config)})
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "calls.jsonl")
        began = time.perf_counter()
        teams, found, w = generate(args.seed, args.teams, args.per_kind, path)
        generated = time.perf_counter() - began
        minutes = read_minutes(path, "jsonl", now=START + timedelta(days=DAYS + 1))
        read = time.perf_counter() - began - generated
        events = list(replay(minutes, config, forecast_days=(7, 14, 21)))
        replayed = time.perf_counter() - began - generated - read
    result = {"seed": args.seed, "teams": args.teams, "calls": w.calls, "days": DAYS,
              "seconds": {"generate": round(generated, 1), "read": round(read, 1), "replay": round(replayed, 1)},
              "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
              **score(events, found, teams, w)}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"seed {args.seed}: {w.calls:,} calls, {args.teams} teams, {DAYS} days; generate {generated:.0f} s, "
          f"read {read:.0f} s, replay {replayed:.0f} s")
    print(f"{'kind':<20} {'detected':>9} {'<=5 min':>8} {'median':>7} {'max':>7}")
    for kind, k in result["per_kind"].items():
        print(f"{kind:<20} {k['detected']:>4}/{k['incidents']:<4} {k['within_5_min']:>8} "
              f"{k['median_minutes'] if k['median_minutes'] is not None else '-':>7} "
              f"{k['max_minutes'] if k['max_minutes'] is not None else '-':>7}")
    print(f"false alerts: {result['false_alerts']} in {DAYS - WARMUP_DAYS} days, {result['false_per_week']}/week "
          f"across {args.teams} teams; alerts of another kind on an incident: {result['other_kind_on_incident']}")
    for example in result["false_examples"]:
        print("  false:", json.dumps(example))
    print("month-end forecast |error| (median over teams; global):")
    for day, groups in result["forecast"].items():
        print(f"  day {day:>6}: " + ", ".join(f"{g} {v['median']:.1%} (p90 {v['p90']:.1%}, n={v['n']})"
                                             for g, v in groups.items()))


def _anomalies(path: str | None) -> dict:
    if path is None:
        return {}
    import yaml

    with open(path) as f:
        return {"anomalies": (yaml.safe_load(f) or {}).get("anomalies", {})}


if __name__ == "__main__":
    sys.exit(main())
