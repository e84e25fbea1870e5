"""Agents that stopped making progress: each builds `n` steps of one kind of loop, and says
at which of them the first repetition shows (the loop's start, for the labels).

The loops vary what an agent really varies while stuck: its thoughts, the timestamps, request
ids, whitespace, key order and retry counters in its arguments, the wording of its answers."""

from __future__ import annotations

from collections.abc import Callable

from tokenbrake.evaluation.loop_sessions.script import Say, Step, Tools
from tokenbrake.evaluation.loop_sessions.world import MODULES, NOUNS, TOPICS, World

RETRY_THOUGHTS = ["", "Let me try that again.", "Retrying.", "That didn't work, trying once more.",
                  "Maybe it was transient; running it again.", "", "One more attempt."]


def _thought(w: World) -> str:
    return w.pick(RETRY_THOUGHTS)


def same_call(w: World, n: int) -> tuple[list[Step], int]:
    """The same call, the same arguments, the same failure."""
    path = w.paths(1)[0]
    variant = w.rng.randrange(3)
    if variant == 0:
        call = ("run_command", {"cmd": f"pytest tests/test_{w.pick(MODULES)}.py -x -q"})
        result = w.test_run([f"{w.pick(MODULES)}_{w.pick(NOUNS)}"], 40)
    elif variant == 1:
        call = ("read_file", {"path": path.replace(".py", "_v2.py")})
        result = f"Error: ENOENT: no such file or directory, open '{path.replace('.py', '_v2.py')}'"
    else:
        call = ("search_code", {"query": f"def {w.identifier()}", "path": "src/"})
        result = "No matches found."
    return [Tools([call], [result], thought=_thought(w)) for _ in range(n)], 1


def same_call_varying(w: World, n: int) -> tuple[list[Step], int]:
    """The same call with arguments that change without meaning: a timestamp, a request id,
    whitespace and key order, or a retry counter; the answer is the same but for its own
    timestamps and ids."""
    variant = w.rng.randrange(4)
    service = w.pick(MODULES)
    steps: list[Step] = []
    for attempt in range(n):
        if variant == 0:
            call = ("get_metrics", {"service": service, "metric": "p99_latency", "since": w.now()})
            result = f"No datapoints for {service}.p99_latency in the requested window (query at {w.now()})."
        elif variant == 1:
            call = ("http_post", {"url": f"https://api.acme.dev/v2/{service}/sync", "request_id": w.uuid()})
            result = f"HTTP 500 Internal Server Error\ntrace_id={w.hexid(32)}\nerror: upstream {service}-db timed out after 30000ms"
        elif variant == 2:
            spaces = " " * w.rng.randrange(1, 4)
            args = {"query": f"{service}{spaces}retry  policy", "limit": 10}
            call = ("search_docs", dict(reversed(args.items())) if attempt % 2 else args)
            result = "[]"
        else:
            call = ("deploy", {"service": service, "version": "1.4.2", "attempt": attempt + 1})
            result = (f"Deployment of {service}:1.4.2 (attempt {attempt + 1}) failed at {w.now()}: ImagePullBackOff "
                      f"(registry.acme.dev/{service}:1.4.2 not found)")
        steps.append(Tools([call], [result], thought=_thought(w)))
    return steps, 1


