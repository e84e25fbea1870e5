"""A fake LLM provider speaking the real OpenAI and Anthropic wire formats (`tokenbrake emulate`).

Replies are deterministic and exact in tokens; per-request directives aim behaviour and
faults at single requests (see `directives`); `/_emulator/requests` shows what it received.
"""

from tokenbrake.tools.emulator.app import build_app
from tokenbrake.tools.emulator.settings import DEFAULT_MODELS, EmulatorSettings

__all__ = ["DEFAULT_MODELS", "EmulatorSettings", "build_app"]
