"""OpenAI's Responses API (`/v1/responses`) in terms of Chat Completions, which every upstream
the gateway knows can serve (an Anthropic one through translate/).

A Responses request becomes a chat completion request (requests.py) that the stages read like
any other; the chat answer becomes a Response object (answers.py) and a chat stream becomes the
Responses event sequence, numbered (events.py). An upstream that speaks Responses itself is sent
the request as the client wrote it; the fields only such an upstream can serve are listed on the
`Exchange`, and refused, naming the field, when the request goes anywhere else.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from tokenbrake.core import new_request_id


def new_item_id(prefix: str) -> str:
    """An id in OpenAI's shape (`resp_…`, `msg_…`, `fc_…`): a prefix and 32 hex digits."""
    return f"{prefix}_{new_request_id()}"


@dataclass(slots=True)
class Exchange:
    """One Responses request: what the client sent, and what it is answered."""

    body: dict[str, Any]  # the request as the client sent it
    input_items: list[dict[str, Any]]  # its `input` as items (a string is one user message)
    response_id: str = field(default_factory=lambda: new_item_id("resp"))
    created_at: int = field(default_factory=lambda: int(time.time()))
    history: list[dict[str, Any]] = field(default_factory=list)  # the items `previous_response_id` stands for
    continues: str | None = None  # the stored response it continues, when the gateway keeps it
    native_only: list[str] = field(default_factory=list)  # fields only a Responses upstream serves
    final: dict[str, Any] | None = None  # the Response object the client got, once complete

    @property
    def store(self) -> bool:
        return self.body.get("store") is not False
