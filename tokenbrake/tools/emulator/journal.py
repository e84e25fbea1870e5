"""What the emulator was asked and what it answered, for tests to inspect.

A bounded log of the most recent requests (oldest dropped first) and the per-id counters
behind `fail_first`. Records are plain dicts, opened when a request arrives and completed
as it is answered, so a request that hangs or is cut still shows up.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from typing import Any

RECORDED_HEADERS = ("authorization", "x-api-key", "anthropic-version", "anthropic-beta")


class Journal:
    def __init__(self, size: int) -> None:
        self._records: deque[dict[str, Any]] = deque(maxlen=size)
        self._failures: dict[str, int] = {}
        self._sequence = itertools.count(1)

    def open(self, path: str, headers: Any) -> dict[str, Any]:
        record = {
            "seq": next(self._sequence),
            "time": time.time(),
            "path": path,
            "model": None,
            "stream": False,
            "headers": {name: headers.get(name) for name in RECORDED_HEADERS},
            "body": None,
            "directives": {},
            "status": None,
            "outcome": "pending",
            "usage": None,
        }
        self._records.append(record)
        return record

    def records(self) -> list[dict[str, Any]]:
        return list(self._records)

    def reset(self) -> None:
        self._records.clear()
        self._failures.clear()

    def should_fail(self, key: str, first: int) -> bool:
        """Count one more request carrying `key`; True while it is among the first `first`."""
        seen = self._failures.get(key, 0) + 1
        self._failures[key] = seen
        return seen <= first


def usage(input_tokens: int, output_tokens: int) -> dict[str, int]:
    return {"input_tokens": input_tokens, "output_tokens": output_tokens}
