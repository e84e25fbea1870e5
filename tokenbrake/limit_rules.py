"""Which `limits:` entries apply to a request, and the counter each one names for it.

A limit entry (config.LimitConfig) sets any of rate limits and per-request caps on a scope.
For one setting (`requests_per_minute`, `max_input_tokens`, ...) a request falls under every
entry that sets it and whose scope it is in; `user:*` names one counter per user
(`user:alice`, within the key's tenant unless `across_tenants`: scopes.py). When two entries
name the same counter (`user:*` and `user:alice`), the smaller value wins, so a counter is
checked once, against its tightest value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tokenbrake.config import LimitConfig
from tokenbrake.scopes import ByScopeValues, counter_keys, describe_counter, split_tenant

Setting = Literal["requests_per_minute", "tokens_per_minute", "concurrent", "max_input_tokens", "max_output_tokens"]


@dataclass(frozen=True, slots=True)
class AppliedLimit:
    """One setting of one limit entry as it applies to a request."""

    scope: str  # as configured: `user:*`
    key: str  # the counter it names for this request: `team:search/user:alice`
    setting: Setting
    value: int

    def describe(self) -> str:
        """`team:search`, `user:alice in team:search`, or `user:alice in team:search (limit user:*)`."""
        shown = describe_counter(self.scope, self.key)
        return shown if split_tenant(self.scope, self.key)[1] == self.scope else f"{shown} (limit {self.scope})"


def setting_in(limits: list[LimitConfig], *settings: Setting) -> list[LimitConfig]:
    """The entries that set any of `settings`: a stage keeps only these, and has no work
    at all when none is left."""
    return [limit for limit in limits if any(getattr(limit, s) is not None for s in settings)]


def applicable(limits: list[LimitConfig], setting: Setting, values: dict[str, list[str]]) -> list[AppliedLimit]:
    chosen: dict[str, AppliedLimit] = {}
    for limit in limits:
        value = getattr(limit, setting)
        if value is None:
            continue
        for key in counter_keys(limit.scope, values, limit.across_tenants):
            held = chosen.get(key)
            if held is None or value < held.value:
                chosen[key] = AppliedLimit(limit.scope, key, setting, value)
    return list(chosen.values())


class ApplicableLimits(ByScopeValues[dict[Setting, list[AppliedLimit]]]):
    """`applicable` for each of a stage's settings, for its fixed limit entries, remembered by
    the request's scope values: working every entry out again for each request (a pass per
    setting) cost more than the rest of the stage's own work."""

    def __init__(self, limits: list[LimitConfig], settings: tuple[Setting, ...], max_entries: int = 10_000) -> None:
        super().__init__(lambda values: {s: applicable(limits, s, values) for s in settings}, max_entries)


def tightest(applied: list[AppliedLimit]) -> AppliedLimit | None:
    return min(applied, key=lambda a: a.value, default=None)
