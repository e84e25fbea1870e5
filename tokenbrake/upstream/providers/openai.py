"""OpenAI and every OpenAI-compatible server (vLLM, llama.cpp, Ollama, LM Studio).

Their base URL ends in `/v1`, as in the OpenAI SDK.

The one field they read differently is the output cap. OpenAI's own API reads
`max_completion_tokens` (its reasoning models refuse the older `max_tokens`); the other
servers read `max_tokens`, and older llama.cpp and Ollama builds, or strict APIs such as
Mistral's, know nothing else. The gateway budgets, clamps and counts the cap the request
carries (`max_completion_tokens` when it has both), so that is the value each server gets,
in the field it reads: a server that ignored it could answer past the worst case a budget
reserved.
"""

from __future__ import annotations

from typing import Any

from tokenbrake.config import UpstreamConfig
from tokenbrake.core import Endpoint, Format
from tokenbrake.settlement.pricing import provider_id
from tokenbrake.upstream.providers.base import Provider

CAP_FIELDS = ("max_completion_tokens", "max_tokens")  # the first wins when a request has both
READS_MAX_COMPLETION_TOKENS = frozenset({"openai", "azure"})  # catalog provider ids


def serves_responses(config: UpstreamConfig) -> bool:
    """Whether the upstream serves OpenAI's Responses API itself (`responses_api`; unset: only
    OpenAI's own API does)."""
    if config.kind != "openai":
        return False
    return config.responses_api if config.responses_api is not None else provider_id(config) == "openai"


class OpenAIProvider(Provider):
    kind = Format.OPENAI
    paths = {
        Endpoint.CHAT: "/chat/completions",
        Endpoint.EMBEDDINGS: "/embeddings",
        Endpoint.RESPONSES: "/responses",
    }

    def __init__(self, name: str, config: UpstreamConfig) -> None:
        super().__init__(name, config)
        self.cap_field = config.output_cap_field or (
            "max_completion_tokens" if provider_id(config) in READS_MAX_COMPLETION_TOKENS else "max_tokens"
        )
        self.other_cap_field = next(field for field in CAP_FIELDS if field != self.cap_field)
        self.responses_api = serves_responses(config)

    def auth_headers(self, api_key: str | None) -> dict[str, str]:
        return {"authorization": f"Bearer {api_key}"} if api_key else {}

    def wire_body(self, endpoint: Endpoint, body: dict[str, Any]) -> dict[str, Any]:
        """The request's output cap in the field this server reads, and only there."""
        if endpoint is not Endpoint.CHAT or self.other_cap_field not in body:
            return body
        cap = next((body[field] for field in CAP_FIELDS if body.get(field) is not None), None)
        body = {key: value for key, value in body.items() if key not in CAP_FIELDS}
        if cap is not None:
            body[self.cap_field] = cap
        return body
