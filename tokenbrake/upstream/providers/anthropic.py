"""Anthropic's Messages API. Its base URL has no `/v1`, as in the Anthropic SDK."""

from __future__ import annotations

from tokenbrake.core import Endpoint, Format
from tokenbrake.upstream.providers.base import Provider


class AnthropicProvider(Provider):
    kind = Format.ANTHROPIC
    paths = {
        Endpoint.CHAT: "/v1/messages",
        Endpoint.COUNT_TOKENS: "/v1/messages/count_tokens",
    }

    def auth_headers(self, api_key: str | None) -> dict[str, str]:
        headers = {"anthropic-version": self.config.anthropic_version}
        if api_key:
            headers["x-api-key"] = api_key
        return headers
