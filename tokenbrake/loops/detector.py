"""The loop detector: reads each new request of a session and says whether it still progresses.

An agent resends its whole conversation with every call, so request N holds the tool calls
the model asked for in call N-1 and what they returned. The detector reads only the messages
it has not read yet, turns each assistant step into an event (its tool calls and their results,
or its text) and each user text into another, marks each event new or stale (see thread.py),
and asks judge.py whether the stale events at the end form a loop. The verdict on request N
decides whether N may go upstream.
"""

from __future__ import annotations

import fnmatch
from typing import Any

import orjson

from tokenbrake.config import LoopConfig
from tokenbrake.core import Format
from tokenbrake.loops.judge import events_kept, find_loop
from tokenbrake.loops.messages import (
    ToolCall,
    raw_messages,
    read_message,
    system_text,
)
from tokenbrake.loops.normalize import (
    digest,
    mask_echoes,
    mask_numbers,
    mask_volatile,
    shorten,
)
from tokenbrake.loops.sketch import SKETCH_SIZE, coverage, similarity, sketch
from tokenbrake.loops.thread import (
    NEW,
    SAME_POLL,
    SAME_RESULT,
    SAME_STEP,
    Event,
    Text,
    Thread,
)
from tokenbrake.loops.verdict import PROGRESSING, LoopVerdict

TRACE_VERSION = 1
MAX_THREADS = 3  # conversations remembered per session (agents of a multi-agent session)
COVERAGE_TEXTS = 4  # a text adds nothing when its words are in its side's last this many texts
CLOSE = 0.8  # a text this close to stale (a share of the thresholds) is neither new nor stale


class LoopDetector:
    def __init__(self, settings: LoopConfig) -> None:
        self.settings = settings
        self.keep = events_kept(settings)

    def observe(self, trace: dict[str, Any] | None, fmt: Format, body: dict[str, Any]) -> tuple[dict[str, Any], LoopVerdict]:
        """Called before each upstream call of a session with the request body as the client
        sent it. `trace` is what the previous call returned for this session (None for the
        first call). Returns the new trace (JSON-serializable, a few KB at most) and the verdict."""
        if trace is None or trace.get("v") != TRACE_VERSION:
            trace = {"v": TRACE_VERSION, "calls": 0, "threads": []}
        call = trace["calls"] + 1
        threads = [Thread.load(data) for data in trace["threads"]]
        messages = raw_messages(body)
        thread = _pick_thread(threads, _thread_key(fmt, body, messages))
        if self.settings.enabled:
            _Reader(self.settings, thread, call, self.keep).read(fmt, messages)
        verdict = find_loop(thread.events, self.settings, call) if self.settings.enabled else PROGRESSING
        return {"v": TRACE_VERSION, "calls": call, "threads": [kept.dump() for kept in threads]}, verdict

    def forgive(self, trace: dict[str, Any] | None) -> dict[str, Any] | None:
        """The trace of a session an operator resumed: what was read stays read and remembered,
        but the repetitions so far are forgotten, so it takes a whole new loop to stop it again."""
        if trace is None or trace.get("v") != TRACE_VERSION:
            return trace
        threads = [Thread.load(data) for data in trace["threads"]]
        for thread in threads:
            thread.events.clear()
        return {**trace, "threads": [thread.dump() for thread in threads]}


def _thread_key(fmt: Format, body: dict[str, Any], messages: list[Any]) -> int:
    system = system_text(fmt, body)
    if system:
        return digest("system\x1f" + system)
    first = next((raw for raw in messages if not (isinstance(raw, dict) and raw.get("role") in ("system", "developer"))), None)
    return read_message(fmt, first).fingerprint() if first is not None else 0


def _pick_thread(threads: list[Thread], key: int) -> Thread:
    """The conversation with this key, moved to the front (most recently used first)."""
    thread = next((kept for kept in threads if kept.key == key), None) or Thread(key=key)
    if thread in threads:
        threads.remove(thread)
    threads.insert(0, thread)
    del threads[MAX_THREADS:]
    return thread


