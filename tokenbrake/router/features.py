"""Hand-made features of a prompt that hint whether a small model can answer it.

Each feature is a cheap, explainable number read off the text alone (length, code, math,
multi-step instructions, constraints, question words, language). They are pure Python so
the base install routes without numpy or an embedding model; the learned model in
`classifier.py` weighs them. The text may be a whole conversation (earlier turns joined to the
last one): `turns` counts the blank-line separated blocks and the rest reads the whole text.
"""

from __future__ import annotations

import math
import re

# Past this many characters only the end of the prompt is read (its length still counts in
# full): the features of a 100 kB prompt would otherwise cost tens of milliseconds.
MAX_CHARS = 12_000

_WORD = re.compile(r"[A-Za-z]+(?:'[a-z]+)?")
_NUMBER = re.compile(r"(?<![A-Za-z])\d+(?:[.,]\d+)*")
_SENTENCE_END = re.compile(r"[.!?](?:\s|$)")
_OPERATOR = re.compile(r"(?<=[\w)\s])[-+*/^=<>](?=[\s\w(])")
_LATEX = re.compile(r"\\(?:frac|sum|int|sqrt|lim|cdot|times|alpha|beta|theta|pi|infty|begin|end|mathbb|left|right)\b|\$[^$\n]+\$")
_CODE_FENCE = re.compile(r"```|~~~")
_CODE_TOKEN = re.compile(
    r"\b(?:def|class|return|import|function|const|let|var|public|static|void|int|#include|SELECT|FROM|WHERE)\b"
    r"|[{};]\s*$|\b\w+\([^)\n]{0,200}\)\s*[{:]|=>|->|!=|==|\+\+|&&|\|\|",
    re.MULTILINE,
)
_LIST_ITEM = re.compile(r"^\s*(?:\d+[.)]|[-*•]|[a-z][.)])\s+", re.MULTILINE)
_PERCENT_OR_MONEY = re.compile(r"\d\s*%|\bpercent\b|[$€£]\s*\d")
_FRACTION = re.compile(r"\b\d+\s*/\s*\d+\b|\b(?:half|third|quarter|twice|thrice|double|triple)\b", re.IGNORECASE)

_QUESTION_WORDS = {"what", "why", "how", "which", "who", "when", "where", "whom", "whose"}
_REASONING_WORDS = {
    "prove", "proof", "derive", "calculate", "compute", "solve", "evaluate", "deduce", "infer",
    "implement", "algorithm", "complexity", "optimize", "optimise", "debug", "bug", "function",
    "program", "code", "equation", "probability", "integral", "derivative", "theorem", "logic",
    "puzzle", "riddle", "reason", "step", "steps", "analyze", "analyse", "compare", "explain",
    "determine", "estimate", "find", "total", "remaining", "average", "ratio", "rate",
}
_OPEN_ENDED_WORDS = {
    "write", "compose", "draft", "story", "poem", "blog", "essay", "email", "letter", "describe",
    "imagine", "pretend", "roleplay", "role", "character", "rewrite", "rephrase", "summarize",
    "summarise", "translate", "tweet", "slogan", "joke", "song", "creative", "persuasive", "brainstorm",
    "suggest", "tips", "ideas", "advice", "opinion",
}
_CONSTRAINT_WORDS = {
    "exactly", "must", "only", "without", "at least", "at most", "no more than", "every", "each",
    "format", "json", "table", "bullet", "words", "sentences", "limit", "strictly", "ensure",
    "include", "avoid", "do not", "don't", "never", "always",
}
_NUMBER_WORDS = {
    "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
    "fifteen", "twenty", "thirty", "forty", "fifty", "hundred", "thousand", "million", "dozen", "dozens",
    "half", "twice", "thrice", "double", "triple", "quarter", "third", "fourth", "fifth",
}
_RATE_WORDS = {"per", "each", "every", "times", "rate", "hourly", "daily", "weekly", "monthly", "yearly", "percent", "ratio"}
_MATH_WORDS = {
    "equation", "integer", "integers", "prime", "primes", "probability", "triangle", "circle", "area", "volume",
    "sum", "product", "digits", "divisible", "remainder", "polynomial", "matrix", "vector", "sequence", "series",
    "solve", "x", "y", "value", "function", "graph", "geometry", "algebra", "percentage", "fraction",
}
_EXTRACTION_WORDS = {
    "extract", "identify", "list", "json", "yaml", "csv", "table", "format", "parse", "classify", "categorize",
    "rank", "sort", "return", "output", "key", "keys", "entities", "names", "dates",
}
_SEQUENCE_WORDS = {"then", "after", "afterwards", "finally", "next", "first", "second", "third", "also", "additionally"}


