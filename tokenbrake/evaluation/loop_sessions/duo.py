"""Two agents talking to each other through the gateway in one session: a writer and a
reviewer, each with its own conversation (the other's messages arrive as user messages).
They progress while the drafts change; they ping-pong when both keep sending the same."""

from __future__ import annotations

from tokenbrake.core import Format
from tokenbrake.evaluation.loop_sessions.script import Conversation, Say, Session
from tokenbrake.evaluation.loop_sessions.world import NOUNS, TOPICS, VERBS, World

WRITER_SYSTEM = "You are the writer. Draft the post, then revise it after each review."
REVIEWER_SYSTEM = "You are the reviewer. Review each draft you get and say what to change."
REVIEW_SENTENCES = [
    "The section on {a} is too long; cut it to the essentials.",
    "Add a concrete example where {a} causes {b}.",
    "I am not convinced by the claim about {b} — cite a benchmark.",
    "The intro should say who this is for.",
    "Explain {a} before using the term.",
    "Reorder: {b} first, then {a}.",
    "Numbers in paragraph {n} disagree with the table.",
    "Title: try something with {a} in it.",
    "Drop the aside about {c}; it distracts.",
    "Good progress. Tighten the conclusion and we are done with {a}.",
    "Paragraph {n} repeats paragraph {m}; merge them.",
    "Who measured the {b} numbers, and on which hardware?",
    "Link the upstream docs for {a}.",
    "The code sample leaks the {c} handle; close it in a finally block.",
    "Readers will ask how this compares with managed offerings.",
    "Use one name for {a} throughout, not three.",
    "The diagram is missing the {c} step between {a} and {b}.",
    "Shorter sentences in the second half, please.",
    "Say what happens when {b} fails halfway.",
    "Cut the history lesson; start from the incident.",
]


def _review(w: World, terms: list[str]) -> str:
    sentences = w.rng.sample(REVIEW_SENTENCES, w.rng.randrange(2, 4))
    a, b = w.rng.sample(terms, 2)
    return " ".join(s.format(a=a, b=b, c=w.pick(NOUNS), n=w.rng.randrange(2, 7), m=w.rng.randrange(7, 12)) for s in sentences)


def _nudge(w: World, text: str) -> str:
    """The same text with a word or two changed: what a stuck model sends again."""
    words = text.split()
    for _ in range(2):
        words[w.rng.randrange(len(words))] = w.pick(VERBS)
    return " ".join(words)


def writer_and_reviewer(w: World, name: str, fmt: Format, rounds: int, stuck_from: int | None) -> Session:
    topic = w.pick(sorted(TOPICS))
    terms = TOPICS[topic]
    drafts: list[str] = []
    reviews: list[str] = []
    for index in range(rounds + 1):
        if stuck_from is not None and index > stuck_from:
            drafts.append(_nudge(w, drafts[stuck_from]))
            reviews.append(_nudge(w, reviews[stuck_from]))
        else:
            drafts.append(f"# {topic.title()}: {w.pick(VERBS)} your {w.pick(NOUNS)}s\n\n" + w.article(terms, 2))
            reviews.append(_review(w, terms))
    writer = Conversation(WRITER_SYSTEM, f"Write a short blog post about {topic}.",
                          [Say(drafts[k], reviews[k]) for k in range(rounds)])
    reviewer = Conversation(REVIEWER_SYSTEM, drafts[0], [Say(reviews[k], drafts[k + 1]) for k in range(rounds)])
    schedule = [(agent, k) for k in range(rounds) for agent in (0, 1)]
    # The first repeat is the draft after the stuck one, as the reviewer receives it.
    loop_start = None if stuck_from is None else 2 * (stuck_from + 1) + 1
    return Session(name, fmt, "writer_reviewer", None if stuck_from is None else "ping_pong", loop_start,
                   [writer, reviewer], schedule)
