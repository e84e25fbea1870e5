"""What the loop detector says about a session after one more request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

LoopKind = Literal["repeated_tool_call", "cycle", "repeated_output", "stale_context", "ping_pong"]


@dataclass(frozen=True, slots=True)
class LoopVerdict:
    looping: bool
    kind: LoopKind | None  # None when not looping
    repetitions: int  # how many times the pattern has occurred in a row so far (1: once, no repeat)
    # Short and human-readable: what repeated and since when, e.g.
    # 'search_files({"q": "foo"}) returned the same result 6 times in a row (since call 12)'
    evidence: str
    call: int = 0  # the session's call count, this one included (as the detector counted them)


PROGRESSING = LoopVerdict(looping=False, kind=None, repetitions=0, evidence="")
