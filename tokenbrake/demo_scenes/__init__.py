"""The scenes of `tokenbrake demo`, one module per capability.

A scene module has:
- `TITLE`: a heading printed before it plays;
- `KEYS`: the virtual keys it uses, as `{"name": ..., "team": ..., "models": [...] | None}`
  (created before the gateway starts; `play` gets every scene's keys by name);
- `configure(raw, emulator_url)`: adds what it needs to the demo's config dict;
- `play(gateway_url, keys)`: sends its traffic through the official SDKs and prints what
  happened with `line` and `click.echo`.
`tokenbrake.demo.SCENES` lists them in the order they play.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import anthropic
import click
import openai


def short(text: str, width: int = 64) -> str:
    text = re.sub(r"\s+", " ", text)
    return text if len(text) <= width else text[: width - 1] + "…"


def line(label: str, call: Callable[[], str]) -> None:
    """One request of a scene: its label, then what came back or the error the SDK raised."""
    try:
        outcome = call()
    except (openai.APIError, anthropic.APIError) as exc:
        outcome = f"{type(exc).__name__}: {short(str(exc), 200)}"
    click.echo(f"  {label:<50} {outcome}")
