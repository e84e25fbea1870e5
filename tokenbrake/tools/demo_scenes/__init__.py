"""The scenes of `tokenbrake demo`, one module per capability.

A scene module has:
- `TITLE`: a heading printed before it plays;
- `KEYS`: the virtual keys it uses, as `{"name": ..., "team": ..., "models": [...] | None}`
  (created before the gateway starts; `play` gets every scene's keys by name);
- `configure(raw, emulator_url)`: adds what it needs to the demo's config dict;
- optionally `seed(db)` (async): writes what it needs into the demo's database before the
  gateway starts (past usage, say);
- `play(run)`: sends its traffic through the official SDKs to `run.url` with `run.keys`
  (every scene's keys by name) and prints what happened with `line` and `say`, within WIDTH
  columns.
`tokenbrake.tools.demo.SCENES` lists them in the order they play.

The SDKs are imported where they are used, not at the top: they take about 2 s of CPU to
import, which the demo spends while its servers start (`tokenbrake.tools.demo.run_demo`).
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable
from dataclasses import dataclass

import click

WIDTH = 100  # every line of the demo fits a terminal this wide
LABEL_WIDTH = 48
OUTCOME_WIDTH = WIDTH - 3 - LABEL_WIDTH  # what fits beside a label


@dataclass(frozen=True)
class DemoRun:
    """What a scene plays against: the gateway, the keys, and its database and config."""

    url: str
    keys: dict[str, str]
    database: str  # the gateway's database URL
    config: dict  # the demo's config, as written to its file
    flush: Callable[[], None]  # has the gateway write what its ledger writer still queues


def short(text: str, width: int = 64) -> str:
    text = re.sub(r"\s+", " ", text)
    return text if len(text) <= width else text[: width - 1] + "…"


def say(text: str, indent: int = 2) -> None:
    """Prints `text` wrapped to WIDTH columns, continuation lines indented two more."""
    click.echo(textwrap.fill(re.sub(r"\s+", " ", text), WIDTH, initial_indent=" " * indent,
                             subsequent_indent=" " * (indent + 2), break_long_words=False, break_on_hyphens=False))


def line(label: str, call: Callable[[], str], label_width: int = LABEL_WIDTH) -> None:
    """One request of a scene: its label, then what came back or the error the SDK raised.

    An outcome too long for the rest of the line goes on lines of its own below the label."""
    import anthropic
    import openai

    try:
        outcome = call()
    except (openai.APIError, anthropic.APIError) as exc:
        outcome = f"{type(exc).__name__}: {short(str(exc), 500)}"
    row = f"  {label:<{label_width}} {outcome}"
    if len(row) <= WIDTH:
        click.echo(row)
        return
    click.echo(f"  {label}")
    say(outcome, indent=4)