class _Reader:
    """Reads the new part of one request's conversation into its thread."""

    def __init__(self, settings: LoopConfig, thread: Thread, call: int, keep: int) -> None:
        self.settings = settings
        self.thread = thread
        self.call = call
        self.keep = keep

    def read(self, fmt: Format, messages: list[Any]) -> None:
        start = self._resume_at(fmt, messages)
        new = [read_message(fmt, raw) for raw in messages[start:]]
        pending: tuple[list[ToolCall], dict[str, str]] | None = None
        for message in new:
            if message.results and pending is not None:
                pending[1].update((result.call_id, result.text) for result in message.results)
            if pending is not None and (message.role == "assistant" or (message.text and message.role == "user")):
                self._step(*pending)
                pending = None
            if message.role == "assistant" and message.calls:
                pending = (message.calls, {})
            elif message.role in ("assistant", "user") and message.text:
                self._text(message.role, message.text)
        if pending is not None:
            self._step(*pending)
        last_two = new[-2:] if len(new) >= 2 else [read_message(fmt, raw) for raw in messages[-2:]]
        self.thread.read = len(messages)
        self.thread.tail = [message.fingerprint() for message in last_two]

    def _resume_at(self, fmt: Format, messages: list[Any]) -> int:
        """Where the unread messages begin: after the last one read when the conversation is
        the same so far, or after it wherever it now is (context truncated or summarised: it is
        looked for from the end, where it usually is). When it cannot be found, only the newest
        step is read, as reading the whole again would count what was read before as repeated."""
        thread = self.thread
        if not thread.tail:
            return 0
        n = thread.read
        if 0 < n <= len(messages) and read_message(fmt, messages[n - 1]).fingerprint() == thread.tail[-1]:
            return n
        fingerprints: dict[int, int] = {}
        for wanted, skip in ((thread.tail[-1], 1), (thread.tail[0], 2)):
            for index in range(len(messages) - 1, -1, -1):
                if index not in fingerprints:
                    fingerprints[index] = read_message(fmt, messages[index]).fingerprint()
                if fingerprints[index] == wanted:
                    return min(index + skip, len(messages))
        for index in range(len(messages) - 1, -1, -1):
            if isinstance(messages[index], dict) and messages[index].get("role") == "assistant":
                return index
        return 0

    def _step(self, calls: list[ToolCall], results: dict[str, str]) -> None:
        """One assistant turn that called tools, with what the tools returned."""
        thread = self.thread
        unmatched = [text for call_id, text in results.items() if call_id not in {call.id for call in calls}]
        pairs, actions = [], []
        for index, call in enumerate(calls):
            # By id; a result whose id matches no call (a client that renumbers) by position.
            result = results.get(call.id) or (unmatched[index] if index < len(unmatched) else "")
            action = mask_numbers(mask_volatile(f"{call.name}({call.arguments})"))
            actions.append(action)
            pairs.append((action, mask_echoes(mask_volatile(result), call.arguments)))
        step = digest(repr(sorted((action, digest(result)) for action, result in pairs)))
        action_digest = digest("\x1f".join(sorted(actions)))
        label = "; ".join(self._call_label(call, 60 if len(calls) == 1 else 40) for call in calls[:2])
        if step in thread.steps:
            polled = all(self._polled(call.name) for call in calls)
            self._event(thread.steps[step], SAME_POLL if polled else SAME_STEP, label)
            thread.remember_step(step, thread.steps[step])
            return
        symbol, mark = self._results(action_digest, [result for _, result in pairs])
        thread.remember_step(step, symbol)
        self._event(symbol, mark, label)

    def _call_label(self, call: ToolCall, limit: int) -> str:
        """The call as evidence: with its arguments when the config allows quoting them, else
        the tool and its argument names (`search(query=…, page=…)`)."""
        if self.settings.evidence_text:
            return shorten(f"{call.name}({call.arguments})", limit)
        try:
            arguments = orjson.loads(call.arguments)
        except orjson.JSONDecodeError:
            arguments = None
        names = ", ".join(f"{name}=…" for name in arguments) if isinstance(arguments, dict) else "…"
        return shorten(f"{call.name}({names})", limit)

    def _results(self, action: int, results: list[str]) -> tuple[int, str]:
        """A step not seen before is still stale when each of its results is substantial and
        one the agent already had from another call: the context grows, nothing is learnt."""
        texts = [Text(0, "r", digest(result), sketch(result), action)
                 for result in results if len(result) >= self.settings.min_text_chars]
        matches = [self._closest(text, roles="r") for text in texts]
        if results and len(texts) == len(results) and all(
                match is not None and score >= self.settings.near_duplicate and match.action != action
                for match, score in matches):
            first = matches[0][0]
            assert first is not None  # every text matched one
            return first.symbol, SAME_RESULT
        symbol = self.thread.new_symbol()
        for text in texts:
            text.symbol = symbol
            self.thread.remember_text(text)
        return symbol, NEW

    def _text(self, role: str, raw: str) -> None:
        """An assistant answer without tool calls, or a user message. It is stale when it is
        close to one remembered text (a paraphrase), or adds almost no word to what its side
        said in its last few texts (a paraphrase of several); new when it is far from them;
        and neither when in between, or when too short to tell (neither progress nor loop)."""
        settings, thread = self.settings, self.thread
        masked = mask_volatile(raw)
        if len(masked) < settings.min_text_chars:
            return
        side = "a" if role == "assistant" else "u"
        text = Text(0, side, digest(masked), sketch(masked))
        closest, score = self._closest(text, roles="au")
        # Long texts on one topic share many words whatever they say: they are stale only as
        # near-duplicates, and only short ones (whose sketch holds all their words) are judged
        # by what they add to their side's last texts.
        short = len(text.sketch) < SKETCH_SIZE
        threshold = settings.similarity if short else settings.near_duplicate
        own = [kept.sketch for kept in thread.texts if kept.role == side][-COVERAGE_TEXTS:]
        covered = coverage(text.sketch, own) if short else 0.0
        label = f'"{shorten(raw, 60)}"' if settings.evidence_text else f"a {len(raw)}-character {role} message"
        if closest is not None and (score >= threshold or covered >= settings.coverage):
            text.symbol = closest.symbol
            self._event(closest.symbol, side if closest.role == side else side.upper(), label)
        elif closest is not None and (score >= threshold * CLOSE or covered >= settings.coverage * CLOSE):
            text.symbol = closest.symbol  # close to it: no event, but the same state
        else:
            text.symbol = thread.new_symbol()
            self._event(text.symbol, NEW, label)
        thread.remember_text(text)

    def _closest(self, text: Text, roles: str) -> tuple[Text | None, float]:
        best, best_score = None, 0.0
        for kept in reversed(self.thread.texts):
            if kept.role not in roles:
                continue
            score = 1.0 if kept.exact == text.exact else similarity(text.sketch, kept.sketch)
            if score > best_score:
                best, best_score = kept, score
        return best, best_score

    def _polled(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self.settings.polling_tools)

    def _event(self, symbol: int, mark: str, label: str) -> None:
        self.thread.add_event(Event(symbol, mark, self.call, label), self.keep)
