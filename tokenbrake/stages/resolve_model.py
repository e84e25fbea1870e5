"""Turns the requested model name into its targets: the model itself, then its fallbacks."""

from __future__ import annotations

from typing import cast

from tokenbrake.config import Config
from tokenbrake.core import ErrorKind, GatewayError, RequestContext
from tokenbrake.routing.targets import build_targets


class ResolveModel:
    def __init__(self, config: Config) -> None:
        self.targets = build_targets(config)
        self.virtual = set(config.routes)  # the route stage gives these their targets

    async def before(self, ctx: RequestContext) -> None:
        name = cast(str, ctx.body.get("model"))  # a string: the front door checked the body
        ctx.requested_model = name
        targets = self.targets.get(name)
        if targets is None:
            if name in self.virtual:
                return
            allowed = ctx.who.allowed_models
            available = ", ".join(sorted(n for n in [*self.targets, *self.virtual] if allowed is None or n in allowed))
            raise GatewayError(
                ErrorKind.NOT_FOUND,
                f"The model '{name}' does not exist on this gateway. Available models: {available}",
                param="model",
                code="model_not_found",
            )
        ctx.targets = list(targets)
