"""The text a router scores and a grader reads: what the request asks, in either format.

That is the text of the user turns, in order, joined by blank lines (string content, or
their text parts): the conversation's questions so far, which is how the router was trained
(MT-Bench's second turns are scored with the first; README, "The router"). Tool results,
the system prompt and the assistant's turns are left out; images have no text. The router
reads only the first 12,000 characters.
"""

from __future__ import annotations

from typing import Any


def prompt_text(body: dict[str, Any]) -> str:
    """The user turns' text, for an OpenAI or an Anthropic chat body alike."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return ""
    turns = (content_text(m.get("content")) for m in messages if isinstance(m, dict) and m.get("role") == "user")
    return "\n\n".join(turn for turn in turns if turn)


def content_text(content: Any) -> str:
    """A message's text: a plain string, or its text parts joined by blank lines (OpenAI
    `{"type": "text", "text"}` parts and Anthropic text blocks have the same shape)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    return "\n\n".join(part["text"] for part in content
                       if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str))
