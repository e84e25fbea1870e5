"""Where the public evaluation data lives (routing, semantic cache): for benchmarks and tests.

It is not part of the package (its licenses are its own): it sits beside the checkout, in
`../shared/data/`, or wherever `TOKENBRAKE_SHARED_DATA` names.
"""

from __future__ import annotations

import os
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2]  # tokenbrake/evaluation/shared_data.py -> the checkout
ENV = "TOKENBRAKE_SHARED_DATA"


def data_places() -> list[Path]:
    """Where the data is looked for, in order: the folder `TOKENBRAKE_SHARED_DATA` names, then
    `shared/data` beside the checkout."""
    named = os.environ.get(ENV)
    return ([Path(named)] if named else []) + [CHECKOUT.parent / "shared" / "data"]


def shared_data(*parts: str) -> Path:
    """The path of `parts` inside the evaluation data (the first place that has it); a clear
    FileNotFoundError naming every place looked in when none has it."""
    for place in data_places():
        if (place / Path(*parts)).exists():
            return place / Path(*parts)
    looked = ", ".join(str(place / Path(*parts)) for place in data_places())
    raise FileNotFoundError(f"the evaluation data {'/'.join(parts)} is not in {looked}: put the shared data "
                            f"folder beside the checkout (../shared/data) or set {ENV} to the folder that holds it")
