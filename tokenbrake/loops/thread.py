"""What the detector remembers of one conversation of a session, between two requests.

A session may hold several conversations: the agents of a multi-agent session each send
their own, told apart by their system prompt (or, without one, their first message). For each
the detector keeps how far it has read (the number of messages and the fingerprints of the
last two, so a resent, truncated or summarised conversation is picked up where it was left),
and bounded memories: the last events (each a step or a text, with the symbol of the state it
reached and whether it was new), the fingerprints of the last tool steps, and the sketches of
the last texts. Everything is lists of small numbers and short strings, to survive JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tokenbrake.loops.sketch import pack, unpack

# The marks of an event: how it relates to what came before.
NEW = "n"  # something not seen before: progress
SAME_STEP = "t"  # the same tool call(s) with the same result(s)
SAME_POLL = "p"  # the same, from a tool expected to be polled (LoopConfig.polling_tools)
SAME_RESULT = "c"  # other tool calls, the same substantial result again
SAME_ASSISTANT = "a"  # the assistant paraphrasing one of its own texts
SAME_USER = "u"  # the user (or the agent feeding it) repeating one of its texts
# The same in upper case: a text the other side had said, content bouncing between the two.
TEXT_MARKS = frozenset("auAU")

STEP_MEMORY = 32  # tool steps remembered, per conversation
TEXT_MEMORY = 8  # message texts remembered
RESULT_MEMORY = 6  # substantial tool results remembered


@dataclass(slots=True)
class Event:
    symbol: int  # the state reached: equal symbols, equal (or near-equal) states
    mark: str
    call: int  # the session's call count when it was read
    label: str  # what to show as evidence

    def dump(self) -> list[Any]:
        return [self.symbol, self.mark, self.call, self.label]


@dataclass(slots=True)
class Text:
    symbol: int
    role: str  # "a" assistant, "u" user, "r" tool result
    exact: int  # digest of the masked text
    sketch: list[int]  # empty for texts too short to compare by their words
    action: int = 0  # for a tool result, the digest of the call that produced it

    def dump(self) -> list[Any]:
        return [self.symbol, self.role, self.exact, pack(self.sketch), self.action]


@dataclass(slots=True)
class Thread:
    key: int
    read: int = 0  # messages read
    tail: list[int] = field(default_factory=list)  # fingerprints of the last two messages read
    symbols: int = 0  # symbols handed out
    events: list[Event] = field(default_factory=list)
    steps: dict[int, int] = field(default_factory=dict)  # step digest -> symbol, oldest first
    texts: list[Text] = field(default_factory=list)

    def new_symbol(self) -> int:
        self.symbols += 1
        return self.symbols

    def remember_step(self, step: int, symbol: int) -> None:
        self.steps.pop(step, None)
        self.steps[step] = symbol
        while len(self.steps) > STEP_MEMORY:
            del self.steps[next(iter(self.steps))]

    def remember_text(self, text: Text) -> None:
        self.texts.append(text)
        results = text.role == "r"
        same_kind = [kept for kept in self.texts if (kept.role == "r") == results]
        if len(same_kind) > (RESULT_MEMORY if results else TEXT_MEMORY):
            self.texts.remove(same_kind[0])

    def add_event(self, event: Event, keep: int) -> None:
        self.events.append(event)
        del self.events[:-keep]

    def dump(self) -> dict[str, Any]:
        return {
            "key": self.key, "read": self.read, "tail": self.tail, "symbols": self.symbols,
            "events": [event.dump() for event in self.events],
            "steps": [[step, symbol] for step, symbol in self.steps.items()],
            "texts": [text.dump() for text in self.texts],
        }

    @classmethod
    def load(cls, data: dict[str, Any]) -> Thread:
        return cls(
            key=data["key"], read=data["read"], tail=list(data["tail"]), symbols=data["symbols"],
            events=[Event(*event) for event in data["events"]],
            steps={step: symbol for step, symbol in data["steps"]},
            texts=[Text(symbol, role, exact, unpack(sketch), action) for symbol, role, exact, sketch, action in data["texts"]],
        )
