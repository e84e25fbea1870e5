"""`tokenbrake serve …` with the ledger writing its rows but no rollups: the baseline that
`bench/overhead.py --rollups` measures the gateway against, to tell what keeping the rollups
costs its throughput. Benchmarks only: a gateway without rollups shows nothing new on the
dashboard.

    .venv/bin/python bench/serve_without_rollups.py serve --config F --port P
"""

from __future__ import annotations

import sys

from tokenbrake.storage import ledger

_with_rollups = ledger.Ledger.__init__


def _without_rollups(self: ledger.Ledger, backend, *, rollups: bool = True) -> None:
    _with_rollups(self, backend, rollups=False)


ledger.Ledger.__init__ = _without_rollups  # type: ignore[method-assign]

from tokenbrake.cli import main  # noqa: E402 (after the patch, which the server's imports then see)

if __name__ == "__main__":
    sys.exit(main())
