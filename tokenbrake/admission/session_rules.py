"""Agent sessions: which rules apply to one, the refusals they give, and what operators do.

A session is named by the client (`X-Tokenbrake-Session`, or Anthropic `metadata.session_id`)
and always stored under its key's name as well, so two tenants using the same session id
never share a record. The `sessions.rules` of the config (config.SessionRuleConfig) say, per
scope (`global`, `key:NAME`, `team:NAME`):

- limits per session: calls, tokens, cost, wall-clock duration since its first call, calls
  per minute. Every rule the session falls under applies; the smallest value of each wins.
- `on_loop`: what the loop detector's verdict does (warn, throttle, stop, or off). The most
  specific rule that sets it wins (key, then team, then global), so a key can be let off
  more lightly (or more harshly) than the rest.

The CLI (`tokenbrake sessions`) and the admin API (`/admin/sessions`) call `find`,
`set_status` and `view` here, on the state backend the config names.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any

from tokenbrake.config import LoopAction, SessionRuleConfig, SessionsConfig
from tokenbrake.core import ErrorKind, GatewayError, RequestContext
from tokenbrake.limits import LimitStore, from_nanos, to_nanos
from tokenbrake.limits.types import SessionAdmission, SessionCaps, SessionRecord
from tokenbrake.loops import LoopDetector
from tokenbrake.scopes import SESSION_SCOPE_KINDS, ByScopeValues, in_scope, request_values, smallest, together
from tokenbrake.storage.reports import plain, usd
from tokenbrake.wire.retry_after import duration, retry_headers

ANONYMOUS = "-"  # the key name of sessions when keys are not required
LOOP_HEADER = "x-tokenbrake-loop"
SPECIFICITY = {"key": 0, "team": 1, "global": 2}
LIMIT_SETTINGS = ("max_calls", "max_tokens", "max_cost_usd", "max_duration_s", "calls_per_minute")


@dataclass(frozen=True, slots=True)
class Policy:
    """What applies to one session: its caps, the rule scope that set each, its loop action."""

    caps: SessionCaps
    scopes: dict[str, str]  # setting -> the scope of the rule whose value is the tightest
    on_loop: LoopAction

    @property
    def watches_loops(self) -> bool:
        return self.on_loop != "off"


class Rules:
    def __init__(self, settings: SessionsConfig) -> None:
        self.rules = [r for r in settings.rules if r.on_loop is not None or any(getattr(r, s) for s in LIMIT_SETTINGS)]
        self._policies = ByScopeValues(self._policy)  # by key and team: all that session rules are scoped by

    def __bool__(self) -> bool:
        return bool(self.rules)

    def policy(self, ctx: RequestContext) -> Policy | None:
        """The policy of the request's session, or None when no rule limits or watches it."""
        values = request_values(ctx)
        return self._policies({kind: values[kind] for kind in SESSION_SCOPE_KINDS})

    def _policy(self, values: dict[str, list[str]]) -> Policy | None:
        mine = in_scope(self.rules, values)
        held = {setting: rule for setting in LIMIT_SETTINGS
                for rule, _ in smallest(mine, attrgetter(setting), per=together)}
        on_loop = next((rule.on_loop for rule, _ in smallest(mine, _loop_specificity, per=together)), None)
        action: LoopAction = on_loop or "off"
        if not held and action == "off":
            return None
        value = {setting: getattr(rule, setting) for setting, rule in held.items()}
        caps = SessionCaps(
            max_calls=value.get("max_calls"), max_tokens=value.get("max_tokens"),
            max_cost_nanos=to_nanos(value["max_cost_usd"], up=False) if "max_cost_usd" in value else None,
            max_duration_s=value.get("max_duration_s"), calls_per_minute=value.get("calls_per_minute"))
        return Policy(caps, {setting: rule.scope for setting, rule in held.items()}, action)


def _loop_specificity(rule: SessionRuleConfig) -> int | None:
    """How specific a rule that sets `on_loop` is (the smallest wins); None for one that does not."""
    return None if rule.on_loop is None else SPECIFICITY[rule.scope.partition(":")[0]]


# -- refusals

def named(record: SessionRecord) -> str:
    return f"Session '{record.session}' of key '{record.key_name}'"


