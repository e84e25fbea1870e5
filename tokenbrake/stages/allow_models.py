"""Refuses a model the request's key may not use."""

from __future__ import annotations

from tokenbrake.core import ErrorKind, GatewayError, RequestContext


class AllowModels:
    async def before(self, ctx: RequestContext) -> None:
        allowed = ctx.who.allowed_models
        model = ctx.body.get("model")
        if allowed is not None and model not in allowed:
            raise GatewayError(
                ErrorKind.PERMISSION,
                f"API key '{ctx.who.key_name}' may not use model '{model}'. Allowed: {', '.join(allowed) or 'none'}",
                param="model",
                code="model_not_allowed",
            )
