"""How an emulator instance behaves when a request does not say otherwise."""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_MODELS = [
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
    "o3-mini",
    "text-embedding-3-small",
    "text-embedding-3-large",
    "claude-opus-4-1",
    "claude-sonnet-4-5",
    "claude-haiku-4-5",
    "claude-3-5-haiku-latest",
]


@dataclass(slots=True)
class EmulatorSettings:
    """Defaults for every request; per-request directives override the timing and length.

    `tokens_per_s=0` streams without delay between tokens; `api_key=None` accepts any key.
    `prompt_caching=False` reports no cached input unless a directive (`cached=N`) asks.
    Models are only listed by `GET /v1/models`; requests may name any model.
    """

    ttft_ms: float = 0.0
    tokens_per_s: float = 0.0
    output_tokens: int = 32
    api_key: str | None = None
    models: list[str] = field(default_factory=lambda: list(DEFAULT_MODELS))
    embedding_dimensions: int = 256
    journal_size: int = 10_000
    prompt_caching: bool = True  # emulate the providers' prompt caches (prompt_cache.py)

    def __post_init__(self) -> None:
        if self.ttft_ms < 0 or self.tokens_per_s < 0:
            raise ValueError("ttft_ms and tokens_per_s must not be negative")
        if self.output_tokens < 0:
            raise ValueError("output_tokens must not be negative")
        if self.embedding_dimensions < 1 or self.journal_size < 1:
            raise ValueError("embedding_dimensions and journal_size must be positive")
