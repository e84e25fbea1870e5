"""Identifiers that look like the real providers' (random, base62)."""

from __future__ import annotations

import random

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_random = random.Random()  # ids need to be unique, not unpredictable
SYSTEM_FINGERPRINT = "fp_e0a7b1c2d3"


def new_id(prefix: str, length: int = 24) -> str:
    number = _random.getrandbits(6 * length)
    chars = []
    for _ in range(length):
        number, digit = divmod(number, 62)
        chars.append(_ALPHABET[digit])
    return prefix + "".join(chars)
