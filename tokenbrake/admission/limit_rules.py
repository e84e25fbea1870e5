"""Which `limits:` entries apply to a request, and the counter each one names for it.

A limit entry (config.LimitRuleConfig) sets any of rate limits and per-request caps on a scope.
For one setting (`requests_per_minute`, `max_input_tokens`, ...) a request falls under every
entry that sets it and whose scope it is in; `user:*` names one counter per user
(`user:alice`, within the key's tenant unless `across_tenants`: scopes.py). When two entries
name the same counter (`user:*` and `user:alice`), the smaller value wins, so a counter is
checked once, against its tightest value.
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import attrgetter
from typing import Literal

from tokenbrake.config import LimitRuleConfig
from tokenbrake.scopes import ByScopeValues, describe_counter, in_scope, smallest, split_tenant

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


def setting_in(limits: list[LimitRuleConfig], *settings: Setting) -> list[LimitRuleConfig]:
    """The entries that set any of `settings`: a stage keeps only these, and has no work
    at all when none is left."""
    return [limit for limit in limits if any(getattr(limit, s) is not None for s in settings)]


def applicable(limits: list[LimitRuleConfig], setting: Setting, values: dict[str, list[str]]) -> list[AppliedLimit]:
    return _applied(in_scope(limits, values), setting)


def _applied(found: list[tuple[LimitRuleConfig, str]], setting: Setting) -> list[AppliedLimit]:
    return [AppliedLimit(limit.scope, key, setting, getattr(limit, setting))
            for limit, key in smallest(found, attrgetter(setting))]


class ApplicableLimits(ByScopeValues[dict[Setting, list[AppliedLimit]]]):
    """`applicable` for each of a stage's settings, for its fixed limit entries, remembered by
    the request's scope values: working every entry out again for each request (a pass per
    setting) cost more than the rest of the stage's own work."""

    def __init__(self, limits: list[LimitRuleConfig], settings: tuple[Setting, ...], max_entries: int = 10_000) -> None:
        super().__init__(lambda values: _each(in_scope(limits, values), settings), max_entries)


def _each(found: list[tuple[LimitRuleConfig, str]], settings: tuple[Setting, ...]) -> dict[Setting, list[AppliedLimit]]:
    return {setting: _applied(found, setting) for setting in settings}


def tightest(applied: list[AppliedLimit]) -> AppliedLimit | None:
    return min(applied, key=lambda a: a.value, default=None)
