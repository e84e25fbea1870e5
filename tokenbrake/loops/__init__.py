"""Loop detection for agent sessions: is the agent still making progress?

`LoopDetector.observe(trace, fmt, body)` reads a session's next request (OpenAI chat or
Anthropic messages), only the part of the conversation it has not read yet, and returns the
new trace (small, JSON-serializable, bounded whatever the session's length) and a `LoopVerdict`.

May import: the package root, wire/, storage/ and limits/.
"""
from tokenbrake.loops.detector import LoopDetector
from tokenbrake.loops.verdict import LoopKind, LoopVerdict

__all__ = ["LoopDetector", "LoopKind", "LoopVerdict"]
