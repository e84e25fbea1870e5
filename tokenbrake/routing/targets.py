"""Each model's targets, in the order a request tries them: the model itself, then its fallbacks."""

from __future__ import annotations

from tokenbrake.config import Config
from tokenbrake.core import Format, Target


def build_targets(config: Config) -> dict[str, list[Target]]:
    def target(name: str) -> Target:
        model = config.models[name]
        kind = Format(config.upstreams[model.upstream].kind)
        return Target(name=name, upstream=model.upstream, kind=kind, upstream_model=model.model or name)

    return {name: [target(name)] + [target(f) for f in model.fallbacks] for name, model in config.models.items()}
