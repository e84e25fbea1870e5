"""Per-request caps from the `limits:` entries whose scope the request is in.

`max_input_tokens`: a chat request whose counted input is above the tightest cap is refused
with a 400 `context_length_exceeded` (what OpenAI and Anthropic answer for a prompt too
long; each SDK raises BadRequestError), naming the count, the cap and the scope that set it.
`max_output_tokens`: a request whose output cap (`max_tokens`, or the model's default when
it sets none) is above the tightest cap is clamped to it. Runs before rate limits and
budgets, so they count the clamped cap.

A model's own output limit (`models.<name>.max_output_tokens`) clamps the same way: a client
that does not know what an alias stands for may ask for 128,000 output tokens of a model that
produces at most 8,192, which the provider would refuse.

Only chat requests are capped (an embeddings request has no output; counting tokens costs
nothing). No shared state: a cap is a property of one request.
"""

from __future__ import annotations

from tokenbrake.admission.limit_rules import ApplicableLimits, AppliedLimit, setting_in, tightest
from tokenbrake.config import Config
from tokenbrake.core import Endpoint, ErrorKind, GatewayError, RequestContext
from tokenbrake.scopes import scope_values
from tokenbrake.wire import request_size


def input_refusal(caps: list[AppliedLimit], counted: int) -> GatewayError | None:
    """The refusal of a request with `counted` input tokens, or None when every cap allows it."""
    cap = tightest(caps)
    if cap is None or counted <= cap.value:
        return None
    return GatewayError(
        ErrorKind.INVALID_REQUEST,
        f"This request has {counted} input tokens, more than the {cap.value} allowed per request for "
        f"{cap.describe()} (max_input_tokens). Shorten the prompt, or send only the parts that matter.",
        param="messages", code="context_length_exceeded", limit=f"{cap.scope} max_input_tokens",
    )


def output_clamp(caps: list[AppliedLimit], asked: int) -> int | None:
    """The output cap to clamp a request asking for `asked` tokens to, or None to leave it."""
    cap = tightest(caps)
    return cap.value if cap is not None and asked > cap.value else None


class RequestCaps:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.limits = setting_in(config.limits, "max_input_tokens", "max_output_tokens")
        self._applicable = ApplicableLimits(self.limits, ("max_input_tokens", "max_output_tokens"))
        self.model_limits = {name: m.max_output_tokens for name, m in config.models.items() if m.max_output_tokens}

    async def before(self, ctx: RequestContext) -> None:
        if ctx.endpoint is not Endpoint.CHAT:
            return
        if self.model_limits:
            self._clamp_to_models(ctx)
        if not self.limits:
            return
        applied = self._applicable(scope_values(ctx))
        input_caps = applied["max_input_tokens"]
        if input_caps and (refusal := input_refusal(input_caps, request_size.input_tokens(ctx))):
            raise refusal
        output_caps = applied["max_output_tokens"]
        if output_caps and (clamped := output_clamp(output_caps, request_size.output_cap(ctx, self.config))):
            request_size.clamp_output(ctx, clamped)

    def _clamp_to_models(self, ctx: RequestContext) -> None:
        """The output cap lowered to the least that any of the request's targets can produce."""
        limits = [self.model_limits[t.name] for t in ctx.targets if t.name in self.model_limits]
        asked = request_size.asked_output(ctx)
        if limits and asked is not None and asked > min(limits):
            request_size.clamp_output(ctx, min(limits))
