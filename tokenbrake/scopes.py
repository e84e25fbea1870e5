"""Scopes: what a rule applies to, which scopes a request falls in, and the counter each one
names for it.

A scope is `global` or KIND:NAME, KIND one of key, team, user, model, tag (`check_scope`,
which the config's validation calls). `team:search` names one counter shared by that team;
`user:*` names one counter per user (`user:alice`), and a request with no user is outside it.
A request's model, for its caps and rate limits, is the one about to be called; for its
budgets, every model it may be served or charged by.

End users and tags are whatever the client says, so their counters are per tenant: the
key's team (`team:search`), or the key itself when it has no team (`key:bot`). Tenant
`team:search`'s alice counts in `team:search/user:alice`, apart from every other tenant's
alice, unless the rule is `across_tenants` (one `user:alice` for all). The tenant's `/` and
`%` are escaped, so the first `/` ends it. An anonymous request (auth.require_keys off) has
no tenant. `key:`, `team:`, `model:` and `global` counters are the same for every tenant.

Budgets, limit entries and session rules all apply to a request the same way: every rule
whose scope it is in (`in_scope`), and of the rules naming one counter, the one of smallest
value (`smallest`).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import Any, Generic, Protocol, TypeVar

from tokenbrake.core import Attribution, RequestContext


class ScopedRule(Protocol):
    """A configured rule on a scope: a budget, a limit entry, a session rule."""

    @property
    def scope(self) -> str: ...

    @property
    def across_tenants(self) -> bool: ...


T = TypeVar("T")
R = TypeVar("R", bound=ScopedRule)

SCOPE_KINDS = ("global", "key", "team", "user", "model", "tag")
# Scope kinds whose names the client asserts (X-Tokenbrake-User, X-Tokenbrake-Tags): counted
# per tenant (the key's team, or the key), so one tenant's `alice` never spends another's.
TENANT_SCOPE_KINDS = ("user", "tag")
SESSION_SCOPE_KINDS = ("key", "team")  # a session rule's, besides global


def check_scope(scope: str) -> str:
    """`global`, or KIND:NAME with KIND one of key, team, user, model, tag (tag names are
    `name=value`); NAME `*` means each one separately (`user:*`: every user has its own)."""
    kind, sep, name = scope.partition(":")
    if scope == "global":
        return scope
    if kind not in SCOPE_KINDS[1:] or not sep or not name:
        raise ValueError(f"scope {scope!r}: expected global or key|team|user|model|tag:NAME (NAME may be *)")
    if kind == "tag" and name != "*" and "=" not in name:
        raise ValueError(f"scope {scope!r}: a tag scope is tag:name=value")
    return scope


def check_across_tenants(scope: str, across_tenants: bool) -> None:
    if across_tenants and scope.partition(":")[0] not in TENANT_SCOPE_KINDS:
        raise ValueError(f"across_tenants: only user: and tag: scopes count per tenant; {scope!r} is one counter "
                         f"for everyone already (remove across_tenants)")


def check_session_scope(scope: str) -> str:
    """A session rule's scope: `global`, `key:NAME` or `team:NAME`."""
    check_scope(scope)
    if scope != "global" and (scope.partition(":")[0] not in SESSION_SCOPE_KINDS or scope.endswith(":*")):
        raise ValueError(f"scope {scope!r}: a session rule's scope is global, key:NAME or team:NAME")
    return scope


def counts_per_tenant(scope: str, across_tenants: bool) -> bool:
    """Whether `scope` names a counter per tenant: a user or tag scope, unless `across_tenants`."""
    return scope.partition(":")[0] in TENANT_SCOPE_KINDS and not across_tenants


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
    if not tenant or not counts_per_tenant(scope, across_tenants):
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


def in_scope(rules: Iterable[R], values: dict[str, list[str]]) -> list[tuple[R, str]]:
    """Each rule a request with these values falls under, with each counter it names for the
    request (`counter_keys`), in order."""
    return [(rule, key) for rule in rules for key in counter_keys(rule.scope, values, rule.across_tenants)]


def per_counter(rule: object, key: str) -> Hashable:
    return key


def together(rule: object, key: str) -> Hashable:
    """One group for all: the rules a session falls under all limit that one session."""
    return None


def smallest(found: Iterable[tuple[R, str]], value: Callable[[R], Any],
             per: Callable[[R, str], Hashable] = per_counter) -> list[tuple[R, str]]:
    """Of the (rule, counter) pairs `in_scope` found, for each counter (or whatever else `per`
    groups them by) the one whose rule's `value` is smallest, the first of equals; a rule whose
    value is None does not set it and is left out. In the order the groups were first found."""
    chosen: dict[Hashable, tuple[Any, R, str]] = {}
    for rule, key in found:
        rank = value(rule)
        if rank is None:
            continue
        group = per(rule, key)
        held = chosen.get(group)
        if held is None or rank < held[0]:
            chosen[group] = (rank, rule, key)
    return [(rule, key) for _, rule, key in chosen.values()]


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
        try:
            return self._found[key]
        except KeyError:  # None is an answer too (no session policy)
            if len(self._found) >= self.max_entries:
                self._found.clear()
            found = self._found[key] = self.work(values)
            return found
