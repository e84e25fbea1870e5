"""Which configured scopes a request falls in, and the counter each one names for it.

A scope is `global` or KIND:NAME (config.check_scope). `team:search` names one counter
shared by that team; `user:*` names one counter per user (`user:alice`), and a request with
no user is outside it. A request's model, for its caps and rate limits, is the one about to
be called; for its budgets, every model it may be served or charged by.

End users and tags are whatever the client says, so their counters are per tenant: the
key's team (`team:search`), or the key itself when it has no team (`key:bot`). Tenant
`team:search`'s alice counts in `team:search/user:alice`, apart from every other tenant's
alice, unless the rule is `across_tenants` (one `user:alice` for all). The tenant's `/` and
`%` are escaped, so the first `/` ends it. An anonymous request (auth.require_keys off) has
no tenant. `key:`, `team:`, `model:` and `global` counters are the same for every tenant.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from tokenbrake.config import TENANT_SCOPE_KINDS
from tokenbrake.core import Attribution, RequestContext

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
        "tenant": [tenant] if (tenant := tenant_of(who)) else [],
    }


def tenant_of(who: Attribution) -> str | None:
    """The tenant whose user and tag counters a request counts in: its key's team, or its key
    when that has no team; None for an anonymous request."""
    if who.team:
        return f"team:{who.team}"
    return f"key:{who.key_name}" if who.key_name else None


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
    """The (first) counter `scope` names for a request with these values, or None if it is
    outside the scope."""
    keys = counter_keys(scope, values)
    return keys[0] if keys else None


def counter_keys(scope: str, values: dict[str, list[str]], across_tenants: bool = False) -> list[str]:
    """The counters `scope` names for a request with these values: a `*` scope one per name
    the request has for it (`tag:*` one per tag it carries, `model:*` for its budgets one per
    model); a user or tag counter within the request's tenant unless `across_tenants`."""
    kind, _, name = scope.partition(":")
    if name == "*":
        keys = [f"{kind}:{value}" for value in values.get(kind, [])]
    elif scope == "global" or name in values.get(kind, []):
        keys = [scope]
    else:
        return []
    tenant = values.get("tenant")
    if across_tenants or not tenant or kind not in TENANT_SCOPE_KINDS:
        return keys
    within = tenant[0].replace("%", "%25").replace("/", "%2F") + "/"
    return [within + key for key in keys]


def split_tenant(scope: str, key: str) -> tuple[str | None, str]:
    """(tenant, counter) of a counter `scope` named: `team:a/user:alice` → ("team:a",
    "user:alice"); (None, key) for one that every tenant shares."""
    if scope.partition(":")[0] not in TENANT_SCOPE_KINDS or not key.startswith(("team:", "key:")):
        return None, key
    within, _, counter = key.partition("/")
    return within.replace("%2F", "/").replace("%25", "%"), counter


def describe_counter(scope: str, key: str) -> str:
    """A counter as a refusal names it: `user:alice in team:search`, `team:search`."""
    tenant, counter = split_tenant(scope, key)
    return counter if tenant is None else f"{counter} in {tenant}"


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