def refusal(admission: SessionAdmission, policy: Policy) -> GatewayError:
    """The 429 for a call the store refused. Only the per-minute limit is worth retrying: the
    others hold until the session ends (or an operator resumes it), so the SDKs are told not
    to retry (`x-should-retry: false`, which both honour)."""
    record, limit = admission.record, admission.refused
    assert limit is not None, "a refusal is for a refused call"
    if limit == "stopped":
        return stopped(record)
    value, cap = reached(limit, record, policy.caps)
    scope = policy.scopes[limit]
    message = f"{named(record)} reached its {limit} limit (sessions rule {scope}): {value}, limit {cap}."
    if limit == "calls_per_minute":
        return GatewayError(ErrorKind.RATE_LIMIT, f"{message} Please try again in {duration(admission.retry_after_s)}.",
                            code="session_limit_exceeded", limit=f"{scope} session {limit}",
                            headers=retry_headers(admission.retry_after_s))
    return GatewayError(ErrorKind.RATE_LIMIT, f"{message} Start a new session to go on.", code="session_limit_exceeded",
                        limit=f"{scope} session {limit}", headers={"x-should-retry": "false"})


def reached(limit: str, record: SessionRecord, caps: SessionCaps) -> tuple[str, str]:
    """What the session reached, and the cap, in words."""
    if limit == "max_calls":
        return f"{record.calls} calls made", f"{caps.max_calls}"
    if limit == "max_tokens":
        return f"{record.tokens} tokens used", f"{caps.max_tokens}"
    if limit == "max_cost_usd":
        assert caps.max_cost_nanos is not None  # the limit that was reached is set
        return f"{usd(record.cost)} spent", usd(from_nanos(caps.max_cost_nanos))
    if limit == "max_duration_s":
        return f"{record.last_seen - record.first_seen:.0f} s since its first call", f"{caps.max_duration_s:g} s"
    return f"{record.calls_last_minute} calls in the last minute", f"{caps.calls_per_minute}"


def stopped(record: SessionRecord, calls: int | None = None) -> GatewayError:
    """`calls`: those the session has made (default: the record's count)."""
    made = record.calls if calls is None else calls
    return GatewayError(
        ErrorKind.RATE_LIMIT,
        f"{named(record)} is stopped: {record.reason or 'stopped by an operator'}. "
        f"Evidence: {record.evidence or '-'}. So far it has made {made} calls costing "
        f"{usd(record.cost)}. An operator can resume it "
        f"(tokenbrake sessions resume {record.session} --key {record.key_name}).",
        code="session_stopped", limit="session stopped", headers={"x-should-retry": "false"})


# -- operators

class SessionNotFound(LookupError):
    pass


async def find(store: LimitStore, session: str, key_name: str | None = None) -> SessionRecord:
    """The one live session with this id (of this key, when given)."""
    if key_name is not None:
        record = await store.session_get(key_name, session)
        if record is None:
            raise SessionNotFound(f"no live session '{session}' of key '{key_name}'")
        return record
    found = [r for r in await store.session_list() if r.session == session]
    if not found:
        raise SessionNotFound(f"no live session '{session}'")
    if len(found) > 1:
        keys = ", ".join(sorted(r.key_name for r in found))
        raise SessionNotFound(f"session '{session}' exists under several keys ({keys}): name one with --key")
    return found[0]


async def set_status(store: LimitStore, settings: SessionsConfig, session: str, key_name: str | None,
                     stop: bool) -> SessionRecord:
    """Stops a session (every gateway refuses its calls), or resumes it. Resuming resets the
    loop detector's trace: what it has read stays read (else the loop still in the agent's
    conversation would stop it again at once), but the repetitions are forgotten, so only a
    whole new loop stops it again."""
    record = await find(store, session, key_name)
    trace = None if stop else LoopDetector(settings.loops).forgive(record.trace)
    changed = await store.session_set_status(record.key_name, record.session, stop, reason="stopped by an operator",
                                             evidence="tokenbrake sessions stop" if stop else None, trace=trace)
    if changed is None:
        raise SessionNotFound(f"session '{session}' ended meanwhile")
    return changed


def _when(epoch: float | None) -> str | None:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds") if epoch is not None else None


def view(record: SessionRecord, detail: bool = False) -> dict[str, Any]:
    """A session as JSON for the CLI and the admin API; `detail` adds the verdicts and the trace."""
    shown: dict[str, Any] = {
        "key": record.key_name, "session": record.session, "status": record.status, "reason": record.reason,
        "evidence": record.evidence, "first_seen": _when(record.first_seen), "last_seen": _when(record.last_seen),
        "duration_s": round(record.last_seen - record.first_seen, 3), "calls": record.calls, "tokens": record.tokens,
        "cost_usd": plain(record.cost), "calls_last_minute": record.calls_last_minute, "loop_calls": record.loop_calls,
        "stopped_at": _when(record.stopped_at),
    }
    if detail:
        shown |= {"verdicts": record.verdicts, "trace": record.trace}
    return shown
