"""Which configured scopes a request falls in, and the counter each one names for it.

A scope is `global` or KIND:NAME (config.check_scope). `team:search` names one counter
shared by that team; `user:*` names one counter per user (`user:alice`), and a request with
no user is outside it. A request's model, for its caps and rate limits, is the one about to
be called; for its budgets, every model it may be served or charged by.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from tokenbrake.core import RequestContext

T = TypeVar("T")


def request_values(ctx: RequestContext) -> dict[str, list[str]]:
    """The names a request has for each kind of scope."""
    who = ctx.who
    model = ctx.served.name if ctx.served else ctx.requested_model
    return {
        "key": [who.key_name] if who.key_name else [],
        "team": [who.team] if who.team else [],
        "user": [who.user] if who.user else [],
        "model": [model] if model else [],
        "tag": [f"{name}={value}" for name, value in who.tags.items()],
    }


def scope_values(ctx: RequestContext) -> dict[str, list[str]]:
    """The request's scope names for its caps and rate limits: its model is the one about to
    be called (the first target), not the one asked for."""
    values = request_values(ctx)
    if ctx.targets:
        values["model"] = [ctx.targets[0].name]
    return values


def budget_values(ctx: RequestContext, models: list[str]) -> dict[str, list[str]]:
    """The request's scope names for its budgets: its models are all those it may be served or
    charged by (fallbacks, a cascade's tiers and graders), so each of their budgets holds."""
    return {**request_values(ctx), "model": models}


def counter_key(scope: str, values: dict[str, list[str]]) -> str | None:
    """The counter `scope` names for a request with these values, or None if it is outside."""
    if scope == "global":
        return "global"
    kind, _, name = scope.partition(":")
    present = values.get(kind, [])
    if name == "*":
        return f"{kind}:{present[0]}" if present else None
    return scope if name in present else None


def counter_keys(scope: str, values: dict[str, list[str]]) -> list[str]:
    """Like `counter_key`, but a `*` scope names one counter per name the request has for it
    (`tag:*` one per tag it carries, `model:*` for its budgets one per model)."""
    kind, _, name = scope.partition(":")
    if name == "*":
        return [f"{kind}:{value}" for value in values.get(kind, [])]
    key = counter_key(scope, values)
    return [key] if key else []


class ByScopeValues(Generic[T]):
    """`work(values)` remembered by a request's scope values: most requests come from a few
    keys, teams, users and models, and what their configured scopes name is worked out once.
    Bounded, since a `user:*` scope makes one entry per end user: full, it starts afresh.
    What it returns is shared between requests: read it, never change it."""

    def __init__(self, work: Callable[[dict[str, list[str]]], T], max_entries: int = 10_000) -> None:
        self.work = work
        self.max_entries = max_entries
        self._found: dict[tuple, T] = {}

    def __call__(self, values: dict[str, list[str]]) -> T:
        key = tuple((kind, tuple(names)) for kind, names in values.items())
        found = self._found.get(key)
        if found is None:
            if len(self._found) >= self.max_entries:
                self._found.clear()
            found = self._found[key] = self.work(values)
        return found
