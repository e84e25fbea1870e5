"""When a refused client may try again, told the ways the SDKs read it."""

from __future__ import annotations

import math


def retry_headers(seconds: float) -> dict[str, str]:
    """Retry-After in whole seconds (rounded up, as HTTP has it), and the SDKs' finer retry-after-ms."""
    return {"retry-after": str(max(1, math.ceil(seconds))), "retry-after-ms": str(max(1, math.ceil(seconds * 1000)))}


def duration(seconds: float) -> str:
    """`0s`, `20ms`, `1.5s`, `6m0s`, `1h2m3s`: how OpenAI writes its reset times."""
    ms = math.ceil(seconds * 1000)
    if ms == 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    minutes, ms = divmod(ms, 60_000)
    hours, minutes = divmod(minutes, 60)
    secs = (f"{ms / 1000:.3f}".rstrip("0").rstrip(".") or "0") + "s"
    return (f"{hours}h" if hours else "") + (f"{minutes}m" if hours or minutes else "") + secs