def cycle(w: World, n: int) -> tuple[list[Step], int]:
    """A few states taken in turn, again and again: read → test → read → test, an edit and its
    revert, or a walk around a few pages."""
    period = w.rng.choice([2, 2, 3, 4])
    path = w.paths(1)[0]
    source = w.source(path)
    failure = w.test_run([f"{w.pick(MODULES)}_{w.pick(NOUNS)}"], 80)
    old, new = f"{w.identifier()}(payload)", f"{w.identifier()}(payload, strict=True)"
    states = [
        Tools([("edit_file", {"path": path, "old": old, "new": new})], [f"Edited {path}: replaced 1 occurrence."]),
        Tools([("run_tests", {"path": "tests/"})], [failure]),
        Tools([("edit_file", {"path": path, "old": new, "new": old})], [f"Edited {path}: replaced 1 occurrence."]),
        Tools([("read_file", {"path": path})], [source]),
    ] if period != 3 else [
        Tools([("open_url", {"url": f"https://wiki.acme.dev/{w.pick(MODULES)}/setup"})], [w.article(TOPICS[w.pick(sorted(TOPICS))], 1)]),
        Tools([("click", {"link": "Next: configuration"})], ["Page not found. Redirecting to setup."]),
        Tools([("go_back", {})], ["Returned to the previous page."]),
    ]
    if period == 2:
        states = [states[w.rng.choice([0, 3])], states[1]]
    steps: list[Step] = [Tools(list(state.calls), list(state.results), thought=_thought(w)) for _ in range(n // period + 1) for state in states[:period]]
    return steps[:n], period


PARAPHRASES = [
    ("{I apologize|Sorry|My apologies}, {but|however} I {still|} {can't|cannot|am unable to} {find|locate} the "
     "{configuration file|config file|settings file} {you mentioned|you referred to} in the {repository|repo|project}. "
     "{Could you|Can you|Would you} {confirm|double-check|verify} the {path|location|file path}?"),
    ("I {have reviewed|looked at|went through} the {failing test|test failure|broken test} {again|once more} and "
     "{it seems|it looks like|I believe} the {issue|problem|bug} is in the {date parsing|timestamp parsing|date handling} "
     "{logic|code|function}. {I recommend|I suggest|My suggestion is} {updating|fixing|changing} the {format string|format} "
     "to {handle|support|accept} {time zones|timezone offsets|UTC offsets}."),
    ("{Here is|Below is|This is} the {updated|revised|new} {summary|overview|recap} of the {quarterly|Q3|third quarter} "
     "{results|numbers|figures}: {revenue|sales} {grew|increased|rose} {steadily|solidly|moderately} while {costs|expenses|spending} "
     "{stayed|remained|held} {flat|stable|level}. {Let me know|Tell me|Please say} if you {need|want|would like} more {detail|details|information}."),
    ("{To fix this|To resolve this|To solve the problem}, {run|execute|use} the {migration|database migration|schema migration} "
     "{script|command} {first|before anything else}, then {restart|reboot|relaunch} the {worker|background worker|job runner} "
     "so it {picks up|loads|reads} the {new|updated|changed} {schema|table layout}."),
]
NUDGES = ["Please continue.", "That's not it, try again.", "continue", "Still wrong.", "Can you check again?",
          "Hmm, no.", "Please try a different approach.", "Go on.", "That doesn't help.", "Again please."]


def _paraphrase(w: World, template: str) -> str:
    out, rest = [], template
    while "{" in rest:
        before, _, rest = rest.partition("{")
        choices, _, rest = rest.partition("}")
        out += [before, w.pick(choices.split("|"))]
    return " ".join("".join(out + [rest]).split())


def repeated_output(w: World, n: int) -> tuple[list[Step], int]:
    """The assistant answers with paraphrases of one answer; the user nudges it on."""
    template = w.pick(PARAPHRASES)
    return [Say(_paraphrase(w, template), w.pick(NUDGES)) for _ in range(n)], 1


def stale_context(w: World, n: int) -> tuple[list[Step], int]:
    """Different calls, the same long answer each time: a search index that returns the same
    page whatever the query, or a URL with changing tracking parameters."""
    topic = w.pick(sorted(TOPICS))
    page = w.article(TOPICS[topic], 2)
    steps: list[Step] = []
    for index in range(n):
        if index % 2 or w.rng.random() < 0.3:
            query = w.query(topic, TOPICS[topic]) + f" {w.pick(NOUNS)} {w.pick(NOUNS)}"
            steps.append(Tools([("search_docs", {"query": query})], [f"Top result (retrieved {w.now()}):\n{page}"]))
        else:
            url = f"https://docs.example.org/{topic.replace(' ', '-')}?utm_source={w.hexid(5)}&ref={w.pick(NOUNS)}"
            steps.append(Tools([("fetch_url", {"url": url})], [f"{page}\n\n-- fetched {w.now()}"]))
    return steps, 1


def ping_pong_echo(w: World, n: int) -> tuple[list[Step], int]:
    """Two bots wired to each other in one conversation: each side repeats back, in its own
    words, what the other just said."""
    template = w.pick(PARAPHRASES)
    return [Say(_paraphrase(w, template), _paraphrase(w, template)) for _ in range(n)], 0


LOOPS: dict[str, tuple[str, Callable[[World, int], tuple[list[Step], int]]]] = {
    "same_call": ("repeated_tool_call", same_call),
    "same_call_varying": ("repeated_tool_call", same_call_varying),
    "cycle": ("cycle", cycle),
    "repeated_output": ("repeated_output", repeated_output),
    "stale_context": ("stale_context", stale_context),
    "ping_pong_echo": ("ping_pong", ping_pong_echo),
}
