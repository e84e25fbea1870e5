"""Deterministic reply text measured in exact tokens.

Every word in the vocabulary is a single o200k token both bare and after a space, and so is
the full stop; the tokenizer never merges across a word boundary, so a reply built from N
such pieces counts exactly N tokens, and each piece can be streamed as one token.
"""

from __future__ import annotations

import random
import re
from functools import lru_cache

from tokenbrake.wire.tokens import count_text, encoding

_WORDS = ["the", "of", "and", "to", "in", "is", "it", "that", "for", "was", "on", "are", "with", "as", "they", "be", "at", "one", "have", "this", "from", "or", "had", "by", "word", "but", "what", "some", "we", "can", "out", "other", "were", "all", "there", "when", "up", "use", "your", "how", "an", "each", "which", "do", "their", "time", "if", "will", "way", "about", "many", "then", "them", "write", "would", "like", "so", "these", "long", "make", "thing", "see", "two", "has", "look", "more", "day", "could", "go", "come", "did", "number", "sound", "no", "most", "people", "over", "know", "water", "than", "call", "first", "who", "may", "down", "side", "been", "now", "find", "any", "new", "work", "part", "take", "get", "place", "made", "live", "where", "after", "back", "little", "only", "round", "year", "show", "every", "good", "give", "our", "under", "name", "very", "through", "just", "form", "sentence", "great", "think", "say", "help", "low", "line", "turn", "cause", "much", "mean", "before", "move", "right", "old", "too", "same", "tell", "does", "set", "three", "want", "air", "well", "also", "play", "small", "end", "put", "home", "read", "hand", "large", "add", "even", "land", "here", "must", "big", "high", "such", "follow", "act", "why", "ask", "change", "went", "light", "kind", "off", "need", "house", "picture", "try", "again", "animal", "point", "world", "near", "build", "earth", "head", "stand", "own", "page", "should", "country", "found", "answer", "school", "grow", "study", "still", "learn", "plant", "cover", "food", "sun", "four", "between", "state", "keep", "eye", "never", "last", "let", "thought", "city", "tree", "cross", "farm", "hard", "start", "story", "far", "sea", "draw", "left", "late", "run", "while", "close", "night", "real", "life", "few", "north", "open", "next", "white", "children", "begin", "got", "walk", "example", "paper", "group", "always", "music", "those", "both", "mark", "often", "letter", "until", "river", "car", "care", "second", "book", "carry", "science", "eat", "room", "friend", "idea", "fish", "stop", "once", "base", "hear", "horse", "sure", "watch", "color", "face", "wood", "main", "plain", "young", "ready", "above", "ever", "red", "list", "though", "feel", "talk", "bird", "soon", "body", "dog", "family", "direct", "leave", "song", "measure", "door", "product", "black", "short", "class", "wind", "question", "complete", "ship", "area", "half", "rock", "order", "fire", "south", "problem", "piece", "pass", "since", "top", "whole", "king", "space", "best", "hour", "better", "true", "during", "five", "remember", "step", "early", "hold", "west", "ground", "interest", "reach", "fast", "sing", "listen", "six", "table", "travel", "less", "ten", "simple", "against", "pattern", "slow", "center", "love", "person", "money", "serve", "road", "map", "rain", "rule", "pull", "cold", "notice", "voice", "unit", "power", "town", "fine", "certain", "fly", "fall", "lead", "dark", "machine", "note", "wait", "plan", "figure", "star", "box", "field", "rest", "correct", "able", "done", "drive", "front", "teach", "week", "final", "green", "quick", "develop", "warm", "free", "minute", "strong", "special", "mind", "behind", "clear", "produce", "fact", "street", "nothing", "course", "stay", "wheel", "full", "force", "blue", "object", "surface", "deep", "moon", "foot", "system", "busy", "test", "record", "boat", "common", "gold", "possible", "plane", "dry", "wonder", "laugh", "check", "game", "shape", "heat", "snow", "bring", "fill", "east", "paint", "language", "among"]

_WORD_PIECE = re.compile(r"\s*\S+|\s+")


@lru_cache(maxsize=1)
def vocabulary() -> tuple[str, ...]:
    """The words that are one token in every position we use them (checked once, not trusted)."""
    return tuple(w for w in _WORDS if all(count_text(form) == 1 for form in _forms(w)))


def _forms(word: str) -> tuple[str, ...]:
    return word, " " + word, word.capitalize(), " " + word.capitalize()


@lru_cache(maxsize=4096)
def words(seed: int, tokens: int) -> tuple[str, ...]:
    """`tokens` one-token pieces of plain English sentences, the same for the same seed."""
    vocab = vocabulary()
    rng = random.Random(seed)
    pieces: list[str] = []
    sentence_left = 0
    while len(pieces) < tokens:
        if sentence_left == 0:
            sentence_left = rng.randint(6, 14)
            word = rng.choice(vocab).capitalize()
            pieces.append((" " + word) if pieces else word)
        elif sentence_left == 1 or len(pieces) == tokens - 1:
            pieces.append(".")
            sentence_left = 0
            continue
        else:
            pieces.append(" " + rng.choice(vocab))
        sentence_left -= 1
    return tuple(pieces)


def split_text(text: str) -> list[str]:
    """A given reply cut into word-sized pieces for streaming."""
    return _WORD_PIECE.findall(text)


def truncate(text: str, tokens: int) -> str:
    """The first `tokens` tokens of `text`."""
    enc = encoding()
    return enc.decode(enc.encode_ordinary(text)[:tokens])


def cut_at_stop(text: str, stops: list[str]) -> tuple[str, str | None]:
    """`text` up to the earliest stop sequence in it, and that sequence (or None)."""
    best, matched = len(text), None
    for stop in stops:
        at = text.find(stop) if stop else -1
        if 0 <= at < best:
            best, matched = at, stop
    return text[:best], matched
