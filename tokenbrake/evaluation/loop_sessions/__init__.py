"""The loop-detection evaluation set: agent sessions as the request bodies they send.

`build_sessions()` makes, from a fixed seed, progressing sessions of 50 to 300 calls (the hard
negatives: reading 150 files, many searches, paginating, polling, retries that work, editing
one file again and again, long chats, a writer and a reviewer) and looping sessions of every
kind (a progressing preamble of varied length, then the loop), half in the OpenAI chat format
and half in the Anthropic messages format. Each session says at which call its loop starts:
the first call whose request carries a repetition (None for a progressing session).
"""

from __future__ import annotations

import random

from tokenbrake.core import Format
from tokenbrake.evaluation.loop_sessions.agents import FAMILIES, progressing
from tokenbrake.evaluation.loop_sessions.duo import writer_and_reviewer
from tokenbrake.evaluation.loop_sessions.loops import LOOPS
from tokenbrake.evaluation.loop_sessions.script import Session, Tools, solo
from tokenbrake.evaluation.loop_sessions.world import World

SEED = 20261129
PROGRESSING_PER_FAMILY = 4  # 8 families × 4, plus the writer/reviewer pairs
LOOPING_PER_KIND = 6  # 6 kinds of loop × 6, plus the stuck writer/reviewer pairs
PAIRS = 3

__all__ = ["Session", "build_sessions"]


def build_sessions(seed: int = SEED) -> list[Session]:
    rng = random.Random(seed)
    sessions: list[Session] = []
    formats = [Format.OPENAI, Format.ANTHROPIC]
    for family in FAMILIES:
        for index in range(PROGRESSING_PER_FAMILY):
            w, fmt = World(random.Random(rng.getrandbits(64))), formats[index % 2]
            window = rng.choice([None, None, 40, 80])  # some agents trim their context
            calls = 150 if family == "reading" and index == 0 else rng.randrange(50, 301)
            sessions.append(_ids(w, fmt, solo(f"{family}-{index}", fmt, family, progressing(w, family, calls - 1, window))))
    for index in range(PAIRS):
        w, fmt = World(random.Random(rng.getrandbits(64))), formats[index % 2]
        sessions.append(writer_and_reviewer(w, f"writer_reviewer-{index}", fmt, rng.randrange(25, 60), None))
    for name, (kind, make) in LOOPS.items():
        for index in range(LOOPING_PER_KIND):
            w, fmt = World(random.Random(rng.getrandbits(64))), formats[index % 2]
            family = rng.choice(sorted(FAMILIES))
            conversation = progressing(w, family, rng.randrange(5, 80), rng.choice([None, None, 60]))
            steps, first_repeat = make(w, rng.randrange(15, 60))
            start = len(conversation.steps) + first_repeat + 1
            conversation.steps += steps
            session = solo(f"{name}-{index}", fmt, f"{family}+{name}", conversation, start, kind)
            sessions.append(_ids(w, fmt, session))
    for index in range(PAIRS):
        w, fmt = World(random.Random(rng.getrandbits(64))), formats[index % 2]
        rounds = rng.randrange(20, 40)
        sessions.append(writer_and_reviewer(w, f"stuck_writer_reviewer-{index}", fmt, rounds, rng.randrange(3, rounds - 12)))
    return sessions


def _ids(w: World, fmt: Format, session: Session) -> Session:
    """Tool-call ids, unique per call as the providers make them."""
    for conversation in session.conversations:
        for step in conversation.steps:
            if isinstance(step, Tools):
                step.ids = [w.call_id(fmt is Format.ANTHROPIC) for _ in step.calls]
    return session
