"""An anomaly alert as every output shows it (the log, the webhook, the API, the CLI, replay),
and the line that says an incident is over.

An alert's id is a hash of its scope, kind and the minute its incident began: replicas that
read the same rollups compute the same id, and the shared table keeps it once
(storage/alert_rows.py)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

KINDS = ("spend_spike", "new_heavy_spender", "input_size_surge", "runaway_session", "error_cost_surge",
         "model_mix_shift")
WHAT = {"spend_spike": "spend spike", "new_heavy_spender": "new heavy spender",
        "input_size_surge": "input-size surge", "runaway_session": "runaway session",
        "error_cost_surge": "error-cost surge", "model_mix_shift": "model mix shift"}


def moment(minute: float) -> datetime:
    """A minute number (minutes since the epoch) as a UTC time."""
    return datetime.fromtimestamp(minute * 60, UTC)


def iso(minute: float) -> str:
    """A minute number as the API writes times (seconds kept where it has them)."""
    return moment(minute).isoformat().replace("+00:00", "Z")


def alert_id(scope: str, kind: str, since: int) -> str:
    return "an-" + hashlib.sha256(f"{scope}|{kind}|{since}".encode()).hexdigest()[:20]


@dataclass(slots=True)
class Alert:
    kind: str
    scope: str  # global, team:T, key:K, team:T/user:U, team:T/session:S
    team: str | None
    since: int  # the minute the incident began
    at: float  # when it was raised, in minutes since the epoch (after the last minute read)
    factor: float | None  # against the usual (None: it has none, a new spender)
    rate_usd_per_hour: float
    usual_usd_per_hour: float
    cost_so_far_usd: float
    contributors: list[dict[str, Any]]
    remedy: str
    detail: str  # what departed, in words
    id: str = field(default="")

    def __post_init__(self) -> None:
        if not self.id:
            self.id = alert_id(self.scope, self.kind, self.since)

    @property
    def projected_usd_per_day(self) -> float:
        return self.rate_usd_per_hour * 24

    def view(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "scope": self.scope, "team": self.team, "since": iso(self.since),
                "at": iso(self.at), "factor": None if self.factor is None else round(float(self.factor), 2),
                "rate_usd_per_hour": round(self.rate_usd_per_hour, 4),
                "usual_usd_per_hour": round(self.usual_usd_per_hour, 4),
                "cost_so_far_usd": round(self.cost_so_far_usd, 4),
                "projected_usd_per_day": round(self.projected_usd_per_day, 2),
                "contributors": self.contributors, "remedy": self.remedy, "detail": self.detail}

    def text(self) -> str:
        """One line for the log and Slack's `text`."""
        factor = f" ({self.factor:.1f}x its usual)" if self.factor is not None else ""
        top = ", ".join(f"{c['kind']} {c['name']} {c['share']:.0%}" for c in self.contributors[:3])
        return (f"{WHAT[self.kind]} on {self.scope} since {iso(self.since)}: {self.detail}{factor}; "
                f"${self.rate_usd_per_hour:.2f}/h now, ${self.cost_so_far_usd:.2f} so far, "
                f"${self.projected_usd_per_day:.2f}/day if it goes on"
                + (f"; top: {top}" if top else "") + f". Stop it: {self.remedy}")


@dataclass(frozen=True, slots=True)
class End:
    id: str
    ended_at: float  # when it was seen over, in minutes since the epoch
    scope: str = ""
    kind: str = ""

    def view(self) -> dict[str, Any]:
        return {"id": self.id, "ended_at": iso(self.ended_at)}

    def text(self) -> str:
        return f"{WHAT.get(self.kind, 'anomaly')} on {self.scope} is over ({self.id}, at {iso(self.ended_at)})"