def _share(count: int, total: int) -> float:
    return count / total if total else 0.0


def _log(x: float) -> float:
    return math.log1p(x)


def _count_phrases(lowered: str, words: list[str], phrases: set[str]) -> int:
    single = sum(1 for w in words if w in phrases)
    multi = sum(lowered.count(p) for p in phrases if " " in p)
    return single + multi


def extract(text: str) -> dict[str, float]:
    """The feature vector of `text`, by name. Every value is finite; most are logs or shares."""
    full_length = len(text)
    text = text[-MAX_CHARS:]
    lowered = text.lower()
    words = [w.lower() for w in _WORD.findall(text)]
    n_words = len(words)
    n_chars = len(text)
    numbers = _NUMBER.findall(text)
    lines = [line for line in text.splitlines() if line.strip()]
    non_ascii = sum(1 for ch in text if ord(ch) > 127)
    upper = sum(1 for ch in text if ch.isupper())
    digits = sum(1 for ch in text if ch.isdigit())
    return {
        "log_chars": _log(full_length),
        "log_words": _log(n_words),
        "log_sentences": _log(len(_SENTENCE_END.findall(text))),
        "log_lines": _log(len(lines)),
        "turns": _log(text.count("\n\n")),
        "mean_word_len": (sum(len(w) for w in words) / n_words) if n_words else 0.0,
        "long_word_share": _share(sum(1 for w in words if len(w) >= 9), n_words),
        "log_numbers": _log(len(numbers)),
        "log_distinct_numbers": _log(len(set(numbers))),
        "decimal_numbers": _log(sum(1 for n in numbers if "." in n)),
        "big_numbers": _log(sum(1 for n in numbers if len(n.replace(",", "").split(".")[0]) >= 4)),
        "digit_share": _share(digits, n_chars),
        "operators": _log(len(_OPERATOR.findall(text))),
        "latex": _log(len(_LATEX.findall(text))),
        "percent_money": _log(len(_PERCENT_OR_MONEY.findall(text))),
        "fractions": _log(len(_FRACTION.findall(text))),
        "code_fence": float(bool(_CODE_FENCE.search(text))),
        "code_tokens": _log(len(_CODE_TOKEN.findall(text))),
        "list_items": _log(len(_LIST_ITEM.findall(text))),
        "question_marks": _log(text.count("?")),
        "question_words": _log(sum(1 for w in words if w in _QUESTION_WORDS)),
        "reasoning_words": _log(sum(1 for w in words if w in _REASONING_WORDS)),
        "open_ended_words": _log(sum(1 for w in words if w in _OPEN_ENDED_WORDS)),
        "constraint_words": _log(_count_phrases(lowered, words, _CONSTRAINT_WORDS)),
        "sequence_words": _log(sum(1 for w in words if w in _SEQUENCE_WORDS)),
        "number_words": _log(sum(1 for w in words if w in _NUMBER_WORDS)),
        "quantities": _log(len(numbers) + sum(1 for w in words if w in _NUMBER_WORDS)),
        "rate_words": _log(sum(1 for w in words if w in _RATE_WORDS)),
        "math_words": _log(sum(1 for w in words if w in _MATH_WORDS)),
        "extraction_words": _log(sum(1 for w in words if w in _EXTRACTION_WORDS)),
        "quotes": _log(text.count('"') // 2 + text.count("“")),
        "non_ascii_share": _share(non_ascii, n_chars),
        "upper_share": _share(upper, n_chars),
    }


FEATURE_NAMES: tuple[str, ...] = tuple(extract("x"))
