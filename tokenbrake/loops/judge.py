"""Is the end of a conversation's history a loop? Which kind, how often repeated, since when.

Looking back from the newest event over the events that brought nothing new, each stretch
that visits at most `max_period` states is a candidate: one state repeated (the same call and
result, the same paraphrased answer), or a few states taken in turn (A→B→A→B). The pattern's
repetitions are counted as the first occurrence plus the times the least repeated of its
states came back. The best candidate that reaches `repetitions` (or, for a stretch of polls
only, `polling_allowance`) is the loop. A new event ends every stretch: an agent that learns
something between two identical calls is not looping.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from tokenbrake.config import LoopConfig
from tokenbrake.loops.thread import (
    NEW,
    SAME_ASSISTANT,
    SAME_POLL,
    SAME_RESULT,
    SAME_STEP,
    SAME_USER,
    TEXT_MARKS,
    Event,
)
from tokenbrake.loops.verdict import LoopKind, LoopVerdict

TOOL_MARKS = frozenset((SAME_STEP, SAME_POLL))


@dataclass(frozen=True, slots=True)
class Stretch:
    events: list[Event]  # oldest first
    states: int
    repetitions: int


def events_kept(settings: LoopConfig) -> int:
    """Enough events to see the longest cycle reach its repetitions, and a poll its allowance."""
    return max(settings.max_period * (settings.repetitions - 1), settings.polling_allowance) + 2


def find_loop(events: list[Event], settings: LoopConfig, call: int) -> LoopVerdict:
    best: Stretch | None = None
    most = 1 if events else 0  # repetitions of the most repeated pattern, loop or not yet
    for stretch in _stretches(events, settings.max_period):
        most = max(most, stretch.repetitions)
        polls_only = all(event.mark == SAME_POLL for event in stretch.events)
        needed = settings.polling_allowance if polls_only else settings.repetitions
        if stretch.repetitions >= needed and (best is None or stretch.repetitions > best.repetitions):
            best = stretch
    if best is None:
        return LoopVerdict(looping=False, kind=None, repetitions=most, evidence="", call=call)
    kind = _kind(best)
    return LoopVerdict(looping=True, kind=kind, repetitions=best.repetitions, evidence=_evidence(kind, best), call=call)


def _stretches(events: list[Event], max_period: int):
    """Each run of stale events ending at the newest, shortest first, while it has few states.

    A stale text's state is its side: paraphrases of paraphrases drift away from the first
    wording (a third one may share no word with the first), yet say the same."""
    counts: Counter[int | str] = Counter()
    for start in range(len(events) - 1, -1, -1):
        event = events[start]
        if event.mark == NEW:
            return
        counts[event.mark.lower() if event.mark in TEXT_MARKS else event.symbol] += 1
        if len(counts) > max_period:
            return
        length = len(events) - start
        repeated = length if len(counts) == 1 else min(counts.values())
        yield Stretch(events[start:], len(counts), 1 + repeated)


def _kind(stretch: Stretch) -> LoopKind:
    marks = Counter(event.mark for event in stretch.events)
    if marks["A"] or marks["U"] or (marks[SAME_ASSISTANT] and marks[SAME_USER]):
        return "ping_pong"
    if set(marks) <= TOOL_MARKS:
        return "repeated_tool_call" if stretch.states == 1 else "cycle"
    if marks[SAME_RESULT] * 2 >= len(stretch.events) or set(marks) == {SAME_USER}:
        return "stale_context"
    if set(marks) == {SAME_ASSISTANT} and stretch.states == 1:
        return "repeated_output"
    return "cycle"


def _evidence(kind: LoopKind, stretch: Stretch) -> str:
    first, last = stretch.events[0], stretch.events[-1]
    times, since = stretch.repetitions, f"since call {first.call}"
    if kind == "repeated_tool_call":
        verb = "polled" if last.mark == SAME_POLL else "called"
        return f"{last.label} {verb} {times} times in a row with the same result ({since})"
    if kind == "cycle":
        seen: dict[int, str] = {}
        for event in stretch.events:
            seen.setdefault(event.symbol, event.label)
        return f"a cycle of {stretch.states} steps repeated {times} times ({since}): " + " → ".join(seen.values())
    if kind == "repeated_output":
        return f"the assistant said nearly the same thing {times} times ({since}): {last.label}"
    if kind == "stale_context":
        return f"the same content was added to the context {times} times in a row ({since}): {last.label}"
    return f"the same texts went back and forth {times} times ({since}): {last.label}"
