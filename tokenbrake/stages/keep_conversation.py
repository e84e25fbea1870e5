"""The Responses API conversations the gateway keeps: `previous_response_id` and storing.

before: a request with a field only a Responses upstream serves, whose model is served
elsewhere, is refused; a request that continues a response the gateway kept (for this key) gets that
conversation as its history, and its chat translation is made again with it; one the gateway
did not keep for this key is a 404. Only when the gateway keeps nothing (`responses.store:
false`) does `previous_response_id` go on to an upstream that speaks Responses, which keeps
them itself: that upstream answers for the gateway's own credentials, whatever the key, so
while the gateway keeps conversations it is the only one asked, and no key continues another's. after: a completed response is kept, unless the request
or the config says not to.
"""

from __future__ import annotations

from tokenbrake.config import Config
from tokenbrake.core import ErrorKind, GatewayError, RequestContext
from tokenbrake.storage.responses import KeptResponse, ResponseStore
from tokenbrake.upstream.providers.openai import serves_responses
from tokenbrake.wire.responses_api import Exchange
from tokenbrake.wire.responses_api.requests import refuse_native_only, to_chat

KEPT_STATUSES = ("completed", "incomplete")


class Conversations:
    def __init__(self, config: Config, store: ResponseStore) -> None:
        self.store = store
        self.keep = config.responses.store
        self.retention_s = config.responses.retention_s
        self.native = {name for name, upstream in config.upstreams.items() if serves_responses(upstream)}

    async def before(self, ctx: RequestContext) -> None:
        ex: Exchange | None = ctx.responses
        if ex is None:
            return
        native = bool(ctx.targets) and ctx.targets[0].upstream in self.native
        if not native and ctx.targets:
            refuse_native_only(ex, ctx.targets[0].upstream)  # before anything is reserved or spent
        previous = ex.body.get("previous_response_id")
        if not previous:
            return
        kept = await self.store.find(ctx.who.key_name, previous) if self.keep else None
        if kept is not None:
            ex.history = [*kept.input_items, *kept.response.get("output", [])]
            ex.continues = previous
            ctx.body = to_chat(ex)
        elif self.keep or not native:
            raise GatewayError(
                ErrorKind.NOT_FOUND,
                f"Previous response with id '{previous}' not found: this gateway keeps no such response for this "
                f"API key (it was made with store: false or by another key, was deleted, or is older than "
                f"responses.retention_s). Send the whole conversation in `input` instead.",
                param="previous_response_id", code="previous_response_not_found",
            )

    async def after(self, ctx: RequestContext) -> None:
        ex: Exchange | None = ctx.responses
        if ex is None or ex.final is None or not (self.keep and ex.store) or ctx.error is not None:
            return
        if ex.final.get("status") not in KEPT_STATUSES:
            return
        kept = KeptResponse(str(ex.final.get("id") or ex.response_id), [*ex.history, *ex.input_items], ex.final)
        await self.store.keep(ctx.who.key_name, kept, self.retention_s)
