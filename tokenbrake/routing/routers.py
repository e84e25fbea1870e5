"""The trained routers a config's virtual models score requests with, loaded once at start-up."""

from __future__ import annotations

from dataclasses import dataclass, replace

from tokenbrake.config import Config, ConfigError
from tokenbrake.router.scoring import scorer_for
from tokenbrake.routing.targets import build_targets
from tokenbrake.routing.virtual import VirtualModel, build_virtual_models, reroute_rules, share_thresholds


@dataclass(frozen=True)
class Routes:
    """A config's virtual models, the rules that reroute concrete models to them, and the scorer of
    each that routes with a trained router. Building them checks the `routes:` section whole, so
    `check-config` and `serve` refuse the same configs."""
    models: dict[str, VirtualModel]
    reroutes: dict
    scorers: dict


def build_routes(config: Config) -> Routes:
    models = build_virtual_models(config, build_targets(config))
    reroutes = reroute_rules(config, models)
    return Routes(models, reroutes, load_routers(models))  # load_routers also fills in thresholds


def load_routers(models: dict[str, VirtualModel]) -> dict:
    """The scorer of each virtual model with the router strategy, each router loaded once, at
    start-up (a missing or broken file stops the gateway from starting, not a request). A
    model without thresholds gets those its strong_share calls for, from its router."""
    from tokenbrake.router.classifier import load_router

    loaded: dict[str | None, tuple] = {}  # router, and its scorer (shared: one worker thread per router)
    scorers = {}
    for name, model in list(models.items()):
        if model.strategy != "router":
            continue
        path = model.router_path
        if path not in loaded:
            try:
                router = load_router(path)
                loaded[path] = (router, scorer_for(router))
            except (OSError, ValueError, KeyError) as exc:
                raise ConfigError(f"routes.{model.name}.router: cannot load {path}: {exc}") from None
        router, scorer = loaded[path]
        if not model.thresholds:
            try:
                thresholds = share_thresholds(router, len(model.tiers), model.strong_share)
            except ValueError as exc:
                raise ConfigError(f"routes.{model.name}: set thresholds: {exc}") from None
            models[name] = replace(model, thresholds=thresholds)
        scorers[name] = scorer
    return scorers
