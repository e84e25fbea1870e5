"""OpenAI and every OpenAI-compatible server (vLLM, llama.cpp, Ollama, LM Studio).

Their base URL ends in `/v1`, as in the OpenAI SDK.
"""

from __future__ import annotations

from tokenbrake.core import Endpoint, Format
from tokenbrake.providers.base import Provider


class OpenAIProvider(Provider):
    kind = Format.OPENAI
    paths = {
        Endpoint.CHAT: "/chat/completions",
        Endpoint.EMBEDDINGS: "/embeddings",
        Endpoint.MODELS: "/models",
    }

    def auth_headers(self, api_key: str | None) -> dict[str, str]:
        return {"authorization": f"Bearer {api_key}"} if api_key else {}
