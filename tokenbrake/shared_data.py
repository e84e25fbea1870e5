"""Where the public evaluation data lives (routing, semantic cache): for benchmarks and tests.

It is not part of the package (its licenses are its own): it sits beside the checkout, in
`../shared/data/`. `TOKENBRAKE_SHARED_DATA` names another place; a checkout cloned elsewhere
also looks in `/work/shared/data`, where this machine keeps it.
"""

from __future__ import annotations

import os
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]


def shared_data(*parts: str) -> Path:
    """The path of `parts` inside the evaluation data (the first place that has it)."""
    places = [Path(os.environ["TOKENBRAKE_SHARED_DATA"])] if os.environ.get("TOKENBRAKE_SHARED_DATA") else []
    places += [CHECKOUT.parent / "shared" / "data", Path("/work/shared/data")]
    for place in places:
        if (place / Path(*parts)).exists():
            return place / Path(*parts)
    return places[0] / Path(*parts)  # the usual place, for a clear "not found"
