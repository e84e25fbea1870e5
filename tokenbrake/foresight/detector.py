"""The anomaly detector: fed the rollups' minutes, it raises an alert when a scope departs from
its usual, and says when that is over. The live watcher (watch.py) and replay (replay.py) feed
it alike; it does no I/O and knows no clock but the minutes it is fed.

It reads the groupings the ledger writer already keeps (rollups.py), nothing per request:
everything (`''`), `team`, and the team pairs with key, user, session, model and status.
Each minute fed is added to a window of the last `window_minutes` minutes (running sums) and
to the hour it is in; each closed hour goes into the scope's ring (usual.py), sessions'
excepted (too many to keep): of those, each team keeps the cost of its costliest in each hour.
`evaluate` looks only at scopes whose window cost reaches the floor: a scope below it cannot
alert, whatever its factor, so the work grows with the busy scopes, not with all of them.

One incident, one alert: a team with an open incident (its own, or a member's: a session, a
user, a key) raises no other until it is over, and the whole deployment's departure is not
raised when open incidents account for at least half of its excess. A team's (or the whole
deployment's) departure must hold for two minutes running before it is raised, the members'
for one: the member behind a team's spike is named by its own kind (a runaway session, a new
heavy spender) where it can be. (An error-cost surge is no member's kind: raised at once.) An incident is over once it has not passed its test
for `end_after_minutes` minutes running; its end comes as an `End`.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from tokenbrake.config import AnomaliesConfig
from tokenbrake.foresight import judge
from tokenbrake.foresight.alert import Alert, End
from tokenbrake.foresight.usual import COST, REQUESTS, SQUARES, TOKENS, WEEK, Ring, Usual, usual

Key = tuple[str, str, str]  # a rollup grouping: dims, v1, v2
Row = tuple[str, str, str, float, float, float]  # dims, v1, v2, requests, tokens, cost (USD)
GLOBAL, TEAM, KEY, USER, SESSION, MODEL, STATUS = "", "team", "team|key", "team|user", "team|session", "team|model", "team|status"
WATCHED = (GLOBAL, TEAM, KEY, USER, SESSION, MODEL, STATUS)  # the rollup groupings it reads
ERRORS, SESSIONS = "team|errors", "team|sessions"  # its own: a team's failed calls; its costliest session an hour
ERROR_CLASSES = ("4xx", "5xx", "0")
NOT_RINGED = (SESSION,)
ORDER = {SESSION: 0, USER: 1, KEY: 2, TEAM: 3, ERRORS: 3, GLOBAL: 4}  # the most specific first
EXPLAINED = 0.5  # of the deployment's excess, by open incidents: not raised again
_MISSING = object()


@dataclass(slots=True)
class _Open:
    alert: Alert
    measured: Key
    quiet: int = 0


def scope_of(key: Key) -> tuple[str, str | None]:
    """The scope an alert names, as budgets and counters write it, and its team."""
    dims, v1, v2 = key
    team = v1 or None
    if dims == GLOBAL:
        return "global", None
    if dims in (TEAM, ERRORS, MODEL):
        return f"team:{v1}", team
    if dims == KEY:
        return f"key:{v2}", team
    kind = "user" if dims == USER else "session"
    return (f"team:{v1}/{kind}:{v2}" if v1 else f"{kind}:{v2}"), team


class Detector:
    def __init__(self, config: AnomaliesConfig) -> None:
        self.config = config
        self._scale = config.window_minutes / 60  # the window in hours
        floor = config.floor_usd_per_hour * self._scale
        heavy = max(config.heavy_usd_per_hour, config.floor_usd_per_hour) * self._scale
        # What a scope's window must cost to be judged at all: a member, to be heavy.
        self._floors = {GLOBAL: floor, TEAM: floor, ERRORS: floor, SESSION: heavy, USER: heavy, KEY: heavy}
        self._models_of: dict[str, set[str]] = {}  # by team: the models it was seen calling
        self._rings: dict[Key, Ring] = {}
        self._hour: int | None = None
        self._hour_sums: dict[Key, list[float]] = {}
        self._hour_sessions: dict[str, dict[str, float]] = {}  # by team: each session's cost this hour
        self._minutes: deque[tuple[int, dict[Key, list[float]]]] = deque()
        self._window: dict[Key, list[float]] = {}
        self._busy: set[Key] = set()  # window cost at least its floor (`_floors`)
        self._usuals: dict[Key, Usual | None] = {}  # this hour's
        self._before: dict[Key, Usual | None] = {}  # the hour before's
        self._cached: dict[tuple[str, Key], Any] = {}  # this hour's, of `_hourly`
        self._first_hour: int | None = None
        self._open: dict[str, _Open] = {}  # by scope
        self._pending: set[Key] = set()  # teams (and global) that departed in the last minute evaluated

    @property
    def first_hour(self) -> int | None:
        return self._first_hour

    def hourly(self, key: Key) -> Ring | None:
        return self._rings.get(key)

    def feed_hour(self, hour: int, rows: Iterable[Row]) -> None:
        """A whole past hour (from the hourly rollups), oldest first, before any minute."""
        self._start(hour)
        for key, values in self._grouped(rows).items():
            if key[0] not in NOT_RINGED:
                self._ring(key).add(hour, [*values, 0.0])
            if key[0] == MODEL:
                self._models_of.setdefault(key[1], set()).add(key[2])

    def feed_minute(self, minute: int, rows: Iterable[Row]) -> None:
        """A closed minute's rollup rows, in minute order (a minute is fed once)."""
        hour = minute // 60
        self._start(hour)
        if hour != self._hour:
            self._close_hour()
            self._hour = hour
        found = self._grouped(rows)
        for key, values in found.items():
            into = self._hour_sums.setdefault(key, [0.0, 0.0, 0.0, 0.0])
            for i in range(3):
                into[i] += values[i]
            into[SQUARES] += values[COST] ** 2 / values[REQUESTS] if values[REQUESTS] > 0 else 0.0
            if key[0] == SESSION and key[2]:  # a team's sessions this hour, and their cost
                costs = self._hour_sessions.setdefault(key[1], {})
                costs[key[2]] = costs.get(key[2], 0.0) + values[COST]
                self._hour_sums.setdefault((SESSIONS, key[1], ""), [0.0] * 4)[COST] += values[COST]
        self._minutes.append((minute, found))
        self._shift(found, 1)
        while self._minutes and self._minutes[0][0] <= minute - self.config.window_minutes:
            self._shift(self._minutes.popleft()[1], -1)

    def _start(self, hour: int) -> None:
        if self._first_hour is None:
            self._first_hour = hour

    def _ring(self, key: Key) -> Ring:
        ring = self._rings.get(key)
        if ring is None:
            ring = self._rings[key] = Ring()
        return ring

    @staticmethod
    def _grouped(rows: Iterable[Row]) -> dict[Key, list[float]]:
        found: dict[Key, list[float]] = {}
        for dims, v1, v2, requests, tokens, cost in rows:
            if dims == STATUS:
                if v2 not in ERROR_CLASSES:
                    continue
                dims, v2 = ERRORS, ""
            into = found.setdefault((dims, v1, v2), [0.0, 0.0, 0.0])
            into[0] += requests
            into[1] += tokens
            into[2] += cost
        return found

    def _close_hour(self) -> None:
        if self._hour is not None:
            for team, sessions in self._hour_sessions.items():
                self._hour_sums[(SESSIONS, team, "")][REQUESTS] = 1  # an hour with sessions
                self._hour_sums[(SESSIONS, team, "")][TOKENS] = max(sessions.values())  # the costliest's cost
            for key, values in self._hour_sums.items():
                if key[0] not in NOT_RINGED:
                    self._ring(key).add(self._hour, values)
        self._hour_sums = {}
        self._hour_sessions = {}
        self._usuals = {}
        self._before = {}
        self._cached = {}

    def _shift(self, minute: dict[Key, list[float]], sign: int) -> None:
        window, busy, floors = self._window, self._busy, self._floors
        for key, values in minute.items():
            sums = window.get(key)
            if sums is None:
                sums = window[key] = [0.0, 0.0, 0.0]
            sums[0] += sign * values[0]
            sums[1] += sign * values[1]
            sums[2] += sign * values[2]
            if sums[0] < 0.5:  # nothing left of it (floating point leaves crumbs)
                del window[key]
                busy.discard(key)
            elif sums[2] >= floors.get(key[0], math.inf):
                busy.add(key)
            else:
                busy.discard(key)
            if key[0] == MODEL:
                self._models_of.setdefault(key[1], set()).add(key[2])

    def usual_of(self, key: Key) -> Usual | None:
        """The usual for the window (None: too little history): the current hour's, or, while
        the window still holds minutes of the hour before, the dearer of the two hours'."""
        assert self._hour is not None and self._first_hour is not None, "asked after a minute was fed"
        if key not in self._usuals:
            self._usuals[key] = usual(self._rings.get(key), self._hour, self._first_hour)
        now = self._usuals[key]
        if not self._minutes or self._minutes[0][0] // 60 == self._hour:
            return now
        if key not in self._before:
            self._before[key] = usual(self._rings.get(key), self._hour - 1, self._first_hour)
        before = self._before[key]
        return now if before is None or (now is not None and now.cost >= before.cost) else before

    def evaluate(self, minute: int, at: float | None = None) -> list[Alert | End]:
        """After the minute `minute` was fed: the incidents it ends, then the alerts it raises,
        `at` that time (in minutes; by default the minute's end and `settle_s`, when a live
        gateway reads it first)."""
        at = minute + 1 + self.config.settle_s / 60 if at is None else at
        events: list[Alert | End] = []
        for scope, incident in list(self._open.items()):
            events += self._follow(scope, incident, minute, at)
        busy_teams = {o.alert.team for o in self._open.values()}
        pending, self._pending = self._pending, set()
        for key in sorted(self._busy, key=lambda k: (ORDER[k[0]], k)):
            if key[0] == ERRORS or (key[0] != GLOBAL and key[1] in busy_teams):  # one incident a team at a time
                continue
            finding = self._judge(key)
            if finding is None or self._explained(key, finding):
                continue
            if key[0] in (TEAM, GLOBAL) and finding.kind != "error_cost_surge" and key not in pending:
                self._pending.add(key)  # a minute more, so that a member behind it is named first
                continue
            alert = self._alert(key, finding, minute, at)
            busy_teams.add(alert.team)
            self._open[alert.scope] = _Open(alert, finding.measured)
            events.append(alert)
        return events

    def _follow(self, scope: str, incident: _Open, minute: int, at: float) -> list[Alert | End]:
        latest = self._minutes[-1][1] if self._minutes and self._minutes[-1][0] == minute else {}
        incident.alert.cost_so_far_usd += latest.get(incident.measured, (0.0, 0.0, 0.0))[COST]
        if self._still_on(incident):
            incident.quiet = 0
            return []
        incident.quiet += 1
        if incident.quiet < self.config.end_after_minutes:
            return []
        del self._open[scope]
        return [End(incident.alert.id, at, scope, incident.alert.kind)]

    def _still_on(self, incident: _Open) -> bool:
        """Still departing, as any kind: a member still spending heavily (it is no longer new
        after a few hours), a team or the deployment passing any of its tests."""
        measured = incident.measured
        if measured not in self._busy:
            return False
        if measured[0] in (SESSION, USER, KEY):
            return judge.heavy(self.config, self._window[measured], self._scale)
        key = (TEAM, measured[1], "") if measured[0] == ERRORS else measured
        return key in self._window and self._judge(key) is not None

    def _excess(self, finding: judge.Finding) -> float:
        return max(finding.rate - finding.usual_rate, 0.0) * self._scale

    def _explained(self, key: Key, finding: judge.Finding) -> bool:
        """The whole deployment's departure that open incidents account for."""
        if key[0] != GLOBAL:
            return False
        within = sum(self._window.get(o.measured, (0.0, 0.0, 0.0))[COST] for o in self._open.values())
        return within >= EXPLAINED * self._excess(finding)

    def _judge(self, key: Key) -> judge.Finding | None:
        c, sums, scale = self.config, self._window[key], self._scale
        dims = key[0]
        if dims in (SESSION, USER, KEY) and not judge.heavy(c, sums, scale):
            return None  # the cheap test first: most members' minutes end here
        if dims == SESSION:
            active = sum(key in found for _, found in self._minutes)
            return judge.runaway(c, sums, active, self._hourly("peers", (SESSIONS, key[1], ""), self._peer_rate),
                                 scale, key)
        if dims in (USER, KEY):
            return judge.new_spender(c, sums, self._hourly("spent", key, self._hours_spent), self.usual_of(key),
                                     scale, key)
        u = self.usual_of(key)
        if u is None:
            return None
        if dims == GLOBAL:
            return judge.spike(c, sums, u, scale, key)
        if dims != TEAM:
            return None
        errors = (ERRORS, key[1], "")
        raised = sums[COST] >= u.cost * scale + self._floors[TEAM]  # what spike and size surge both need
        mixed = sums[COST] >= c.mix_factor * u.cost_per_request * sums[REQUESTS]  # and what a mix shift needs
        if errors not in self._busy and not raised and not mixed:
            return None
        if errors in self._busy:
            found = judge.error_surge(c, self._window[errors], self.usual_of(errors) or u, scale, errors)
            if found is not None:
                return found
        if mixed:
            usual_models = self._hourly("models", key, self._usual_models)
            found = judge.mix_shift(c, sums, self._models(key[1]), usual_models, scale, key)
            if found is not None:
                return found
        return judge.input_surge(c, sums, u, scale, key) or judge.spike(c, sums, u, scale, key)

    def _hour_now(self) -> int:
        assert self._hour is not None, "asked after a minute was fed"
        return self._hour

    def _hourly(self, what: str, key: Key, work: Callable[[Key], Any]) -> Any:
        """`work(key)`, once an hour: what it reads of the rings changes only as an hour closes."""
        found = self._cached.get((what, key), _MISSING)
        if found is _MISSING:
            found = self._cached[(what, key)] = work(key)
        return found

    def _hours_spent(self, key: Key) -> int:
        ring = self._rings.get(key)
        return ring.hours_spent(self._hour_now() - 4 * WEEK) if ring is not None else 0

    def _peer_rate(self, key: Key) -> float:
        ring = self._rings.get((SESSIONS, key[1], ""))
        if ring is None:
            return 0.0
        hours, costliest, _, _ = ring.since(self._hour_now() - 24)
        return float(costliest / hours) if hours > 0 else 0.0

    def _models(self, team: str) -> dict[str, list[float]]:
        window = self._window
        return {m: window[(MODEL, team, m)] for m in self._models_of.get(team, ()) if (MODEL, team, m) in window}

    def _usual_models(self, key: Key) -> dict[str, tuple[float, float]]:
        since, team = self._hour_now() - WEEK, key[1]
        found = {}
        for model in self._models_of.get(team, ()):
            ring = self._rings.get((MODEL, team, model))
            week = ring.since(since) if ring is not None else None
            if week is not None and week[REQUESTS] > 0:
                found[model] = (float(week[REQUESTS]), float(week[COST]))
        return found

    def _alert(self, key: Key, finding: judge.Finding, minute: int, at: float) -> Alert:
        scope, team = scope_of(key)
        since = self._since(finding, minute)
        so_far = sum(found.get(finding.measured, (0.0, 0.0, 0.0))[COST] for m, found in self._minutes if m >= since)
        contributors = self._contributors(key)
        factor = finding.factor if finding.factor is not None and math.isfinite(finding.factor) else None
        # the pace since it began (the window's average understates an incident minutes old)
        rate = max(finding.rate, so_far / (minute - since + 1) * 60)
        return Alert(finding.kind, scope, team, since, at, factor, rate, finding.usual_rate, so_far,
                     contributors, self._remedy(key, contributors), finding.detail)

    def _since(self, finding: judge.Finding, minute: int) -> int:
        """The first of the last run of the window's minutes that ran above the usual (by half):
        a burst followed by quiet minutes began with the burst, not with the minute evaluated."""
        per_minute = finding.usual_rate / 60 * 1.5
        high = {m for m, found in self._minutes if found.get(finding.measured, (0.0, 0.0, 0.0))[COST] > per_minute}
        if not high:
            return minute
        since = max(high)
        while since - 1 in high:
            since -= 1
        return since

    def _contributors(self, key: Key) -> list[dict[str, Any]]:
        """Who and what is behind the window's cost, with shares: a team's users, keys and
        models; the deployment's teams; a member's team."""
        dims, team, _ = key
        total = self._window[key][COST]
        if dims == GLOBAL:
            parts = [("team", k[1], s[COST]) for k, s in self._window.items() if k[0] == TEAM]
        elif dims in (TEAM, ERRORS):
            kinds = {USER: "user", KEY: "key", MODEL: "model"}
            parts = [(kinds[k[0]], k[2], s[COST]) for k, s in self._window.items() if k[0] in kinds and k[1] == team]
        else:
            team_total = self._window.get((TEAM, team, ""), (0.0, 0.0, 0.0))[COST]
            return [{"kind": "team", "name": team, "share": round(total / team_total, 3) if team_total else 1.0}]
        parts.sort(key=lambda p: -p[2])
        top: list[dict[str, Any]] = []
        for kind in ("user", "key", "model", "team"):
            top += [{"kind": k, "name": n, "share": round(c / total, 3)} for k, n, c in parts if k == kind][:3]
        return [c for c in top if c["share"] > 0]

    def _remedy(self, key: Key, contributors: list[dict[str, Any]]) -> str:
        """The command that would stop it: a day's budget of twice the scope's usual day (at
        least $1), on the user behind most of it where one is, revoking a new key, stopping a
        session."""
        dims, team, name = key
        if dims == SESSION:
            return f"tokenbrake sessions stop {name}"
        if dims == KEY:
            return f"tokenbrake keys revoke {name}"
        u = self.usual_of(key)
        amount = max(1, math.ceil(2 * u.daily_cost)) if u is not None else 1
        if dims == USER:
            return f"tokenbrake budgets set --scope user:{name} --amount {amount} --period day"
        users = [c for c in contributors if c["kind"] == "user" and c["share"] >= 0.5 and c["name"]]
        if users:
            member = self.usual_of((USER, team, users[0]["name"]))
            amount = max(1, math.ceil(2 * member.daily_cost)) if member is not None else 1
            return f"tokenbrake budgets set --scope user:{users[0]['name']} --amount {amount} --period day"
        scope = "global" if dims == GLOBAL else f"team:{team}"
        return f"tokenbrake budgets set --scope {scope} --amount {amount} --period day"
