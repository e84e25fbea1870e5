"""The providers' published prompt-caching rules, shared by the autopilot and the emulator.

Anthropic caches a prefix only at a `cache_control` breakpoint, at most four a request, and
only once the prefix reaches the model's minimum; a breakpoint also finds an entry written up
to 20 blocks before it. OpenAI caches automatically from 1,024 prompt tokens, in 128-token
steps. (docs.anthropic.com "Prompt caching"; platform.openai.com "Prompt caching", 2026.)
"""

from __future__ import annotations

MAX_BREAKPOINTS = 4
LOOKBACK_BLOCKS = 20
TTL_S = {"5m": 300.0, "1h": 3600.0}
DEFAULT_TTL = "5m"
OPENAI_MINIMUM = 1024
OPENAI_STEP = 128

# Most specific first: the first fragment found in the model name decides.
_ANTHROPIC_MINIMUMS = (
    ("opus-4-6", 4096), ("opus-4-5", 4096), ("haiku-4-5", 4096),
    ("sonnet-4-6", 2048), ("haiku", 2048),
)
ANTHROPIC_DEFAULT_MINIMUM = 1024  # Sonnet 4.5, 4, 3.7; Opus 4.1, 4, 3


def anthropic_minimum(model: str) -> int:
    """The fewest prefix tokens Anthropic caches for `model` (a shorter one is not cached)."""
    name = model.lower().replace(".", "-")
    return next((tokens for fragment, tokens in _ANTHROPIC_MINIMUMS if fragment in name), ANTHROPIC_DEFAULT_MINIMUM)


def openai_cached(matched: int, prompt: int) -> int:
    """The cached tokens OpenAI reports when `matched` leading tokens of a `prompt`-token
    prompt were seen before: none below the minimum, else the match in 128-token steps."""
    if prompt < OPENAI_MINIMUM or matched < OPENAI_MINIMUM:
        return 0
    return min(OPENAI_MINIMUM + (matched - OPENAI_MINIMUM) // OPENAI_STEP * OPENAI_STEP, prompt)
