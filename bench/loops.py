"""Loop detection, measured: replays the evaluation set and prints precision, recall, false
stops, how fast loops were stopped and what they cost until then.

The evaluation set (tokenbrake/evaluation/loop_sessions, fixed seed) holds looping sessions of every
kind, each labelled with the call at which its loop starts (the first call whose request
carries a repetition), and progressing sessions of 50 to 300 calls, hard negatives included.

    .venv/bin/python bench/loops.py --direct   # the detector alone, in process (seconds)
    .venv/bin/python bench/loops.py            # through the gateway (emulated upstream)

`--direct` feeds each request body to `LoopDetector.observe` and prices each call from the
price catalog (input counted with the exact tokenizer, output = the assistant turn the script
says came back). The default starts `tokenbrake emulate` and `tokenbrake serve` with a
sessions section whose action is `stop`, replays each session with the official SDK of its
format and header X-Tokenbrake-Session, counts the refusals, and prices the calls from the
gateway's ledger. Both print the detector's cost per call, measured in this run as the CPU
time of the thread that runs it (wall-clock time would count the other processes on the
machine: the gateway and the emulator share its cores in the default mode).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson

from tokenbrake.config import LoopConfig, parse_config
from tokenbrake.core import Usage
from tokenbrake.evaluation.loop_sessions import SEED, Session, build_sessions
from tokenbrake.loops import LoopDetector
from tokenbrake.settlement.pricing import PriceBook
from tokenbrake.wire.tokens import TOKENS_PER_MESSAGE, TOKENS_PER_REPLY_PRIMER, count_text

MODEL = "gpt-4o"  # priced from the catalog; both formats are replayed as this model
REPLY_TOKENS = 60  # the output of the last call of a session, which the script does not hold


@dataclass
class Outcome:
    session: Session
    stopped_at: int | None  # the call refused, None when every call went through
    kind: str | None = None  # the kind the detector named
    evidence: str = ""
    costs: list[Decimal] = field(default_factory=list)  # per call that went upstream (or would have)
    full_cost: Decimal | None = None  # what the whole session would have cost unstopped, if known
    repetitions: int = 0  # the verdict's, at the stop

    @property
    def early(self) -> bool:
        """Stopped, but before there was any loop to stop."""
        start = self.session.loop_start
        return self.stopped_at is not None and (start is None or self.stopped_at < start)

    @property
    def caught(self) -> bool:
        return self.stopped_at is not None and not self.early


# ---- the detector alone -------------------------------------------------------------------------

class Pricer:
    """Each call's cost at MODEL's catalog price; every text is tokenized once."""

    def __init__(self) -> None:
        config = parse_config({"upstreams": {"u": {"kind": "openai", "base_url": "http://x/v1", "provider": "openai"}},
                               "models": {MODEL: {"upstream": "u"}}})
        self.book = PriceBook(config)
        self.memo: dict[str, int] = {}

    def tokens(self, text: str) -> int:
        if text not in self.memo:
            self.memo[text] = count_text(text)
        return self.memo[text]

    def message_tokens(self, message: dict[str, Any]) -> int:
        content = message.get("content")
        total = TOKENS_PER_MESSAGE
        if isinstance(content, str):
            total += self.tokens(content)
        for part in content if isinstance(content, list) else []:
            if part.get("type") == "tool_use":
                total += self.tokens(part["name"] + orjson.dumps(part["input"]).decode())
            else:
                inner = part.get("text", part.get("content", ""))
                total += self.tokens(inner if isinstance(inner, str) else orjson.dumps(inner).decode())
        for call in message.get("tool_calls") or []:
            total += self.tokens(call["function"]["name"] + call["function"]["arguments"])
        return total

    def input_tokens(self, body: dict[str, Any]) -> int:
        system = body.get("system")
        total = TOKENS_PER_REPLY_PRIMER + (self.tokens(system) + TOKENS_PER_MESSAGE if system else 0)
        total += self.tokens(orjson.dumps(body.get("tools") or []).decode())
        return total + sum(self.message_tokens(message) for message in body["messages"])

    def cost(self, input_tokens: int, output_tokens: int) -> Decimal:
        return self.book.cost(MODEL, Usage(input_tokens=input_tokens, output_tokens=output_tokens))


def replay_direct(sessions: list[Session], settings: LoopConfig) -> tuple[list[Outcome], list[float], int]:
    detector, pricer = LoopDetector(settings), Pricer()
    timings: list[float] = []
    largest_trace = 0
    outcomes = []
    for session in sessions:
        bodies = list(session.requests())
        inputs = [pricer.input_tokens(body) for body in bodies]
        # A call's output is what the next call of the same conversation carries in addition.
        outputs = _output_tokens(session, bodies, pricer)
        costs = [pricer.cost(i, o) for i, o in zip(inputs, outputs)]
        outcome = Outcome(session, None, costs=costs, full_cost=sum(costs, Decimal(0)))
        trace = None
        for index, body in enumerate(bodies):
            began = time.thread_time()
            trace, verdict = detector.observe(trace, session.format, body)
            timings.append(time.thread_time() - began)
            encoded = orjson.dumps(trace)
            largest_trace = max(largest_trace, len(encoded))
            trace = orjson.loads(encoded)  # as the sessions stage stores it
            if verdict.looping and outcome.stopped_at is None:
                outcome.stopped_at, outcome.kind, outcome.evidence = index, verdict.kind, verdict.evidence
                outcome.repetitions = verdict.repetitions
                break
        outcomes.append(outcome)
    return outcomes, timings, largest_trace


def _output_tokens(session: Session, bodies: list[dict[str, Any]], pricer: Pricer) -> list[int]:
    outputs = [REPLY_TOKENS] * len(bodies)
    nxt: dict[int, int] = {}
    for index in range(len(bodies) - 1, -1, -1):
        conversation, _ = session.schedule[index]
        if conversation in nxt:
            messages = bodies[nxt[conversation]]["messages"]
            # The assistant message that answered this call is the last assistant one the
            # next request of the conversation carries.
            answer = next(m for m in reversed(messages) if m["role"] == "assistant")
            outputs[index] = pricer.message_tokens(answer)
        nxt[conversation] = index
    return outputs


# ---- report ---------------------------------------------------------------------------------

def report(outcomes: list[Outcome], timings: list[float], largest_trace: int, mode: str) -> None:
    looping = [o for o in outcomes if o.session.loop_kind is not None]
    progressing = [o for o in outcomes if o.session.loop_kind is None]
    caught = [o for o in looping if o.caught]
    stopped = [o for o in outcomes if o.stopped_at is not None]
    false_stops = [o for o in progressing if o.stopped_at is not None]
    early = [o for o in looping if o.early]
    precision = len(caught) / len(stopped) if stopped else 1.0
    recall = len(caught) / len(looping) if looping else 1.0
    print(f"loop detection, {mode}: {len(looping)} looping sessions, {len(progressing)} progressing "
          f"({sum(o.session.calls for o in outcomes)} calls in the set)")
    print(f"  precision {precision:.3f}   recall {recall:.3f}   "
          f"false stops {len(false_stops)}/{len(progressing)} progressing"
          + (f" + {len(early)} looping stopped before their loop began" if early else ""))
    if caught:
        delays = [o.stopped_at - o.session.loop_start for o in caught]
        spent = [sum(o.costs[: o.stopped_at]) for o in caught]
        in_loop = [sum(o.costs[o.session.loop_start: o.stopped_at]) for o in caught]
        unstopped = [o.full_cost for o in caught if o.full_cost is not None]
        print(f"  calls from the loop's start until it was stopped: median {statistics.median(delays):g}, "
              f"max {max(delays)} (min {min(delays)}); repetitions of the pattern at the stop: median "
              f"{statistics.median(o.repetitions for o in caught):g}, max {max(o.repetitions for o in caught)}")
        print(f"  dollars spent before the stop: median ${statistics.median(spent):.4f} per session "
              f"(of which in the loop ${statistics.median(in_loop):.4f})"
              + (f"; the same sessions played to their end: median ${statistics.median(unstopped):.4f}" if unstopped else ""))
    print("  by kind:      sessions caught  calls-to-stop(median/max)  named as")
    by_kind: dict[str, list[Outcome]] = defaultdict(list)
    for o in looping:
        by_kind[o.session.loop_kind].append(o)
    for kind, group in sorted(by_kind.items()):
        got = [o for o in group if o.caught]
        delays = [o.stopped_at - o.session.loop_start for o in got]
        named = Counter(o.kind for o in got)
        span = f"{statistics.median(delays):g}/{max(delays)}" if delays else "-"
        print(f"    {kind:<20}{len(group):>4}{len(got):>7}  {span:>12}            "
              + ", ".join(f"{name} {count}" for name, count in named.most_common()))
    for o in false_stops + early:
        print(f"  STOPPED WRONGLY {o.session.name} at call {o.stopped_at}: {o.kind}: {o.evidence}")
    for o in looping:
        if o.stopped_at is None:
            print(f"  MISSED {o.session.name} (loop from call {o.session.loop_start} of {o.session.calls})")
    if timings:
        micro = sorted(t * 1e6 for t in timings)
        print(f"  detector CPU time per call: mean {statistics.fmean(micro):.0f} µs, p50 {micro[len(micro) // 2]:.0f} µs, "
              f"p99 {micro[int(len(micro) * 0.99)]:.0f} µs, max {micro[-1]:.0f} µs over {len(micro)} calls; "
              f"largest trace {largest_trace} bytes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--direct", action="store_true", help="the detector alone, in process")
    parser.add_argument("--verbose", action="store_true", help="print every stop's evidence")
    parser.add_argument("--seed", type=int, default=SEED, help="another seed: a set the detector was not tuned on")
    parser.add_argument("--only", default="", help="replay only the sessions whose name holds this")
    args = parser.parse_args()
    sessions = [session for session in build_sessions(args.seed) if args.only in session.name]
    settings = LoopConfig()
    if args.direct:
        outcomes, timings, largest = replay_direct(sessions, settings)
        report(outcomes, timings, largest, "detector only (--direct)")
    else:
        from loop_replay import kind_in, replay_gateway
        results, replayer = replay_gateway(sessions, settings)
        outcomes = [Outcome(session, stopped_at, kind_in(message), message, costs, full_cost=None,
                            repetitions=replayer.repetitions.get(session.name, 0))
                    for session, (stopped_at, message, costs) in zip(sessions, results)]
        report(outcomes, replayer.timings, replayer.largest_trace, "through the gateway (on_loop: stop)")
    if args.verbose:
        for o in outcomes:
            if o.stopped_at is not None:
                print(f"  {o.session.name}: stopped at {o.stopped_at} (loop from {o.session.loop_start}): {o.evidence}")


if __name__ == "__main__":
    main()
